"""Loading the deployment files, and what they must agree with: the local run's commands, the
broker layout and the services' URL configurations."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from devstack.system import BROKER_LAYOUT_COMMAND, SERVICES, LocalSystem, ServiceSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE_FILE = REPO_ROOT / "compose.yaml"
SERVICE_LABEL = "org.inventory-orders.service"
ROLE_LABEL = "org.inventory-orders.role"
SERVICE_NAMES = [spec.name for spec in SERVICES]


def load_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


def compose_containers(role: str | None = None) -> dict[str, dict[str, Any]]:
    """Compose services that run a service's code, optionally only those with ``role``."""
    return {
        name: spec
        for name, spec in load_compose()["services"].items()
        if SERVICE_LABEL in spec.get("labels", {})
        and (role is None or spec["labels"][ROLE_LABEL] == role)
    }


def _positional(argv: list[str]) -> list[str]:
    """``python -m gunicorn app --bind ...`` → ``gunicorn app``: the command without options."""
    command = ["python", *argv[1:]] if argv[0] == sys.executable else list(argv)
    if command[:3] == ["python", "-m", "gunicorn"]:
        command = ["gunicorn", *command[3:]]
    positional = []
    for token in command:
        if token.startswith("--"):
            break
        positional.append(token)
    return positional


def local_commands() -> dict[str, dict[str, list[str]]]:
    """For each service, role → command exactly as ``make up`` starts it (options aside)."""
    system = LocalSystem()
    system.build_processes()
    commands: dict[str, dict[str, list[str]]] = {spec.name: {} for spec in SERVICES}
    for process in system.processes:
        if process.service.name in commands:  # the gateway is nginx there (test_gateway)
            commands[process.service.name][process.role] = _positional(process.argv)
    return commands


def local_setup_commands() -> dict[str, list[list[str]]]:
    """For each service, the set-up commands ``make up`` runs first, in order.

    The broker layout step is left out: in containers the definitions file provisions it
    (``test_rabbitmq_definitions`` checks that it declares the same layout).
    """
    calls: dict[str, list[list[str]]] = {spec.name: [] for spec in SERVICES}

    class Recorder(LocalSystem):
        def manage(self, service: ServiceSpec, *args: str) -> subprocess.CompletedProcess[str]:
            if args != BROKER_LAYOUT_COMMAND:
                calls[service.name].append(["python", "manage.py", *args])
            return subprocess.CompletedProcess(list(args), 0, "", "")

    Recorder().prepare()
    return calls


def load_generator() -> ModuleType:
    path = DEPLOY / "rabbitmq" / "generate_definitions.py"
    spec = importlib.util.spec_from_file_location("generate_definitions", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_definitions(path: Path = DEPLOY / "rabbitmq" / "definitions.json") -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def kubernetes_files() -> list[Path]:
    return sorted(path for path in KUBERNETES.rglob("*.yaml") if path.name != "kustomization.yaml")


def kubernetes_documents() -> list[dict[str, Any]]:
    return [
        document
        for path in kubernetes_files()
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def kustomization() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    return data


_URL_WALK = """
import json
import django
from django.urls import URLResolver, get_resolver

django.setup()


def walk(patterns, prefix=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from walk(pattern.url_patterns, route)
        else:
            yield route


print(json.dumps(sorted(set(walk(get_resolver().url_patterns)))))
"""


@cache
def api_prefixes(var_dir: str) -> dict[str, set[str]]:
    """For each service, the first path segments under ``/api/`` its URL configuration serves
    and no other service does: what a gateway can route by path.

    Segments every service has (``schema``, ``docs``, ``dead-letters``: its own OpenAPI schema,
    Swagger UI and dead-letter queue) are each service's own, reached on its own address."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "DATABASE_URL"))}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", VAR_DIR=var_dir)
    prefixes: dict[str, set[str]] = {}
    for spec in SERVICES:
        result = subprocess.run(
            [sys.executable, "-c", _URL_WALK],
            cwd=spec.directory,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"{spec.name}: {result.stderr}"
        routes: list[str] = json.loads(result.stdout)
        prefixes[spec.name] = {
            route.removeprefix("^").split("/")[1] for route in routes if route.startswith("api/")
        }
    shared = {
        prefix
        for name, own in prefixes.items()
        for prefix in own
        if any(prefix in others for other, others in prefixes.items() if other != name)
    }
    return {name: own - shared for name, own in prefixes.items()}
