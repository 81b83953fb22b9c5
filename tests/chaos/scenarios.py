"""The scenarios, the private environment they run in, and running one from start to verdict.

One scenario: fresh databases and a fresh broker name prefix, every service's processes, a
stream of orders, one fault, then the invariants, read from the databases, once the system has
settled (or the stated time after the fault has passed).
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.system import SERVICES, WORKER_COMMAND
from messaging import crash_points, topology
from service_runtime.settings import REPO_ROOT
from tests.chaos import faults
from tests.chaos.driver import OrderDriver
from tests.chaos.infra import (
    InfraError,
    Netns,
    PrivatePostgres,
    RabbitNode,
    TcpFailover,
    erlang_home,
    missing_tools,
)
from tests.chaos.invariants import Findings, check, dead_letter_problems, read
from tests.chaos.system import (
    STAFF_PASSWORD,
    STAFF_USERNAME,
    Backend,
    ChaosSystem,
    doubling_relay_argv,
    wait_until,
)

# Every accepted order must be final within this many seconds after the fault ended (or after
# the last order was sent, when that is later).
RECOVERY_LIMIT_SECONDS = 180.0
QUORUM_VHOST = "chaos-quorum"
# The suite's pace: half of the closed-loop capacity ``make bench`` measured on this machine (a
# load the system carries with room to spare, so a fault's backlog drains), or this many orders
# per second without a full benchmark report.
BENCH_REPORT = REPO_ROOT / "reports" / "bench.json"
FALLBACK_RATE = 8.0
# The broker's heartbeat interval (``MESSAGING_HEARTBEAT``, seconds): the broker gives up on a
# silent connection after two missed beats.
BROKER_HEARTBEAT_SECONDS = 30


@dataclass(frozen=True)
class Rate:
    per_second: float
    source: str  # where it comes from, for the report


def default_rate(bench_report: Path = BENCH_REPORT) -> Rate:
    """Half of the closed-loop throughput (scenario (a)) of the latest full ``make bench``."""
    try:
        bench = json.loads(bench_report.read_text())
        closed = float(bench["scenarios"]["a"]["final_orders_per_second"])
        quick = bool(bench.get("quick"))
    except (OSError, ValueError, KeyError, TypeError):
        return Rate(FALLBACK_RATE, f"no closed-loop figure in {bench_report.name}: the fallback")
    if quick or closed <= 0:
        return Rate(FALLBACK_RATE, f"{bench_report.name} is not a full run: the fallback")
    return Rate(
        round(closed / 2, 1),
        f"half of the {closed} orders/s closed-loop capacity `make bench` measured on "
        f"{str(bench.get('date', '?'))[:10]} (reports/{bench_report.name}, scenario (a))",
    )


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    orders: int
    rate: float  # orders per second
    inject: faults.Injector
    needs: str = ""  # "netns" or "cluster": infrastructure beyond one broker and two clusters
    doubling_relays: bool = False
    poison: int = 0
    worker_processes: int = 1  # of each service's worker, side by side (competing consumers)
    backorder_products: int = 0  # of the driver's products, with staff deliveries and transfers
    env: dict[str, str] = field(default_factory=dict)  # more settings for every service


def full_suite(scale: float = 1.0, rate: float = FALLBACK_RATE) -> list[Scenario]:
    """Every scenario. ``rate`` (orders per second; :func:`default_rate`) is kept below what
    the machine processes, so that the recovery measured is the fault's, not a backlog the load
    alone would build."""

    def n(orders: int) -> int:
        return max(50, int(orders * scale))

    # A service's consumer and relay run in its worker: killing one kills the other too.
    workers = [f"{s.name}:{WORKER_COMMAND}" for s in SERVICES]
    # Who writes the saga's events: order.created (the orders web server), stock.reserved (the
    # inventory worker's consumer), order.confirmed (the orders worker's consumer).
    writers = ["orders:web", f"inventory:{WORKER_COMMAND}", f"orders:{WORKER_COMMAND}"]
    return [
        Scenario("baseline", "no fault: the reference for the figures below", n(500), rate,
                 faults.nothing),
        Scenario(
            "kill-inventory-consumer",
            "kill -9 the inventory worker (its consumer) 20 times during a 2,000-order run",
            n(2000), rate, faults.kill_repeatedly([f"inventory:{WORKER_COMMAND}"], 20),
        ),
        Scenario(
            "kill-orders-consumer",
            "kill -9 the orders worker (its consumer) 20 times during a 2,000-order run",
            n(2000), rate, faults.kill_repeatedly([f"orders:{WORKER_COMMAND}"], 20),
        ),
        Scenario(
            "kill-notification-consumer",
            "kill -9 the user-notification worker (its consumer) 20 times during a 1,000-order "
            "run",
            n(1000), rate, faults.kill_repeatedly([f"user-notification:{WORKER_COMMAND}"], 20),
        ),
        Scenario(
            "kill-relays",
            "kill -9 each outbox relay (the inventory, orders and user-notification workers) "
            "20 times during a 2,000-order run",
            n(2000), rate, faults.kill_repeatedly(workers, 20),
        ),
        Scenario(
            "crash-after-commit",
            "kill -9 the orders web server, the inventory worker and the orders worker (their "
            "consumers) 4 times each between a commit and publishing its events (the relay "
            "must send them)",
            n(1500), rate, faults.crash_writers(crash_points.AFTER_COMMIT, writers, 4),
        ),
        Scenario(
            "crash-after-publish",
            "kill -9 the orders web server, the inventory worker and the orders worker (their "
            "consumers) 4 times each between the broker's confirms and marking the rows sent "
            "(the relay sends them again, the inboxes absorb the copies)",
            n(1500), rate, faults.crash_writers(crash_points.AFTER_PUBLISH, writers, 4),
        ),
        Scenario(
            "rabbitmq-stopped",
            "RabbitMQ stopped for 30 s mid-run, then started",
            n(1000), rate, faults.broker_stopped(30),
        ),
        Scenario(
            "inventory-db-restarted",
            "the inventory PostgreSQL cluster crashed (immediate stop), restarted 5 s later, "
            "mid-run",
            n(1000), rate, faults.inventory_database_restarted(5),
        ),
        Scenario(
            "orders-db-restarted",
            "the orders PostgreSQL cluster (orders and user-notification) crashed (immediate "
            "stop), restarted 5 s later, mid-run",
            n(1000), rate, faults.database_restarted("main", 5),
        ),
        Scenario(
            "freeze-inventory-consumer",
            f"two inventory workers; one frozen (SIGSTOP) for {3 * BROKER_HEARTBEAT_SECONDS} s, "
            f"longer than the broker's heartbeat timeout ({2 * BROKER_HEARTBEAT_SECONDS} s), "
            "while the other takes over its messages, then resumed (SIGCONT)",
            n(2000), rate,
            faults.frozen(f"inventory:{WORKER_COMMAND}", 3 * BROKER_HEARTBEAT_SECONDS),
            worker_processes=2,
        ),
        Scenario(
            "kill-orders-web-mid-request",
            "the orders web server started 12 times with a crash point: each of its workers "
            "kill -9s itself between committing an order and answering the request (the "
            "clients retry with the same Idempotency-Key: one order each)",
            n(1500), rate, faults.crash_writers(crash_points.AFTER_COMMIT, ["orders:web"], 12),
        ),
        Scenario(
            "backorder-serve-killed",
            "half the products allow backorders; staff deliver them and move stock between two "
            "warehouses while orders reserve it; the inventory worker, armed 3 times, kill -9s "
            "itself inside a pass serving a waiting list, before its commit (the notes say how "
            "often a pass got there; never is a failure)",
            n(1500), rate,
            faults.crash_writers(
                crash_points.BACKORDER_MID_SERVE, [f"inventory:{WORKER_COMMAND}"], 3
            ),
            backorder_products=4,
            # Waiting orders soon take what they can, and the worker's pass looks often: the
            # passes the crash point needs happen within the run.
            env={
                "INVENTORY_BACKORDER_PRIORITY_AFTER_SECONDS": "3",
                "INVENTORY_BACKORDER_SCAN_SECONDS": "2",
            },
        ),
        Scenario(
            "inventory-down",
            "every inventory process (web, worker: consumer and relay) down for 60 s",
            n(1000), rate, faults.service_down("inventory", 60),
        ),
        Scenario(
            "network-cut",
            "inventory's workers cut off from the broker for 30 s (network namespace, veth "
            "link down); processes keep running",
            n(1000), rate, faults.network_cut(30), needs="netns",
        ),
        Scenario(
            "poison",
            "50 poison messages (bad JSON, unknown type, schema-invalid, 10 MB body) "
            "interleaved with traffic",
            n(1000), rate, faults.poison(50), poison=50,
        ),
        Scenario(
            "duplicate-delivery",
            "every event published twice: all three workers' relays replaced by a doubling "
            "relay",
            n(1000), rate, faults.nothing, doubling_relays=True,
        ),
        Scenario(
            "quorum-leader-killed",
            "3-node RabbitMQ cluster, quorum queues; kill -9 the node hosting the queue leaders",
            n(1000), rate, faults.cluster_leader_killed, needs="cluster",
        ),
    ]  # fmt: skip


def short_suite() -> list[Scenario]:
    """Three scenarios small enough for ``make test`` (about a minute and a half each)."""
    return [
        Scenario(
            "short-kill-inventory-consumer",
            "kill -9 the inventory worker (its consumer) 5 times during a 150-order run",
            150, 10, faults.kill_repeatedly([f"inventory:{WORKER_COMMAND}"], 5),
        ),
        Scenario(
            "short-rabbitmq-stopped",
            "RabbitMQ stopped for 10 s mid-run, then started",
            150, 10, faults.broker_stopped(10),
        ),
        Scenario(
            "short-poison-duplicates",
            "12 poison messages interleaved, every event published twice",
            150, 10, faults.poison(12), doubling_relays=True, poison=12,
        ),
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------


class Cluster:
    """Three RabbitMQ nodes joined in a cluster, a vhost whose queues are quorum queues by
    default, and a failover TCP front the services connect through."""

    def __init__(self, root: Path, home: Path) -> None:
        self.nodes = [
            RabbitNode(root, f"chaosq{i}-{uuid.uuid4().hex[:4]}", home) for i in (1, 2, 3)
        ]
        self.front: TcpFailover | None = None

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_ready()
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.node)
            node.ctl("start_app")
            node.wait_ready()
        first.ctl("add_vhost", QUORUM_VHOST, "--default-queue-type", "quorum")
        first.ctl("set_permissions", "-p", QUORUM_VHOST, "guest", ".*", ".*", ".*")
        # A retry queue hands its messages back to the main queue by dead-lettering; quorum
        # queues do that at most once unless told otherwise, which a node loss could turn into
        # a lost message: at least once, as a production cluster would be configured.
        first.ctl(
            "set_policy", "-p", QUORUM_VHOST, "--apply-to", "queues", "retry-at-least-once",
            r"\.retry\.", '{"dead-letter-strategy": "at-least-once", "overflow": "reject-publish"}',
        )  # fmt: skip
        self.front = TcpFailover([("127.0.0.1", node.port) for node in self.nodes])

    def url(self) -> str:
        assert self.front is not None
        return self.front.url().replace("/%2F", f"/{QUORUM_VHOST}")

    def node(self, name: str) -> RabbitNode:
        return next(n for n in self.nodes if n.node == name)

    def leaders(self, prefix: str, wait: bool = False) -> dict[str, str]:
        """Queue name -> node hosting its leader, for this scenario's quorum queues."""
        deadline = time.monotonic() + (60 if wait else 0)
        while True:
            alive = [n for n in self.nodes if n.running()]
            output = alive[0].ctl(
                "list_queues",
                "-p",
                QUORUM_VHOST,
                "name",
                "type",
                "leader",
                "--no-table-headers",
                "--quiet",
                check=False,
            )
            leaders = {}
            for line in output.splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[0].startswith(prefix) and parts[1] == "quorum":
                    leaders[parts[0]] = parts[2]
            dead = {n.node for n in self.nodes if not n.running()}
            if not wait or (leaders and not set(leaders.values()) & dead):
                return leaders
            if time.monotonic() > deadline:
                return leaders
            time.sleep(1)

    def stop(self) -> None:
        if self.front is not None:
            self.front.close()
        for node in self.nodes:
            node.stop()


