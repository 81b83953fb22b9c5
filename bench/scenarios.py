"""The five scenarios and the two ways of driving load.

Closed loop (scenarios a and c): ``clients`` customers, each placing its next order as soon as
its previous order is *final* (its outcome event arrived), so at most ``clients`` orders are in
the saga at once and the rate is whatever the whole pipeline sustains. Open loop (b): orders
arrive on a fixed schedule whatever the system does; latency is measured from the scheduled
moment, so a client that falls behind cannot hide the system's delay. Backlog (d): orders are
placed as fast as POSTs return while the inventory workers are down, then the workers start.

Every order's latency is POST → outcome event (``order.confirmed`` / ``order.rejected``) as
stamped by :class:`bench.listener.OutcomeListener`.

Grown data (e): a history of past orders is written into the databases
(:mod:`bench.dataset`), then (a)'s closed loop runs again and the read endpoints customers and
staff use are timed one request at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from tqdm import tqdm

from bench import dataset
from bench.client import Client, Customer, PostResult
from bench.config import BenchConfig
from bench.listener import OutcomeListener
from bench.machine import CpuWindow
from bench.stats import summary_ms
from bench.system import queue_depth
from devstack.stack import Stack

Lines = list[dict[str, int]]


@dataclass
class OrderRecord:
    scenario: str
    post: PostResult
    lines: Lines
    measured: bool = True  # False for warm-up orders: checked for correctness, not timed


@dataclass
class Bench:
    """What the scenarios share: the client, the listener, customers, products, all orders."""

    config: BenchConfig
    client: Client
    listener: OutcomeListener
    system: Stack
    customers: list[Customer]
    products: list[int]
    flash_product: int
    rng: random.Random
    records: list[OrderRecord] = field(default_factory=list)
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)  # for the plots
    staff: str = ""  # a staff access token

    def random_lines(self) -> Lines:
        count = self.rng.randint(1, self.config.max_lines)
        return [
            {"product_id": product_id, "quantity": self.rng.randint(1, self.config.max_quantity)}
            for product_id in sorted(self.rng.sample(self.products, count))
        ]

    def system_pids(self) -> list[int]:
        """The running processes of the system under test (their children are found later)."""
        return [
            managed.process.pid
            for managed in self.system.system.processes
            if managed.process is not None and managed.running()
        ]

    def customer(self, index: int) -> Customer:
        return self.customers[index % len(self.customers)]

    def record(self, scenario: str, post: PostResult, lines: Lines, measured: bool = True) -> None:
        self.records.append(OrderRecord(scenario, post, lines, measured))

    def progress(self, desc: str, total: int | None = None, unit: str = "order") -> tqdm:
        return tqdm(
            desc=desc,
            total=total,
            unit=unit,
            disable=not self.config.progress,
            mininterval=0.5,
            dynamic_ncols=True,
            leave=True,
        )

    def outcomes_of(self, records: Sequence[OrderRecord]) -> dict[str, Any]:
        """Latency summary and status counts of some orders, from their outcome events."""
        latencies: list[float] = []
        statuses: dict[str, int] = {}
        not_final = 0
        for record in records:
            if not record.post.accepted:
                continue
            assert record.post.order_id is not None
            outcome = self.listener.outcomes.get(record.post.order_id)
            if outcome is None:
                not_final += 1
                continue
            statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
            latencies.append(outcome.at - record.post.started)
        accepted = sum(1 for r in records if r.post.accepted)
        return {
            "posted": len(records),
            "accepted": accepted,
            "post_failures": len(records) - accepted,
            "final": accepted - not_final,
            "not_final": not_final,
            "statuses": statuses,
            "latency_ms": summary_ms(latencies),
            "post_latency_ms": summary_ms(
                [r.post.answered - r.post.started for r in records if r.post.accepted]
            ),
        }

    def final_times(self, records: Sequence[OrderRecord]) -> list[float]:
        times = []
        for record in records:
            if record.post.order_id is not None:
                outcome = self.listener.outcomes.get(record.post.order_id)
                if outcome is not None:
                    times.append(outcome.at)
        return sorted(times)


async def _watch(bar: tqdm, count: Callable[[], int], stop: asyncio.Event) -> None:
    """Move a progress bar to ``count()`` a few times a second until ``stop`` is set."""
    while not stop.is_set():
        value = count()
        if value > bar.n:
            bar.update(value - bar.n)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)
    value = count()
    if value > bar.n:
        bar.update(value - bar.n)


async def closed_loop(
    bench: Bench,
    scenario: str,
    *,
    clients: int,
    lines: Callable[[], Lines],
    seconds: float | None = None,
    warmup: float = 0.0,
    orders: int | None = None,
) -> tuple[float, float]:
    """Run ``clients`` customers, each waiting for its order to be final before the next.

    With ``seconds``: a warm-up first (at least ``warmup`` seconds, and until every customer
    has had one order final, so every web worker and connection is warm), whose orders are
    recorded unmeasured; then a measured window of ``seconds``, after which customers place
    nothing new. With ``orders``: stops once that many were placed, all measured. Returns the
    measured window (monotonic).
    """
    start = time.monotonic()
    window = [start, float("inf")]  # [measured from, no new orders after]
    remaining = [orders if orders is not None else -1]
    warmed = [0]
    all_warm = asyncio.Event()
    bar = bench.progress(f"{scenario}: closed loop, {clients} clients", total=orders)

    async def clock() -> None:
        if seconds is None:
            return
        window[0] = float("inf")  # nothing is measured until the warm-up is over
        await asyncio.sleep(warmup)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_warm.wait(), bench.config.final_timeout)
        window[0] = time.monotonic()
        window[1] = window[0] + seconds

    async def customer_loop(index: int) -> None:
        customer = bench.customer(index)
        first = True
        try:
            while time.monotonic() < window[1]:
                if remaining[0] == 0:
                    return
                remaining[0] -= 1
                order_lines = lines()
                post = await bench.client.place_order(customer, order_lines)
                bench.record(scenario, post, order_lines, measured=post.started >= window[0])
                if post.accepted:
                    assert post.order_id is not None
                    if await bench.listener.wait(post.order_id, bench.config.final_timeout) is None:
                        return  # stuck: stop this customer; the report counts it not final
                else:
                    await asyncio.sleep(0.05)
                bar.update(1)
                if first:
                    first = False
                    warmed[0] += 1
                    if warmed[0] == clients:
                        all_warm.set()
        finally:
            if first:
                warmed[0] += 1
                if warmed[0] == clients:
                    all_warm.set()

    try:
        await asyncio.gather(clock(), *(customer_loop(i) for i in range(clients)))
    finally:
        bar.close()
    return window[0], min(time.monotonic(), window[1])


DATABASE_COUNTERS = ("xact_commit", "tup_inserted", "tup_updated", "tup_deleted", "tup_fetched")


def database_counters(urls: dict[str, str]) -> dict[str, dict[str, int]]:
    """Each service database's cumulative commits and row counts (``pg_stat_database``)."""
    counters: dict[str, dict[str, int]] = {}
    for service, url in urls.items():
        with psycopg.connect(url) as connection:
            row = connection.execute(
                f"SELECT {', '.join(DATABASE_COUNTERS)} FROM pg_stat_database "  # noqa: S608
                "WHERE datname = current_database()"
            ).fetchone()
        counters[service] = dict(zip(DATABASE_COUNTERS, row or (), strict=False))
    return counters


