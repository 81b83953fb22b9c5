"""``GET /health/live`` and ``GET /health/ready``: is the process up, can it do its work.

* live: always 200 while the process answers; a liveness probe restarts only a process that
  cannot answer at all.
* ready: each dependency's state as JSON; 200 when every one is ok, 503 otherwise:

  - ``database``: ``SELECT 1`` answers;
  - ``migrations``: none of the code's migrations is unapplied (the code would use tables or
    columns the database does not have yet);
  - then each check named in ``settings.HEALTH_READINESS_CHECKS`` (name → dotted path of a
    function returning a :class:`CheckResult`): ``broker``, from ``messaging.health``, opens and
    closes an AMQP connection with the service's own account. The runtime knows no messaging:
    the check is named in the settings, not imported here.

``?except=broker`` still reports the broker but leaves it out of the status code: a web server
keeps taking orders while the broker is away (the outbox holds the events), so whether it
should get traffic does not depend on the broker.

No authentication: probes have no token. Keep these paths (and ``/metrics``) off the public
gateway.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.utils.module_loading import import_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

MAX_LISTED_MIGRATIONS = 20


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    error: str | None = None
    details: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "ok" if self.ok else "error"}
        if self.error:
            body["error"] = self.error
        body.update(self.details or {})
        return body


def _failure(exc: BaseException) -> CheckResult:
    return CheckResult(False, f"{type(exc).__name__}: {exc}".strip(": ")[:500])


def check_database() -> CheckResult:
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure is the answer, never a 500
        _close_quietly()
        return _failure(exc)
    return CheckResult(True)


def check_migrations() -> CheckResult:
    try:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        _close_quietly()
        return _failure(exc)
    if not plan:
        return CheckResult(True)
    unapplied = [f"{m.app_label}.{m.name}" for m, backwards in plan if not backwards]
    return CheckResult(
        False,
        f"{len(plan)} unapplied migration(s)",
        {"unapplied": unapplied[:MAX_LISTED_MIGRATIONS]},
    )


@never_cache
@require_safe
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok", "service": settings.MESSAGING_SERVICE})


@never_cache
@require_safe
def ready(request: HttpRequest) -> JsonResponse:
    results = {"database": check_database()}
    results["migrations"] = (
        check_migrations()
        if results["database"].ok
        else CheckResult(False, "not checked: the database is unavailable")
    )
    for name, path in getattr(settings, "HEALTH_READINESS_CHECKS", {}).items():
        results[name] = import_string(path)()
    excepted = {name.strip() for name in request.GET.get("except", "").split(",")}
    ok = all(result.ok for name, result in results.items() if name not in excepted)
    return JsonResponse(
        {
            "status": "ok" if ok else "unavailable",
            "service": settings.MESSAGING_SERVICE,
            "checks": {name: result.as_json() for name, result in results.items()},
        },
        status=200 if ok else 503,
    )


def _close_quietly() -> None:
    with contextlib.suppress(Exception):  # already broken; the next request opens a new one
        connections[DEFAULT_DB_ALIAS].close()
