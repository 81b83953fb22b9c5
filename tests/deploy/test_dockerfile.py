"""deploy/docker/Dockerfile: what it copies exists, and it starts what ``make up`` starts."""

from __future__ import annotations

import fnmatch
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devstack.system import SERVICES, LocalSystem
from tests.deploy.manifests import REPO_ROOT, SERVICE_NAMES, compose_containers, local_commands

DOCKERFILE = REPO_ROOT / "deploy" / "docker" / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, continuation lines joined, comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    arguments: dict[str, str] = {}
    stages: list[Stage] = []
    for line in filter(None, (line.strip() for line in joined.splitlines())):
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: arguments[m.group(1)], parts[0])
            stages.append(Stage(base, parts[2] if len(parts) > 2 else ""))
        elif stages:
            stages[-1].instructions.append((keyword, args.strip()))
        elif keyword == "ARG" and "=" in args:
            name, _, default = args.partition("=")
            arguments[name.strip()] = default.strip()
    return arguments, stages


def copy_sources(args: str, service: str) -> list[str]:
    tokens = [t for t in shlex.split(args.replace("${SERVICE}", service)) if not t.startswith("--")]
    return tokens[:-1]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore drops ``path`` (or a directory above it)."""
    parts = Path(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        for candidate in candidates:
            if fnmatch.fnmatch(candidate, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatch(Path(candidate).name, pattern[3:])
            ):
                return True
    return False


ARGUMENTS, STAGES = parse(DOCKERFILE.read_text())
RUNTIME = STAGES[-1]
IGNORE_PATTERNS = [
    line.strip()
    for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]


class TestImage:
    def test_multi_stage_on_slim_python_311(self) -> None:
        assert len(STAGES) >= 2
        for stage in STAGES:
            assert re.fullmatch(r"python:3\.11-slim(-\w+)?", stage.base), stage.base

    def test_runtime_stage_runs_as_a_non_root_user(self) -> None:
        user = RUNTIME.all("USER")[-1]
        uid = user.split(":")[0]
        assert uid.isdigit() and int(uid) > 0  # numeric: Kubernetes can verify runAsNonRoot

    def test_runtime_stage_takes_only_the_virtualenv_from_the_builder(self) -> None:
        from_builder = [args for args in RUNTIME.all("COPY") if "--from=" in args]
        assert from_builder == ["--from=builder /opt/venv /opt/venv"]

    def test_default_command_is_the_local_web_server(self) -> None:
        cmd = RUNTIME.all("CMD")[-1]
        expected = local_commands()[SERVICES[0].name]["web"]
        assert cmd == "[" + ", ".join(f'"{token}"' for token in expected) + "]"

    def test_gunicorn_reads_the_config_the_local_run_passes(self) -> None:
        system = LocalSystem()
        system.build_processes()
        web = system.find(SERVICES[0].name, "web").argv
        config = web[web.index("--config") + 1]  # prometheus multi-process hooks, logging
        assert f"--config {config}" in " ".join(RUNTIME.all("ENV"))

    def test_working_directory_is_the_service(self) -> None:
        assert RUNTIME.all("WORKDIR")[-1] == "/app/services/${SERVICE}"


class TestBuildContext:
    @pytest.mark.parametrize("service", SERVICE_NAMES)
    def test_every_copy_source_exists_and_is_in_the_build_context(self, service: str) -> None:
        for stage in STAGES:
            for args in stage.all("COPY"):
                if "--from=" in args:
                    continue
                for source in copy_sources(args, service):
                    assert (REPO_ROOT / source).exists(), source
                    assert not ignored(source, IGNORE_PATTERNS), f".dockerignore drops {source}"

    def test_tests_and_local_state_stay_out_of_the_context(self) -> None:
        for path in ("libs/tests/settings.py", "services/orders/tests", "var/x", ".venv", ".git"):
            assert ignored(path, IGNORE_PATTERNS), path
        assert not any(pattern.startswith("!") for pattern in IGNORE_PATTERNS)

    def test_the_runtime_requirements_are_all_pinned_in_the_lock(self) -> None:
        section = re.search(
            r"^# Runtime\n(.*?)^# Tests", (REPO_ROOT / "requirements.in").read_text(), re.M | re.S
        )
        assert section, "the Dockerfile installs the '# Runtime' section of requirements.in"
        pinned = {
            re.sub(r"[-_.]+", "-", line.split("==")[0]).lower()
            for line in (REPO_ROOT / "requirements.lock").read_text().splitlines()
            if "==" in line
        }
        for line in filter(None, map(str.strip, section.group(1).splitlines())):
            name = re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~ ]", line)[0]).lower()
            assert name in pinned, line


class TestEntryPoints:
    @pytest.mark.parametrize("service", SERVICE_NAMES)
    def test_every_command_the_containers_run_exists(self, service: str) -> None:
        directory = REPO_ROOT / "services" / service
        assert (directory / "manage.py").is_file()
        assert (directory / "config" / "wsgi.py").is_file()
        commands = {
            path.stem
            for root in (directory, REPO_ROOT / "libs")
            for path in root.glob("**/management/commands/*.py")
        }
        for role, command in local_commands()[service].items():
            if role != "web":
                assert command[2] in commands, command

    def test_compose_builds_each_service_from_this_dockerfile(self) -> None:
        for name, spec in compose_containers().items():
            build = spec["build"]
            assert (REPO_ROOT / build["context"] / build["dockerfile"]) == DOCKERFILE, name
            assert build["args"]["SERVICE"] == spec["labels"]["org.inventory-orders.service"]
            assert spec["image"].split("/")[-1].split(":")[0] == build["args"]["SERVICE"]
