"""What the real-broker tests share: a test's own engine setup on a broker (`Env`), workers
as real processes, and the checks of what they produced against a replay."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from stream.config import Config, load_config
from stream.kafka.client import client_settings
from stream.kafka.local import Broker, free_port
from stream.kafka.partitioning import partition_for
from stream.lifecycle import CustomerState
from stream.worker.state import decode_stored

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


class Env:
    """A test's own engine setup: unique topics, consumer group and data dirs on the shared broker."""

    def __init__(self, broker: Broker, directory: Path, **sections: dict[str, Any]) -> None:
        self.broker = broker
        self.directory = directory
        tag = uuid.uuid4().hex[:8]
        base: dict[str, dict[str, Any]] = {
            "kafka": {"bootstrap_servers": broker.bootstrap, "partitions": 3},
            "worker": {"app_id": f"test-{tag}", "store": "rocksdb"},
            "topics": {
                "orders": f"{tag}.orders",
                "transitions": f"{tag}.transitions",
                "customer_state": f"{tag}.customer-state",
                "dead_letters": f"{tag}.dead-letters",
                "ticks": f"{tag}.ticks",
                "segment_changes": f"{tag}.segment-changes",
                "triggers": f"{tag}.triggers",
            },
            "time": {"ticks": False},
        }
        for section, values in sections.items():
            base.setdefault(section, {}).update(values)
        self.sections = base
        self.path = directory / "lifecycle.toml"
        self.path.write_text(_toml(base))
        self.config: Config = load_config(self.path)
        self.workers: list[WorkerProcess] = []
        # what a subscriber configured as the README says sees: in exactly-once mode, only
        # committed transactions
        self.isolation_level = "read_committed" if self.config.worker.exactly_once else "read_uncommitted"

    def lifecycle(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[bytes]:
        configured = [] if args[0] == "generate" else ["--config", str(self.path)]
        # a worker fed in the files' order is compared with a replay in that same order (the
        # generated histories have late events on purpose)
        ordered = ["--arrival-order"] if args[0] in ("send", "replay", "rebuild") else []
        result = subprocess.run(
            [sys.executable, "-m", "stream", *args, *configured, *ordered],
            cwd=ROOT,
            capture_output=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"lifecycle {' '.join(args)} failed:\n{result.stderr.decode()}")
        return result

    def reconfigure(self, **sections: dict[str, Any]) -> None:
        """Add or replace sections of the config file that workers started from now on read."""
        self.sections.update(sections)
        self.path.write_text(_toml(self.sections))
        self.config = load_config(self.path)

    def replay(self, history: Path, *extra: str) -> tuple[list[dict], list[dict]]:
        out = self.directory / f"replay-{uuid.uuid4().hex[:6]}"
        self.lifecycle("replay", str(history), "--transitions", f"{out}.t", "--states", f"{out}.s", *extra)
        return _jsonl(Path(f"{out}.t")), _jsonl(Path(f"{out}.s"))

    def start_worker(
        self, name: str = "w1", port: int | None = None, environ: dict[str, str] | None = None
    ) -> WorkerProcess:
        worker = WorkerProcess(self, name, port, environ)
        self.workers.append(worker)
        return worker

    def read(
        self,
        topic: str,
        until: Callable[[list[Any]], bool],
        timeout: float = 120,
        isolation_level: str | None = None,
    ) -> list[Any]:
        """Every message of `topic` from the beginning, read until `until(messages)` holds."""
        level = isolation_level or self.isolation_level
        return asyncio.run(_read(self.config, topic, until, timeout, level))

    def transitions(self, until: Callable[[list[dict]], bool], timeout: float = 120) -> list[dict]:
        messages = self.read(
            self.config.topics.transitions, lambda ms: until([orjson.loads(m.value) for m in ms]), timeout
        )
        return [orjson.loads(m.value) for m in messages]

    def latest_states(
        self, until: Callable[[dict[str, dict]], bool], timeout: float = 120
    ) -> dict[str, dict]:
        """The customer-state topic as compaction would leave it."""
        return self._latest(self.config.topics.customer_state, orjson.loads, until, timeout)

    def changelog_states(
        self, until: Callable[[dict[str, CustomerState]], bool], timeout: float = 120
    ) -> dict[str, CustomerState]:
        """Customer states as the table's changelog holds them: what a new owner restores."""
        topic = f"{self.config.worker.app_id}-customers-changelog"
        return self._latest(topic, lambda raw: decode_stored(raw).state, until, timeout)

    def _latest(
        self, topic: str, decode: Callable[[bytes], T], until: Callable[[dict[str, T]], bool], timeout: float
    ) -> dict[str, T]:
        """The last value of every key of a compacted topic, tombstones removing theirs."""

        # Folded as read, each message decoded once: re-folding everything read at every
        # fetch was quadratic, and a changelog of 14k records with their orders took most of
        # a minute under load.
        latest: dict[str, T] = {}
        folded = 0

        def fold(messages: list[Any]) -> dict[str, T]:
            nonlocal folded
            for m in messages[folded:]:
                if m.value is None:
                    latest.pop(m.key.decode(), None)
                else:
                    latest[m.key.decode()] = decode(m.value)
            folded = len(messages)
            return latest

        try:
            self.read(topic, lambda ms: until(fold(ms)), timeout)
        except AssertionError as timeout_error:
            raise AssertionError(f"{timeout_error}; {len(latest)} keys as last read") from None
        return latest

    def create_topic(self, topic: str, configs: dict[str, str]) -> None:
        async def create() -> None:
            admin = AIOKafkaAdminClient(**client_settings(self.config))
            await admin.start()
            try:
                partitions = self.config.kafka.partitions
                await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs)])
            finally:
                await admin.close()

        asyncio.run(create())

    def alter_topic(self, topic: str, configs: dict[str, str]) -> None:
        async def alter() -> None:
            admin = AIOKafkaAdminClient(**client_settings(self.config))
            await admin.start()
            try:
                await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)])
            finally:
                await admin.close()

        asyncio.run(alter())

    def committed_offsets(self, topic: str) -> dict[int, int]:
        """The worker group's committed offsets of `topic`, by partition."""

        async def read() -> dict[int, int]:
            admin = AIOKafkaAdminClient(**client_settings(self.config))
            await admin.start()
            try:
                offsets = await admin.list_consumer_group_offsets(self.config.worker.app_id)
            finally:
                await admin.close()
            return {
                tp.partition: meta.offset
                for tp, meta in offsets.items()
                if tp.topic == topic and meta.offset >= 0
            }

        return asyncio.run(read())

    def commit_offsets(self, topic: str, offsets: dict[int, int]) -> None:
        """Commit `offsets` of `topic` for the worker group, as a member would (none may run)."""

        async def commit() -> None:
            consumer = AIOKafkaConsumer(
                **client_settings(self.config), group_id=self.config.worker.app_id, enable_auto_commit=False
            )
            await consumer.start()
            try:
                tps = {TopicPartition(topic, p): offset for p, offset in offsets.items()}
                consumer.assign(list(tps))
                await consumer.commit(tps)
            finally:
                await consumer.stop()

        asyncio.run(commit())

    def produce(self, values: list[bytes], partition: int = 0) -> None:
        """Raw messages, exactly as given, to the orders topic (what a broken producer sends)."""

        async def send() -> None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.config.kafka.bootstrap_servers, max_request_size=4 * 1024 * 1024
            )
            await producer.start()
            try:
                for value in values:
                    await producer.send_and_wait(self.config.topics.orders, value, partition=partition)
            finally:
                await producer.stop()

        asyncio.run(send())

    def end_offsets(self, topic: str) -> dict[int, int]:
        """The end offset of every partition of `topic`."""

        async def read() -> dict[int, int]:
            consumer = AIOKafkaConsumer(**client_settings(self.config), group_id=None)
            await consumer.start()
            try:
                tps = [TopicPartition(topic, p) for p in range(self.config.kafka.partitions)]
                ends = await consumer.end_offsets(tps)
            finally:
                await consumer.stop()
            return {tp.partition: offset for tp, offset in ends.items()}

        return asyncio.run(read())

    def evidence(self, expected: list[dict], got: list[dict]) -> str:
        """What a failed run leaves to read: who is short, where the group stands, what the
        workers said last."""
        count = self.config.kafka.partitions
        have = {(t["customer_id"], t["seq"]) for t in got}
        short: dict[int, set[str]] = {}
        for t in expected:
            if (t["customer_id"], t["seq"]) not in have:
                short.setdefault(partition_for(t["customer_id"], count), set()).add(t["customer_id"])
        lines = [f"transitions: {len(have)} of {len(expected)} expected (customer, seq) pairs"]
        for number in range(count):
            missing = sorted(short.get(number, ()))
            lines.append(f"  partition {number}: {len(missing)} customers short {missing[:8]}")
        absent = [t for t in expected if (t["customer_id"], t["seq"]) not in have]
        for t in absent[:6]:
            lines.append(
                f"    missing {t['customer_id']} seq {t['seq']} {t['transition']} at {t['occurred_at']}, "
                f"caused by {t.get('cause_event_id')}"
            )
        orders = self.config.topics.orders
        committed = self.committed_offsets(orders)
        for number, end in sorted(self.end_offsets(orders).items()):
            lines.append(f"  {orders}[{number}]: committed {committed.get(number)}, end {end}")
        for worker in self.workers:
            lines.append(worker.evidence())
        return "\n".join(lines)

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()


