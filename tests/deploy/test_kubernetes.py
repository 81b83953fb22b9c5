"""deploy/kubernetes: valid manifests for Kubernetes 1.32, the same processes as ``make up``."""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
import yaml

from devstack.system import SERVICES
from tests.deploy.manifests import (
    DEPLOY,
    KUBERNETES,
    SERVICE_NAMES,
    kubernetes_documents,
    kubernetes_files,
    kustomization,
    local_commands,
    local_setup_commands,
)

KUBERNETES_VERSION = "1.32.0"
COMPONENTS = {
    "run_consumer": "consumer",
    "run_relay": "relay",
    "run_order_deadlines": "deadlines",
    "run_email_deliveries": "email",
}


def validation_error(document: dict[str, Any]) -> str | None:
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return f"{'/'.join(map(str, error.path))}: {error.message}"
    return None


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in kubernetes_documents() if d["kind"] == kind}


def containers(pod_owner: dict[str, Any]) -> Iterator[dict[str, Any]]:
    pod = pod_owner["spec"]["template"]["spec"]
    yield from pod.get("initContainers", [])
    yield from pod["containers"]


def workload(service: str, component: str) -> dict[str, Any]:
    return resources("Deployment")[f"{service}-{component}"]


class TestValidity:
    @pytest.mark.parametrize(
        "path", kubernetes_files(), ids=lambda path: str(path.relative_to(KUBERNETES))
    )
    def test_manifest_matches_the_kubernetes_schema(self, path: Any) -> None:
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                assert validation_error(document) is None

    def test_the_schema_check_rejects_a_misspelt_field(self) -> None:
        broken = copy.deepcopy(workload("orders", "relay"))
        broken["spec"]["template"]["spec"]["containers"][0]["comand"] = ["python"]
        assert validation_error(broken)

    def test_kustomization_lists_every_manifest(self) -> None:
        listed = {KUBERNETES / path for path in kustomization()["resources"]}
        assert listed == set(kubernetes_files())

    @pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
    def test_kustomize_build_is_valid(self) -> None:
        result = subprocess.run(
            ["kubectl", "kustomize", str(KUBERNETES)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        built = [d for d in yaml.safe_load_all(result.stdout) if d]
        assert [validation_error(d) for d in built if validation_error(d)] == []
        assert {d["metadata"].get("namespace") for d in built if d["kind"] != "Namespace"} == {
            "inventory-orders"
        }

    def test_copies_of_shared_files_are_identical(self) -> None:
        for name in ("rabbitmq/definitions.json", "postgres/init.sh"):
            assert (KUBERNETES / name).read_text() == (DEPLOY / name).read_text(), name


class TestSameProcessesAsTheLocalRun:
    @pytest.mark.parametrize("service", SERVICE_NAMES)
    def test_web_and_every_worker_run_in_their_own_deployment(self, service: str) -> None:
        for role, command in local_commands()[service].items():
            deployment = workload(service, COMPONENTS.get(role, role))
            assert deployment["spec"]["template"]["spec"]["containers"][0]["command"] == command

    @pytest.mark.parametrize("service", SERVICE_NAMES)
    def test_the_set_up_job_runs_the_local_set_up_in_order(self, service: str) -> None:
        job = resources("Job")[f"{service}-migrate"]
        steps = [container["command"] for container in containers(job)]
        assert steps == local_setup_commands()[service]

    @pytest.mark.parametrize("service", SERVICE_NAMES)
    def test_pods_wait_for_migrations(self, service: str) -> None:
        for role in local_commands()[service]:
            pod = workload(service, COMPONENTS.get(role, role))["spec"]["template"]["spec"]
            (wait,) = pod["initContainers"]
            assert "migrate --check" in wait["command"][-1]

    @pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
    def test_web_service_and_port(self, spec: Any) -> None:
        service = resources("Service")[f"{spec.name}-web"]
        assert service["spec"]["ports"][0]["port"] == spec.port
        config = resources("ConfigMap")[f"{spec.name}-config"]
        assert config["data"]["PORT"] == str(spec.port)


class TestProbes:
    @pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
    def test_web_probes_use_the_health_endpoints(self, spec: Any) -> None:
        container = workload(spec.name, "web")["spec"]["template"]["spec"]["containers"][0]
        base = f"http://127.0.0.1:{spec.port}"
        readiness = container["readinessProbe"]["exec"]["command"]
        assert readiness == ["probe", "http", f"{base}/health/ready?except=broker"]
        assert container["livenessProbe"]["exec"]["command"] == [
            "probe",
            "http",
            f"{base}/health/live",
        ]

    @pytest.mark.parametrize("service", SERVICE_NAMES)
    def test_workers_are_ready_while_they_beat(self, service: str) -> None:
        config = resources("ConfigMap")[f"{service}-config"]["data"]
        assert config["WORKER_HEARTBEAT_FILE"].startswith("/tmp/")  # the pod's writable volume
        for role in ("run_consumer", "run_relay", "run_order_deadlines", "run_email_deliveries"):
            if role not in local_commands()[service]:
                continue
            pod = workload(service, COMPONENTS[role])["spec"]["template"]["spec"]
            probe = pod["containers"][0]["readinessProbe"]["exec"]["command"]
            assert probe == ["probe", "heartbeat", "30"]


class TestScaling:
    @pytest.mark.parametrize("service", SERVICE_NAMES)
    def test_web_and_consumers_scale_horizontally(self, service: str) -> None:
        autoscalers = resources("HorizontalPodAutoscaler")
        for component in ("web", "consumer"):
            hpa = autoscalers[f"{service}-{component}"]
            assert hpa["spec"]["scaleTargetRef"]["name"] == f"{service}-{component}"
            assert hpa["spec"]["minReplicas"] >= 2
            container = workload(service, component)["spec"]["template"]["spec"]["containers"][0]
            assert container["resources"]["requests"]["cpu"], "CPU targets need requests"

    def test_rabbitmq_is_a_three_node_cluster_with_quorum_queues(self) -> None:
        statefulset = resources("StatefulSet")["rabbitmq"]
        assert statefulset["spec"]["replicas"] == 3
        config = (KUBERNETES / "rabbitmq" / "rabbitmq.conf").read_text()
        assert "rabbit_peer_discovery_k8s" in config
        plugins = (KUBERNETES / "rabbitmq" / "enabled_plugins").read_text()
        assert "rabbitmq_peer_discovery_k8s" in plugins
        definitions_path = "/etc/rabbitmq-definitions/definitions.json"
        assert f"definitions.local.path = {definitions_path}" in config

    def test_each_service_has_its_own_postgresql(self) -> None:
        statefulsets = resources("StatefulSet")
        for service in SERVICE_NAMES:
            env = {
                e["name"]: e
                for e in statefulsets[f"postgres-{service}"]["spec"]["template"]["spec"][
                    "containers"
                ][0]["env"]
            }
            database = service.replace("-", "_")
            assert env["APP_DATABASES"]["value"] == database
            secret = env[f"{database.upper()}_DB_PASSWORD"]["valueFrom"]["secretKeyRef"]
            assert secret == {"name": f"{service}-secrets", "key": "DB_PASSWORD"}
            url = next(
                e["value"]
                for e in workload(service, "web")["spec"]["template"]["spec"]["containers"][0][
                    "env"
                ]
                if e["name"] == "DATABASE_URL"
            )
            assert url.endswith(f"@postgres-{service}:5432/{database}")


class TestCredentials:
    def test_only_user_notification_mounts_the_private_key(self) -> None:
        for kind in ("Deployment", "Job"):
            for name, owner in resources(kind).items():
                volumes = {
                    v.get("secret", {}).get("secretName")
                    for v in owner["spec"]["template"]["spec"].get("volumes", [])
                }
                issuer = owner["metadata"]["labels"]["app.kubernetes.io/name"] == (
                    "user-notification"
                )
                assert ("jwt-private-key" in volumes) == issuer, name

    @pytest.mark.parametrize("service", SERVICE_NAMES)
    def test_each_service_connects_as_its_own_broker_user(self, service: str) -> None:
        for container in workload(service, "consumer")["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert env["AMQP_URL"].startswith(f"amqp://{service}:$(AMQP_PASSWORD)@rabbitmq:")

    def test_application_pods_run_as_non_root_with_a_read_only_root(self) -> None:
        for kind in ("Deployment", "Job"):
            for name, owner in resources(kind).items():
                pod = owner["spec"]["template"]["spec"]
                assert pod["securityContext"]["runAsNonRoot"], name
                for container in containers(owner):
                    assert container["securityContext"]["readOnlyRootFilesystem"], name