@dataclass
class Environment:
    """The suite's private servers, under one temporary directory."""

    needs: set[str]
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="chaos-")))
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    home: Path | None = None
    netns: Netns | None = None
    broker: RabbitNode | None = None
    main_db: PrivatePostgres | None = None
    inventory_db: PrivatePostgres | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # need -> why it is unavailable

    def start(self) -> None:
        missing = missing_tools()
        if missing:
            raise InfraError("cannot run the chaos suite: missing " + "; ".join(missing))
        self.root.chmod(0o755)  # postgres must reach its own subdirectory
        self.home = erlang_home(self.root, f"CHAOS{uuid.uuid4().hex.upper()}")
        if "netns" in self.needs:
            problem = Netns.problem()
            if problem:
                self.skipped["netns"] = problem
            else:
                self.netns = Netns(self.tag)
                try:
                    self.netns.setup()
                except InfraError as exc:
                    self.skipped["netns"] = str(exc).splitlines()[0]
                    self.netns.teardown()
                    self.netns = None
        inventory_listen = ["127.0.0.1"] + ([Netns.DATABASE_HOST] if self.netns else [])
        broker_listen = ["127.0.0.1"] + ([Netns.BROKER_HOST] if self.netns else [])
        self.main_db = PrivatePostgres(self.root, "main")
        self.inventory_db = PrivatePostgres(self.root, "inventory", listen=inventory_listen)
        for cluster in (self.main_db, self.inventory_db):
            cluster.init()
            cluster.start()
        self.broker = RabbitNode(self.root, f"chaos1-{self.tag}", self.home, listen=broker_listen)
        self.broker.start()
        self.broker.wait_ready()

    def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()
        for cluster in (self.main_db, self.inventory_db):
            if cluster is not None:
                cluster.stop()
        if self.netns is not None:
            self.netns.teardown()
        # The servers' data goes; every process's log stays, for whoever reads the report.
        for cluster in (self.main_db, self.inventory_db):
            if cluster is not None and not cluster.running():
                shutil.rmtree(cluster.data, ignore_errors=True)
        for data in self.root.glob("rabbit-*/mnesia"):
            shutil.rmtree(data, ignore_errors=True)

    def backend(self, scenario: Scenario, cluster: Cluster | None) -> Backend:
        assert self.broker and self.main_db and self.inventory_db
        if cluster is not None:
            return Backend(cluster.url(), self.main_db, self.inventory_db)
        backend = Backend(self.broker.url(), self.main_db, self.inventory_db)
        if scenario.needs == "netns" and self.netns is not None:
            backend.inventory_amqp_url = self.broker.url(host=Netns.BROKER_HOST)
            backend.inventory_db_host = Netns.DATABASE_HOST
            backend.netns = self.netns
        return backend