class WorkerProcess:
    def __init__(
        self, env: Env, name: str, port: int | None = None, environ: dict[str, str] | None = None
    ) -> None:
        self.log = env.directory / f"{name}.log"
        self.port = port = port or free_port()
        command = [
            sys.executable,
            "-m",
            "stream",
            "worker",
            "--config",
            str(env.path),
            "--data-dir",
            str(env.directory / f"{name}-data"),
            "--web-port",
            str(port),
            "--loglevel",
            "info",
        ]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(environ or {})},
            )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 60) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): alive, silent, its transactions left open."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, timeout: float = 120) -> None:
        wait_for(lambda: self.ready() or not self.alive(), timeout, f"worker {self.log.stem} ready")
        assert self.alive(), self.output()[-3000:]

    def ready(self) -> bool:
        """/readyz says 200: tables recovered and partitions owned."""
        return http_get(f"http://127.0.0.1:{self.port}/readyz")[0] == 200

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def metric(self, name: str) -> dict[str, float]:
        """The samples of metric `name` on /metrics, by their labels as written ('' for none)."""
        samples = {}
        for line in _metric_lines(self.port):
            if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
                labels, _, value = line[len(name) :].rpartition(" ")
                samples[labels.strip()] = float(value)
        return samples

    def evidence(self, tail: int = 25) -> str:
        """Alive or not, its skipped-orders count, and the last lines it logged."""
        status = "alive" if self.alive() else f"exited {self.process.returncode}"
        output = self.output()
        skipped = [line for line in _metric_lines(self.port) if line.startswith("lifecycle_skipped_orders")]
        logged = sum(1 for line in output.splitlines() if "message(s) skipped" in line)
        warnings = [line for line in output.splitlines() if "[WARNING]" in line and "DROPPED" not in line]
        last = output.splitlines()[-tail:]
        return "\n".join(
            [
                f"--- worker {self.log.stem} ({status}, port {self.port}); skipped metric: "
                f"{skipped or 'n/a (not running)'}; skips logged: {logged}; last warnings:",
                *warnings[-8:],
                "--- last lines:",
                *last,
            ]
        )


