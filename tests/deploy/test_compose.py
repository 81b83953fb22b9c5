"""compose.yaml: valid Compose, the same processes as ``make up``, started in a safe order."""

from __future__ import annotations

import copy
import itertools
import json
import re
import shutil
import subprocess
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from devstack.system import SERVICES, WORKER_COMMAND
from tests.deploy import metric_names
from tests.deploy.manifests import (
    COMPOSE_FILE,
    REPO_ROOT,
    ROLE_LABEL,
    SERVICE_LABEL,
    compose_containers,
    local_commands,
    local_setup_commands,
)

# The Compose Specification's JSON schema (Apache-2.0), as vendored by check-jsonschema.
COMPOSE_SCHEMA = json.loads(
    files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
)
# Worker commands that keep a heartbeat (messaging.worker.Heartbeat).
HEARTBEAT_ROLES = {WORKER_COMMAND}
LONG_RUNNING = {"web", WORKER_COMMAND}


def schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(COMPOSE_SCHEMA)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


class TestSchema:
    def test_compose_file_matches_the_compose_specification(self, compose: dict[str, Any]) -> None:
        assert schema_errors(compose) == []

    def test_the_schema_check_rejects_a_misspelt_key(self, compose: dict[str, Any]) -> None:
        broken = copy.deepcopy(compose)
        broken["services"]["rabbitmq"]["healthchek"] = broken["services"]["rabbitmq"].pop(
            "healthcheck"
        )
        assert schema_errors(broken)

    @pytest.mark.skipif(
        shutil.which("docker-compose") is None, reason="no docker-compose binary here"
    )
    def test_docker_compose_loads_the_file(self) -> None:
        result = subprocess.run(
            ["docker-compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr


class TestSameProcessesAsTheLocalRun:
    def test_every_service_has_its_web_server_and_every_worker(self) -> None:
        for service, roles in local_commands().items():
            running = {
                spec["labels"][ROLE_LABEL]
                for spec in compose_containers().values()
                if spec["labels"][SERVICE_LABEL] == service
            }
            assert set(roles) <= running, service
            assert {"web", WORKER_COMMAND, "migrate"} <= running, service

    def test_long_running_commands_equal_the_local_run(self) -> None:
        expected = local_commands()
        for name, spec in compose_containers().items():
            service, role = spec["labels"][SERVICE_LABEL], spec["labels"][ROLE_LABEL]
            if role in LONG_RUNNING:
                assert spec["command"] == expected[service][role], name

    def test_set_up_commands_equal_the_local_run_in_order(self) -> None:
        for service, steps in local_setup_commands().items():
            containers = {
                name: spec
                for name, spec in compose_containers().items()
                if spec["labels"][SERVICE_LABEL] == service
                and spec["labels"][ROLE_LABEL] not in LONG_RUNNING
            }
            assert sorted(spec["command"] for spec in containers.values()) == sorted(steps)
            by_command = {tuple(spec["command"]): name for name, spec in containers.items()}
            for earlier, later in itertools.pairwise(steps):
                depends = containers[by_command[tuple(later)]]["depends_on"]
                assert depends[by_command[tuple(earlier)]]["condition"] == (
                    "service_completed_successfully"
                )

    def test_workers_run_as_competing_replicas(self) -> None:
        for name, spec in compose_containers(WORKER_COMMAND).items():
            assert spec["deploy"]["replicas"] >= 2, name

    def test_web_servers_listen_on_the_local_ports(self) -> None:
        ports = {spec.name: spec.port for spec in SERVICES}
        for name, spec in compose_containers("web").items():
            port = ports[spec["labels"][SERVICE_LABEL]]
            assert spec["environment"]["PORT"] == str(port), name  # gunicorn binds 0.0.0.0:$PORT
            assert spec["healthcheck"]["test"] == [
                "CMD",
                "probe",
                "http",
                f"http://127.0.0.1:{port}/health/ready",
            ], name


class TestStartOrderAndHealth:
    @pytest.mark.parametrize("role", sorted(HEARTBEAT_ROLES))
    def test_workers_are_healthy_while_they_beat(self, role: str) -> None:
        for name, spec in compose_containers(role).items():
            assert spec["healthcheck"]["test"] == ["CMD", "probe", "heartbeat", "30"], name
            assert spec["environment"]["WORKER_HEARTBEAT_FILE"].startswith("/tmp/"), name

    def test_every_long_running_container_has_a_health_check_and_restarts(
        self, compose: dict[str, Any]
    ) -> None:
        for name, spec in compose["services"].items():
            if spec.get("restart") == "no":
                continue
            assert spec.get("restart") == "unless-stopped", name
            assert spec["healthcheck"]["test"][0] == "CMD", name

    def test_dependencies_exist_and_their_conditions_can_be_met(
        self, compose: dict[str, Any]
    ) -> None:
        services = compose["services"]
        for name, spec in services.items():
            for target, dependency in spec.get("depends_on", {}).items():
                assert target in services, f"{name} depends on unknown {target}"
                condition = dependency["condition"]
                if condition == "service_healthy":
                    assert "healthcheck" in services[target], f"{name} → {target}"
                else:
                    assert condition == "service_completed_successfully", name
                    assert services[target]["restart"] == "no", f"{name} → {target}"

    def test_service_containers_wait_for_their_migrations_broker_and_database(self) -> None:
        for name, spec in compose_containers().items():
            role = spec["labels"][ROLE_LABEL]
            if role not in LONG_RUNNING:
                continue
            depends = spec["depends_on"]
            migrate = f"{spec['labels'][SERVICE_LABEL]}-migrate"
            assert depends[migrate]["condition"] == "service_completed_successfully", name
            assert depends["postgres"]["condition"] == "service_healthy", name
            assert depends["rabbitmq"]["condition"] == "service_healthy", name

    def test_the_gateway_waits_for_every_web_server(self, compose: dict[str, Any]) -> None:
        gateway = compose["services"]["gateway"]["depends_on"]
        assert set(compose_containers("web")) <= set(gateway)


class TestCredentials:
    def test_each_service_uses_its_own_broker_user_and_database(
        self, definitions: dict[str, Any]
    ) -> None:
        broker_users = {user["name"] for user in definitions["users"]}
        for name, spec in compose_containers().items():
            service = spec["labels"][SERVICE_LABEL]
            amqp, database = (
                urlsplit(spec["environment"]["AMQP_URL"]),
                urlsplit(spec["environment"]["DATABASE_URL"]),
            )
            assert amqp.username == service and service in broker_users, name
            role = service.replace("-", "_")
            assert (database.username, database.path) == (role, f"/{role}"), name

    def test_databases_made_by_the_init_script_are_the_ones_services_use(
        self, compose: dict[str, Any]
    ) -> None:
        postgres = compose["services"]["postgres"]["environment"]
        created = set(postgres["APP_DATABASES"].split())
        assert created == {spec.name.replace("-", "_") for spec in SERVICES}
        for database in created:
            assert f"{database.upper()}_DB_PASSWORD" in postgres

    def test_only_user_notification_gets_the_private_key(self) -> None:
        for name, spec in compose_containers().items():
            mounts = " ".join(spec.get("volumes", []))
            issuer = spec["labels"][SERVICE_LABEL] == "user-notification"
            assert ("jwt-private" in mounts) == issuer, name
            assert "jwt-public:/keys/public:ro" in mounts, name

    def test_no_service_uses_the_guest_account(self) -> None:
        assert "guest" not in COMPOSE_FILE.read_text()

    def test_compose_mounts_files_that_exist(self, compose: dict[str, Any]) -> None:
        for name, spec in compose["services"].items():
            for volume in spec.get("volumes", []):
                # "${VARIABLE:-default}:/target" mounts the default unless VARIABLE is set.
                source = re.sub(r"^\$\{\w+:-([^}]*)\}", r"\1", volume).split(":")[0]
                if source.startswith("./"):
                    assert (REPO_ROOT / source).exists(), f"{name}: {source}"  # file or folder


class TestObservabilityProfile:
    """``docker compose --profile observability up``: Prometheus and Grafana, configured by
    mounted files, watching series that exist."""

    PROFILE = ["observability"]

    @staticmethod
    def mounts(spec: dict[str, Any]) -> dict[str, str]:
        """Target → source of the service's bind mounts."""
        pairs = (volume.split(":")[:2] for volume in spec.get("volumes", []))
        return {target: source for source, target in pairs if source.startswith("./")}

    @staticmethod
    def dashboard() -> dict[str, Any]:
        path = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "inventory-orders.json"
        loaded: dict[str, Any] = json.loads(path.read_text())
        return loaded

    def test_only_prometheus_and_grafana_are_in_the_profile(self, compose: dict[str, Any]) -> None:
        profiled = {n: s["profiles"] for n, s in compose["services"].items() if "profiles" in s}
        assert profiled == {"prometheus": self.PROFILE, "grafana": self.PROFILE}
        assert compose["services"]["prometheus"]["image"].startswith("prom/prometheus:")
        assert compose["services"]["grafana"]["image"].startswith("grafana/grafana:")

    def test_prometheus_gets_its_configuration_and_rules_mounted(
        self, compose: dict[str, Any]
    ) -> None:
        prometheus = compose["services"]["prometheus"]
        assert self.mounts(prometheus) == {
            "/etc/prometheus/prometheus.yml": "./deploy/prometheus/prometheus.yml",
            "/etc/prometheus/alerts.yml": "./deploy/prometheus/alerts.yml",
        }
        assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
        config = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text())
        assert config["rule_files"] == ["alerts.yml"]  # beside the configuration

    def test_prometheus_scrapes_containers_that_exist_on_their_ports(
        self, compose: dict[str, Any]
    ) -> None:
        services = compose["services"]
        config = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text())
        jobs = {job["job_name"]: job for job in config["scrape_configs"]}
        web = {t for c in jobs["web"]["static_configs"] for t in c["targets"]}
        assert web == {
            f"{name}:{spec['environment']['PORT']}"
            for name, spec in compose_containers("web").items()
        }
        for name, spec in compose_containers("web").items():
            # Prometheus asks with the container's name as Host: Django must accept it.
            assert spec["environment"]["DJANGO_ALLOWED_HOSTS"].endswith(f",{name}"), name
        (workers,) = jobs["workers"]["dns_sd_configs"]
        assert set(workers["names"]) == set(compose_containers(WORKER_COMMAND))
        for spec in compose_containers(WORKER_COMMAND).values():
            assert str(workers["port"]) == spec["environment"]["WORKER_METRICS_PORT"]
        assert jobs["rabbitmq"]["static_configs"][0]["targets"] == ["rabbitmq:15692"]
        plugins = self.mounts(services["rabbitmq"])["/etc/rabbitmq/enabled_plugins"]
        assert "rabbitmq_prometheus" in (REPO_ROOT / plugins).read_text()

    def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(
        self, compose: dict[str, Any]
    ) -> None:
        grafana = compose["services"]["grafana"]
        mounts = self.mounts(grafana)
        assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
        provisioning = REPO_ROOT / "deploy" / "grafana" / "provisioning"
        (source,) = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())[
            "datasources"
        ]
        assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
        (provider,) = yaml.safe_load((provisioning / "dashboards/dashboards.yml").read_text())[
            "providers"
        ]
        assert mounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"
        for panel in self.dashboard()["panels"]:
            assert panel["datasource"]["uid"] == source["uid"], panel["title"]

    def test_the_dashboard_shows_what_operators_look_at(self) -> None:
        exprs = {
            p["title"]: " ".join(t["expr"] for t in p["targets"])
            for p in self.dashboard()["panels"]
        }
        shown = " ".join(exprs.values())
        for series in (
            "orders_outcomes_total",  # orders by outcome
            "orders_reservation_latency_seconds_bucket",  # saga latency
            "rabbitmq_detailed_queue_messages_ready",  # queue depths
            "messaging_outbox_unsent_messages",  # outbox backlog
            'rabbitmq_detailed_queue_messages{queue=~".*\\\\.dlq"}',  # dead-letter queues
        ):
            assert series in shown, series

    def test_the_dashboard_queries_only_metrics_that_exist(self) -> None:
        for panel in self.dashboard()["panels"]:
            for target in panel["targets"]:
                unknown = metric_names.read_by(target["expr"]) - metric_names.known()
                assert not unknown, f"{panel['title']}: {sorted(unknown)} exported by nothing"