@contextlib.contextmanager
def environment(scenarios: list[Scenario]) -> Iterator[Environment]:
    env = Environment(needs={s.needs for s in scenarios if s.needs})
    try:
        env.start()
        yield env
    finally:
        env.stop()


# ---------------------------------------------------------------------------------------------


@dataclass
class Result:
    scenario: str
    title: str
    status: str  # "passed", "failed", "not run"
    orders_sent: int = 0
    accepted: int = 0
    final: int = 0
    lost: int = 0
    oversold: int = 0
    duplicate_effects: int = 0
    dead_lettered: int = 0
    poison_injected: int = 0
    dead_letters_expected: int = 0  # copies: a poison message bound to two queues counts twice
    recover_seconds: float | None = None
    settle_seconds: float | None = None
    duration_seconds: float = 0.0
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def _replica_ready(system: ChaosSystem) -> Callable[[set[int]], bool]:
    def ready(product_ids: set[int]) -> bool:
        with system.connect_db("orders") as db:
            rows = db.execute("SELECT product_id FROM product_replica").fetchall()
        return product_ids <= {int(r[0]) for r in rows}

    return ready


def _findings(system: ChaosSystem, driver: OrderDriver) -> Findings:
    with (
        system.connect_db("orders") as orders_db,
        system.connect_db("inventory") as inventory_db,
        system.connect_db("user-notification") as users_db,
    ):
        rows = read({"orders": orders_db, "inventory": inventory_db, "user-notification": users_db})
    return check(
        rows,
        accepted=dict(driver.stats.accepted),
        stock_given=driver.stock_given,
        queued=system.queue_depths(),
    )


