"""Settings every service shares, read from the environment in one place.

A service's settings module calls :func:`build` and adds what is its own. Every variable is
documented in ``.env.example``; with none set, a service runs on a laptop: SQLite under
``var/``, RabbitMQ on localhost, keys generated under ``var/keys``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url

from service_runtime.logging import logging_config
from service_runtime.metrics_dir import prepare_multiprocess_dir
from service_runtime.openapi_settings import openapi_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
VAR_DIR = Path(os.environ.get("VAR_DIR", REPO_ROOT / "var"))


def env_str(name: str, default: str) -> str:
    return os.environ.get(name) or default


# Unacknowledged messages a consumer holds, and so its largest batch (a backlog drains in
# batches this size: reports/bench-changes.md measured 50, 100, 200 and 500).
DEFAULT_PREFETCH = 200
DEFAULT_BUSY_GATHER_MS = 4  # messaging.consumer: how long a busy consumer collects


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


# psycopg prepares a statement once it ran this many times: never, unless asked to.
PREPARE_ONLY_WHEN_ASKED = 2**31 - 1


def database(service: str) -> dict[str, Any]:
    """``DATABASE_URL`` when set, else an SQLite file per service under ``var/``."""
    url = os.environ.get("DATABASE_URL")
    if url:
        config: dict[str, Any] = dict(
            dj_database_url.parse(url, conn_max_age=None, conn_health_checks=True)
        )
        if config.get("ENGINE") == "django.db.backends.postgresql":
            # The same backend, with a health check that costs no round trip when the
            # connection shows nothing wrong (see service_runtime.postgresql.base).
            config["ENGINE"] = "service_runtime.postgresql"
        options = config.setdefault("OPTIONS", {})
        # Parameters bound by the server (psycopg's Cursor, not ClientCursor): no quoting in
        # Python. Behind a transaction-pooling PgBouncer older than 1.21, set both to false.
        server_side = env_bool("DATABASE_SERVER_SIDE_BINDING", True)
        options.setdefault("server_side_binding", server_side)
        if server_side and env_bool("DATABASE_PREPARED_STATEMENTS", True):
            # Only the statements service_runtime.statements is asked to prepare are prepared
            # (a count never reaches the threshold), and they alone run on generic plans: every
            # other statement is planned for its values, as when none were prepared (preparing
            # them all saved 7 % of PostgreSQL's CPU per order in the closed loop and cost 20 %
            # more in a backlog's drain: reports/bench-changes.md).
            options.setdefault("prepare_threshold", PREPARE_ONLY_WHEN_ASKED)
            startup = options.get("options", "")
            options["options"] = f"{startup} -c plan_cache_mode=force_generic_plan".strip()
        return config
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(VAR_DIR / f"{service}.sqlite3"),
        "OPTIONS": {
            # WAL lets readers work while a writer commits; IMMEDIATE takes the write lock at
            # BEGIN, which serialises writers instead of failing them half-way.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        },
        "CONN_MAX_AGE": None,
        "CONN_HEALTH_CHECKS": True,
    }


def caches(service: str) -> dict[str, Any]:
    """The cache every process of a service shares (the abuse limits' counts live there):
    Redis at ``CACHE_URL`` (``redis://host:6379/0``) in production; with none, files under
    ``var/cache/<service>``, which a laptop's processes share with nothing else running."""
    url = os.environ.get("CACHE_URL")
    if url:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"CACHE_URL must be a Redis URL (redis://...), not {url!r}")
        return {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": url,
                "KEY_PREFIX": service,
                # A cache that does not answer fails the request after this long, not never.
                "OPTIONS": {"socket_timeout": 1.0, "socket_connect_timeout": 1.0},
            }
        }
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache" / service),
            "KEY_PREFIX": service,
        }
    }


def private_test_database(database: dict[str, Any]) -> dict[str, Any]:
    """Give a test run its own test database, so concurrent runs on one server never collide."""
    return {**database, "TEST": {"NAME": f"test_{database['NAME']}_{os.getpid()}"}}


