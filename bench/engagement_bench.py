"""Engagement against orders: how fast an engagement event is processed beside an order, and
what it leaves in a customer's record.

Two histories of the same customers and orders (`lifecycle generate`, the same seed): one
with orders only, one with `--engagement 20` beside them (sign-ups, about 20 engagement
events an order, carts left, prospects who never order). Both replayed with the preset
(deploy/segments.example.toml: eight segments, the leads segment, three triggers), in turns
for `--rounds` rounds, each in a child process. Prints per round:
- orders: events/s of the orders-only history;
- engagement: the events the second history adds, over the time they add (events/s);
- their ratio (target >= 1: an engagement event at least as fast as an order);
and, replayed here on a share of the customers, the mean and largest stored record of a
customer with and without the engagement (msgpack bytes, as the worker stores them).

    .venv/bin/python bench/engagement_bench.py [--customers 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.replay_bench import lifecycle  # noqa: E402
from stream.config import load_config  # noqa: E402
from stream.inputs.messages import InvalidEvent  # noqa: E402
from stream.replay.driver import Replay  # noqa: E402
from stream.worker.state import StoredCustomer, encode_stored  # noqa: E402

PRESET = ROOT / "deploy" / "segments.example.toml"


def history(customers: int, seed: int, engagement: int) -> Path:
    path = ROOT / "var" / "bench" / f"history-{customers}-{seed}-engagement-{engagement}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "stream", "generate", "--customers", str(customers)]
        command += ["--seed", str(seed), "--engagement", str(engagement), "--output", str(path)]
        subprocess.run(command, cwd=ROOT, check=True)
    return path


def lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


def replayed(path: Path, out: Path) -> float:
    seconds, _ = lifecycle(
        "replay",
        str(path),
        "--config",
        str(PRESET),
        *("--transitions", str(out / "t.jsonl"), "--segment-changes", str(out / "c.jsonl")),
        *("--triggers", str(out / "g.jsonl"), "--states", str(out / "s.jsonl")),
        echo=False,
    )
    return seconds


def record_sizes(path: Path, share: int) -> list[int]:
    """Stored record sizes of the customers whose id ends in a digit below `share` (of 10)
    once `path` is replayed here, buyers only: the prospects have no counterpart."""
    replay = Replay(load_config(PRESET))
    with open(path, "rb") as handle:
        for raw in handle:
            customer = raw[raw.find(b'"customer_id":"') + 15 :].split(b'"', 1)[0]
            if customer[-1:].isdigit() and int(customer[-1:]) < share:
                with contextlib.suppress(InvalidEvent):  # counted, as a replay does
                    replay.feed(raw)
    return [
        len(encode_stored(StoredCustomer(c)))
        for c in replay.customers()
        if c.customer_id.startswith("c") and c.order_count
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    orders_only, engaged = history(args.customers, args.seed, 0), history(args.customers, args.seed, 20)
    n_orders, n_all = lines(orders_only), lines(engaged)
    print(f"histories: {n_orders:,} order events; {n_all:,} with engagement ({n_all - n_orders:,} added)")
    ratios = []
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory)
        for number in range(1, args.rounds + 1):
            started = time.perf_counter()
            t_orders = replayed(orders_only, out)
            t_all = replayed(engaged, out)
            order_rate = n_orders / t_orders
            engagement_rate = (n_all - n_orders) / (t_all - t_orders)
            ratios.append(engagement_rate / order_rate)
            print(
                f"round {number}: orders {t_orders:.2f} s ({order_rate:,.0f} events/s); with engagement "
                f"{t_all:.2f} s; the engagement events {engagement_rate:,.0f} events/s: "
                f"{ratios[-1]:.2f}x an order ({time.perf_counter() - started:.0f} s)"
            )
    median = statistics.median(ratios)
    verdict = "met" if median >= 1 else "NOT met"
    print(f"median: an engagement event at {median:.2f}x the rate of an order (target >= 1: {verdict})")
    plain, with_engagement = record_sizes(orders_only, 2), record_sizes(engaged, 2)
    print(
        f"stored record of a buyer (a fifth of them): {statistics.mean(plain):,.0f} bytes mean, "
        f"{max(plain):,} largest, orders only; {statistics.mean(with_engagement):,.0f} mean, "
        f"{max(with_engagement):,} largest, with 20 engagement events an order "
        f"({statistics.mean(with_engagement) / statistics.mean(plain):.2f}x)"
    )


if __name__ == "__main__":
    main()