def _pending_before(system: ChaosSystem, moment: datetime) -> int:
    with system.connect_db("orders") as db:
        [(count,)] = db.execute(
            "SELECT COUNT(*) FROM orders_order WHERE status = 'PENDING' AND created_at <= %s",
            [moment],
        ).fetchall()
    return int(count)


def _dead_letters(system: ChaosSystem) -> dict[str, list[str | None]]:
    """Message ids in each dead-letter queue, as the operators' command lists them."""
    found: dict[str, list[str | None]] = {}
    names = topology.Names(system.prefix)
    for service in SERVICES:
        code, output = system.manage(service.name, "dead_letters", "list", "--limit", "100000")
        if code != 0:
            raise RuntimeError(f"{service.name}: dead_letters list failed: {output[-2000:]}")
        lines = output.strip().splitlines()[:-1]  # the last line says how many were shown
        found[names.dead_letter_queue(service.name)] = [
            None if line.split()[0] == "-" else line.split()[0] for line in lines if line.strip()
        ]
    return found


class Sampler(threading.Thread):
    """Every second: PENDING orders and unsent rows in the orders outbox, to show the backlog
    a fault builds and how it drains."""

    QUERY = (
        "SELECT (SELECT COUNT(*) FROM orders_order WHERE status = 'PENDING'), "
        "(SELECT COUNT(*) FROM messaging_outboxmessage WHERE sent_at IS NULL)"
    )

    def __init__(self, system: ChaosSystem) -> None:
        super().__init__(daemon=True, name="sampler")
        self.system = system
        # (wall clock, PENDING orders, unsent orders outbox rows)
        self.samples: list[tuple[str, int, int]] = []
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(1.0):
            with contextlib.suppress(Exception):
                with self.system.connect_db("orders") as db:
                    pending, unsent = db.execute(self.QUERY).fetchone() or (0, 0)
                now = datetime.now(UTC).isoformat(timespec="seconds")
                self.samples.append((now, int(pending), int(unsent)))

    def stop(self) -> None:
        self._stopped.set()
        self.join(5)

    def summary(self, fault_started: datetime | None, fault_ended: datetime) -> str:
        if not self.samples:
            return "no samples of the backlog"
        start = (fault_started or fault_ended).isoformat(timespec="seconds")
        end = fault_ended.isoformat(timespec="seconds")
        before = [p for t, p, _ in self.samples if t < start] or [0]
        during = [(p, u) for t, p, u in self.samples if start <= t <= end] or [(0, 0)]
        return (
            f"backlog: PENDING orders peaked at {max(p for _, p, _ in self.samples)} "
            f"({max(before)} before the fault, {max(p for p, _ in during)} during it); "
            f"unsent orders outbox rows peaked at {max(u for _, _, u in self.samples)}"
        )