def per_order(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], orders: int
) -> dict[str, dict[str, float]]:
    """Database work per final order, per service: what batching would have to shrink."""
    return {
        service: {
            name: round((after[service][name] - before[service][name]) / max(orders, 1), 2)
            for name in DATABASE_COUNTERS
        }
        for service in after
    }


async def run_closed(bench: Bench, scenario: str = "a") -> dict[str, Any]:
    """(a) Maximum throughput: closed loop over every SKU, random lines, ample stock."""
    config = bench.config
    urls = bench.system.database_urls
    counters_before = await asyncio.to_thread(database_counters, urls)
    cpu = CpuWindow(bench.system_pids).start()
    first = len(bench.records)
    window = await closed_loop(
        bench,
        scenario,
        clients=config.clients,
        lines=bench.random_lines,
        seconds=config.closed_seconds,
        warmup=config.warmup_seconds,
    )
    bench.windows[scenario] = (bench.records[first].post.started, window[1])
    cpu_figures = cpu.stop()
    records = bench.records[first:]
    measured = [r for r in records if r.measured]
    finals = bench.final_times(records)
    finals_in_window = [t for t in finals if window[0] <= t <= window[1]]
    seconds = window[1] - window[0]
    await asyncio.sleep(1.5)  # backends publish their statistics within a second of idling
    counters_after = await asyncio.to_thread(database_counters, urls)
    return {
        "definition": (
            f"{config.clients} customers in a closed loop: each places its next order when the "
            f"previous one is final; 1-{config.max_lines} random lines of quantity "
            f"1-{config.max_quantity} over {len(bench.products)} SKUs with ample stock; a "
            f"warm-up of at least {config.warmup_seconds:g} s and one order per customer, then "
            f"{config.closed_seconds:g} s measured"
        ),
        "clients": config.clients,
        "seconds": round(seconds, 2),
        "final_orders_per_second": round(len(finals_in_window) / seconds, 1),
        **bench.outcomes_of(measured),
        "warmup_orders": len(records) - len(measured),
        "cpu": cpu_figures,
        "database_work_per_order": per_order(counters_before, counters_after, len(finals)),
    }


