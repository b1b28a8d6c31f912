"""One customer with 100k orders among 100k ordinary customers, against the same history
without that customer: replay with the segment preset, and the live worker.

Prints, from one run on one machine:
1. replay: events/s of `lifecycle replay --config deploy/segments.example.toml --jobs 1` on
   each history, in turns for `--rounds` rounds, and the median ratio (target >= 50 %);
2. cost per order: the heavy customer's events alone through the core, events/s of its first
   and of its last tenth (the same when an order costs the same whatever came before);
3. the stored record: the heavy customer's events through the worker's logic (no Kafka), the
   largest changelog record and the bytes per order, against keeping every order (its first
   `--unbounded-orders` orders only: it grows with the square of the history);
4. worker: events/s of a live worker (RocksDB, real local broker) on each history, in turns,
   and the median ratio (target >= 50 %).

    .venv/bin/python bench/heavy_customer_bench.py [--customers 100000] [--heavy 100000] [--rounds 3]
    .venv/bin/python bench/heavy_customer_bench.py --skip-worker     # no broker
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from replay_bench import lifecycle as timed_lifecycle  # noqa: E402
from worker_bench import WORK, _worker_rate, lifecycle, write_config  # noqa: E402

from stream.config import load_config  # noqa: E402
from stream.inputs.messages import decode_event  # noqa: E402
from stream.kafka.local import Broker  # noqa: E402
from stream.lifecycle import Partition  # noqa: E402
from stream.lifecycle.folding import DEFAULT_ORDERS_KEPT  # noqa: E402
from stream.worker.runtime import Worker  # noqa: E402

BENCH = ROOT / "var" / "bench" / "heavy"
PRESET = ROOT / "deploy" / "segments.example.toml"
START, END = "2023-01-01T00:00:00Z", "2026-01-01T00:00:00Z"  # three years
NOW_US = 1_900_000_000_000_000  # after the history: nothing is in the future


def histories(customers: int, heavy: int) -> tuple[Path, Path]:
    """The history with the heavy customer and the same one without, cached under var/."""
    BENCH.mkdir(parents=True, exist_ok=True)
    paths = []
    for orders in (heavy, 0):
        path = BENCH / f"history-{customers}-heavy{orders}.jsonl"
        if not path.exists():
            lifecycle(
                "generate", "--customers", str(customers), "--start", START, "--end", END,
                "--heavy-customer", str(orders), "--output", str(path),
            )  # fmt: skip
        paths.append(path)
    return paths[0], paths[1]


def lines_of(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


def alternating(
    label: str, rate: Callable[[Path, int], float], with_heavy: Path, without: Path, rounds: int
) -> None:
    """`rate(history, round)` of each history in turns (this VM's speed drifts between runs
    minutes apart), a ratio a round, and their median."""
    ratios = []
    for round_ in range(rounds):
        order = [with_heavy, without] if round_ % 2 == 0 else [without, with_heavy]
        rates = {path: rate(path, round_) for path in order}
        ratios.append(rates[with_heavy] / rates[without])
        print(
            f"{label:<11} round {round_ + 1}: with the heavy customer {rates[with_heavy]:,.0f} events/s, "
            f"without {rates[without]:,.0f}: {ratios[-1]:.1%}",
            flush=True,
        )
    median = statistics.median(ratios)
    print(f"{label:<11} heavy / without: median {median:.1%} of {rounds} rounds  (target >= 50%)")


def replay_rows(with_heavy: Path, without: Path, rounds: int) -> None:
    """Replays with the segment preset, writing every output."""
    out = BENCH / "out"
    out.mkdir(exist_ok=True)
    sizes = {path: lines_of(path) for path in (with_heavy, without)}

    def rate(path: Path, round_: int) -> float:
        seconds, _ = timed_lifecycle(
            "replay", str(path), "--jobs", "1", "--config", str(PRESET),
            "--transitions", str(out / "t.jsonl"), "--segment-changes", str(out / "sc.jsonl"),
            "--states", str(out / "s.jsonl"), "--rejects", str(out / "r.jsonl"),
            echo=False,
        )  # fmt: skip
        return sizes[path] / seconds

    print(f"replay      with the segment preset ({sizes[with_heavy]:,} and {sizes[without]:,} events)")
    alternating("replay", rate, with_heavy, without, rounds)


def heavy_events(path: Path) -> list[bytes]:
    with open(path, "rb") as handle:
        return [line.rstrip(b"\n") for line in handle if b'"customer_id":"heavy"' in line]


def cost_per_order_row(events: list[bytes]) -> None:
    """The heavy customer's events through one core, a tenth at a time."""
    config = load_config(PRESET, environ={})
    partition = Partition({}, config.policy_book(), config.time_rules(), segments=config.segments)
    decoded = [decode_event(raw) for raw in events]
    tenth = len(decoded) // 10
    rates = []
    for part in range(10):
        chunk = decoded[part * tenth : (part + 1) * tenth]
        started = time.perf_counter()
        for event in chunk:
            partition.apply(event, NOW_US)
        rates.append(len(chunk) / (time.perf_counter() - started))
    print(
        f"per order   the heavy customer's {len(decoded):,} events through the core with the preset: "
        f"first tenth {rates[0]:,.0f} events/s, last tenth {rates[-1]:,.0f}: {rates[-1] / rates[0]:.2f}x "
        f"(by tenth: {', '.join(f'{r / 1000:.1f}k' for r in rates)})"
    )


