"""``make up``: check the broker, create keys, migrate, then run and watch every process.

Output of every process is printed with its label; a process that exits is started again
after a pause. Ctrl-C (or SIGTERM) stops everything.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from devstack.system import (
    GATEWAY,
    ONE_RELEASE_VERSIONS,
    SERVICES,
    VERSIONS_ENV,
    LocalSystem,
    ManagedProcess,
)
from identity.keys import ensure_keypair
from messaging.broker import broker_problem
from service_runtime.settings import VAR_DIR

DEFAULT_BROKER = "amqp://guest:guest@localhost:5672/%2F"
RESTART_PAUSE_SECONDS = 2.0


# Held while a line is printed, so that the processes' lines and ours never mix.
OUTPUT = threading.Lock()


def _pump(managed: ManagedProcess) -> None:
    assert managed.process is not None and managed.process.stdout is not None
    width = max(len(f"{s.name}:{role}") for s in SERVICES for role in ("web", *s.workers))
    for line in managed.process.stdout:
        with OUTPUT:
            sys.stdout.write(f"{managed.label:<{width}} | {line}")
            sys.stdout.flush()


def _start(managed: ManagedProcess) -> None:
    managed.start()
    if managed.log is None:  # written to its log file otherwise
        threading.Thread(target=_pump, args=(managed,), daemon=True).start()


def announce(system: LocalSystem) -> None:
    """Where everything answers, once the system is up."""
    with OUTPUT:
        print("\nThe system is up:")
        for service in SERVICES:
            print(f"  {service.name:<18} {system.url(service.name)}/api/")
        print(f"\nOpen the web console: {system.url(GATEWAY.name)}/")
        print("Press Ctrl-C to stop.\n", flush=True)


def main(on_ready: Callable[[LocalSystem], None] = announce, log_dir: Path | None = None) -> int:
    """Run the system until Ctrl-C. ``on_ready`` runs once every web server answers (``make
    demo`` seeds the system there); with ``log_dir`` each process writes its output to a file
    of its own there instead of this terminal."""
    broker_url = os.environ.get("AMQP_URL", DEFAULT_BROKER)
    problem = broker_problem(broker_url)
    if problem:
        print(
            f"RabbitMQ is not reachable at {broker_url} ({problem}). "
            "Start it with `rabbitmq-server -detached` (or set AMQP_URL) and run `make up` again.",
            file=sys.stderr,
        )
        return 1
    keys = VAR_DIR / "keys"
    private_key = os.environ.get("JWT_PRIVATE_KEY_FILE", str(keys / "jwt_private.pem"))
    public_key = os.environ.get("JWT_PUBLIC_KEY_FILE", str(keys / "jwt_public.pem"))
    if not os.environ.get("JWT_PRIVATE_KEY") and ensure_keypair(
        Path(private_key), Path(public_key)
    ):
        print(f"created a JWT signing key pair in {keys}")

    # Every service runs this checkout (unless the environment pins versions to try one out).
    system = LocalSystem(
        env={VERSIONS_ENV: os.environ.get(VERSIONS_ENV, ONE_RELEASE_VERSIONS)}, log_dir=log_dir
    )
    busy = system.ports_in_use()
    if busy:
        print(
            f"Port(s) {', '.join(map(str, busy))} already in use: is the system already running?",
            file=sys.stderr,
        )
        return 1
    print("applying migrations …", flush=True)
    try:
        system.prepare()
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    system.build_processes()
    system.reset_metrics()
    for managed in system.processes:
        _start(managed)

    try:
        system.wait_ready(timeout=60)
        on_ready(system)
    except KeyboardInterrupt:
        print("stopping …", flush=True)
        system.stop()
        return 130
    except Exception as exc:  # whatever failed on the way up: say it in one line and stop
        print(f"start-up failed: {exc}", file=sys.stderr)
        system.stop()
        return 1

    stopping = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)

    while not stopping.wait(1.0):
        for managed in system.processes:
            if not managed.running():
                with OUTPUT:
                    print(
                        f"{managed.label} exited "
                        f"({managed.process and managed.process.returncode}); restarting"
                    )
                time.sleep(RESTART_PAUSE_SECONDS)
                managed.restarts += 1
                _start(managed)
    print("stopping …", flush=True)
    system.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