async def run_open(bench: Bench, rate: int, scenario: str) -> dict[str, Any]:
    """(b) One fixed arrival rate: ``rate`` orders per second for ``open_seconds``."""
    config = bench.config
    cpu = CpuWindow(bench.system_pids).start()
    count = max(1, round(rate * config.open_seconds))
    first = len(bench.records)
    begin = time.monotonic() + 0.1
    tasks: list[asyncio.Task[None]] = []
    lag: list[float] = []
    bar = bench.progress(f"{scenario}: open loop {rate}/s", total=count)

    async def place(index: int, scheduled: float) -> None:
        order_lines = bench.random_lines()
        post = await bench.client.place_order(bench.customer(index), order_lines, scheduled)
        lag.append(post.sent - scheduled)
        bench.record(scenario, post, order_lines)
        bar.update(1)

    outstanding_limit = max(50, round(rate * config.saturation_seconds))
    check_every = max(1, rate // 10)
    saturated = False
    for index in range(count):
        scheduled = begin + index / rate
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if index % check_every == 0:
            done = sum(
                1
                for r in bench.records[first:]
                if r.post.order_id is not None and r.post.order_id in bench.listener.outcomes
            )
            if index - done > outstanding_limit:
                saturated = True  # latency would only grow with the test's length: stop here
                break
        tasks.append(asyncio.create_task(place(index, scheduled)))
    sent_until = time.monotonic()
    await asyncio.gather(*tasks)
    bar.close()
    records = bench.records[first:]
    ids = [r.post.order_id for r in records if r.post.order_id is not None]
    await bench.listener.wait_all(ids, config.stall_seconds)
    finals = bench.final_times(records)
    end = finals[-1] if finals else time.monotonic()
    bench.windows[scenario] = (begin, end)
    arrivals = sent_until - begin
    return {
        "offered_rate": rate,
        "planned_orders": count,
        "saturated": saturated,
        "saturation_rule": (
            f"stop arriving once more than {outstanding_limit} orders are outstanding "
            f"({config.saturation_seconds:g} s of arrivals)"
        ),
        "achieved_arrival_rate": round(len(tasks) / arrivals, 1) if arrivals > 0 else None,
        "max_client_lag_ms": round(1000 * max(lag, default=0.0), 1),
        "final_orders_per_second": round(len(finals) / (end - begin), 1) if finals else 0.0,
        "drain_after_last_arrival_s": round(end - sent_until, 2),
        **bench.outcomes_of(records),
        "cpu": cpu.stop(),
    }


async def run_flash(bench: Bench, scenario: str = "c") -> dict[str, Any]:
    """(c) Flash sale: ``flash_orders`` one-unit orders for one SKU with ``flash_stock`` units."""
    config = bench.config
    cpu = CpuWindow(bench.system_pids).start()
    first = len(bench.records)
    await closed_loop(
        bench,
        scenario,
        clients=config.clients,
        lines=lambda: [{"product_id": bench.flash_product, "quantity": 1}],
        orders=config.flash_orders,
    )
    records = bench.records[first:]
    ids = [r.post.order_id for r in records if r.post.order_id is not None]
    await bench.listener.wait_all(ids, config.stall_seconds)
    finals = bench.final_times(records)
    begin = records[0].post.started
    end = finals[-1] if finals else time.monotonic()
    bench.windows[scenario] = (begin, end)
    outcome = bench.outcomes_of(records)
    return {
        "definition": (
            f"{config.flash_orders} one-unit orders for one SKU holding {config.flash_stock} "
            f"units, from {config.clients} customers in the same closed loop as (a)"
        ),
        "orders": config.flash_orders,
        "stock": config.flash_stock,
        "confirmed": outcome["statuses"].get("CONFIRMED", 0),
        "rejected": outcome["statuses"].get("REJECTED", 0),
        "seconds": round(end - begin, 2),
        "final_orders_per_second": round(len(finals) / (end - begin), 1) if finals else 0.0,
        **outcome,
        "cpu": cpu.stop(),
    }


async def _wait_until_zero(
    count: Callable[[], Awaitable[int]], stall: float, what: str, poll: float = 0.2
) -> float:
    """Wait until ``count()`` is 0; raise if it has not gone down for ``stall`` seconds."""
    began = last_progress = time.monotonic()
    lowest = await count()
    while lowest > 0:
        if time.monotonic() - last_progress > stall:
            raise RuntimeError(f"{what}: stuck at {lowest} for {stall:.0f}s")
        await asyncio.sleep(poll)
        value = await count()
        if value < lowest:
            lowest, last_progress = value, time.monotonic()
    return time.monotonic() - began


async def unsent_outbox_rows(database_url: str) -> int:
    def count() -> int:
        with psycopg.connect(database_url) as connection:
            row = connection.execute(
                "SELECT count(*) FROM messaging_outboxmessage WHERE sent_at IS NULL"
            ).fetchone()
            return int(row[0]) if row else 0

    return await asyncio.to_thread(count)


async def run_backlog(bench: Bench, scenario: str = "d") -> dict[str, Any]:
    """(d) Backlog drain: orders accepted while inventory's workers (its consumer and relay) are
    stopped, then started."""
    config = bench.config
    cpu = CpuWindow(bench.system_pids).start()
    inventory_workers = bench.system.system.workers_of("inventory")
    for worker in inventory_workers:
        worker.stop()
    first = len(bench.records)
    remaining = [config.backlog_orders]
    bar = bench.progress(
        f"{scenario}: backlog, accepting while inventory is down", total=remaining[0]
    )
    accept_began = time.monotonic()

    async def poster(index: int) -> None:
        customer = bench.customer(index)
        while remaining[0] > 0:
            remaining[0] -= 1
            order_lines = bench.random_lines()
            post = await bench.client.place_order(customer, order_lines)
            bench.record(scenario, post, order_lines)
            bar.update(1)

    try:
        await asyncio.gather(*(poster(i) for i in range(config.clients)))
    finally:
        bar.close()
    accepted_in = time.monotonic() - accept_began
    records = bench.records[first:]
    ids = [r.post.order_id for r in records if r.post.order_id is not None]
    orders_db = bench.system.database_urls["orders"]

    async def unsent() -> int:
        return await unsent_outbox_rows(orders_db)

    outbox_wait = await _wait_until_zero(unsent, config.stall_seconds, "the orders outbox")
    depth = await asyncio.to_thread(queue_depth, bench.system.prefix, "inventory")
    final_while_down = len(ids) - len(bench.listener.missing(ids))
    restarted = time.monotonic()
    for worker in inventory_workers:
        worker.start()
    bar = bench.progress(f"{scenario}: draining", total=len(ids))
    stop = asyncio.Event()
    watcher = asyncio.create_task(
        _watch(bar, lambda: len(ids) - len(bench.listener.missing(ids)), stop)
    )
    await bench.listener.wait_all(ids, config.stall_seconds, poll=0.2)
    stop.set()
    await watcher
    bar.close()
    finals = bench.final_times(records)
    end = finals[-1] if finals else time.monotonic()
    bench.windows[scenario] = (accept_began, end)
    drained = len(finals) - final_while_down
    return {
        "definition": (
            f"{config.backlog_orders} orders placed by {config.clients} customers (each posting "
            "its next order when the POST returns) while inventory's consumer and relay are "
            "stopped; then both are started: drain rate = final orders / (last final - restart)"
        ),
        "orders": config.backlog_orders,
        "accept_seconds": round(accepted_in, 2),
        "accepted_per_second": round(len(ids) / accepted_in, 1) if accepted_in > 0 else None,
        "outbox_drain_wait_s": round(outbox_wait, 2),
        "inventory_queue_depth_at_restart": depth,
        "final_before_restart": final_while_down,
        "drain_seconds": round(end - restarted, 2),
        "drain_rate_per_second": round(drained / (end - restarted), 1) if drained else 0.0,
        "drain_rate_from_first_final_per_second": (
            round((drained - 1) / (end - finals[final_while_down]), 1)
            if drained > 1 and end > finals[final_while_down]
            else None
        ),
        "first_final_after_restart_s": (
            round(finals[final_while_down] - restarted, 2) if drained else None
        ),
        **bench.outcomes_of(records),
        "cpu": cpu.stop(),
    }


ENDPOINT_TARGET_P99_MS = 20.0


@dataclass(frozen=True)
class Endpoint:
    """A read a customer or staff makes, timed ``endpoint_requests`` times, one at a time.

    ``request(i)`` gives the ``i``-th request's URL and token; with ``later_page``, that
    request is made first, untimed, and its answer's ``next`` link is the one timed.
    """

    name: str
    request: Callable[[int], tuple[str, str | None]]
    later_page: bool = False


def _endpoints(bench: Bench, customer_ids: list[int], loaded: int) -> list[Endpoint]:
    client, rng = bench.client, random.Random(bench.config.seed + 5)
    customers = bench.customers

    def customer(i: int) -> tuple[Customer, int]:
        index = i % len(customers)
        return customers[index], customer_ids[index]

    def own(query: str = "") -> Callable[[int], tuple[str, str | None]]:
        return lambda i: (f"{client.orders}/api/orders/{query}", customer(i)[0].token)

    def staff(url: Callable[[int], str]) -> Callable[[int], tuple[str, str | None]]:
        return lambda i: (url(i), bench.staff)

    def order(i: int) -> tuple[str, str | None]:
        number = rng.randint(1, loaded)  # a past order, read by its owner
        owner = customers[dataset.owner_index(number, len(customers))]
        return f"{client.orders}/api/orders/{dataset.loaded_order_id(number)}/", owner.token

    def product(i: int) -> int:
        return rng.choice(bench.products)

    return [
        Endpoint("orders: a customer's own", own()),
        Endpoint("orders: a customer's own, a later page", own(), later_page=True),
        Endpoint("orders: a customer's own, by status", own("?status=SHIPPED")),
        Endpoint("orders: staff, everyone's", staff(lambda i: f"{client.orders}/api/orders/")),
        Endpoint(
            "orders: staff, a later page",
            staff(lambda i: f"{client.orders}/api/orders/"),
            later_page=True,
        ),
        Endpoint(
            "orders: staff, by status",
            staff(lambda i: f"{client.orders}/api/orders/?status=CONFIRMED"),
        ),
        Endpoint(
            "orders: staff, by customer and status",
            staff(lambda i: f"{client.orders}/api/orders/?user_id={customer(i)[1]}&status=SHIPPED"),
        ),
        Endpoint("order detail (its owner)", order),
        Endpoint(
            "products: list",
            lambda i: (f"{client.inventory}/api/products/?active=true", customer(i)[0].token),
        ),
        Endpoint(
            "products: detail",
            lambda i: (f"{client.inventory}/api/products/{product(i)}/", customer(i)[0].token),
        ),
        Endpoint(
            "notifications: a customer's",
            lambda i: (f"{client.users}/api/notifications/", customer(i)[0].token),
        ),
        Endpoint(
            "stock ledger: a product's (staff)",
            staff(lambda i: f"{client.inventory}/api/products/{product(i)}/ledger/"),
        ),
    ]


async def time_endpoints(
    bench: Bench, customer_ids: list[int], loaded: int
) -> list[dict[str, Any]]:
    """Each endpoint ``endpoint_requests`` times, one request at a time: latency summaries."""
    timed = []
    requests = bench.config.endpoint_requests
    for endpoint in _endpoints(bench, customer_ids, loaded):
        latencies: list[float] = []
        failures: list[str] = []
        for i in range(requests):
            url, token = endpoint.request(i)
            if endpoint.later_page:
                status, _, payload = await bench.client.timed_get(url, token)
                next_link = payload.get("next") if isinstance(payload, dict) else None
                if status != 200 or not next_link:
                    failures.append(f"{status} {url} (no later page)")
                    continue
                url = next_link
            status, seconds, payload = await bench.client.timed_get(url, token)
            if status == 200:
                latencies.append(seconds)
            else:
                failures.append(f"{status} {url}: {str(payload)[:200]}")
        summary = summary_ms(latencies)
        p99 = summary["p99"]
        timed.append(
            {
                "endpoint": endpoint.name,
                "latency_ms": summary,
                "failures": len(failures),
                "first_failures": failures[:3],
                "p99_within_target": (
                    p99 is not None and not failures and p99 <= ENDPOINT_TARGET_P99_MS
                ),
            }
        )
    return timed


async def run_grown(bench: Bench, scenario: str = "e") -> dict[str, Any]:
    """(e) Grown data: ``grown_orders`` past orders loaded, then (a) again, then the reads."""
    config = bench.config
    urls = bench.system.database_urls
    customer_ids = await asyncio.to_thread(
        dataset.customer_ids, urls["user-notification"], [c.username for c in bench.customers]
    )
    history = dataset.History(config.grown_orders, customer_ids, list(bench.products))
    loaded = await asyncio.to_thread(dataset.load, urls, history)
    closed = await run_closed(bench, scenario)
    endpoints = await time_endpoints(bench, customer_ids, config.grown_orders)
    return {
        **closed,
        "definition": (
            f"{config.grown_orders} past orders of the {len(bench.customers)} customers over "
            f"the {len(bench.products)} SKUs, with their lines, history, reservations, stock "
            "ledger, notifications and inbox rows, written into the three databases (then "
            "VACUUM ANALYZE); then the closed loop of (a) again, then each read endpoint "
            f"{config.endpoint_requests} times, one request at a time"
        ),
        "load": loaded,
        "endpoints": endpoints,
    }
