"""gunicorn settings for every service's web server.

Given as ``--config python:service_runtime.gunicorn_conf`` (``devstack.system`` passes
it; the image sets it in ``GUNICORN_CMD_ARGS``).

Prometheus multi-process mode: gunicorn's workers are separate processes, so each writes its
samples under ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` adds them up. The directory is
chosen here, before any worker starts, when the environment names none.

Warm-up and garbage collection: each worker imports the service's URL configuration (its
views, serializers, the schema generator) and builds the URL map for ``reverse`` once the
service is loaded (:func:`post_worker_init`), which Django would otherwise do inside the
worker's first request (about 90 ms on the benchmark's machine, against 3-6 ms for the next
ones); then it freezes what it holds, so that a full collection only walks what requests
allocate.

Logging: gunicorn's own lines (master, workers) and its access log go through the services'
formatter (``service_runtime.logging``): one JSON object per line with the service's name
(``SERVICE_NAME``, else the folder gunicorn runs in), or text with ``LOG_FORMAT=text``. An
access line takes the request's correlation id and trace id from the ``X-Request-ID`` and
``traceresponse`` response headers that the request middleware set.

Control socket: gunicorn 25.1+ opens one for ``gunicornc`` at a single fixed path per user
(``$XDG_RUNTIME_DIR/gunicorn.ctl`` or ``~/.gunicorn/gunicorn.ctl``), so every master on a
machine (three services, a benchmark's, a test's) replaces the one before it and commands
reach the wrong server. Nothing here uses it: it is off, unless ``GUNICORN_CONTROL_SOCKET``
names a path for this master alone.
"""

from __future__ import annotations

import gc
import os
import tempfile
from pathlib import Path
from typing import Any

from service_runtime.logging import logging_config
from service_runtime.metrics_dir import ENV, prepare_multiprocess_dir

if not os.environ.get(ENV):
    # Without one shared directory each worker would answer /metrics with its own counts only.
    os.environ[ENV] = tempfile.mkdtemp(prefix="prometheus-")
prepare_multiprocess_dir()

# gunicorn's sync worker, which also marks the events of its requests sent while it idles
# (``messaging.gunicorn_worker``).
worker_class = "messaging.gunicorn_worker.MarkingSyncWorker"

_control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET")
if _control_socket:
    control_socket = _control_socket
else:
    control_socket_disable = True


def post_worker_init(worker: Any) -> None:
    """The worker has loaded the service: load its URL patterns before any request needs
    them, then set aside what it holds (Django, the modules, the URL patterns) from the garbage
    collector, which otherwise walks all of it on every full collection, a pause of tens of
    milliseconds in the middle of some request."""
    load_url_patterns()
    gc.collect()
    gc.freeze()


def load_url_patterns() -> None:
    """Import a Django site's URL configuration and build its map for ``reverse`` now (nothing
    for an application that is not a Django site, or one not set up)."""
    try:
        from django.apps import apps
    except ImportError:
        return
    if not apps.ready:
        return
    from django.urls import get_resolver

    resolver = get_resolver()  # the one every request resolves with (cached per urlconf)
    resolver.url_patterns  # noqa: B018 - imports the modules; an error here is the site's
    resolver.reverse_dict  # noqa: B018 - builds the map reverse() reads


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: drop its live gauges (its counters stay, they are history)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


_logging = logging_config(
    os.environ.get("SERVICE_NAME") or Path.cwd().name,
    level=os.environ.get("LOG_LEVEL") or "INFO",
    log_format=os.environ.get("LOG_FORMAT") or "json",
)
_logging["loggers"].update(
    {
        "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
    }
)
logconfig_dict = _logging
