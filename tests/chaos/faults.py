"""Fault injectors. Each runs while the order driver runs and returns when its fault is over.

An injector gets a :class:`FaultContext` and returns nothing; it stamps ``fault_started`` and
``fault_ended`` (wall clock) so the runner can measure recovery from the fault's end.
"""

from __future__ import annotations

import json
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pika

from messaging import topology
from tests.chaos.driver import OrderDriver
from tests.chaos.infra import Netns, PrivatePostgres, RabbitNode
from tests.chaos.system import ChaosSystem, broker_channel

HUGE_BODY_BYTES = 10 * 1024 * 1024


@dataclass
class FaultContext:
    system: ChaosSystem
    driver: OrderDriver
    total_orders: int
    rate: float
    broker: RabbitNode | None = None
    inventory_db: PrivatePostgres | None = None
    main_db: PrivatePostgres | None = None  # orders and user-notification
    netns: Netns | None = None
    cluster: Any = None  # tests.chaos.scenarios.Cluster
    rng: random.Random = field(default_factory=random.Random)
    fault_started: datetime | None = None
    fault_ended: datetime | None = None
    injected_poison: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def started(self) -> None:
        if self.fault_started is None:
            self.fault_started = datetime.now(UTC)

    def ended(self) -> None:
        self.fault_ended = datetime.now(UTC)

    @property
    def poison_injected_count(self) -> int:
        return len({i for ids in self.injected_poison.values() for i in ids})

    def wait_for_share(self, share: float) -> None:
        """Until ``share`` of the orders were sent (or sending is over)."""
        while self.driver.placed < share * self.total_orders and not self.driver.placing_done:
            time.sleep(0.1)


Injector = Callable[[FaultContext], None]


def kill_repeatedly(labels: list[str], times_each: int) -> Injector:
    """``kill -9`` each process ``times_each`` times at random moments during the run; the
    supervisor starts it again after a random pause (0.2 to 2 s)."""

    def inject(ctx: FaultContext) -> None:
        plan = [label for label in labels for _ in range(times_each)]
        ctx.rng.shuffle(plan)
        # Moments measured in orders sent, not seconds: the run's pace depends on the machine.
        moments = sorted(ctx.rng.uniform(0.03, 0.9) for _ in plan)
        ctx.started()
        for moment, label in zip(moments, plan, strict=True):
            ctx.wait_for_share(moment)
            ctx.system.kill(label, restart_after=ctx.rng.uniform(0.2, 2.0))
        ctx.ended()
        ctx.notes.append(
            "kills: " + ", ".join(f"{k} x{v}" for k, v in sorted(ctx.system.kills.items()))
        )

    return inject


def crash_writers(point: str, labels: list[str], times_each: int) -> Injector:
    """Make each writer ``kill -9`` itself at ``point`` (``messaging.crash_points``)
    ``times_each`` times at random moments during the run: between a commit and publishing its
    events, or between the broker's confirms and marking the rows sent."""

    def inject(ctx: FaultContext) -> None:
        plan = [label for label in labels for _ in range(times_each)]
        ctx.rng.shuffle(plan)
        moments = sorted(ctx.rng.uniform(0.03, 0.7) for _ in plan)
        reached: Counter[str] = Counter()
        ctx.started()
        # A try that comes after the run's last order (the tries outlast a short run) would
        # wait for a commit that never comes: a trickle of orders goes on until the last one.
        with ctx.driver.trickle():
            for moment, label in zip(moments, plan, strict=True):
                ctx.wait_for_share(moment)
                if ctx.system.crash_at(label, point):
                    reached[label] += 1
        ctx.ended()
        ctx.notes.append(
            f"kill -9 at {point}: " + ", ".join(f"{k} x{reached[k]}" for k in sorted(labels))
        )
        missed = sorted(set(labels) - set(reached))
        if missed:
            raise RuntimeError(f"never reached {point}: {', '.join(missed)}")

    return inject


def broker_stopped(seconds: float) -> Injector:
    def inject(ctx: FaultContext) -> None:
        assert ctx.broker is not None
        ctx.wait_for_share(0.3)
        ctx.started()
        ctx.broker.stop()
        time.sleep(seconds)
        ctx.broker.start()
        ctx.broker.wait_ready()
        ctx.ended()

    return inject


def inventory_database_restarted(down_seconds: float) -> Injector:
    return database_restarted("inventory", down_seconds)


def database_restarted(cluster: str, down_seconds: float) -> Injector:
    """The PostgreSQL cluster ``cluster`` ("inventory", or "main": orders and user-notification)
    crashed (immediate stop: connections cut, crash recovery at start) and started again."""

    def inject(ctx: FaultContext) -> None:
        server = ctx.inventory_db if cluster == "inventory" else ctx.main_db
        assert server is not None
        ctx.wait_for_share(0.3)
        ctx.started()
        server.stop(mode="immediate")
        time.sleep(down_seconds)
        server.start()
        ctx.ended()

    return inject


