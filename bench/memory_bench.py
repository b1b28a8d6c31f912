"""Replay and rebuild of a large history within a memory budget, against the same run without.

A generated history of `--customers` customers (1.27M give about 10M events; cached under
var/bench/), with `kafka.partitions = --partitions`. Prints, from one run:
1. replay (`--jobs 1`) without a budget (`--memory 1T`) and with `--memory BUDGET`: seconds,
   events/s and peak memory (the largest process) of each, and whether every output
   (transitions, states, rejects; `detected_at` aside) is the same;
2. rebuild (`--jobs 1`) of the same history sent to a local broker's orders topic, without a
   budget and with it, each under an app id of its own: seconds, events/s and peak memory.

    .venv/bin/python bench/memory_bench.py [--customers 1270000] [--budget 2G] [--partitions 12]
    .venv/bin/python bench/memory_bench.py --skip-rebuild     # no broker
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import orjson  # noqa: E402
from replay_bench import history_file  # noqa: E402
from replay_bench import lifecycle as timed  # noqa: E402

from stream.kafka.local import Broker  # noqa: E402

WORK = ROOT / "var" / "bench" / "memory"
# every topic under the run's own names: the broker may hold an earlier run's of other sizes
TOPIC_KEYS = (
    "orders",
    "transitions",
    "customer_state",
    "dead_letters",
    "ticks",
    "segment_changes",
    "triggers",
)


def same_lines(first: Path, second: Path) -> bool:
    """The files hold the same lines in the same order, `detected_at` aside (read a line at a
    time: the files are as large as the history)."""

    def plain(line: bytes) -> bytes:
        record = orjson.loads(line)
        record.pop("detected_at", None)
        return orjson.dumps(record)

    with open(first, "rb") as a, open(second, "rb") as b:
        for line_a, line_b in zip(a, b, strict=False):
            if plain(line_a) != plain(line_b):
                return False
        return a.read(1) == b.read(1) == b""


def replays(history: Path, config: Path, budget: str, events: int) -> None:
    with tempfile.TemporaryDirectory(dir=WORK) as directory:
        out = Path(directory)
        runs = {}
        for name, memory in (("unbounded", "1T"), ("budget", budget)):
            files = [str(out / f"{name}.{kind}") for kind in ("t", "s", "r")]
            seconds, peak = timed(
                "replay", str(history), "--config", str(config), "--jobs", "1", "--memory", memory,
                "--transitions", files[0], "--states", files[1], "--rejects", files[2],
            )  # fmt: skip
            runs[name] = (seconds, peak)
            print(
                f"replay {name:<9} --memory {memory}: {seconds:,.1f} s, {events / seconds:,.0f} events/s, "
                f"peak {peak / 2**20:,.0f} MiB",
                flush=True,
            )
        same = all(same_lines(out / f"unbounded.{kind}", out / f"budget.{kind}") for kind in ("t", "s", "r"))
        print(
            f"replay    outputs the same: {same}; time {runs['budget'][0] / runs['unbounded'][0]:.2f}x, "
            f"peak {runs['budget'][1] / runs['unbounded'][1]:.2f}x the run without a budget",
            flush=True,
        )


def rebuilds(history: Path, base_config: str, budget: str, events: int) -> None:
    broker = Broker(29292, WORK / "kafka")
    started = False if broker.serving() else broker.start()
    try:
        config = WORK / "rebuild.toml"
        tag = f"mem{uuid.uuid4().hex[:6]}"
        config.write_text(
            base_config.replace("[kafka]\n", f'[kafka]\nbootstrap_servers = "{broker.bootstrap}"\n')
            + "[topics]\n"
            + "".join(f'{key} = "{tag}.{key}"\n' for key in TOPIC_KEYS)
        )
        sent_at = time.perf_counter()
        timed("send", str(history), "--config", str(config), echo=False)
        print(f"rebuild   {events:,} events sent in {time.perf_counter() - sent_at:,.0f} s", flush=True)
        for name, memory in (("unbounded", "1T"), ("budget", budget)):
            own = WORK / f"rebuild-{name}.toml"
            own.write_text(config.read_text() + f'[worker]\napp_id = "{tag}-{name}"\n')
            seconds, peak = timed("rebuild", "--config", str(own), "--jobs", "1", "--memory", memory)
            print(
                f"rebuild {name:<9} --memory {memory}: {seconds:,.1f} s, {events / seconds:,.0f} events/s, "
                f"peak {peak / 2**20:,.0f} MiB",
                flush=True,
            )
    finally:
        if started:
            broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_270_000, help="1.27M give about 10M events")
    parser.add_argument("--budget", default="2G")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--skip-rebuild", action="store_true")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    history = history_file(args.customers, 1)
    with open(history, "rb") as handle:
        events = sum(1 for _ in handle)
    size = history.stat().st_size / 2**30
    print(f"history   {events:,} events of {args.customers:,} customers, {size:.1f} GiB", flush=True)
    base_config = f"[kafka]\npartitions = {args.partitions}\n"
    config = WORK / "replay.toml"
    config.write_text(base_config)
    replays(history, config, args.budget, events)
    if not args.skip_rebuild:
        rebuilds(history, base_config, args.budget, events)


if __name__ == "__main__":
    main()
