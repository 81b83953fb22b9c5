"""The gateways (nginx for Compose, the Ingress for Kubernetes) send every API prefix the
services define, and only those, to the service that owns it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import crossplane
import pytest

from service_runtime.system import SERVICES
from tests.deploy.manifests import DEPLOY, compose_containers, kubernetes_documents

NGINX_CONF = DEPLOY / "nginx" / "nginx.conf"


@dataclass(frozen=True)
class Location:
    modifier: str  # "", "=", "^~", "~" or "~*"
    pattern: str
    directives: list[dict[str, Any]]

    def matches(self, path: str) -> bool:
        if self.modifier == "=":
            return path == self.pattern
        if self.modifier in ("~", "~*"):
            flags = re.IGNORECASE if self.modifier == "~*" else 0
            return re.search(self.pattern, path, flags) is not None
        return path.startswith(self.pattern)

    def upstream(self) -> str | None:
        """Where ``proxy_pass`` sends requests, with ``set`` variables resolved."""
        variables = {d["args"][0]: d["args"][1] for d in self.directives if d["directive"] == "set"}
        for directive in self.directives:
            if directive["directive"] == "proxy_pass":
                return variables.get(directive["args"][0], directive["args"][0])
        return None


def nginx_locations() -> list[Location]:
    parsed = crossplane.parse(str(NGINX_CONF), comments=False)
    assert parsed["status"] == "ok", parsed["errors"]
    (http,) = (d for d in parsed["config"][0]["parsed"] if d["directive"] == "http")
    (server,) = (d for d in http["block"] if d["directive"] == "server")
    locations = []
    for directive in server["block"]:
        if directive["directive"] == "location":
            modifier, pattern = (
                directive["args"] if len(directive["args"]) == 2 else ["", *directive["args"]]
            )
            locations.append(Location(modifier, pattern, directive["block"]))
    return locations


def nginx_route(path: str, locations: list[Location]) -> Location:
    """nginx's choice: exact match, else longest prefix (final if ^~), else first regex."""
    for location in locations:
        if location.modifier == "=" and location.matches(path):
            return location
    prefixes = [loc for loc in locations if loc.modifier in ("", "^~") and loc.matches(path)]
    longest = max(prefixes, key=lambda loc: len(loc.pattern), default=None)
    if longest is not None and longest.modifier == "^~":
        return longest
    for location in locations:
        if location.modifier in ("~", "~*") and location.matches(path):
            return location
    assert longest is not None, f"no location for {path}"
    return longest


def sample_paths(prefix: str) -> list[str]:
    return [f"/api/{prefix}", f"/api/{prefix}/", f"/api/{prefix}/1/", f"/api/{prefix}/1/x/?a=b"]


def web_address(service: str) -> str:
    ((name, spec),) = (
        (name, spec)
        for name, spec in compose_containers("web").items()
        if spec["labels"]["org.inventory-orders.service"] == service
    )
    return f"http://{name}:{spec['environment']['PORT']}"


class TestComposeGateway:
    def test_the_configuration_parses(self) -> None:
        assert nginx_locations()

    @pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
    def test_every_api_prefix_reaches_its_service(
        self, spec: Any, api_prefixes: dict[str, set[str]]
    ) -> None:
        locations = nginx_locations()
        assert api_prefixes[spec.name], f"{spec.name} serves nothing under /api/"
        for prefix in api_prefixes[spec.name]:
            for path in sample_paths(prefix):
                assert nginx_route(path.split("?")[0], locations).upstream() == (
                    web_address(spec.name)
                ), path

    def test_nothing_else_is_proxied(self, api_prefixes: dict[str, set[str]]) -> None:
        locations = nginx_locations()
        known = set().union(*api_prefixes.values())
        for path in ("/", "/admin/", "/api/", "/api/productsx", "/apix/orders", "/api/unknown/"):
            assert nginx_route(path, locations).upstream() is None, path
        for prefix in known:
            assert nginx_route(f"/api/{prefix}x/", locations).upstream() is None, prefix

    def test_metrics_health_and_api_docs_are_refused(self) -> None:
        locations = nginx_locations()
        for path in ("/metrics", "/health/ready", "/health/live", "/api/schema/", "/api/docs/"):
            location = nginx_route(path, locations)
            assert location.upstream() is None, path
            assert {"directive": "deny", "args": ["all"]} in [
                {"directive": d["directive"], "args": d["args"]} for d in location.directives
            ], path


class TestKubernetesIngress:
    def test_every_api_prefix_reaches_its_service(self, api_prefixes: dict[str, set[str]]) -> None:
        (ingress,) = (d for d in kubernetes_documents() if d["kind"] == "Ingress")
        routes = {
            path["path"]: (path["pathType"], path["backend"]["service"]["name"])
            for rule in ingress["spec"]["rules"]
            for path in rule["http"]["paths"]
        }
        expected = {
            f"/api/{prefix}": ("Prefix", f"{service}-web")
            for service, prefixes in api_prefixes.items()
            for prefix in prefixes
        }
        assert routes == expected

    def test_compose_and_kubernetes_agree_on_ports(self) -> None:
        services = {
            d["metadata"]["name"]: d["spec"]["ports"][0]["port"]
            for d in kubernetes_documents()
            if d["kind"] == "Service"
        }
        for spec in SERVICES:
            assert urlsplit(web_address(spec.name)).port == services[f"{spec.name}-web"]