RECONNECT_MARKERS = ("lost the broker", "lost the database", "database unavailable")


def _reconnects(log_dir: Path) -> dict[str, int]:
    """Per process log, how many times the worker reported losing the broker or the database:
    evidence that the fault reached it."""
    counts = {}
    for log_file in sorted(log_dir.glob("*.log")):
        with log_file.open(errors="replace") as lines:
            count = sum(1 for line in lines if any(m in line for m in RECONNECT_MARKERS))
        if count:
            counts[log_file.stem] = count
    return counts


def run_scenario(
    env: Environment,
    scenario: Scenario,
    say: Callable[[str], None] = print,
    recovery_limit: float = RECOVERY_LIMIT_SECONDS,
) -> Result:
    result = Result(scenario.name, scenario.title, "failed", poison_injected=scenario.poison)
    if scenario.needs == "netns" and env.netns is None:
        result.status = "not run"
        result.notes.append(f"network namespaces unavailable: {env.skipped.get('netns')}")
        return result
    began = time.monotonic()

    def log(line: str) -> None:
        say(f"  [{time.monotonic() - began:6.1f}s] {line.strip()}")

    cluster: Cluster | None = None
    system: ChaosSystem | None = None
    sampler: Sampler | None = None
    try:
        if scenario.needs == "cluster":
            assert env.home is not None
            cluster = Cluster(env.root, env.home)
            log("starting a 3-node RabbitMQ cluster")
            try:
                cluster.start()
            except InfraError as exc:
                result.status = "not run"
                result.notes.append(f"the 3-node cluster could not be formed: {exc}"[:1000])
                return result
        work_dir = env.root / scenario.name
        replace = {}
        if scenario.doubling_relays:
            replace = {f"{s.name}:{WORKER_COMMAND}": doubling_relay_argv() for s in SERVICES}
        system = ChaosSystem(
            scenario.name,
            env.backend(scenario, cluster),
            work_dir,
            replace,
            worker_processes=scenario.worker_processes,
            extra_env=scenario.env,
        )
        log("starting the system")
        system.start()
        driver = OrderDriver(
            {s.name: system.url(s.name) for s in SERVICES},
            STAFF_USERNAME,
            STAFF_PASSWORD,
            seed=random.randrange(1 << 30),
            backorder_products=scenario.backorder_products,
        )
        log("creating products and customers")
        driver.setup(scenario.orders, _replica_ready(system))
        ctx = faults.FaultContext(
            system=system,
            driver=driver,
            total_orders=scenario.orders,
            rate=scenario.rate,
            broker=env.broker,
            inventory_db=env.inventory_db,
            main_db=env.main_db,
            netns=env.netns,
            cluster=cluster,
        )
        log(f"sending {scenario.orders} orders at {scenario.rate}/s and injecting the fault")
        driver.start(scenario.orders, scenario.rate)
        sampler = Sampler(system)
        sampler.start()
        injector_error: list[BaseException] = []

        def run_injector() -> None:
            try:
                scenario.inject(ctx)
            except BaseException as exc:
                injector_error.append(exc)
                traceback.print_exc()

        injector = threading.Thread(target=run_injector, daemon=True)
        injector.start()
        injector.join()
        if injector_error:
            driver.join()
            raise injector_error[0]
        fault_end = ctx.fault_ended or datetime.now(UTC)
        fault_end_clock = time.monotonic() - (datetime.now(UTC) - fault_end).total_seconds()
        log("fault over; watching the recovery while the orders keep coming")
        # Recovery: every order placed before the fault ended is final. Watched from now on,
        # while the driver may still be sending.
        recovered_at: list[float] = []

        def watch_recovery() -> None:
            if wait_until(
                lambda: _pending_before(system, fault_end) == 0,
                fault_end_clock + recovery_limit - time.monotonic(),
                interval=0.25,
            ):
                recovered_at.append(time.monotonic())

        watcher = threading.Thread(target=watch_recovery, daemon=True)
        watcher.start()
        driver.join()
        log("all orders sent; waiting for the system to settle")
        watcher.join()
        if recovered_at:
            result.recover_seconds = round(max(0.0, recovered_at[0] - fault_end_clock), 1)
        settle_from = max(fault_end_clock, driver.finished_at)
        findings = _findings(system, driver)
        while not findings.settled and time.monotonic() < settle_from + recovery_limit:
            time.sleep(1.0)
            with contextlib.suppress(Exception):
                findings = _findings(system, driver)
        if findings.settled:
            result.settle_seconds = round(time.monotonic() - fault_end_clock, 1)
        # Duplicates and oversells are judged once more on the settled state.
        log(f"settled: {findings.settled}; reconciling the stock ledger")
        code, output = system.manage("inventory", "reconcile_stock")
        if code != 0:
            findings.ledger_mismatch = max(findings.ledger_mismatch, 1)
            findings.note("ledger", output.strip()[:500])
        log("checking the dead-letter queues")
        found_dead = _dead_letters(system)
        dead_problems = dead_letter_problems(found_dead, ctx.injected_poison)
        result.dead_lettered = sum(len(ids) for ids in found_dead.values())
        result.dead_letters_expected = sum(len(ids) for ids in ctx.injected_poison.values())
        if scenario.poison:
            counts = {
                s.name: system.manage(s.name, "dead_letters", "count")[1].strip() for s in SERVICES
            }
            purged = {
                s.name: system.manage(s.name, "dead_letters", "purge", "--all")[1].strip()
                for s in SERVICES
            }
            result.notes.append(f"dead_letters count {counts}; purge --all: {purged}")
        result.orders_sent = driver.stats.attempted
        result.accepted = findings.accepted
        result.final = findings.final
        result.lost = findings.lost
        result.oversold = findings.oversold
        result.duplicate_effects = findings.duplicate_effects
        result.violations = findings.violations() + dead_problems
        if system.unexpected_exits:
            result.violations.append(f"processes exited by themselves: {system.unexpected_exits}")
        if result.recover_seconds is None:
            result.violations.append(f"orders still PENDING {recovery_limit:.0f}s after the fault")
        if ctx.poison_injected_count != scenario.poison:
            result.violations.append(
                f"injected {ctx.poison_injected_count} poison messages, planned {scenario.poison}"
            )
        result.notes += ctx.notes
        sent_in = (driver.placed_at or driver.finished_at) - driver.started_at
        planned = driver.stats.attempted - driver.stats.trickled
        result.notes.append(
            f"orders sent in {sent_in:.0f} s ({planned / max(sent_in, 0.1):.1f}/s)"
            + (f", and {driver.stats.trickled} more after them" if driver.stats.trickled else "")
        )
        if driver.stats.staff:
            result.notes.append(f"staff deliveries and transfers: {dict(driver.stats.staff)}")
        reconnects = _reconnects(work_dir / "logs")
        if reconnects:
            result.notes.append(f"workers that lost a connection and reconnected: {reconnects}")
        sampler.stop()
        result.notes.append(sampler.summary(ctx.fault_started, fault_end))
        result.details = {
            "timeline": sampler.samples,
            "findings": findings.as_dict(),
            "http_outcomes": dict(driver.stats.outcomes),
            "cancels": dict(driver.stats.cancels),
            "ships": dict(driver.stats.ships),
            "staff": dict(driver.stats.staff),
            "stock_given": driver.stock_given,
            "dead_letter_queues": {q: len(ids) for q, ids in found_dead.items()},
            "fault_started": ctx.fault_started.isoformat() if ctx.fault_started else None,
            "fault_ended": fault_end.isoformat(),
            "kills": dict(system.kills),
            "logs": str(work_dir / "logs"),
            "sending_seconds": round(sent_in, 1),
        }
        result.status = "passed" if not result.violations else "failed"
    except Exception as exc:
        result.status = "failed"
        result.violations.append(f"the scenario could not complete: {type(exc).__name__}: {exc}")
        traceback.print_exc()
    finally:
        log("stopping the system")
        if sampler is not None:
            sampler.stop()
        if system is not None:
            system.stop()
            system.drop()
        if cluster is not None:
            cluster.stop()
        result.duration_seconds = round(time.monotonic() - began, 1)
    return result
