"""Soak run: a long history through the live worker while it is SIGKILLed again and again, a
second worker joins and leaves, and the broker itself goes away and comes back; then the
output topics are compared with an offline replay of the same history.

Everything runs on its own local broker (free ports, data under var/soak/run-*), with its own
topics and consumer group. Progress lines as it goes (one per kill, join, leave and broker
restart), one summary line at the end; exit status 1 when a transition is missing, extra or
has another id than the replay's, or a customer's final state differs.

    .venv/bin/python bench/soak.py [--customers 26000] [--kills 20] [--seed 1]
    make soak [SOAK_ARGS="--kills 30"]
    make soak SOAK_ARGS="--guarantee exactly_once"

Transitions are read as a read_committed subscriber reads them (the README's advice), and
again read_uncommitted: duplicates of both are printed; in exactly-once mode any duplicate
read_committed fails the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stream.kafka.local import Broker, free_port  # noqa: E402
from stream.kafka.partitioning import partition_for  # noqa: E402

WORK = ROOT / "var" / "soak"
PARTITIONS = 4
BIN = Path(sys.executable).parent
LIFECYCLE = str(BIN / "lifecycle")
GAP_S = (2.0, 12.0)  # between a worker's readiness and its SIGKILL
READY_TIMEOUT_S = 180.0
SECOND_WORKER_S = (25.0, 45.0)  # how long the second worker stays
BROKER_AWAY_S = (10.0, 20.0)
CATCH_UP_TIMEOUT_S = 900.0
SKIPPED = "message(s) skipped"

T = TypeVar("T")
STARTED = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} +{time.monotonic() - STARTED:4.0f} s] {text}", flush=True)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return 0


def run_async(make: Callable[[], Coroutine[Any, Any, T]], timeout: float) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(make(), timeout)

    return asyncio.run(bounded())


# --- Kafka reads -------------------------------------------------------------------------


async def _offsets(bootstrap: str, group: str, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    """The group's committed offsets and the end offsets of `topic`, by partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, request_timeout_ms=10_000
    )
    try:
        await admin.start()
        await consumer.start()
        offsets = await admin.list_consumer_group_offsets(group)
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        with contextlib.suppress(Exception):
            await admin.close()
    committed = {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}
    return {p: o for p, o in committed.items() if o >= 0}, {tp.partition: o for tp, o in ends.items()}


