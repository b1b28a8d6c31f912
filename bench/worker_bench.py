"""Live worker benchmarks against a real local Kafka broker.

Prints, from one run:
1. throughput: a worker (RocksDB tables) on a pre-filled orders topic, against a faust agent
   that only iterates the same topic (bench/iterate_agent.py), the two in turns for
   `--rounds` rounds (median of the ratios), and a bare aiokafka consumer that only decodes
   it; events/s of each and the ratios;
2. latency: produce → transition on the output topic at a steady rate, p50 and p99;
3. recovery: time for a worker with an empty data dir to restore N customers' state from
   the changelog until it has taken up its partitions;
4. scale (--only scale): one worker, then two, on a 6-partition topic, events/s of each and
   the ratio, with standby replicas and without (`--standby`, default 1 then 0), `--rounds`
   rounds of each (the median ratio);
5. fail-over (--only failover): two workers over N customers, one SIGKILLed, time until an
   order on each of its partitions has its transition from the other worker, with standby
   replicas and without (`worker.session_timeout` 10 s in both). The worker killed is the
   first, so its partitions go to one that never owned them: with standby replicas it holds
   copies, without it restores them from the changelog;
6. rebuild (--only rebuild): a worker consuming the history from offset 0, against
   `lifecycle rebuild` then a worker, each until the worker serves with nothing left to read;
7. engagement (--only engagement): the worker with the preset's segments and triggers on the
   same orders without and with 20 engagement events an order (--events / 130 customers), in
   turns: an engagement event's rate against an order's;
8. guarantees (--only guarantees): the worker at least once and exactly once on the same
   orders, in turns for `--rounds` rounds (events/s, the median ratio), then produce ->
   transition latency of each at `--rate`, exactly once read by a read_committed consumer.

    .venv/bin/python bench/worker_bench.py [--events 200000] [--rounds 3] [--rate 500] [--customers 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stream.kafka.local import Broker, free_port  # noqa: E402
from stream.kafka.partitioning import partition_for  # noqa: E402
from stream.lifecycle.instants import format_rfc3339  # noqa: E402
from tests.kafka.changelog import fill_changelog  # noqa: E402

WORK = ROOT / "var" / "bench" / "worker"
PARTITIONS = 3


def write_config(
    tag: str, bootstrap: str, ticks: bool, partitions: int = PARTITIONS, worker: str = ""
) -> Path:
    path = WORK / f"{tag}.toml"
    path.write_text(
        f'[kafka]\nbootstrap_servers = "{bootstrap}"\npartitions = {partitions}\n'
        f'[worker]\napp_id = "bench-{tag}"\nstore = "rocksdb"\ndata_dir = "{WORK / tag}"\n{worker}'
        f'[topics]\norders = "{tag}.orders"\ntransitions = "{tag}.transitions"\n'
        f'customer_state = "{tag}.state"\ndead_letters = "{tag}.dlq"\nticks = "{tag}.ticks"\n'
        f"[time]\nticks = {'true' if ticks else 'false'}\n"
    )
    return path


def lifecycle(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "stream", *args], cwd=ROOT, check=True, capture_output=True)


def start_worker(
    config: Path, log: Path, data_dir: Path | None = None, root: Path = ROOT
) -> subprocess.Popen[bytes]:
    """`lifecycle worker` run from the source tree `root` (this one, or a baseline's)."""
    own_dir = ["--data-dir", str(data_dir)] if data_dir is not None else []
    with open(log, "wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stream",
                "worker",
                "--config",
                str(config),
                "--web-port",
                str(free_port()),
                "--loglevel",
                "info",
                *own_dir,
            ],
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def committed_total(bootstrap: str, group: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)
    except Exception:
        return 0
    finally:
        await admin.close()


async def bare_consumer(bootstrap: str, topic: str, total: int, partitions: int) -> float:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    seen = 0
    started = time.perf_counter()
    while seen < total:
        for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
            for record in records:
                orjson.loads(record.value)
            seen += len(records)
    elapsed = time.perf_counter() - started
    await consumer.stop()
    return total / elapsed


def throughput(
    bootstrap: str, events: int, partitions: int = PARTITIONS, rounds: int = 3, baseline: Path | None = None
) -> None:
    tag = f"tp{uuid.uuid4().hex[:6]}"
    config = write_config(tag, bootstrap, ticks=False, partitions=partitions)
    history = WORK / f"history-{events}.jsonl"
    if not history.exists():
        customers = max(1, events // 8)
        lifecycle("generate", "--customers", str(customers), "--output", str(history))
    lines = history.read_bytes().count(b"\n")
    lifecycle("send", str(history), "--config", str(config))
    bare = asyncio.run(bare_consumer(bootstrap, f"{tag}.orders", lines, partitions))
    # the same agent also producing three messages an event, about as many as the worker
    # sends (a customer changelog record, a state record, now and then a transition)
    producing = _agent_rate(bootstrap, config, tag, "produce", lines, produce=3)
    batching = _agent_rate(bootstrap, config, tag, "batch", lines, produce=3, batched=True)
    print(
        f"throughput  bare aiokafka consumer + orjson.loads: {bare:,.0f} events/s "
        f"({lines:,} events, {partitions} partitions)"
    )
    print(f"throughput  faust agent that iterates, produces 3:  {producing:,.0f} events/s")
    print(f"throughput  faust agent that iterates, batches 3:   {batching:,.0f} events/s")
    # the target is a ratio to a faust agent that only iterates the same topic. This
    # machine's speed drifts by more than a few percent between runs minutes apart, so the
    # worker and that agent run in turns, each in a group of its own, and each round gives
    # a ratio of runs side by side in time
    runs = {
        "agent": lambda round_: _agent_rate(bootstrap, config, tag, f"iterate{round_}", lines, produce=0),
        "worker": lambda round_: _worker_rate(bootstrap, config, tag, f"worker{round_}", lines),
    }
    if baseline is not None:
        _against_baseline(bootstrap, config, tag, lines, rounds, baseline)
        return
    ratios, workers = [], []
    for round_ in range(rounds):
        order = ["agent", "worker"] if round_ % 2 == 0 else ["worker", "agent"]
        rates = {name: runs[name](round_) for name in order}
        ratios.append(rates["worker"] / rates["agent"])
        workers.append(rates["worker"])
        print(
            f"throughput  round {round_ + 1}: worker {rates['worker']:,.0f} events/s, agent that only "
            f"iterates {rates['agent']:,.0f}: {ratios[-1]:.1%} (run in the order {', '.join(order)})",
            flush=True,
        )
    rate = statistics.median(workers)
    print(f"throughput  worker, RocksDB tables:                {rate:,.0f} events/s, median of {rounds}")
    print(
        f"throughput  worker / iterating agent:            median {statistics.median(ratios):.1%} of "
        f"{rounds} rounds  (target >= 50%); worker / bare consumer {rate / bare:.1%}; "
        f"worker / agent producing 3 {rate / producing:.1%}"
    )


def engagement(bootstrap: str, customers: int, rounds: int) -> None:
    """The worker (RocksDB tables, the preset with its leads segment and three triggers) on
    two topics of the same customers and orders: orders only, and with 20 engagement events an
    order beside them (`lifecycle generate --engagement 20`), in turns; the events the second
    adds over the time they add, against the first's events/s."""
    preset = (ROOT / "deploy" / "segments.example.toml").read_text()
    sides = {}
    for name, per_order in (("orders", 0), ("engaged", 20)):
        tag = f"en{uuid.uuid4().hex[:6]}"
        config = write_config(tag, bootstrap, ticks=False)
        topics = f'triggers = "{tag}.triggers"\nsegment_changes = "{tag}.segment-changes"\n[time]'
        config.write_text(config.read_text().replace("[time]", topics) + preset)
        history = WORK / f"history-{customers}-engagement-{per_order}.jsonl"
        if not history.exists():
            options = ("--customers", str(customers), "--engagement", str(per_order))
            lifecycle("generate", *options, "--output", str(history))
        lifecycle("send", str(history), "--config", str(config))
        sides[name] = (tag, config, history.read_bytes().count(b"\n"))
    ratios = []
    for round_ in range(rounds):
        order = ["orders", "engaged"] if round_ % 2 == 0 else ["engaged", "orders"]
        seconds = {}
        for name in order:
            tag, config, lines = sides[name]
            seconds[name] = lines / _worker_rate(bootstrap, config, tag, f"r{round_}", lines)
        orders, engaged = sides["orders"][2], sides["engaged"][2]
        order_rate = orders / seconds["orders"]
        engagement_rate = (engaged - orders) / (seconds["engaged"] - seconds["orders"])
        ratios.append(engagement_rate / order_rate)
        print(
            f"engagement  round {round_ + 1}: orders only {orders:,} events, {order_rate:,.0f} events/s; "
            f"the {engaged - orders:,} engagement events {engagement_rate:,.0f} events/s: "
            f"{ratios[-1]:.2f}x an order",
            flush=True,
        )
    print(f"engagement  median {statistics.median(ratios):.2f}x the rate of an order (target >= 1)")


def _against_baseline(
    bootstrap: str, config: Path, tag: str, lines: int, rounds: int, baseline: Path
) -> None:
    """This tree's worker and the worker of the source tree `baseline` (a git worktree of an
    earlier commit, say), in turns, on the same topic: the median of their ratios."""
    ratios = []
    for round_ in range(rounds):
        order = ["this", "baseline"] if round_ % 2 == 0 else ["baseline", "this"]
        roots = {"this": ROOT, "baseline": baseline}
        rates = {
            name: _worker_rate(bootstrap, config, tag, f"{name}{round_}", lines, roots[name])
            for name in order
        }
        ratios.append(rates["this"] / rates["baseline"])
        print(
            f"throughput  round {round_ + 1}: this tree {rates['this']:,.0f} events/s, baseline "
            f"{rates['baseline']:,.0f}: {ratios[-1]:.1%} (run in the order {', '.join(order)})",
            flush=True,
        )
    print(f"throughput  this tree / baseline: median {statistics.median(ratios):.1%} of {rounds} rounds")


def _agent_rate(
    bootstrap: str, config: Path, tag: str, name: str, lines: int, produce: int, batched: bool = False
) -> float:
    """Events/s of bench/iterate_agent.py over the worker's orders topic, in a group of its own."""
    own = _own_group(config, tag, name)
    agent_script = ROOT / "bench" / "iterate_agent.py"
    command = [sys.executable, str(agent_script), str(own), str(free_port()), str(produce)]
    command += ["batched"] if batched else []
    with open(WORK / f"{tag}-{name}.log", "wb") as out:
        agent = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    return _rate_until_done(bootstrap, f"{tag}-{name}", f"{tag}.orders", lines, [agent])


def _worker_rate(bootstrap: str, config: Path, tag: str, name: str, lines: int, root: Path = ROOT) -> float:
    """Events/s of a worker over the orders topic from its start, in a group (and with tables)
    of its own."""
    log, data = WORK / f"{tag}-{name}.log", WORK / f"{tag}-{name}"
    worker = start_worker(_own_group(config, tag, name), log, data, root)
    return _rate_until_done(bootstrap, f"{tag}-{name}", f"{tag}.orders", lines, [worker])


def _own_group(config: Path, tag: str, name: str) -> Path:
    """The benchmark's config under an app id (consumer group, changelog topics) of its own."""
    own = WORK / f"{tag}-{name}.toml"
    own.write_text(config.read_text().replace(f'app_id = "bench-{tag}"', f'app_id = "bench-{tag}-{name}"'))
    return own


def new_order(customer: str) -> bytes:
    """A first order of `customer`, now: its transition follows at once."""
    event = {
        "type": "order.placed",
        "event_id": f"e-{customer}",
        "customer_id": customer,
        "order_id": f"o-{customer}",
        "occurred_at": format_rfc3339(time.time_ns() // 1000),
        "total": {"amount_minor": 1000, "currency": "EUR"},
    }
    return orjson.dumps(event)


async def transitions_from_now(
    bootstrap: str, tag: str, partitions: int, isolation_level: str = "read_uncommitted"
) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, isolation_level=isolation_level
    )
    await consumer.start()
    tps = [TopicPartition(f"{tag}.transitions", p) for p in range(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    return consumer


async def latency_run(
    bootstrap: str, tag: str, rate: int, seconds: int, isolation_level: str = "read_uncommitted"
) -> list[float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    consumer = await transitions_from_now(bootstrap, tag, PARTITIONS, isolation_level)
    sent_at: dict[str, float] = {}
    latencies: list[float] = []

    async def produce() -> None:
        started = time.perf_counter()
        for i in range(rate * seconds):
            customer = f"lat-{tag}-{i}"
            sent_at[customer] = time.perf_counter()
            await producer.send(
                f"{tag}.orders",
                new_order(customer),
                key=customer.encode(),
                partition=partition_for(customer, PARTITIONS),
            )
            await asyncio.sleep(max(0.0, started + (i + 1) / rate - time.perf_counter()))

    async def consume() -> None:
        while len(latencies) < rate * seconds:
            batch = await consumer.getmany(timeout_ms=200)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    customer = record.key.decode()
                    if customer in sent_at:
                        latencies.append(now - sent_at.pop(customer))

    consuming = asyncio.create_task(consume())
    await produce()
    try:
        await asyncio.wait_for(consuming, timeout=60)
    finally:
        await producer.stop()
        await consumer.stop()
    return latencies


def latency(bootstrap: str, rate: int, seconds: int = 20, guarantee: str = "at_least_once") -> None:
    tag = f"lat{uuid.uuid4().hex[:6]}"
    config = write_config(tag, bootstrap, ticks=True, worker=f'processing_guarantee = "{guarantee}"\n')
    # what a subscriber sees: in exactly-once mode, configured as the README says
    isolation_level = "read_committed" if guarantee == "exactly_once" else "read_uncommitted"
    lifecycle("topics", "create", "--config", str(config))
    log = WORK / f"{tag}.log"
    worker = start_worker(config, log)
    try:
        deadline = time.monotonic() + 120
        while "took up partition" not in log.read_text(errors="replace") and time.monotonic() < deadline:
            time.sleep(0.2)  # a tick reaches every partition once the worker is assigned
        found = sorted(asyncio.run(latency_run(bootstrap, tag, rate, seconds, isolation_level)))
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    p50 = found[len(found) // 2] * 1000
    p99 = found[int(len(found) * 0.99)] * 1000
    print(
        f"latency     {guarantee}: produce -> transition at {rate}/s for {seconds} s: p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms, max {found[-1] * 1000:.1f} ms, mean {statistics.mean(found) * 1000:.1f} ms "
        f"(target p99 < 250 ms)"
    )


def guarantees(bootstrap: str, events: int, rounds: int, rate: int) -> None:
    """At least once against exactly once: events/s in turns on one topic, then latency."""
    tag = f"eo{uuid.uuid4().hex[:6]}"
    config = write_config(tag, bootstrap, ticks=False)
    history = WORK / f"history-{events}.jsonl"
    if not history.exists():
        lifecycle("generate", "--customers", str(max(1, events // 8)), "--output", str(history))
    lines = history.read_bytes().count(b"\n")
    lifecycle("send", str(history), "--config", str(config))
    configs = {"at_least_once": config, "exactly_once": WORK / f"{tag}-exactly-once.toml"}
    configs["exactly_once"].write_text(
        config.read_text().replace("[topics]", 'processing_guarantee = "exactly_once"\n[topics]')
    )
    ratios = []
    for round_ in range(rounds):
        order = ["at_least_once", "exactly_once"][:: 1 if round_ % 2 == 0 else -1]
        rates = {
            mode: _worker_rate(bootstrap, configs[mode], tag, f"{mode}{round_}", lines) for mode in order
        }
        ratios.append(rates["exactly_once"] / rates["at_least_once"])
        print(
            f"guarantees  round {round_ + 1}: exactly once {rates['exactly_once']:,.0f} events/s, at least "
            f"once {rates['at_least_once']:,.0f}: {ratios[-1]:.1%} ({lines:,} events, run in the order "
            f"{', '.join(order)})",
            flush=True,
        )
    print(
        f"guarantees  exactly once / at least once: median {statistics.median(ratios):.1%} of {rounds} "
        "rounds (target >= 80%)"
    )
    for guarantee in ("at_least_once", "exactly_once"):
        latency(bootstrap, rate, guarantee=guarantee)


def recovery(bootstrap: str, customers: int) -> None:
    tag = f"rec{uuid.uuid4().hex[:6]}"
    config = write_config(tag, bootstrap, ticks=True)
    lifecycle("topics", "create", "--config", str(config))
    started = time.perf_counter()
    asyncio.run(fill_changelog(bootstrap, f"bench-{tag}-customers-changelog", customers, PARTITIONS))
    print(
        f"recovery    wrote {customers:,} customer states to the changelog "
        f"in {time.perf_counter() - started:.1f} s"
    )
    log = WORK / f"{tag}.log"
    started = time.perf_counter()
    worker = start_worker(config, log)
    try:
        deadline = time.monotonic() + 1800
        while log.read_text(errors="replace").count("took up partition") < PARTITIONS:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit(f"worker did not take up its partitions; see {log}")
            time.sleep(0.5)
        elapsed = time.perf_counter() - started
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=120)
    taken = [line for line in log.read_text().splitlines() if "took up partition" in line]
    print(
        f"recovery    empty data dir -> {customers:,} customers restored and taken up: {elapsed:.1f} s "
        f"(process start included)"
    )
    for line in taken:
        print("            " + line.split("[INFO] ")[-1])


def _rate_until_done(
    bootstrap: str,
    tag: str,
    topic: str,
    lines: int,
    workers: list[subprocess.Popen[bytes]],
    ready: Callable[[], bool] = lambda: True,
    at_end: Callable[[], None] = lambda: None,
) -> float:
    """Events/s from group `bench-{tag}`'s committed offsets on `topic`, between their first
    move and the end.

    Offsets move a commit at a time (every 2.8 s), so the rate is taken between two
    commits, each seen within a poll of when it happened (one client, polled every 50 ms),
    and the last commit is left out: it comes up to a commit interval after the last event,
    so a run's time counted whole intervals (runs of one worker gave 4,478 or 5,185
    events/s: 8 or 7 intervals). The first commit counted is the first after `ready()`
    (several workers: once each has taken up its partitions, so a rebalance as the second
    joins is not counted as the pair's time). `at_end()` runs at the end, before the workers
    are stopped.
    """
    try:
        samples = asyncio.run(_commits(bootstrap, f"bench-{tag}", topic, lines, workers, ready))
        at_end()  # before the workers stop
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=60)
    moving = [s for s in samples if s[1] > 0]
    busy = [s for s in moving if s[1] < lines]  # commits while events were still coming
    if len(busy) >= 2:
        moving = busy
    (t0, n0), (t1, n1) = moving[0], moving[-1]
    return (n1 - n0) / (t1 - t0) if t1 > t0 else float("nan")


async def _commits(
    bootstrap: str,
    group: str,
    topic: str,
    lines: int,
    workers: list[subprocess.Popen[bytes]],
    ready: Callable[[], bool],
) -> list[tuple[float, int]]:
    """(instant, committed total) at each change of the total once `ready()`, until it
    reaches `lines`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    samples: list[tuple[float, int]] = []
    before_ready: int | None = None  # the total when ready() first held: not a commit instant
    try:
        while not any(w.poll() is not None for w in workers):
            try:
                offsets = await admin.list_consumer_group_offsets(group)
            except Exception:  # the group is not there yet
                offsets = {}
            done = sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)
            if before_ready is None:
                if ready():
                    before_ready = done
            elif done != (samples[-1][1] if samples else before_ready):
                samples.append((time.perf_counter(), done))
            if done >= lines:
                break
            await asyncio.sleep(0.05)
    finally:
        await admin.close()
    return samples


def scale(bootstrap: str, events: int, rounds: int, standbys: tuple[int, ...]) -> None:
    history = WORK / f"history-{events}.jsonl"
    if not history.exists():
        lifecycle("generate", "--customers", str(max(1, events // 8)), "--output", str(history))
    lines = history.read_bytes().count(b"\n")
    ratios: dict[int, list[float]] = {standby: [] for standby in standbys}
    for round_ in range(1, rounds + 1):
        for standby in standbys:
            (one, _), (two, behind) = [
                _scale_run(bootstrap, history, lines, count, standby) for count in (1, 2)
            ]
            ratios[standby].append(two / one)
            copies = f"; standby copies {behind:,} records behind as the orders ran out" if standby else ""
            print(
                f"scale       round {round_}, standby replicas {standby}, 6 partitions, {lines:,} events: "
                f"one worker {one:,.0f}, two {two:,.0f} events/s: {ratios[standby][-1]:.2f}x{copies}",
                flush=True,
            )
    for standby, values in ratios.items():
        each = ", ".join(f"{v:.2f}" for v in values)
        print(
            f"scale       two workers / one, standby replicas {standby}: "
            f"median {statistics.median(values):.2f}x of {each} (target >= 1.6x)"
        )


def _scale_run(bootstrap: str, history: Path, lines: int, count: int, standby: int) -> tuple[float, int]:
    """Events/s of `count` workers, and the records their standby copies of customers had
    still to apply when the last order was committed."""
    tag = f"sc{count}{uuid.uuid4().hex[:6]}"
    config = write_config(tag, bootstrap, ticks=False, partitions=6, worker=f"standby_replicas = {standby}\n")
    lifecycle("send", str(history), "--config", str(config))
    logs = [WORK / f"{tag}-{i}.log" for i in range(count)]
    workers = [start_worker(config, log, WORK / f"{tag}-{i}") for i, log in enumerate(logs)]

    def all_took_up() -> bool:
        return all("took up partition" in log.read_text(errors="replace") for log in logs)

    behind = [0]

    def copies_behind() -> None:
        behind[0] = sum(sum(_standby_lags(worker).values()) for worker in workers)

    rate = _rate_until_done(bootstrap, tag, f"{tag}.orders", lines, workers, all_took_up, copies_behind)
    return rate, behind[0]


def _wait_for_copies(worker: subprocess.Popen[bytes], copies: int, timeout: float) -> int:
    """Wait until `worker` knows its `copies` standby copies of customers and each lacks at
    most its last batch (faust applies a copy 1,000 records at a time); the records they
    lack then. No copies: a short settle instead."""
    if not copies:
        time.sleep(5.0)
        return 0
    deadline = time.monotonic() + timeout
    while len(lags := _standby_lags(worker)) < copies or max(lags.values()) >= 1000:
        if time.monotonic() > deadline:
            raise SystemExit(f"standby copies not caught up after {timeout:.0f} s: {lags}")
        time.sleep(0.5)
    return sum(lags.values())


def _standby_lags(worker: subprocess.Popen[bytes]) -> dict[str, int]:
    """`lifecycle_standby_lag` of customers on a worker's /metrics, by partition."""
    port = worker.args[worker.args.index("--web-port") + 1]  # type: ignore[union-attr]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        sample.labels["partition"]: int(sample.value)
        for family in text_string_to_metric_families(text)
        if family.name == "lifecycle_standby_lag"
        for sample in family.samples
        if sample.labels["table"] == "customers"
    }


async def _probe(bootstrap: str, tag: str, partitions: set[int], count: int) -> float:
    """Send one new customer's order to each of `partitions`; seconds until every one has its
    transition."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    consumer = await transitions_from_now(bootstrap, tag, count)
    chosen: dict[int, str] = {}
    i = 0
    while len(chosen) < len(partitions):
        customer = f"probe-{tag}-{i}"
        i += 1
        if partition_for(customer, count) in partitions:
            chosen.setdefault(partition_for(customer, count), customer)
    started = time.perf_counter()
    try:
        for number, customer in chosen.items():
            await producer.send_and_wait(
                f"{tag}.orders", new_order(customer), key=customer.encode(), partition=number
            )
        waiting = set(chosen.values())
        while waiting:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    waiting.discard(record.key.decode())
        return time.perf_counter() - started
    finally:
        await producer.stop()
        await consumer.stop()


def failover(bootstrap: str, customers: int, standbys: tuple[int, ...] = (1, 0)) -> None:
    partitions = 4
    for standby in standbys:
        tag = f"fo{standby}{uuid.uuid4().hex[:6]}"
        settings = f'standby_replicas = {standby}\nsession_timeout = "10s"\n'
        config = write_config(tag, bootstrap, ticks=False, partitions=partitions, worker=settings)
        lifecycle("topics", "create", "--config", str(config))
        asyncio.run(fill_changelog(bootstrap, f"bench-{tag}-customers-changelog", customers, partitions))
        logs = [WORK / f"{tag}-{i}.log" for i in range(2)]
        first = start_worker(config, logs[0], WORK / f"{tag}-0")
        second = None
        try:
            _wait_log(logs[0], "took up partition", partitions, 1800)
            joined = time.perf_counter()
            second = start_worker(config, logs[1], WORK / f"{tag}-1")
            _wait_log(logs[1], "took up partition", 1, 1800)
            restored = time.perf_counter() - joined
            text = logs[1].read_text(errors="replace")
            theirs = {n for n in range(partitions) if f"took up partition {n}:" in text}
            # The first worker dies: its partitions go to a worker that never owned them,
            # which holds them only as standby copies, or not at all.
            orphaned = set(range(partitions)) - theirs
            # The second worker restored its partitions from the changelog; with standby
            # replicas it then copies the first's, about as many records.
            behind = _wait_for_copies(second, len(orphaned) if standby else 0, 1800)
            first.send_signal(signal.SIGKILL)
            first.wait()
            killed = time.perf_counter()
            asyncio.run(_probe(bootstrap, tag, orphaned, partitions))
            elapsed = time.perf_counter() - killed
        finally:
            for worker in (first, second):
                if worker is not None and worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
                    worker.wait(timeout=120)
        print(
            f"fail-over   {customers:,} customers, standby replicas {standby}: a SIGKILLed worker's "
            f"{len(orphaned)} partitions processed again by the other after {elapsed:.1f} s (session 10 s; "
            f"the other had restored its own {len(theirs)} in {restored:.0f} s"
            f"{f', its copies {behind:,} records behind' if standby else ''})"
        )


def rebuild(bootstrap: str, events: int) -> None:
    """The worker consuming a history from offset 0, against `lifecycle rebuild` and a worker
    started after it, each until the worker has every partition taken up and nothing to read."""
    history = WORK / f"history-{events}.jsonl"
    if not history.exists():
        lifecycle("generate", "--customers", str(max(1, events // 10)), "--output", str(history))
    lines = history.read_bytes().count(b"\n")
    seconds = {}
    for way in ("worker", "rebuild"):
        tag = f"rb{way[0]}{uuid.uuid4().hex[:6]}"
        config = write_config(tag, bootstrap, ticks=False)
        lifecycle("send", str(history), "--config", str(config))
        log = WORK / f"{tag}.log"
        started = time.perf_counter()
        if way == "rebuild":
            lifecycle("rebuild", "--config", str(config))
            rebuilt = time.perf_counter() - started
        worker = start_worker(config, log, WORK / tag)
        try:
            _wait_log(log, "took up partition", PARTITIONS, 3600)
            while asyncio.run(committed_total(bootstrap, f"bench-{tag}", f"{tag}.orders")) < lines:
                time.sleep(0.5)
            seconds[way] = time.perf_counter() - started
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=120)
    print(
        f"rebuild     {lines:,} events: worker from offset 0 {seconds['worker']:.1f} s "
        f"({lines / seconds['worker']:,.0f} events/s); rebuild {rebuilt:.1f} s + worker serving "
        f"{seconds['rebuild'] - rebuilt:.1f} s = {seconds['rebuild']:.1f} s; "
        f"{seconds['worker'] / seconds['rebuild']:.1f}x faster (target >= 5x)"
    )


def _wait_log(log: Path, text: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while log.read_text(errors="replace").count(text) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"no {count} x {text!r} in {log}")
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--customers", type=int, default=1_000_000, help="for the recovery benchmark")
    parser.add_argument(
        "--only",
        choices=(
            "throughput",
            "latency",
            "recovery",
            "scale",
            "failover",
            "rebuild",
            "engagement",
            "guarantees",
        ),
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="throughput: worker and agent in turns; scale: rounds of each"
    )
    parser.add_argument("--port", type=int, default=29092)
    parser.add_argument(
        "--baseline",
        type=Path,
        help="throughput: a source tree (e.g. a git worktree of an earlier commit) whose worker runs in "
        "turns with this one's, instead of the agents",
    )
    parser.add_argument(
        "--partitions", type=int, default=PARTITIONS, help="of the orders topic, for the throughput benchmark"
    )
    parser.add_argument(
        "--standby",
        type=int,
        action="append",
        help="scale and fail-over: standby replicas (repeatable; default 1 then 0)",
    )
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    broker = Broker(args.port, WORK / "kafka")
    # a broker already serving on the port (e.g. `lifecycle local-kafka start`) is used as is
    started = False if broker.serving() else broker.start()
    try:
        if args.only in (None, "throughput"):
            throughput(broker.bootstrap, args.events, args.partitions, args.rounds, args.baseline)
        if args.only in (None, "latency"):
            latency(broker.bootstrap, args.rate)
        if args.only in (None, "recovery"):
            recovery(broker.bootstrap, args.customers)
        if args.only == "scale":
            scale(broker.bootstrap, args.events, args.rounds, tuple(args.standby or (1, 0)))
        if args.only == "failover":
            failover(broker.bootstrap, args.customers, tuple(args.standby or (1, 0)))
        if args.only == "rebuild":
            rebuild(broker.bootstrap, args.events)
        if args.only == "engagement":
            engagement(broker.bootstrap, args.events // 130, args.rounds)
        if args.only == "guarantees":
            guarantees(broker.bootstrap, args.events, args.rounds, args.rate)
    finally:
        if started:
            broker.stop()
            shutil.rmtree(WORK / "kafka", ignore_errors=True)
        for pattern in ("tp*", "sc*", "fo*", "rb*", "eo*"):  # the workers' data dirs
            for path in WORK.glob(pattern):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