def _metric_lines(port: int) -> list[str]:
    status, body = http_get(f"http://127.0.0.1:{port}/metrics")
    return body.decode(errors="replace").splitlines() if status == 200 else []


async def _read(
    config: Config, topic: str, until: Callable[[list[Any]], bool], timeout: float, isolation_level: str
) -> list[Any]:
    consumer = AIOKafkaConsumer(
        **client_settings(config),
        group_id=None,
        enable_auto_commit=False,
        fetch_max_bytes=8 * 1024 * 1024,
        isolation_level=isolation_level,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(config.kafka.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        messages: list[Any] = []
        deadline = time.monotonic() + timeout
        while True:
            if until(messages):
                return messages
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s reading {topic}; got {len(messages)}")
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                messages.extend(records)
    finally:
        await consumer.stop()


def _jsonl(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _toml(sections: dict[str, dict[str, Any]]) -> str:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            rendered = (
                str(value).lower()
                if isinstance(value, bool)
                else (str(value) if isinstance(value, int) else orjson.dumps(value).decode())
            )
            lines.append(f"{key} = {rendered}")
    return "\n".join(lines) + "\n"


def worker_matches_replay(env: Env, customers: int, seed: int) -> tuple[WorkerProcess, list[dict]]:
    """A generated history sent and processed by a worker gives the replay's transitions; the
    worker (stopped) and those transitions, for the caller's own checks."""
    history = env.directory / "history.jsonl"
    env.lifecycle("generate", "--customers", str(customers), "--seed", str(seed), "--output", str(history))
    expected, _ = env.replay(history)
    env.lifecycle("send", str(history))
    worker = env.start_worker()
    try:
        got = env.transitions(lambda ts: len(ts) >= len(expected), timeout=180)
        assert sorted(map(transition_key, got)) == sorted(map(transition_key, expected))
    finally:
        env.stop_all()
    return worker, expected


def transition_key(t: dict) -> tuple:
    return (
        t["customer_id"],
        t["seq"],
        t["event_id"],
        t["transition"],
        t["from_state"],
        t["to_state"],
        t["occurred_at"],
    )


def state_key(s: dict) -> tuple:
    return (s["state"], s["order_count"], s["seq"], s["first_order_at"], s["last_order_at"], s["spend"])


def generated(env, customers: int, seed: int = 5, engagement: int = 0) -> Path:
    path = env.directory / f"history-{customers}-{seed}-{engagement}.jsonl"
    options = ("--customers", str(customers), "--seed", str(seed), "--engagement", str(engagement))
    env.lifecycle("generate", *options, "--output", str(path))
    return path


def second_worker_joins_and_leaves(env, history: Path, expected: list[dict]) -> None:
    """Half the history to one worker; a second joins as the rest is sent, takes up
    partitions, and leaves (SIGTERM) once three quarters of the transitions are out."""
    lines = history.read_bytes().splitlines(keepends=True)
    half, rest = env.directory / "first-half.jsonl", env.directory / "second-half.jsonl"
    half.write_bytes(b"".join(lines[: len(lines) // 2]))
    rest.write_bytes(b"".join(lines[len(lines) // 2 :]))
    env.lifecycle("send", str(half))
    env.start_worker("w1")
    env.transitions(lambda ts: len(ts) >= len(expected) // 5, timeout=180)
    second = env.start_worker("w2")
    env.lifecycle("send", str(rest))
    wait_for(lambda: "took up partition" in second.output() or not second.alive(), 120, "a take-up by w2")
    assert second.alive(), second.output()
    env.transitions(lambda ts: len(ts) >= len(expected) * 3 // 4, timeout=180)
    second.stop()


def check_against_replay(env, expected, expected_states, timeout=240):
    want_ids = {(t["customer_id"], t["seq"]): t["event_id"] for t in expected}
    seen: list[dict] = []

    def complete(ts: list[dict]) -> bool:
        seen[:] = ts
        return {(t["customer_id"], t["seq"]) for t in ts} >= set(want_ids)

    try:
        got = env.transitions(complete, timeout=timeout)
    except AssertionError as timeout_error:
        raise AssertionError(f"{timeout_error}\n{env.evidence(expected, seen)}") from None
    ids: dict[tuple[str, int], set[str]] = {}
    for t in got:
        ids.setdefault((t["customer_id"], t["seq"]), set()).add(t["event_id"])
    extra = sorted(set(ids) - set(want_ids))
    extra_shown = [(key, [t for t in got if (t["customer_id"], t["seq"]) == key]) for key in extra[:3]]
    assert not extra, f"{len(extra)} (customer, seq) the replay has not: {extra_shown}\n" + "\n".join(
        w.evidence() for w in env.workers
    )
    assert all(found == {want_ids[key]} for key, found in ids.items())
    want = {s["customer_id"]: state_key(s) for s in expected_states}
    env.latest_states(lambda latest: {k: state_key(v) for k, v in latest.items()} == want, timeout=90)
    return got


def check_no_offsets_skipped(env):
    # End states alone can hide a skipped message when it was a duplicate; the worker's own
    # count of jumps in the orders offsets cannot.
    for worker in env.workers:
        assert "message(s) skipped" not in worker.output(), worker.output()


def check_changelog(env, expected_states, timeout=60):
    want = {s["customer_id"]: (s["state"], s["order_count"], s["seq"]) for s in expected_states}

    last: dict = {}

    def restored(states):
        last.clear()
        last.update({cid: (c.state.value, c.order_count, c.seq) for cid, c in states.items()})
        return last

    try:
        env.changelog_states(lambda states: restored(states) == want, timeout=timeout)
    except AssertionError as timeout_error:
        missing = sorted(want.keys() - last.keys())
        extra = sorted(last.keys() - want.keys())
        differ = sorted(cid for cid in want.keys() & last.keys() if want[cid] != last[cid])
        examples = [(cid, "want", want[cid], "changelog", last[cid]) for cid in differ[:5]]
        raise AssertionError(
            f"{timeout_error}\nmissing {len(missing)} {missing[:5]}, extra {len(extra)} {extra[:5]}, "
            f"differ {len(differ)} {examples}\n" + "\n".join(w.evidence() for w in env.workers)
        ) from None
