"""Write RabbitMQ's definitions file from the broker layout in ``messaging.topology``.

The file holds the virtual host (quorum queues by default), every exchange, queue (with its
retry and dead-letter queues) and binding, the quorum-queue policies, an administrator and one
user per service whose permissions cover only that service's own names. RabbitMQ imports it on
every boot, so the broker is provisioned before any service connects.

Passwords come from ``<SERVICE>_AMQP_PASSWORD`` (``INVENTORY_AMQP_PASSWORD``, ...) and
``RABBITMQ_ADMIN_PASSWORD``; the defaults are for a laptop only. A password is stored as
RabbitMQ's salted SHA-256 hash; a hash already in the output file is kept while it still matches
its password, so running this again changes nothing unless the layout or a password changed.

    python deploy/rabbitmq/generate_definitions.py            # the committed local file
    INVENTORY_AMQP_PASSWORD=... python deploy/rabbitmq/generate_definitions.py --output x.json
    python deploy/rabbitmq/generate_definitions.py --check    # exit 1 when the files are stale
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "libs"))

from messaging import topology  # noqa: E402  (libs/ is put on the path just above)

VHOST = "/"
ADMIN_USER = "admin"
HASHING_ALGORITHM = "rabbit_password_hashing_sha256"
DEFAULT_RETRY_DELAYS_MS = (1000, 5000, 30000)
# Broker-side guard against a message that kills its consumer before the ack (the consumer
# dead-letters every failure it survives): after this many returns it goes to the DLQ.
DELIVERY_LIMIT = 50
# The committed file (Compose) and its copy under the Kubernetes kustomization root.
DEFAULT_OUTPUTS = (
    REPO_ROOT / "deploy" / "rabbitmq" / "definitions.json",
    REPO_ROOT / "deploy" / "kubernetes" / "rabbitmq" / "definitions.json",
)


def services() -> list[str]:
    return sorted(set(topology.PUBLISHES) | set(topology.CONSUMES))


def password_variable(service: str) -> str:
    return f"{service.upper().replace('-', '_')}_AMQP_PASSWORD"


def default_password(user: str) -> str:
    return f"{user}-local-only"


def password_for(user: str, env: dict[str, str]) -> str:
    variable = "RABBITMQ_ADMIN_PASSWORD" if user == ADMIN_USER else password_variable(user)
    return env.get(variable) or default_password(user)


def hash_password(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def password_matches(password_hash: str, password: str) -> bool:
    try:
        raw = base64.b64decode(password_hash, validate=True)
    except ValueError:
        return False
    return len(raw) == 36 and secrets.compare_digest(
        hash_password(password, raw[:4]), password_hash
    )


def regex_literal(name: str) -> str:
    """``name`` as a regular expression matching exactly itself (RabbitMQ uses PCRE)."""
    return "".join(f"\\{char}" if char in r".^$*+?()[]{}|\/" else char for char in name)


def own_queue_names(names: topology.Names, service: str) -> list[str]:
    queue = regex_literal(names.queue(service))
    return [queue, f"{queue}\\.dlq", f"{queue}\\.retry\\.[0-9]+ms"]


def any_of(patterns: list[str]) -> str:
    return "^(" + "|".join(patterns) + ")$"


def own_exchange_names(names: topology.Names, service: str) -> list[str]:
    """A consumer's retry and dead-letter exchanges (its queues are bound to them)."""
    if service not in topology.CONSUMES:
        return []
    return [
        regex_literal(names.retry_exchange(service)),
        regex_literal(names.dead_letter_exchange(service)),
    ]


def permissions(names: topology.Names, service: str) -> dict[str, str]:
    """What one service may do, by resource name (RabbitMQ matches these regexes by search).

    configure: declare its own exchanges and queues. write: publish to its own exchanges (its
    events; retry and dead-letter copies go through its retry and dead-letter exchanges, never
    the default exchange); bind its own queues; name its retry exchange as a retry queue's
    dead-letter exchange. read: consume its own queues; bind them to the exchanges they are
    bound to (the publishers' it consumes from, its own retry and dead-letter exchanges).
    """
    events = [regex_literal(names.exchange(service))] if service in topology.PUBLISHES else []
    consumer_exchanges = own_exchange_names(names, service)
    own_queues = own_queue_names(names, service) if service in topology.CONSUMES else []
    sources = sorted({topology.publisher_of(event) for event in topology.CONSUMES.get(service, ())})
    return {
        "configure": any_of([*events, *consumer_exchanges, *own_queues]),
        "write": any_of([*events, *consumer_exchanges, *own_queues]),
        "read": any_of(
            [
                *own_queues,
                *consumer_exchanges,
                *(regex_literal(names.exchange(s)) for s in sources),
            ]
        ),
    }


def policies(names: topology.Names) -> list[dict[str, Any]]:
    """Quorum-queue policies: broker-side poison-message limit; at-least-once dead-lettering."""
    result = []
    for service in sorted(topology.CONSUMES):
        queue = regex_literal(names.queue(service))
        result.append(
            {
                "vhost": VHOST,
                "name": f"{names.queue(service)}-queue",
                "pattern": f"^{queue}$",
                "apply-to": "quorum_queues",
                "priority": 10,
                "definition": {
                    "delivery-limit": DELIVERY_LIMIT,
                    "dead-letter-exchange": names.dead_letter_exchange(service),
                    "dead-letter-routing-key": names.dead_letter_queue(service),
                    "dead-letter-strategy": "at-least-once",
                    "overflow": "reject-publish",
                },
            }
        )
        result.append(
            {
                "vhost": VHOST,
                "name": f"{names.queue(service)}-retry",
                "pattern": f"^{queue}\\.retry\\.[0-9]+ms$",
                "apply-to": "quorum_queues",
                "priority": 10,
                # The queue's own arguments name the target; this makes the hop back safe.
                "definition": {
                    "dead-letter-strategy": "at-least-once",
                    "overflow": "reject-publish",
                },
            }
        )
    return result


