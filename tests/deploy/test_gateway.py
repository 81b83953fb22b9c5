"""The gateways (nginx for Compose, the Ingress for Kubernetes, ``devstack.gateway`` for
``make up``) send every API prefix the services define, and only those, to the service that owns
it; ``/api/dead-letters/<service>/...`` to that service's own dead-letter API; the rest of the
Compose and local gateways' paths is the web console."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import crossplane
import pytest

from devstack import gateway
from devstack.system import SERVICES
from tests.deploy.manifests import (
    DEPLOY,
    REPO_ROOT,
    compose_containers,
    kubernetes_documents,
    load_compose,
)

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

    def rewritten(self, path: str) -> str:
        """The path passed upstream: after a ``rewrite ... break``, if the location has one."""
        for directive in self.directives:
            if directive["directive"] == "rewrite":
                pattern, replacement = directive["args"][:2]
                return re.sub(pattern, re.sub(r"\$(\d)", r"\\\1", replacement), path, count=1)
        return path

    def directive(self, name: str) -> list[str] | None:
        return next((d["args"] for d in self.directives if d["directive"] == name), None)


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


def dead_letter_paths(service: str) -> dict[str, str]:
    """A gateway path under /api/dead-letters/<service> → the path the service must receive."""
    return {
        f"/api/dead-letters/{service}": "/api/dead-letters/",
        f"/api/dead-letters/{service}/": "/api/dead-letters/",
        f"/api/dead-letters/{service}/abc-1/replay/": "/api/dead-letters/abc-1/replay/",
    }


NOT_DEAD_LETTER_PATHS = ("/api/dead-letters/", "/api/dead-letters/nobody/", "/api/dead-letters")


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

    @pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
    def test_each_services_dead_letters_reach_it_without_the_service_name(self, spec: Any) -> None:
        locations = nginx_locations()
        for path, upstream_path in dead_letter_paths(spec.name).items():
            location = nginx_route(path, locations)
            assert location.upstream() == web_address(spec.name), path
            assert location.rewritten(path) == upstream_path, path
        for path in NOT_DEAD_LETTER_PATHS:
            assert nginx_route(path, locations).upstream() is None, path

    def test_the_console_is_served_from_the_mounted_directory(self) -> None:
        location = nginx_route("/", nginx_locations())
        assert location.upstream() is None
        assert location.directive("try_files") == ["$uri", "$uri/", "=404"]
        (root,) = location.directive("root") or []
        mounts = load_compose()["services"]["gateway"]["volumes"]
        assert f"./console:{root}:ro" in [mount.split("  ")[0] for mount in mounts]
        assert (REPO_ROOT / "console" / "index.html").is_file()
        (types,) = (d["block"] for d in location.directives if d["directive"] == "types")
        # Browsers run module scripts only when they come with a JavaScript type.
        assert {"directive": "text/javascript", "args": ["js"]} in [
            {"directive": d["directive"], "args": d["args"]} for d in types
        ]

    def test_every_error_nginx_answers_itself_is_a_json_error(self) -> None:
        """A body over client_max_body_size, a service down or slow, a refused path, an unknown
        API path: the API's ``{"detail", "code"}``, never nginx's HTML page."""
        parsed = crossplane.parse(str(NGINX_CONF), comments=False)
        (http,) = (d for d in parsed["config"][0]["parsed"] if d["directive"] == "http")
        (server,) = (d for d in http["block"] if d["directive"] == "server")
        pages = {
            int(status): d["args"][-1]
            for d in server["block"]
            if d["directive"] == "error_page"
            for status in d["args"][:-1]
            if status.isdigit()
        }
        assert {403, 413, 502, 503, 504} <= set(pages)
        locations = {loc.pattern: loc for loc in nginx_locations()}
        answers = {status: locations[page.lstrip("=")] for status, page in pages.items()}
        answers[404] = nginx_route("/api/unknown/", nginx_locations())
        for status, location in answers.items():
            returned_status, body = location.directive("return") or []
            assert location.directive("default_type") == ["application/json"], status
            error = json.loads(body.removesuffix("\\n"))  # nginx writes the escape itself
            assert set(error) == {"detail", "code"} and error["detail"], status
            # a 502 is reported as the 503 the local gateway answers for a service it cannot reach
            assert int(returned_status) == (503 if status == 502 else status)

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
        (ingress,) = (d for d in ingresses() if d["metadata"]["name"] == "api")
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

    def test_each_services_dead_letters_reach_it_without_the_service_name(self) -> None:
        (ingress,) = (d for d in ingresses() if d["metadata"]["name"] == "dead-letters")
        annotations = ingress["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/use-regex"] == "true"
        target = annotations["nginx.ingress.kubernetes.io/rewrite-target"]
        paths = [path for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
        assert {p["backend"]["service"]["name"] for p in paths} == {
            f"{s.name}-web" for s in SERVICES
        }
        for entry in paths:
            service = entry["backend"]["service"]["name"].removesuffix("-web")
            for path, upstream_path in dead_letter_paths(service).items():
                match = re.fullmatch(entry["path"], path)
                assert match, (entry["path"], path)
                assert match.expand(re.sub(r"\$(\d)", r"\\\1", target)) == upstream_path
            for path in NOT_DEAD_LETTER_PATHS:
                assert not re.fullmatch(entry["path"], path), path

    def test_compose_and_kubernetes_agree_on_ports(self) -> None:
        services = {
            d["metadata"]["name"]: d["spec"]["ports"][0]["port"]
            for d in kubernetes_documents()
            if d["kind"] == "Service"
        }
        for spec in SERVICES:
            assert urlsplit(web_address(spec.name)).port == services[f"{spec.name}-web"]


def ingresses() -> list[dict[str, Any]]:
    return [d for d in kubernetes_documents() if d["kind"] == "Ingress"]


class TestLocalGateway:
    """``make up``'s gateway routes as nginx does, from its own table."""

    NAMES = {spec.name for spec in SERVICES}

    @pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
    def test_every_api_prefix_reaches_its_service(
        self, spec: Any, api_prefixes: dict[str, set[str]]
    ) -> None:
        for prefix in api_prefixes[spec.name]:
            for path in sample_paths(prefix):
                path = path.split("?")[0]
                assert gateway.route(path, self.NAMES) == (spec.name, path), path
        for path, upstream_path in dead_letter_paths(spec.name).items():
            assert gateway.route(path, self.NAMES) == (spec.name, upstream_path), path

    def test_nothing_else_is_proxied(self, api_prefixes: dict[str, set[str]]) -> None:
        paths = ["/", "/admin/", "/api/", "/api/productsx", "/apix/orders", "/api/unknown/"]
        paths += ["/api/schema/", "/api/docs/", "/metrics", *NOT_DEAD_LETTER_PATHS]
        paths += [f"/api/{prefix}x/" for prefix in set().union(*api_prefixes.values())]
        paths += ["/api/dead-letters/orders/../../x", "/api/products/../orders/"]
        for path in paths:
            assert gateway.route(path, self.NAMES) is None, path

    def test_routes_only_to_services_of_the_system(self, api_prefixes: dict[str, set[str]]) -> None:
        assert set(gateway.ROUTES) == set().union(*api_prefixes.values())
        assert set(gateway.ROUTES.values()) == self.NAMES
