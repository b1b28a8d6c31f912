"""Replay throughput and memory against the cost of merely parsing the same file.

Prints, from one run on one machine: the baseline (read + orjson.loads line by line), the
full replay (JSONL in, transitions and states out, through the `lifecycle replay` command
in a child process), their ratio, events/s and the replay's peak memory.

    make bench                       # 1M events, cached under var/bench/
    .venv/bin/python bench/replay_bench.py --customers 20000
    .venv/bin/python bench/replay_bench.py --only jobs   # --jobs N against --jobs 1 alone
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stream.config import load_config  # noqa: E402
from stream.replay.jobs import job_of  # noqa: E402


def history_file(customers: int, seed: int) -> Path:
    """The cached history file, generated in a child process: a parent that had held a million
    events would pass its peak memory on to the replay child's measured peak."""
    path = ROOT / "var" / "bench" / f"history-{customers}-{seed}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "stream",
                "generate",
                "--customers",
                str(customers),
                "--seed",
                str(seed),
                "--output",
                str(path),
            ],
            cwd=ROOT,
            check=True,
        )
        print(f"generated in {time.perf_counter() - started:.1f} s -> {path}")
    return path


def parse_only(path: Path) -> tuple[int, float]:
    started = time.perf_counter()
    count = 0
    loads = orjson.loads
    with open(path, "rb") as handle:
        for line in handle:
            loads(line)
            count += 1
    return count, time.perf_counter() - started


OUTPUTS = ("t.jsonl", "s.jsonl", "r.jsonl")


def replay(path: Path, out: Path, *extra: str, echo: bool = True) -> tuple[float, int]:
    """Seconds and peak RSS (bytes) of `lifecycle replay` over the file, in a child process,
    writing its transitions, states and rejects (`OUTPUTS`) into `out`."""
    return lifecycle(*_replay_arguments(path, out), *extra, echo=echo)


def _replay_arguments(path: Path, out: Path) -> list[str]:
    """`lifecycle replay` of the file, writing the `OUTPUTS` into `out`."""
    transitions, states, rejects = (str(out / name) for name in OUTPUTS)
    return ["replay", str(path), "--transitions", transitions, "--states", states, "--rejects", rejects]


def lifecycle(*args: str, echo: bool = True) -> tuple[float, int]:
    """Seconds and peak RSS (bytes) of a `lifecycle` command, in a child process; `echo`
    prints its summary."""
    command = [sys.executable, "-m", "stream", *args]
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    summary = child.stderr.read().decode() if child.stderr else ""
    if status != 0:
        raise SystemExit(f"lifecycle {args[0]} failed:\n{summary}")
    if echo and summary.strip():
        print("  " + summary.strip().replace("\n", "\n  "))
    return seconds, usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=127_000, help="127k gives about 1M events")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=["jobs"], help="only --jobs N against --jobs 1")
    args = parser.parse_args()
    path = history_file(args.customers, args.seed)
    out = ROOT / "var" / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    if args.only == "jobs":
        with open(path, "rb") as history:
            jobs_against_one(path, out, sum(1 for _ in history))
        return
    # the parse alone varies by a third from run to run (file cache, CPU frequency): the
    # median of three
    runs = [parse_only(path) for _ in range(3)]
    events = runs[0][0]
    baseline = statistics.median(seconds for _, seconds in runs)
    print(
        f"baseline  read + orjson.loads: {events:,} lines in {baseline:.2f} s "
        f"({events / baseline:,.0f} lines/s; median of "
        + ", ".join(f"{seconds:.2f}" for _, seconds in runs)
        + " s)"
    )
    seconds, peak = replay(path, out, "--jobs", "1")
    with open(out / "t.jsonl", "rb") as written:
        transitions = sum(1 for _ in written)
    print(
        f"replay    lifecycle replay:    {events:,} events in {seconds:.2f} s "
        f"({events / seconds:,.0f} events/s, process start included), {transitions:,} transitions"
    )
    print(f"ratio     replay / baseline:   {seconds / baseline:.1f}x   (target <= 4x)")
    print(f"rate      target >= 150,000 events/s: {'met' if events / seconds >= 150_000 else 'NOT met'}")
    print(f"memory    replay peak RSS:     {peak / 2**20:,.0f} MiB   (aim < 1024 MiB)")
    reported, report_peak = lifecycle(
        "report", str(path), "-o", str(out / "report.html"), "--kpis", str(out / "kpis.json")
    )
    print(
        f"report    lifecycle report -o --kpis: {reported:.2f} s, peak {report_peak / 2**20:,.0f} MiB; "
        f"{reported / seconds:.2f}x the replay   (target <= 1.5x)"
    )
    preset = ROOT / "deploy" / "segments.example.toml"
    with_segments, segmented_peak = replay(
        path, out, "--jobs", "1", "--config", str(preset), "--segment-changes", str(out / "sc.jsonl")
    )
    with open(out / "sc.jsonl", "rb") as written:
        changes = sum(1 for _ in written)
    print(
        f"segments  replay with the preset segments ({preset.name}): {with_segments:.2f} s, "
        f"{changes:,} segment changes, peak {segmented_peak / 2**20:,.0f} MiB"
    )
    print(f"ratio     with segments / without: {with_segments / seconds:.2f}x   (target <= 1.5x)")
    experiments = out / "experiments.toml"  # the preset, and two experiments
    experiments.write_text(
        (ROOT / "deploy" / "segments.example.toml").read_text()
        + '\n[experiments.welcome]\non = "became_one_timer"\nholdout = 0.1\nwithin = "30d"\n'
        + '\n[experiments.win_back]\non = "went_inactive"\nholdout = 0.2\nwithin = "60d"\n'
    )
    measured, measured_peak = lifecycle(
        "report",
        str(path),
        "--config",
        str(experiments),
        "--kpis",
        str(out / "kpis-x.json"),
        "-o",
        str(out / "x.html"),
    )
    print(
        f"report    with the preset and two experiments: {measured:.2f} s, peak {measured_peak / 2**20:,.0f} "
        f"MiB; {measured / with_segments:.2f}x the replay with the same preset   (target <= 1.5x)"
    )
    jobs_against_one(path, out, events)