def build(service: str, *, apps: list[str], urlconf: str) -> dict[str, Any]:
    debug = env_bool("DJANGO_DEBUG", False)
    prepare_multiprocess_dir()
    return {
        "SECRET_KEY": env_str("DJANGO_SECRET_KEY", f"insecure-local-only-{service}"),
        "DEBUG": debug,
        "ALLOWED_HOSTS": env_list(
            "DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"]
        ),
        "INSTALLED_APPS": [
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "rest_framework",
            "drf_spectacular",
            "drf_spectacular_sidecar",  # Swagger UI's files, served by the service: no CDN
            "messaging",
            "messaging_ops",  # dead letters: the command here, the REST API in each config/urls.py
            *apps,
        ],
        "MIDDLEWARE": [
            "service_runtime.request_limits.RequestBodyLimitMiddleware",  # a 413 before anything
            "service_runtime.operational.OperationalPathsMiddleware",  # before the Host check
            "service_runtime.metrics.HttpMetricsMiddleware",
            "service_runtime.request_context.RequestContextMiddleware",
            "django.middleware.security.SecurityMiddleware",
            "django.middleware.common.CommonMiddleware",
        ],
        "ROOT_URLCONF": urlconf,
        # The largest request body accepted (413 above it), as the gateways' (1 MiB).
        "DATA_UPLOAD_MAX_MEMORY_SIZE": env_int("REQUEST_BODY_MAX_BYTES", 1024 * 1024),
        "TEMPLATES": [
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "DIRS": [],
                "APP_DIRS": True,
                "OPTIONS": {"context_processors": []},
            }
        ],
        "DATABASES": {"default": database(service)},
        "CACHES": caches(service),
        # Abuse limits (service_runtime.throttling): the proxies in front of the web server
        # that each append the caller's address to X-Forwarded-For (0: REMOTE_ADDR is the caller).
        "THROTTLE_PROXY_COUNT": env_int("THROTTLE_PROXY_COUNT", 0),
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "USE_TZ": True,
        "TIME_ZONE": "UTC",
        "LANGUAGE_CODE": "en-us",
        "REST_FRAMEWORK": {
            "DEFAULT_AUTHENTICATION_CLASSES": ["identity.authentication.JWTAuthentication"],
            "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
            "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
            "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
            "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
            "PAGE_SIZE": 50,
            "UNAUTHENTICATED_USER": None,
            "EXCEPTION_HANDLER": "service_runtime.errors.exception_handler",
            "DEFAULT_SCHEMA_CLASS": "service_runtime.openapi.AutoSchema",
        },
        "SPECTACULAR_SETTINGS": openapi_settings(service),
        "STATIC_URL": "/static/",  # only Swagger UI's files (service_runtime.urls)
        # Scrape-time collectors added to /metrics; a service appends its own.
        "METRICS_COLLECTORS": [
            "messaging.metrics.OutboxCollector",
            "messaging.metrics.TablesCollector",
        ],
        # /health/ready's checks after the database and migrations: name -> function.
        "HEALTH_READINESS_CHECKS": {"broker": "messaging.health.check_broker"},
        "HEALTH_BROKER_CACHE_SECONDS": 3.0,
        "JWT_PUBLIC_KEY_FILE": env_str(
            "JWT_PUBLIC_KEY_FILE", str(VAR_DIR / "keys" / "jwt_public.pem")
        ),
        "JWT_ALGORITHM": "RS256",
        "MESSAGING_SERVICE": service,
        "MESSAGING_BROKER_URL": env_str("AMQP_URL", "amqp://guest:guest@localhost:5672/%2F"),
        "MESSAGING_PREFIX": env_str("MESSAGING_PREFIX", ""),
        "MESSAGING_PREFETCH": env_int("MESSAGING_PREFETCH", DEFAULT_PREFETCH),
        "MESSAGING_RETRY_DELAYS_MS": tuple(
            int(ms) for ms in env_list("MESSAGING_RETRY_DELAYS_MS", ["1000", "5000", "30000"])
        ),
        "MESSAGING_RELAY_GRACE_SECONDS": float(env_str("MESSAGING_RELAY_GRACE_SECONDS", "1.0")),
        # How long a consumer collects deliveries after the first of a batch (messaging.consumer):
        # 0 on the saga's path; a service off it sets its own default.
        "MESSAGING_GATHER_MS": env_int("MESSAGING_GATHER_MS", 0),
        # Without it, a consumer still collects this long while busy (its last batch held several
        # messages and the next came within this of its end): fewer, larger batches under load;
        # a message to an idle consumer is applied at once. 0 turns it off.
        "MESSAGING_BUSY_GATHER_MS": env_int("MESSAGING_BUSY_GATHER_MS", DEFAULT_BUSY_GATHER_MS),
        # Which version of each event type to publish (messaging.versions): empty = what the
        # previous release's consumers read, "latest", or "stock.reserved=2,...".
        "MESSAGING_EVENT_VERSIONS": env_str("MESSAGING_EVENT_VERSIONS", ""),
        # Bounded tables (messaging.pruning): sent outbox rows and inbox rows are deleted this
        # many days after they were sent/processed, by the worker's prune job, every so often,
        # so many rows per transaction. Dead letters older than the retention less a day are
        # not replayed. docs/operations.md "Bounded tables" says why 7 days is safe.
        "MESSAGING_RETENTION_DAYS": float(env_str("MESSAGING_RETENTION_DAYS", "7")),
        "MESSAGING_PRUNE_EVERY_SECONDS": env_int("MESSAGING_PRUNE_EVERY_SECONDS", 300),
        "MESSAGING_PRUNE_BATCH": env_int("MESSAGING_PRUNE_BATCH", 1000),
        # One JSON object per line (LOG_FORMAT=text for humans), with the bound context.
        "LOGGING_CONFIG": "service_runtime.logging.configure",
        "LOGGING": logging_config(
            service, level=env_str("LOG_LEVEL", "INFO"), log_format=env_str("LOG_FORMAT", "json")
        ),
    }
