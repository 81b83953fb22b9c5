#!/usr/bin/env bash
# One database and one login role per service, each role owning only its own database.
# The postgres image runs this once, on an empty data directory (/docker-entrypoint-initdb.d).
#
# APP_DATABASES lists the databases to create (Compose: all three in one server; Kubernetes:
# one per server). The password of database NAME comes from NAME_DB_PASSWORD (upper case),
# e.g. INVENTORY_DB_PASSWORD; the role and the database are both called NAME.
set -eo pipefail

for database in ${APP_DATABASES:-inventory orders user_notification}; do
  password_variable="${database^^}_DB_PASSWORD"
  if [ -z "${!password_variable:-}" ]; then
    echo "init.sh: ${password_variable} is not set" >&2
    exit 1
  fi
  echo "init.sh: creating role and database ${database}"
  psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    --set=name="${database}" --set=password="${!password_variable}" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
-- Only the owner (and superusers) may connect: no service reaches another's data.
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
done
