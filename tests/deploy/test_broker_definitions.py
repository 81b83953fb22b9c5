"""deploy/rabbitmq/definitions.json: the layout ``messaging.topology`` declares, and one user per
service that can touch only its own names.

Permissions are checked the way RabbitMQ checks them: a regex *search* of the resource name
(the default exchange "" is checked as ``amq.default``), per AMQP operation as in RabbitMQ's
access-control table.
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

import pytest

from messaging import topology
from tests.deploy.manifests import DEPLOY, KUBERNETES, SERVICE_NAMES, load_definitions

RETRY_DELAYS_MS = (1000, 5000, 30000)  # MESSAGING_RETRY_DELAYS_MS's default
NAMES = topology.Names("")


class Refused(Exception):
    pass


class RecordingChannel:
    """Stands in for a pika channel: records declarations, checks a user's permissions."""

    def __init__(self, permissions: dict[str, str] | None = None) -> None:
        self.permissions = permissions
        self.exchanges: dict[str, str] = {}
        self.queues: dict[str, dict[str, Any]] = {}
        self.bindings: set[tuple[str, str, str]] = set()

    def require(self, permission: str, resource: str) -> None:
        name = resource or "amq.default"
        if self.permissions is not None and not re.search(self.permissions[permission], name):
            raise Refused(f"{permission} on {name!r}")

    def exchange_declare(self, exchange: str, exchange_type: str = "direct", **_: Any) -> None:
        self.require("configure", exchange)
        self.exchanges[exchange] = exchange_type

    def queue_declare(
        self, queue: str, arguments: dict[str, Any] | None = None, **_: Any
    ) -> RecordingChannel:
        self.require("configure", queue)
        if arguments and "x-dead-letter-exchange" in arguments:
            self.require("write", arguments["x-dead-letter-exchange"])
            self.require("read", queue)
        self.queues[queue] = dict(arguments or {})
        return self

    def queue_bind(self, queue: str, exchange: str, routing_key: str) -> None:
        self.require("write", queue)
        self.require("read", exchange)
        self.bindings.add((exchange, queue, routing_key))

    def queue_unbind(self, queue: str, exchange: str, routing_key: str) -> None:
        # RabbitMQ asks for the same permissions as to bind.
        self.require("write", queue)
        self.require("read", exchange)
        self.bindings.discard((exchange, queue, routing_key))

    def basic_publish(self, exchange: str, routing_key: str) -> None:
        self.require("write", exchange)

    def basic_consume(self, queue: str) -> None:
        self.require("read", queue)


def permissions_of(user: str, definitions: dict[str, Any]) -> dict[str, str]:
    (entry,) = (p for p in definitions["permissions"] if p["user"] == user)
    return {key: entry[key] for key in ("configure", "write", "read")}


