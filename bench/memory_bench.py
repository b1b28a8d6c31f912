"""Replay and rebuild of a large history within a memory budget, against the same run without.

A generated history of `--customers` customers (1.27M give about 10M events; cached under
var/bench/), with `kafka.partitions = --partitions`. Prints, from one run:
1. replay (`--jobs 1`) without a budget (`--memory 1T`) and with `--memory BUDGET`: seconds,
   events/s and peak memory (the largest process) of each, and whether every output
   (transitions, states, rejects; `detected_at` aside) is the same;
2. `report` (KPIs and page) and `model fit`, which read every customer at once, the same way:
   seconds, events/s, peak memory, and whether what they wrote is the same, byte for byte;
3. rebuild (`--jobs 1`) of the same history sent to a local broker's orders topic, without a
   budget and with it, each under an app id of its own: seconds, events/s and peak memory.

    .venv/bin/python bench/memory_bench.py [--customers 1270000] [--budget 2G] [--partitions 12]
    .venv/bin/python bench/memory_bench.py --only report --only model     # no broker
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


# the commands that read every customer at once, each with the files it writes: their outputs
# must be the same bytes (neither page nor KPIs carry a wall-clock instant)
READERS = {
    "report": (
        ["report", "{history}", "--config", "{config}", "--kpis", "{0}", "-o", "{1}"],
        ["kpis.json", "report.html"],
    ),
    "model": (
        ["model", "fit", "{history}", "--config", "{config}", "--calibration-end", "2025-07-01", "-o", "{0}"],
        ["model.json"],
    ),
}


def readers(name: str, history: Path, config: Path, budget: str, events: int) -> None:
    """`report` or `model fit` without a budget and within it: seconds, peak memory, and
    whether what they wrote is the same."""
    args, files = READERS[name]
    with tempfile.TemporaryDirectory(dir=WORK) as directory:
        out = Path(directory)
        runs = {}
        for run, memory in (("unbounded", "1T"), ("budget", budget)):
            written = [str(out / f"{run}.{file}") for file in files]
            command = [part.format(*written, history=history, config=config) for part in args]
            seconds, peak = timed(*command, "--memory", memory, echo=False)
            runs[run] = (seconds, peak)
            print(
                f"{name:<9} {run:<9} --memory {memory}: {seconds:,.1f} s, {events / seconds:,.0f} events/s, "
                f"peak {peak / 2**20:,.0f} MiB",
                flush=True,
            )
        same = all((out / f"unbounded.{f}").read_bytes() == (out / f"budget.{f}").read_bytes() for f in files)
        print(
            f"{name:<9} outputs the same: {same}; time {runs['budget'][0] / runs['unbounded'][0]:.2f}x, "
            f"peak {runs['budget'][1] / runs['unbounded'][1]:.2f}x the run without a budget",
            flush=True,
        )


def on_disk(broker: Broker, prefix: str) -> int:
    """Bytes the broker holds of the topics whose partitions' directories start with `prefix`."""
    return sum(
        file.stat().st_size
        for directory in (broker.data_dir / "kraft").glob(f"{prefix}*")
        for file in directory.iterdir()
        if file.is_file()
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
        print(
            f"rebuild   {events:,} events sent in {time.perf_counter() - sent_at:,.0f} s; "
            f"the orders topic on the broker's disk: {on_disk(broker, f'{tag}.orders-') / 1e6:,.0f} MB",
            flush=True,
        )
        for name, memory in (("unbounded", "1T"), ("budget", budget)):
            own = WORK / f"rebuild-{name}.toml"
            own.write_text(config.read_text() + f'[worker]\napp_id = "{tag}-{name}"\n')
            states_before = on_disk(broker, f"{tag}.customer_state-")
            seconds, peak = timed("rebuild", "--config", str(own), "--jobs", "1", "--memory", memory)
            changelogs = on_disk(broker, f"{tag}-{name}-")
            states = on_disk(broker, f"{tag}.customer_state-") - states_before
            print(
                f"rebuild {name:<9} --memory {memory}: {seconds:,.1f} s, {events / seconds:,.0f} events/s, "
                f"peak {peak / 2**20:,.0f} MiB; written on the broker's disk (before compaction): "
                f"changelogs {changelogs / 1e6:,.0f} MB, customer states {states / 1e6:,.0f} MB",
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
    parser.add_argument(
        "--only",
        action="append",
        choices=["replay", "rebuild", "report", "model"],
        help="this command only (repeat for more); default: every one",
    )
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
    only = set(args.only or ["replay", "rebuild", "report", "model"])
    if "replay" in only:
        replays(history, config, args.budget, events)
    for name in READERS:
        if name in only:
            readers(name, history, config, args.budget, events)
    if "rebuild" in only:
        rebuilds(history, base_config, args.budget, events)


if __name__ == "__main__":
    main()