def jobs_against_one(path: Path, out: Path, events: int, rounds: int = 5) -> None:
    """`--jobs N` (the machine's cores) against `--jobs 1`, and against the ceiling a split by
    partitions can give here (each job's share of the history in a file of its own, replayed
    side by side: nothing read twice, no merge), all three in each round, in an order that
    turns from round to round: this machine's speed drifts by more than the difference
    between runs minutes apart, and two processes side by side get from 1.2x to 2x the work
    of one (measured with plain CPU loops)."""
    jobs = os.cpu_count() or 1
    in_jobs = out / "jobs"
    in_jobs.mkdir(exist_ok=True)
    shares = _shares(path, jobs)
    peaks: list[int] = []

    def in_jobs_run() -> float:
        seconds, peak = replay(path, in_jobs, "--jobs", str(jobs), echo=False)
        peaks.append(peak)
        return seconds

    runs = {
        "one": lambda: replay(path, out, "--jobs", "1", echo=False)[0],
        "many": in_jobs_run,
        "ceiling": lambda: _side_by_side(shares, [out / f"share{job}" for job in range(jobs)]),
    }
    ratios, ceilings = [], []
    for round_ in range(rounds):
        order = list(runs)[round_ % 3 :] + list(runs)[: round_ % 3]
        seconds = {name: runs[name]() for name in order}
        ratios.append(seconds["one"] / seconds["many"])
        ceilings.append(seconds["one"] / seconds["ceiling"])
        print(
            f"jobs      round {round_ + 1}: --jobs {jobs} {events / seconds['many']:,.0f} events/s, --jobs 1 "
            f"{events / seconds['one']:,.0f}: {ratios[-1]:.2f}x; shares side by side {ceilings[-1]:.2f}x "
            f"(run in the order {', '.join(order)}); peak {peaks[-1] / 2**20:,.0f} MiB (largest process)"
        )
    same = all(_without_wall_clock(out / name) == _without_wall_clock(in_jobs / name) for name in OUTPUTS)
    print(
        f"jobs      --jobs {jobs} against --jobs 1: median {statistics.median(ratios):.2f}x of {rounds} "
        f"rounds   (target >= 1.8x with 2 jobs); outputs {'identical' if same else 'DIFFERENT'} "
        "(detected_at aside)"
    )
    of_ceiling = statistics.median(r / c for r, c in zip(ratios, ceilings, strict=True))
    print(
        f"jobs      ceiling: the shares side by side against --jobs 1: median "
        f"{statistics.median(ceilings):.2f}x; --jobs {jobs} at a median {of_ceiling:.0%} of it in its round"
    )


def _shares(path: Path, jobs: int) -> list[Path]:
    """The history's lines split as `--jobs` splits them (by partition, default config), one
    file a job, cached beside the history."""
    shares = [path.with_name(f"{path.stem}-share{job}of{jobs}.jsonl") for job in range(jobs)]
    if all(share.exists() for share in shares):
        return shares
    partitions = load_config().kafka.partitions
    handles = [open(share, "wb") for share in shares]  # noqa: SIM115 - closed below
    try:
        with open(path, "rb") as history:
            for line in history:
                customer = orjson.loads(line).get("customer_id")
                handles[job_of(customer if isinstance(customer, str) else None, partitions, jobs)].write(line)
    finally:
        for handle in handles:
            handle.close()
    return shares


def _side_by_side(inputs: list[Path], outs: list[Path]) -> float:
    """Seconds until the slowest of the replays of `inputs`, started at once, ends."""
    started = time.perf_counter()
    children = []
    for source, out in zip(inputs, outs, strict=True):
        out.mkdir(exist_ok=True)
        command = [sys.executable, "-m", "stream", *_replay_arguments(source, out), "--jobs", "1"]
        children.append(subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL))
    if any(child.wait() != 0 for child in children):
        raise SystemExit("a replay side by side failed")
    return time.perf_counter() - started


def _without_wall_clock(path: Path) -> list[bytes]:
    """The file's lines without `detected_at`, the one field taken from the wall clock."""
    lines = []
    with open(path, "rb") as handle:
        for line in handle:
            record = orjson.loads(line)
            record.pop("detected_at", None)
            lines.append(orjson.dumps(record))
    return lines


if __name__ == "__main__":
    main()