class TestLayout:
    def test_definitions_hold_exactly_what_the_services_declare(
        self, definitions: dict[str, Any]
    ) -> None:
        declared = RecordingChannel()
        topology.declare_all(declared, NAMES, RETRY_DELAYS_MS)
        assert {e["name"]: e["type"] for e in definitions["exchanges"]} == declared.exchanges
        queues = {q["name"]: dict(q["arguments"]) for q in definitions["queues"]}
        for arguments in queues.values():
            assert arguments.pop("x-queue-type") == "quorum"
        assert queues == declared.queues
        assert {
            (b["source"], b["destination"], b["routing_key"]) for b in definitions["bindings"]
        } == declared.bindings

    def test_everything_is_durable(self, definitions: dict[str, Any]) -> None:
        for item in definitions["exchanges"] + definitions["queues"]:
            assert item["durable"] and not item["auto_delete"], item["name"]

    def test_undeclared_queue_type_means_quorum(self, definitions: dict[str, Any]) -> None:
        # The services declare queues without x-queue-type; the vhost default makes that match.
        (vhost,) = definitions["vhosts"]
        assert vhost["default_queue_type"] == vhost["metadata"]["default_queue_type"] == "quorum"

    def test_quorum_policies_cover_every_queue_and_retry_queue(
        self, definitions: dict[str, Any]
    ) -> None:
        policies = definitions["policies"]
        for service in topology.CONSUMES:
            for queue in (NAMES.queue(service), NAMES.retry_queue(service, 1000)):
                matching = [p for p in policies if re.search(p["pattern"], queue)]
                assert len(matching) == 1, queue
                assert matching[0]["apply-to"] == "quorum_queues"
            (main,) = (p for p in policies if re.search(p["pattern"], NAMES.queue(service)))
            assert main["definition"]["dead-letter-routing-key"] == NAMES.dead_letter_queue(service)
            assert main["definition"]["dead-letter-exchange"] == NAMES.dead_letter_exchange(service)

    def test_generated_files_are_up_to_date(
        self, generator: ModuleType, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The committed files hold the defaults: no prefix, default delays, local passwords.
        for variable in (
            "MESSAGING_PREFIX",
            "MESSAGING_RETRY_DELAYS_MS",
            "RABBITMQ_ADMIN_PASSWORD",
        ):
            monkeypatch.delenv(variable, raising=False)
        for service in SERVICE_NAMES:
            monkeypatch.delenv(generator.password_variable(service), raising=False)
        assert generator.main(["--check"]) == 0, "run deploy/rabbitmq/generate_definitions.py"

    def test_kubernetes_copy_is_identical(self) -> None:
        assert (KUBERNETES / "rabbitmq" / "definitions.json").read_text() == (
            DEPLOY / "rabbitmq" / "definitions.json"
        ).read_text()

    def test_compose_node_loads_this_file(self) -> None:
        config = (DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text()
        assert "definitions.local.path = /etc/rabbitmq/definitions.json" in config


class TestUsers:
    def test_one_user_per_service_and_an_administrator_but_no_guest(
        self, definitions: dict[str, Any]
    ) -> None:
        users = {user["name"]: user for user in definitions["users"]}
        assert set(users) == {"admin", *SERVICE_NAMES}
        assert users["admin"]["tags"] == ["administrator"]
        for service in SERVICE_NAMES:
            assert users[service]["tags"] == [], "services need no management access"

    def test_password_hashes_are_salted_sha256_of_the_local_defaults(
        self, definitions: dict[str, Any], generator: ModuleType
    ) -> None:
        hashes = set()
        for user in definitions["users"]:
            assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
            assert generator.password_matches(
                user["password_hash"], generator.default_password(user["name"])
            )
            assert not generator.password_matches(user["password_hash"], "guest")
            hashes.add(user["password_hash"])
        assert len(hashes) == len(definitions["users"])

    def test_a_password_from_the_environment_replaces_the_default(
        self, generator: ModuleType
    ) -> None:
        fresh = generator.definitions(
            env={"ORDERS_AMQP_PASSWORD": "s3cret"}, previous=load_definitions()
        )
        (orders,) = (u for u in fresh["users"] if u["name"] == "orders")
        assert generator.password_matches(orders["password_hash"], "s3cret")

    def test_hashing_matches_rabbitmq(self, generator: ModuleType) -> None:
        # RabbitMQ's own example: salt 908D C60A, password "test12".
        salt = bytes.fromhex("908DC60A")
        assert generator.hash_password("test12", salt) == (
            "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
        )


class TestPermissions:
    @pytest.mark.parametrize("service", SERVICE_NAMES)
    def test_publishes_only_to_its_own_exchange(
        self, service: str, definitions: dict[str, Any]
    ) -> None:
        channel = RecordingChannel(permissions_of(service, definitions))
        for publisher in topology.PUBLISHES:
            if publisher == service:
                channel.basic_publish(NAMES.exchange(publisher), "any")
            else:
                with pytest.raises(Refused):
                    channel.basic_publish(NAMES.exchange(publisher), "any")

    @pytest.mark.parametrize("service", SERVICE_NAMES)
    def test_reads_and_configures_only_its_own_queues(
        self, service: str, definitions: dict[str, Any]
    ) -> None:
        channel = RecordingChannel(permissions_of(service, definitions))
        for other in topology.CONSUMES:
            own = [
                NAMES.queue(other),
                NAMES.dead_letter_queue(other),
                *(NAMES.retry_queue(other, d) for d in RETRY_DELAYS_MS),
            ]
            for queue in own:
                if other == service:
                    channel.basic_consume(queue)
                    channel.queue_declare(queue)
                else:
                    with pytest.raises(Refused):
                        channel.basic_consume(queue)
                    with pytest.raises(Refused):
                        channel.queue_declare(queue)

    @pytest.mark.parametrize("service", SERVICE_NAMES)
    def test_can_declare_and_bind_its_own_queues(
        self, service: str, definitions: dict[str, Any]
    ) -> None:
        channel = RecordingChannel(permissions_of(service, definitions))
        topology.declare_consumer_queues(channel, NAMES, service, RETRY_DELAYS_MS)
        channel.exchange_declare(NAMES.exchange(service))
        # The consumer's retry and dead-letter copies go through its own exchanges.
        channel.basic_publish(NAMES.retry_exchange(service), NAMES.retry_queue(service, 1000))
        channel.basic_publish(NAMES.dead_letter_exchange(service), NAMES.dead_letter_queue(service))

    @pytest.mark.parametrize("service", SERVICE_NAMES)
    def test_no_service_writes_through_the_default_exchange(
        self, service: str, definitions: dict[str, Any]
    ) -> None:
        channel = RecordingChannel(permissions_of(service, definitions))
        with pytest.raises(Refused):
            channel.basic_publish("", NAMES.queue(service))

    @pytest.mark.parametrize("service", SERVICE_NAMES)
    def test_writes_into_no_other_services_queue_or_exchange(
        self, service: str, definitions: dict[str, Any]
    ) -> None:
        channel = RecordingChannel(permissions_of(service, definitions))
        for other in topology.CONSUMES:
            if other == service:
                continue
            for exchange in (NAMES.retry_exchange(other), NAMES.dead_letter_exchange(other)):
                with pytest.raises(Refused):
                    channel.basic_publish(exchange, NAMES.queue(other))
            with pytest.raises(Refused):  # binding its own exchange to the queue: write on it
                channel.queue_bind(NAMES.queue(other), NAMES.exchange(service), "any")

    def test_retry_queues_dead_letter_through_their_services_retry_exchange(
        self, definitions: dict[str, Any]
    ) -> None:
        for queue in definitions["queues"]:
            service = next(s for s in topology.CONSUMES if queue["name"].startswith(s))
            if ".retry." in queue["name"]:
                assert queue["arguments"]["x-dead-letter-exchange"] == NAMES.retry_exchange(service)
                assert queue["arguments"]["x-dead-letter-routing-key"] == NAMES.queue(service)

    @pytest.mark.parametrize("service", SERVICE_NAMES)
    def test_cannot_declare_the_other_services_layout(
        self, service: str, definitions: dict[str, Any]
    ) -> None:
        # What the relay (declare_all) and consumer (declare_exchanges) do at start-up today:
        # refused on purpose; libs must declare only their own names (docs/operations.md).
        channel = RecordingChannel(permissions_of(service, definitions))
        with pytest.raises(Refused):
            topology.declare_exchanges(channel, NAMES)
        with pytest.raises(Refused):
            topology.declare_all(channel, NAMES, RETRY_DELAYS_MS)

    def test_every_regex_is_anchored(self, definitions: dict[str, Any]) -> None:
        # RabbitMQ searches: an unanchored "orders" would also grant "orders-archive".
        for entry in definitions["permissions"]:
            if entry["user"] == "admin":
                continue
            for key in ("configure", "write", "read"):
                assert entry[key].startswith("^(") and entry[key].endswith(")$"), entry