def frozen(label: str, seconds: float) -> Injector:
    """``kill -STOP`` one process (its whole group) for ``seconds``, then ``kill -CONT``: alive
    but silent, it answers no broker heartbeat, so the broker closes its connection and hands
    the messages it held to the other consumer of the queue; resumed, it still holds them and
    may finish handling one the other already handled."""

    def inject(ctx: FaultContext) -> None:
        managed = ctx.system.process(label)
        ctx.wait_for_share(0.2)
        ctx.started()
        managed.signal(signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            managed.signal(signal.SIGCONT)
        ctx.ended()
        ctx.notes.append(f"{label} frozen (SIGSTOP) for {seconds:.0f} s, then resumed (SIGCONT)")

    return inject


def service_down(service: str, seconds: float) -> Injector:
    def inject(ctx: FaultContext) -> None:
        ctx.wait_for_share(0.3)
        labels = [p.label for p in ctx.system.processes_of(service)]
        ctx.started()
        ctx.system.hold_down(labels)
        time.sleep(seconds)
        for label in labels:
            ctx.system.start_again(label)
        ctx.system.local.wait_ready(timeout=120)
        ctx.ended()

    return inject


def network_cut(seconds: float) -> Injector:
    def inject(ctx: FaultContext) -> None:
        assert ctx.netns is not None
        ctx.wait_for_share(0.3)
        ctx.started()
        ctx.netns.cut_broker()
        try:
            time.sleep(seconds)
        finally:
            ctx.netns.restore_broker()
        ctx.ended()

    return inject


def cluster_leader_killed(ctx: FaultContext) -> None:
    cluster = ctx.cluster
    assert cluster is not None
    ctx.wait_for_share(0.3)
    leaders = cluster.leaders(ctx.system.prefix)
    node = max(set(leaders.values()), key=list(leaders.values()).count)
    ctx.notes.append(f"queue leaders before: {_by_node(leaders)}; kill -9 {node}")
    ctx.started()
    cluster.node(node).kill()
    ctx.ended()
    ctx.notes.append(
        f"queue leaders after: {_by_node(cluster.leaders(ctx.system.prefix, wait=True))}"
    )


def _by_node(leaders: dict[str, str]) -> str:
    counts = Counter(leaders.values())
    return ", ".join(f"{count} on {node}" for node, count in sorted(counts.items())) or "none"


# ---------------------------------------------------------------------------------------------
# Poison


def _envelope(event_type: str, data: dict[str, Any], source: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "type": event_type,
        "version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": source,
        "correlation_id": str(uuid.uuid4()),
        "causation_id": None,
        "data": data,
    }


# How to reach each consumer's queue: (exchange owner, routing key) it binds. Other queues bound
# to the same key get a copy too (see messaging.topology.CONSUMES).
ROUTES = {
    "inventory": ("orders", "order.created"),
    "orders": ("inventory", "stock.reserved"),
    "user-notification": ("orders", "order.confirmed"),
}


def poison_body(kind: str, consumer: str) -> bytes:
    publisher, routing_key = ROUTES[consumer]
    if kind == "bad-json":
        return b'{"id": "' + uuid.uuid4().hex.encode() + b'", "type": order.created, '
    if kind == "unknown-type":
        body = _envelope("order.teleported", {"order_id": str(uuid.uuid4())}, publisher)
        return json.dumps(body).encode()
    if kind == "schema-invalid":
        body = _envelope(routing_key, {"order_id": "not-a-uuid", "quantity": -3}, publisher)
        return json.dumps(body).encode()
    if kind == "huge":
        body = _envelope(routing_key, {"order_id": str(uuid.uuid4())}, publisher)
        body["data"]["padding"] = "x" * HUGE_BODY_BYTES
        return json.dumps(body).encode()
    raise ValueError(kind)


POISON_KINDS = ("bad-json", "unknown-type", "schema-invalid", "huge")


def poison(count: int) -> Injector:
    """``count`` poison messages, spread over the run and over the three consumer queues, each
    kind in turn; published to the services' exchanges like any event."""

    def inject(ctx: FaultContext) -> None:
        names = topology.Names(ctx.system.prefix)
        consumers = list(ROUTES)
        moments = sorted(ctx.rng.uniform(0.05, 0.85) for _ in range(count))
        ctx.started()
        with broker_channel(ctx.system.backend.amqp_url) as channel:
            channel.confirm_delivery()
            for index, moment in enumerate(moments):
                while ctx.driver.placed < moment * ctx.total_orders and not ctx.driver.placing_done:
                    channel.connection.sleep(0.1)
                consumer = consumers[index % len(consumers)]
                kind = POISON_KINDS[index % len(POISON_KINDS)]
                publisher, routing_key = ROUTES[consumer]
                message_id = str(uuid.uuid4())
                channel.basic_publish(
                    names.exchange(publisher),
                    routing_key,
                    poison_body(kind, consumer),
                    pika.BasicProperties(
                        content_type="application/json",
                        delivery_mode=pika.DeliveryMode.Persistent,
                        message_id=message_id,
                        type=routing_key,
                    ),
                    mandatory=True,
                )
                # Every queue bound to the routing key gets a copy, and must dead-letter it.
                for receiver, events in topology.CONSUMES.items():
                    if routing_key in events:
                        queue = names.dead_letter_queue(receiver)
                        ctx.injected_poison.setdefault(queue, []).append(message_id)
        ctx.ended()
        kinds = [POISON_KINDS[i % len(POISON_KINDS)] for i in range(count)]
        ctx.notes.append(
            "poison: "
            + ", ".join(f"{kinds.count(k)} {k}" for k in POISON_KINDS)
            + f" across {', '.join(consumers)}"
        )

    return inject


def nothing(ctx: FaultContext) -> None:
    """No injected event: the fault is in how the system runs (e.g. a doubling relay)."""
    ctx.started()
    while not ctx.driver.placing_done:
        time.sleep(0.2)
    ctx.ended()