async def _read_all(
    bootstrap: str, topic: str, isolation_level: str = "read_committed"
) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """Every message of `topic` up to the end offsets at the start: (partition, offset, key, value)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation_level,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        # explicit seeks: position() right after seek_to_beginning() answered the end offsets
        for tp, first in (await consumer.beginning_offsets(tps)).items():
            consumer.seek(tp, first)
        messages: list[tuple[int, int, bytes | None, bytes | None]] = []
        while True:
            behind = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
            if not behind:
                return messages
            batch = await consumer.getmany(*behind, timeout_ms=1000, max_records=20_000)
            for tp, records in batch.items():
                messages.extend((tp.partition, r.offset, r.key, r.value) for r in records)
    finally:
        await consumer.stop()


# --- processes ---------------------------------------------------------------------------


class Worker:
    """One worker identity: its data dir, web port (so its static member id) and log file."""

    def __init__(self, name: str, run_dir: Path, config: Path, port: int, env: dict[str, str]) -> None:
        self.name = name
        self.env = env
        self.port = port
        self.config = config
        self.data_dir = run_dir / f"{name}-data"
        self.log = run_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def note(self, text: str) -> None:
        with open(self.log, "ab") as log:
            log.write(f"=== soak {time.strftime('%Y-%m-%d %H:%M:%S')}: {text} ===\n".encode())

    def start(self) -> None:
        self.starts += 1
        self.note(f"start #{self.starts}")
        command = [
            sys.executable,
            "-m",
            "stream",
            "worker",
            "--config",
            str(self.config),
            "--data-dir",
            str(self.data_dir),
            "--web-port",
            str(self.port),
            "--loglevel",
            "info",
        ]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.env["SOAK_CODE_DIR"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exited(self) -> int | None:
        """The exit status of a process that ended (and was not yet restarted), else None."""
        return None if self.process is None else self.process.poll()

    def ready(self) -> bool:
        return self.alive() and http_status(f"http://127.0.0.1:{self.port}/readyz") == 200

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.note("SIGKILL")

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM, SIGKILL after `timeout`; the exit status (None if it never ran)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait(timeout=30)
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Feed:
    """The history in chunks, each sent by `lifecycle send` in the background, in order."""

    def __init__(self, chunks: list[tuple[Path, int]], config: Path, log: Path, env: dict[str, str]) -> None:
        self.chunks = chunks
        self.env = env
        self.config = config
        self.log = log
        self.sent = 0  # chunks handed to a send (finished or in flight)
        self.events_sent = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def remaining(self) -> int:
        return len(self.chunks) - self.sent

    def busy(self) -> bool:
        self.poll()
        return self.process is not None

    def poll(self) -> None:
        if self.process is None or self.process.poll() is None:
            return
        status = self.process.returncode
        self.process = None
        if status != 0:
            raise RuntimeError(f"lifecycle send of chunk {self.sent} exited {status}; see {self.log}")
        self.events_sent += self.chunks[self.sent - 1][1]

    def send_next(self) -> None:
        assert self.process is None and self.remaining
        path, _ = self.chunks[self.sent]
        self.sent += 1
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [LIFECYCLE, "send", str(path), "--config", str(self.config)],
                cwd=self.env["SOAK_CODE_DIR"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait(self, timeout: float = 300) -> None:
        if self.process is not None:
            self.process.wait(timeout=timeout)
        self.poll()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait(timeout=10)


# --- the run -----------------------------------------------------------------------------


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        tag = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self.run_dir = WORK / f"run-{tag}"
        self.run_dir.mkdir(parents=True)
        self.tag = f"soak-{tag}"
        self.broker = Broker(free_port(span=2), self.run_dir / "kafka")
        first_port = free_port()
        second_port = free_port()
        self.config = self.run_dir / "soak.toml"
        self.app_id = self.tag
        self.topics = {
            "orders": f"{self.tag}.orders",
            "transitions": f"{self.tag}.transitions",
            "customer_state": f"{self.tag}.customer-state",
            "dead_letters": f"{self.tag}.dead-letters",
            "ticks": f"{self.tag}.ticks",
            "segment_changes": f"{self.tag}.segment-changes",
        }
        self.env = self.snapshot_code()
        self.first = Worker("w1", self.run_dir, self.config, first_port, self.env)
        self.second = Worker("w2", self.run_dir, self.config, second_port, self.env)
        self.workers = [self.first, self.second]
        self.feed: Feed | None = None
        self.broker_started = False
        self.kills = 0
        self.kills_with_lag = 0
        self.joins = 0
        self.broker_restarts = 0
        self.exits_while_away = 0
        self.other_exits = 0
        self.second_leave_at: float | None = None
        self.second_joined_at = 0.0
        self.lag: int | None = None
        self.lag_at = 0.0
        self.sends_held = False  # while the broker restarts: no chunk may be in flight
        self.committed_seen = False
        self.quota = 1
        self.events = 0

    # -- set-up

    def snapshot_code(self) -> dict[str, str]:
        """Every process of the run imports one copy of stream/, taken now: a worker restarted
        mid-run must not pick up a file someone is halfway through editing (a soak run once
        lost three orders to a worker that imported a half-refactored module)."""
        code = self.run_dir / "code"
        shutil.copytree(ROOT / "stream", code / "stream", ignore=shutil.ignore_patterns("__pycache__"))
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "stream"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        self.code_version = (head or "?") + (" + uncommitted changes" if dirty else "")
        self.code = code
        # run from the copy (python -m puts the working directory first on sys.path), and
        # PYTHONPATH for the console script, ahead of the editable install of the tree
        path = os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")]))
        return {**os.environ, "PYTHONPATH": path, "SOAK_CODE_DIR": str(code)}

    def write_config(self) -> None:
        topics = "\n".join(f'{key} = "{value}"' for key, value in self.topics.items())
        self.config.write_text(
            f'[kafka]\nbootstrap_servers = "{self.broker.bootstrap}"\npartitions = {PARTITIONS}\n\n'
            f'[worker]\napp_id = "{self.app_id}"\nstore = "rocksdb"\nstatic_membership = true\n'
            f'processing_guarantee = "{self.args.guarantee}"\n'
            f'web_host = "127.0.0.1"\ndata_dir = "{self.run_dir / "worker-data"}"\n\n'
            f"[topics]\n{topics}\n\n[time]\nticks = false\n"
        )

    def lifecycle(self, *args: str) -> None:
        result = subprocess.run(
            [LIFECYCLE, *args], cwd=self.code, env=self.env, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(f"lifecycle {' '.join(args)} exited {result.returncode}:\n{result.stderr}")

    def prepare_history(self) -> None:
        history = self.run_dir / "history.jsonl"
        self.lifecycle(
            "generate",
            "--customers",
            str(self.args.customers),
            "--seed",
            str(self.args.seed),
            "-o",
            str(history),
        )
        self.lifecycle(
            "replay",
            str(history),
            "--config",
            str(self.config),
            "--transitions",
            str(self.run_dir / "expected-transitions.jsonl"),
            "--states",
            str(self.run_dir / "expected-states.jsonl"),
        )
        lines = history.read_bytes().splitlines(keepends=True)
        self.events = len(lines)
        count = max(1, self.args.chunks)
        size = math.ceil(len(lines) / count)
        chunks = []
        for number, start in enumerate(range(0, len(lines), size)):
            path = self.run_dir / f"chunk-{number:02d}.jsonl"
            part = lines[start : start + size]
            path.write_bytes(b"".join(part))
            chunks.append((path, len(part)))
        self.feed = Feed(chunks, self.config, self.run_dir / "send.log", self.env)
        say(
            f"history: {self.events:,} events of {self.args.customers:,} customers (seed {self.args.seed}) "
            f"in {len(chunks)} chunks; replay done; code {self.code_version}; "
            f"run dir {self.run_dir.relative_to(ROOT)}"
        )

    # -- observation

    def offsets(self) -> tuple[dict[int, int], dict[int, int]] | None:
        try:
            return run_async(
                lambda: _offsets(self.broker.bootstrap, self.app_id, self.topics["orders"]), timeout=30
            )
        except Exception:
            return None

    def measure_lag(self) -> int | None:
        offsets = self.offsets()
        if offsets is None:
            return None
        committed, ends = offsets
        self.lag_at = time.monotonic()
        if committed:
            self.committed_seen = True
        elif self.committed_seen:  # the coordinator still loading the group after a broker restart
            self.lag = None
            return None
        self.lag = sum(end - committed.get(p, 0) for p, end in ends.items())
        return self.lag

    def skipped(self) -> int:
        return sum(worker.output().count(SKIPPED) for worker in self.workers)

    # -- housekeeping while waiting

    def housekeeping(self, broker_up: bool = True) -> None:
        assert self.feed is not None
        self.feed.poll()
        if not broker_up:
            return
        for worker in self.running():
            status = worker.exited()
            if status is not None:
                self.other_exits += 1
                say(f"worker {worker.name} (pid {worker.pid}) exited by itself, status {status}; restarting")
                worker.note(f"exited with status {status}, restarting")
                worker.start()
        if self.second_leave_at is not None and time.monotonic() >= self.second_leave_at:
            self.second_leaves()
        if time.monotonic() - self.lag_at >= 2.0:
            self.measure_lag()
        if not self.sends_held and not self.feed.busy() and self.feed.remaining:
            low = self.lag is not None and self.lag < self.feed.chunks[0][1] // 2
            if self.feed.sent < self.quota or low:
                self.feed.send_next()

    def running(self) -> list[Worker]:
        """Workers that should be running now."""
        return [self.first] + ([self.second] if self.second_leave_at is not None else [])

    def idle(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while True:
            self.housekeeping()
            left = until - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.5, left))

    def wait_ready(self, worker: Worker, timeout: float = READY_TIMEOUT_S) -> float | None:
        """Seconds from the worker's (re)start to its /readyz 200, or None after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.housekeeping()
            if worker.ready():
                return time.monotonic() - worker.started_at
            time.sleep(0.3)
        say(f"worker {worker.name} not ready {timeout:.0f} s after its start; going on")
        return None

    # -- the events

    def kill_first(self, number: int, ready_after: float | None) -> None:
        gap = self.rng.uniform(*GAP_S)
        self.idle(gap)
        lag = self.measure_lag()
        pid = self.first.pid
        self.first.kill()
        self.kills += 1
        if lag:
            self.kills_with_lag += 1
        ready = "not ready" if ready_after is None else f"ready {ready_after:.1f} s after its start"
        assert self.feed is not None
        say(
            f"kill {number}/{self.args.kills}: SIGKILL w1 (pid {pid}), {ready}, killed {gap:.1f} s later; "
            f"orders lag {amount(lag)}; chunks sent {self.feed.sent}/{len(self.feed.chunks)}"
        )
        self.first.start()

    def second_joins(self) -> None:
        self.joins += 1
        self.second.start()
        self.second_leave_at = time.monotonic() + 10_000  # counted as running from now
        ready = self.wait_ready(self.second)
        stay = self.rng.uniform(*SECOND_WORKER_S)
        self.second_joined_at = time.monotonic()
        self.second_leave_at = self.second_joined_at + stay
        until = time.monotonic() + 30
        while "took up partition" not in self.second.output() and time.monotonic() < until:
            self.idle(0.5)
        took = self.second.output().count("took up partition")
        say(
            f"join: second worker w2 (pid {self.second.pid}, port {self.second.port}) "
            + ("not ready" if ready is None else f"ready after {ready:.1f} s")
            + f", took up {took} partition(s); leaves in {stay:.0f} s; orders lag {self.lag_text()}"
        )

    def second_leaves(self) -> None:
        self.second_leave_at = None
        took = self.second.output().count("took up partition")
        handled = events_handled(self.second.port)
        status = self.second.stop()
        say(
            f"leave: SIGTERM w2 after {time.monotonic() - self.second_joined_at:.0f} s, status {status}; "
            f"it took up {took} partition(s) and handled {amount(handled)} events (a static member keeps "
            f"its partitions until its session expires); orders lag {self.lag_text()}"
        )

    def lag_text(self) -> str:
        return amount(self.lag)

    def restart_broker(self) -> None:
        assert self.feed is not None
        # no send while the broker is away: a send started by the housekeeping of the waits
        # below was still in flight when the broker stopped, and failed (2026-11-27)
        self.sends_held = True
        if self.feed.busy():
            self.feed.wait()
        self.wait_ready(self.first)
        self.idle(self.rng.uniform(2.0, 8.0))  # into the processing, not at its start
        lag = self.measure_lag()
        running = self.running()
        stop_started = time.monotonic()
        self.broker.stop()
        stopped_in = time.monotonic() - stop_started
        away = self.rng.uniform(*BROKER_AWAY_S)
        exits: list[str] = []
        seen: set[str] = set()

        def watch() -> None:
            for worker in running:
                status = worker.exited()
                if status is not None and worker.name not in seen:
                    seen.add(worker.name)
                    exits.append(f"{worker.name} exited {status} {time.monotonic() - stop_started:.0f} s in")
                    worker.note(f"exited with status {status} while the broker was away")

        until = time.monotonic() + away
        while time.monotonic() < until:
            self.housekeeping(broker_up=False)
            watch()
            time.sleep(0.3)
        started = time.monotonic()
        self.broker.start()
        self.sends_held = False
        back = time.monotonic()
        watch()
        self.broker_restarts += 1
        self.exits_while_away += len(exits)
        for worker in running:
            if worker.exited() is not None:
                worker.start()
        say(
            f"broker restart: stopped (took {stopped_in:.1f} s) with orders lag {amount(lag)}, "
            f"away {away:.0f} s, serving again {time.monotonic() - started:.1f} s after start; "
            f"worker exits while away: {len(exits)}" + (f" ({'; '.join(exits)}; restarted)" if exits else "")
        )
        ready = self.wait_ready(self.first)
        say(
            "after the broker restart: w1 "
            + ("not ready" if ready is None else f"ready {time.monotonic() - back:.1f} s after the broker")
            + f"; orders lag {amount(self.measure_lag())}"
        )

    def catch_up(self) -> tuple[dict[int, int], dict[int, int]]:
        assert self.feed is not None
        self.quota = len(self.feed.chunks)
        while self.feed.remaining or self.feed.busy():
            self.idle(1.0)
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        last_report = time.monotonic()
        while True:
            self.housekeeping()
            offsets = self.offsets()
            if offsets is not None:
                committed, ends = offsets
                if all(committed.get(p, 0) >= end for p, end in ends.items()):
                    return committed, ends
                if time.monotonic() - last_report >= 30:
                    last_report = time.monotonic()
                    say("catching up: " + offsets_text(committed, ends))
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the group did not reach the end of the orders topic in {CATCH_UP_TIMEOUT_S:.0f} s: "
                    + ("?" if offsets is None else offsets_text(*offsets))
                )
            time.sleep(1.0)

    # -- the comparison

    def compare(self) -> dict[str, Any]:
        expected = [orjson.loads(line) for line in (self.run_dir / "expected-transitions.jsonl").open("rb")]
        expected_states = [orjson.loads(line) for line in (self.run_dir / "expected-states.jsonl").open("rb")]
        want = {(t["customer_id"], t["seq"]): t["event_id"] for t in expected}
        bootstrap = self.broker.bootstrap
        messages = run_async(lambda: _read_all(bootstrap, self.topics["transitions"]), timeout=600)
        ids: dict[tuple[str, int], list[str]] = {}
        for _, _, _, value in messages:
            if value is None:
                continue
            t = orjson.loads(value)
            ids.setdefault((t["customer_id"], t["seq"]), []).append(t["event_id"])
        missing = sorted(set(want) - set(ids))
        extra = sorted(set(ids) - set(want))
        conflicting = sorted(key for key, found in ids.items() if key in want and set(found) != {want[key]})
        duplicates = sum(len(found) - 1 for found in ids.values())
        # what a subscriber that does not skip aborted transactions would have seen
        uncommitted = run_async(
            lambda: _read_all(bootstrap, self.topics["transitions"], "read_uncommitted"), timeout=600
        )
        uncommitted_ids = Counter(
            (t["customer_id"], t["seq"])
            for t in (orjson.loads(v) for _, _, _, v in uncommitted if v is not None)
        )
        duplicates_uncommitted = sum(n - 1 for n in uncommitted_ids.values())

        latest: dict[str, tuple[str, int, int]] = {}
        for _, _, key, value in run_async(lambda: _read_all(bootstrap, self.topics["customer_state"]), 600):
            if key is None:
                continue
            if value is None:
                latest.pop(key.decode(), None)
            else:
                s = orjson.loads(value)
                latest[key.decode()] = (s["state"], s["order_count"], s["seq"])
        want_states = {s["customer_id"]: (s["state"], s["order_count"], s["seq"]) for s in expected_states}
        differ = sorted(c for c in want_states.keys() | latest.keys() if want_states.get(c) != latest.get(c))
        return {
            "expected": len(want),
            "messages": len(messages),
            "missing": missing,
            "extra": extra,
            "conflicting": conflicting,
            "duplicates": duplicates,
            "duplicates_uncommitted": duplicates_uncommitted,
            "differ": differ,
            "want_ids": want,
            "ids": ids,
            "want_states": want_states,
            "states": latest,
        }

    def evidence(self, result: dict[str, Any], offsets: tuple[dict[int, int], dict[int, int]] | None) -> str:
        lines = ["evidence:"]
        for label in ("missing", "extra", "conflicting"):
            keys = result[label]
            if not keys:
                continue
            by_partition: dict[int, list[tuple[str, int]]] = {}
            for key in keys:
                by_partition.setdefault(partition_for(key[0], PARTITIONS), []).append(key)
            for number in sorted(by_partition):
                sample = by_partition[number][:6]
                lines.append(
                    f"  {label}: partition {number}: {len(by_partition[number])} (customer, seq) {sample}"
                )
            for key in keys[:5]:
                lines.append(
                    f"    {key}: replay {result['want_ids'].get(key)}, topic {result['ids'].get(key)}"
                )
        if result["differ"]:
            by_partition_s: dict[int, list[str]] = {}
            for customer in result["differ"]:
                by_partition_s.setdefault(partition_for(customer, PARTITIONS), []).append(customer)
            for number in sorted(by_partition_s):
                lines.append(f"  states differ: partition {number}: {len(by_partition_s[number])}")
            for customer in result["differ"][:8]:
                lines.append(
                    f"    {customer}: replay {result['want_states'].get(customer)}, "
                    f"topic {result['states'].get(customer)}"
                )
        if offsets is not None:
            lines.append(f"  {self.topics['orders']}: {offsets_text(*offsets)}")
        for worker in self.workers:
            notable = [
                line
                for line in worker.output().splitlines()
                if "=== soak" in line
                or SKIPPED in line
                or "reading the partition again" in line
                or "[WARNING]" in line
                or "[ERROR]" in line
                or "[CRITICAL]" in line
            ]
            lines.append(f"  --- {worker.log.relative_to(ROOT)}: last notable lines")
            lines.extend(f"    {line[:300]}" for line in notable[-60:])
        return "\n".join(lines)

    # -- the whole run

    def run(self) -> int:
        assert self.args.kills >= 1
        self.write_config()
        self.prepare_history()
        assert self.feed is not None
        self.broker.start()
        self.broker_started = True
        say(f"broker on {self.broker.bootstrap} (data {self.broker.data_dir.relative_to(ROOT)})")
        self.lifecycle("topics", "create", "--config", str(self.config))
        self.feed.send_next()
        self.feed.wait()
        self.first.start()
        ready = self.wait_ready(self.first)
        say(
            f"worker w1 (port {self.first.port}) ready after {ready or float('nan'):.1f} s; "
            f"orders lag {amount(self.lag)}"
        )

        kills = self.args.kills
        # The broker restart first: a static member that leaves keeps its partitions until its
        # session expires (60 s, counted again from a broker restart), so the second worker
        # comes after, early enough that w1 holds all partitions again for the last kills.
        broker_after = max(1, kills // 4)
        join_after = max(broker_after + 1, (2 * kills) // 5)
        for number in range(1, kills + 1):
            self.quota = max(1, math.ceil(len(self.feed.chunks) * number / kills))
            ready_after = self.wait_ready(self.first)
            self.kill_first(number, ready_after)
            if number == broker_after:
                self.restart_broker()
            if number == join_after and number < kills:
                self.second_joins()
        if self.broker_restarts == 0:
            self.restart_broker()
        if self.joins == 0:
            self.second_joins()
        while self.second_leave_at is not None:
            self.idle(1.0)

        say(
            f"all {self.kills} kills done ({self.kills_with_lag} with lag); waiting for the group to catch up"
        )
        offsets = self.catch_up()
        say("caught up: " + offsets_text(*offsets))
        time.sleep(3)  # outputs of the last commits are acked before the commit, but be patient
        result = self.compare()
        for _ in range(2):
            if not (result["missing"] or result["differ"]):
                break
            say(
                f"{len(result['missing']):,} transitions missing, {len(result['differ']):,} states differ; "
                "reading again in 20 s"
            )
            time.sleep(20)
            result = self.compare()
        skipped = self.skipped()
        logs = "".join(worker.output() for worker in self.workers)
        crashes, critical = logs.count("Crashed reason="), logs.count("[CRITICAL]")
        if crashes or critical:
            say(f"worker logs: {crashes} agent crash(es), {critical} CRITICAL line(s)")
        failed = bool(result["missing"] or result["extra"] or result["conflicting"] or result["differ"])
        # the promise of exactly-once mode: no duplicate for a read_committed subscriber
        failed = failed or (self.args.guarantee == "exactly_once" and result["duplicates"] > 0)
        if failed:
            text = self.evidence(result, self.offsets())
            (self.run_dir / "evidence.txt").write_text(text + "\n")
            print(text, flush=True)
        other = f", {self.other_exits} other worker exits" if self.other_exits else ""
        print(
            f"soak ({self.args.guarantee}): {self.events:,} events, {self.kills} SIGKILLs, "
            f"{self.joins} second worker join/leave, "
            f"{self.broker_restarts} broker restart ({self.exits_while_away} worker exits while away)"
            f"{other}, "
            f"{result['expected']:,} transitions expected: {len(result['missing']):,} missing, "
            f"{len(result['extra']):,} extra, {len(result['conflicting']):,} conflicting ids, "
            f"{result['duplicates']:,} duplicate deliveries read_committed "
            f"({result['duplicates_uncommitted']:,} read_uncommitted), {skipped:,} skipped offsets, "
            f"states {len(result['differ']):,} differ, {time.monotonic() - STARTED:.0f} s",
            flush=True,
        )
        return 1 if failed else 0

    def shutdown(self) -> None:
        if self.feed is not None:
            with contextlib.suppress(Exception):
                self.feed.stop()
        for worker in self.workers:
            with contextlib.suppress(Exception):
                status = worker.stop(timeout=30)
                if status is not None:
                    worker.note(f"stopped at the end, status {status}")
        if self.broker_started:
            with contextlib.suppress(Exception):
                self.broker.stop()


def events_handled(port: int) -> int | None:
    """The worker's lifecycle_events_total, all types and outcomes, from its /metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return None
    lines = [line for line in text.splitlines() if line.startswith("lifecycle_events_total{")]
    return round(sum(float(line.rsplit(" ", 1)[1]) for line in lines))


def amount(number: int | None) -> str:
    return "?" if number is None else f"{number:,}"


def offsets_text(committed: dict[int, int], ends: dict[int, int]) -> str:
    parts = [f"p{p} {committed.get(p, 0):,}/{end:,}" for p, end in sorted(ends.items())]
    lag = sum(end - committed.get(p, 0) for p, end in ends.items())
    return f"committed/end {', '.join(parts)} (lag {lag:,})"


def remove_old_runs() -> None:
    """Earlier runs' directories, unless their broker still runs."""
    if not WORK.exists():
        return
    for old in WORK.glob("run-*"):
        if old.is_dir() and Broker(0, old / "kafka").pid() is None:
            shutil.rmtree(old, ignore_errors=True)


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=26_000, help="default 26000 (about 200k events)")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs of the worker, default 20")
    parser.add_argument("--seed", type=int, default=1, help="history and timing seed, default 1")
    parser.add_argument("--chunks", type=int, default=10, help="the history is sent in this many parts")
    parser.add_argument(
        "--guarantee",
        choices=("at_least_once", "exactly_once"),
        default="at_least_once",
        help="the worker's processing_guarantee; exactly_once fails on any duplicate read_committed",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _terminated)
    remove_old_runs()
    soak = Soak(args)
    try:
        return soak.run()
    except KeyboardInterrupt:
        say("interrupted; stopping workers and broker")
        return 130
    finally:
        soak.shutdown()


if __name__ == "__main__":
    sys.exit(main())