def record_row(events: list[bytes], unbounded_orders: int) -> None:
    """Changelog bytes of the heavy customer through the worker's logic, folding and not."""
    kib, mib = 1024, 2**20
    count, largest, total = _changelog(events, DEFAULT_ORDERS_KEPT)
    print(
        f"record      folding (orders_kept {DEFAULT_ORDERS_KEPT}): {count:,} events, largest record "
        f"{largest / kib:,.1f} KiB, {total / count / kib:,.1f} KiB written per event, {total / mib:,.0f} MiB"
    )
    count, largest, total = _changelog(events[:unbounded_orders], 10**9)
    print(
        f"record      keeping every order, first {count:,} events only: largest {largest / kib:,.1f} KiB, "
        f"{total / count / kib:,.1f} KiB per event, {total / mib:,.0f} MiB; at 100k orders the record would "
        f"be about {largest / count * 100_000 / mib:,.1f} MiB (Kafka takes 1 MiB by default)"
    )


def _changelog(events: list[bytes], orders_kept: int) -> tuple[int, int, int]:
    """(events, largest record, bytes in all) of the customers changelog for `events`."""
    overrides = {"kafka": {"partitions": 1}, "limits": {"orders_kept": orders_kept}}
    config = load_config(None, environ={}, overrides=overrides)
    worker = Worker(config, {}, {}, {}, now_us=lambda: NOW_US, owned_partitions=lambda: [0])
    changelog = worker.customers_changelog
    sizes = []
    for offset, raw in enumerate(events):
        worker.on_message(worker.topics.orders, 0, offset, b"heavy", raw)
        sizes += [len(o.value) for o in worker.drain() if o.topic == changelog and o.value]
    return len(events), max(sizes), sum(sizes)


def worker_rows(with_heavy: Path, without: Path, rounds: int, port: int) -> None:
    broker = Broker(port, WORK / "kafka")
    started = False if broker.serving() else broker.start()
    tags = []
    try:
        configs = {}
        for path in (with_heavy, without):
            tag = f"hv{uuid.uuid4().hex[:6]}"
            tags.append(tag)
            configs[path] = write_config(tag, broker.bootstrap, ticks=False)
            lifecycle("send", str(path), "--config", str(configs[path]))
        sizes = {path: lines_of(path) for path in (with_heavy, without)}

        def rate(path: Path, round_: int) -> float:
            return _worker_rate(
                broker.bootstrap, configs[path], configs[path].stem, f"w{round_}", sizes[path]
            )

        print("worker      RocksDB, 3 partitions")
        alternating("worker", rate, with_heavy, without, rounds)
    finally:
        if started:
            broker.stop()
            shutil.rmtree(WORK / "kafka", ignore_errors=True)
        for tag in tags:
            for path in WORK.glob(f"{tag}*"):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--heavy", type=int, default=100_000, help="the heavy customer's orders")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--unbounded-orders", type=int, default=10_000)
    parser.add_argument("--skip-worker", action="store_true", help="no live worker rows (no broker)")
    parser.add_argument("--port", type=int, default=29092)
    args = parser.parse_args()
    with_heavy, without = histories(args.customers, args.heavy)
    replay_rows(with_heavy, without, args.rounds)
    events = heavy_events(with_heavy)
    cost_per_order_row(events)
    record_row(events, args.unbounded_orders)
    if not args.skip_worker:
        WORK.mkdir(parents=True, exist_ok=True)
        worker_rows(with_heavy, without, args.rounds, args.port)


if __name__ == "__main__":
    main()