def queue(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "vhost": VHOST,
        "durable": True,
        "auto_delete": False,
        "arguments": {"x-queue-type": "quorum", **arguments},
    }


def queues(names: topology.Names, retry_delays_ms: tuple[int, ...]) -> list[dict[str, Any]]:
    """Exactly what ``topology.declare_consumer_queues`` declares, as quorum queues."""
    result = []
    for service in sorted(topology.CONSUMES):
        main = names.queue(service)
        result.append(queue(main, {}))
        for delay in retry_delays_ms:
            result.append(
                queue(
                    names.retry_queue(service, delay),
                    {
                        "x-message-ttl": delay,
                        "x-dead-letter-exchange": names.retry_exchange(service),
                        "x-dead-letter-routing-key": main,
                    },
                )
            )
        result.append(queue(names.dead_letter_queue(service), {}))
    return result


def exchange(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "vhost": VHOST,
        "type": "direct",
        "durable": True,
        "auto_delete": False,
        "internal": False,
        "arguments": {},
    }


def exchanges(names: topology.Names) -> list[dict[str, Any]]:
    """Each publisher's events exchange; each consumer's retry and dead-letter exchanges."""
    return [
        *(exchange(names.exchange(service)) for service in sorted(topology.PUBLISHES)),
        *(
            exchange(name)
            for service in sorted(topology.CONSUMES)
            for name in (names.retry_exchange(service), names.dead_letter_exchange(service))
        ),
    ]


def binding(source: str, queue: str, routing_key: str) -> dict[str, Any]:
    return {
        "source": source,
        "vhost": VHOST,
        "destination": queue,
        "destination_type": "queue",
        "routing_key": routing_key,
        "arguments": {},
    }


def bindings(names: topology.Names, retry_delays_ms: tuple[int, ...]) -> list[dict[str, Any]]:
    """Exactly what ``topology.declare_consumer_queues`` binds."""
    result = []
    for service in sorted(topology.CONSUMES):
        queue, dlq = names.queue(service), names.dead_letter_queue(service)
        retry, dead = names.retry_exchange(service), names.dead_letter_exchange(service)
        result += [
            binding(names.exchange(topology.publisher_of(event)), queue, event)
            for event in topology.CONSUMES[service]
        ]
        result.append(binding(retry, queue, queue))
        result += [
            binding(retry, names.retry_queue(service, delay), names.retry_queue(service, delay))
            for delay in retry_delays_ms
        ]
        result.append(binding(dead, dlq, dlq))
    return result


def users(env: dict[str, str], previous: dict[str, str]) -> list[dict[str, Any]]:
    result = []
    for name in [ADMIN_USER, *services()]:
        password = password_for(name, env)
        old_hash = previous.get(name, "")
        result.append(
            {
                "name": name,
                "password_hash": (
                    old_hash if password_matches(old_hash, password) else hash_password(password)
                ),
                "hashing_algorithm": HASHING_ALGORITHM,
                "tags": ["administrator"] if name == ADMIN_USER else [],
                "limits": {},
            }
        )
    return result


def definitions(
    *,
    prefix: str = "",
    retry_delays_ms: tuple[int, ...] = DEFAULT_RETRY_DELAYS_MS,
    env: dict[str, str] | None = None,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    names = topology.Names(prefix)
    env = dict(os.environ) if env is None else env
    old_hashes = {u["name"]: u.get("password_hash", "") for u in (previous or {}).get("users", [])}
    all_access = {"configure": ".*", "write": ".*", "read": ".*"}
    return {
        "users": users(env, old_hashes),
        "vhosts": [
            {
                "name": VHOST,
                "description": "inventory, orders and user-notification",
                "tags": [],
                # Services declare queues without x-queue-type: they get (and match) quorum.
                "default_queue_type": "quorum",
                "metadata": {
                    "description": "inventory, orders and user-notification",
                    "tags": [],
                    "default_queue_type": "quorum",
                },
            }
        ],
        "permissions": [
            {"user": ADMIN_USER, "vhost": VHOST, **all_access},
            *({"user": s, "vhost": VHOST, **permissions(names, s)} for s in services()),
        ],
        "topic_permissions": [],
        "parameters": [],
        "global_parameters": [],
        "policies": policies(names),
        "queues": queues(names, retry_delays_ms),
        "exchanges": exchanges(names),
        "bindings": bindings(names, retry_delays_ms),
    }


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2) + "\n"


def read_previous(path: Path) -> dict[str, Any] | None:
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, action="append", help="file(s) to write")
    parser.add_argument("--prefix", default=os.environ.get("MESSAGING_PREFIX", ""))
    parser.add_argument(
        "--retry-delays-ms",
        default=os.environ.get("MESSAGING_RETRY_DELAYS_MS", ""),
        help="comma-separated, as MESSAGING_RETRY_DELAYS_MS",
    )
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    delays = tuple(int(ms) for ms in args.retry_delays_ms.split(",") if ms.strip())
    outputs = args.output or list(DEFAULT_OUTPUTS)
    # Every output gets the same text: hashes are taken from the first file that has them.
    previous = next(filter(None, map(read_previous, outputs)), None)
    text = render(
        definitions(
            prefix=args.prefix,
            retry_delays_ms=delays or DEFAULT_RETRY_DELAYS_MS,
            previous=previous,
        )
    )
    stale = [path for path in outputs if not path.exists() or path.read_text() != text]
    if not args.check:
        for path in stale:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
