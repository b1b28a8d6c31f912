"""The live worker against a real Kafka broker: same results as replay, time without events,
crashes, rebalances and bad messages."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from stream.lifecycle.instants import format_rfc3339, parse_rfc3339
from tests.kafka.env import (
    check_against_replay,
    check_changelog,
    check_no_offsets_skipped,
    generated,
    second_worker_joins_and_leaves,
    state_key,
    transition_key,
    wait_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]


# a one-timer window of seconds, and ticks often enough to see it close
SECONDS_WINDOW_AND_FAST_TICKS: dict[str, dict[str, str | bool]] = {
    "policy": {
        "one_timer_window": "3s",
        "at_risk_after": "1d",
        "inactive_after": "2d",
        "churned_after": "3d",
    },
    "time": {"ticks": True, "tick_interval": "200ms", "tick_delay": "0s"},
}


PRESET_LIKE: dict[str, dict] = {
    "segments.frequent": {"orders_over": 1, "orders_within": "60d"},
    "segments.big": {"spend_over": "40 EUR", "spend_within": "365d"},
    "segments.new": {"first_order_within": "30d"},
    "segments.lapsed": {"no_order_within": "120d"},
    "classes": {"order": ["big", "frequent"]},
}


def _order(customer_id: str, number: str, at_us: int) -> dict:
    return {
        "type": "order.placed",
        "event_id": f"e{number}",
        "customer_id": customer_id,
        "order_id": f"o{number}",
        "occurred_at": format_rfc3339(at_us),
        "total": {"amount_minor": 1200, "currency": "EUR"},
    }


@pytest.mark.parametrize("partitions", [1, 3])
def test_worker_gives_the_same_transitions_and_states_as_replay(env_factory, partitions):
    env = env_factory(kafka={"partitions": partitions})
    history = generated(env, 300)
    expected, expected_states = env.replay(history)
    env.lifecycle("send", str(history))
    worker = env.start_worker()
    got = env.transitions(lambda ts: len(ts) >= len(expected), timeout=180)
    assert worker.alive(), worker.output()
    assert sorted(map(transition_key, got)) == sorted(map(transition_key, expected))
    want = {s["customer_id"]: state_key(s) for s in expected_states}
    states = env.latest_states(
        lambda latest: {k: state_key(v) for k, v in latest.items()} == want, timeout=60
    )
    assert len(states) == len(want)


def test_one_timer_goes_inactive_with_no_further_event_at_the_exact_deadline(env_factory):
    env = env_factory(**SECONDS_WINDOW_AND_FAST_TICKS)
    worker = env.start_worker()
    # ready first: what is measured is how late a live worker notices the deadline, not how
    # long it takes to start (5 s once, on a busy machine, past the 3 s window)
    worker.wait_ready()
    order_at = time.time_ns() // 1000
    event = _order("quiet", "1", order_at)
    (env.directory / "one.jsonl").write_bytes(orjson.dumps(event) + b"\n")
    env.lifecycle("send", str(env.directory / "one.jsonl"))
    got = env.transitions(lambda ts: any(t["transition"] == "went_inactive" for t in ts), timeout=120)
    assert [t["transition"] for t in got] == ["became_one_timer", "went_inactive"]
    inactive = got[1]
    deadline = order_at + 3_000_000
    assert inactive["occurred_at"] == format_rfc3339(deadline)
    assert inactive["cause"] == "deadline" and inactive["replayed"] is False
    noticed_after = parse_rfc3339(inactive["detected_at"]) - deadline
    # tick interval 0.2 s; the slack is for a loaded CI machine
    assert 0 <= noticed_after < 3_000_000, f"noticed {noticed_after / 1e6:.2f} s after the deadline"
    fresh = env.read(f"{env.config.topics.transitions}.went_inactive", lambda ms: len(ms) >= 1, timeout=30)
    assert orjson.loads(fresh[0].value)["event_id"] == inactive["event_id"]
    assert worker.alive()


def test_a_tick_with_many_deadlines_due_fires_them_all_at_their_exact_instants(env_factory):
    env = env_factory(kafka={"partitions": 1}, **SECONDS_WINDOW_AND_FAST_TICKS)
    customers = 1200  # more than a catch-up step (500): all due within 1.2 ms
    base = time.time_ns() // 1000
    events = [_order(f"c{i}", str(i), base + i) for i in range(customers)]
    (env.directory / "many.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    env.lifecycle("send", str(env.directory / "many.jsonl"))
    worker = env.start_worker()
    got = env.transitions(
        lambda ts: sum(t["transition"] == "went_inactive" for t in ts) >= customers, timeout=180
    )
    inactive = {t["customer_id"]: t["occurred_at"] for t in got if t["transition"] == "went_inactive"}
    assert inactive == {f"c{i}": format_rfc3339(base + i + 3_000_000) for i in range(customers)}
    assert len(got) == 2 * customers
    assert worker.alive(), worker.output()


def test_a_message_kafka_refuses_stops_the_worker_before_its_offset_is_committed(env_factory):
    # static membership: the restarted worker need not wait out the stopped one's session
    env = env_factory(kafka={"partitions": 1}, worker={"static_membership": True})
    transitions = env.config.topics.transitions
    # a topic that takes nothing as large as a transition: the send fails for good
    env.create_topic(transitions, {"max.message.bytes": "200"})
    event = _order("refused", "1", time.time_ns() // 1000)
    (env.directory / "one.jsonl").write_bytes(orjson.dumps(event) + b"\n")
    env.lifecycle("send", str(env.directory / "one.jsonl"))
    worker = env.start_worker()
    assert worker.process.wait(timeout=120) == 74, worker.output()
    assert f"could not be sent after the producer's retries, the first to {transitions}" in worker.output()
    assert env.committed_offsets(env.config.topics.orders) == {}

    env.alter_topic(transitions, {"max.message.bytes": str(1024 * 1024)})
    env.start_worker(port=worker.port)  # the order is processed again: nothing was lost
    [became] = env.transitions(lambda ts: len(ts) >= 1, timeout=120)
    assert (became["customer_id"], became["transition"]) == ("refused", "became_one_timer")


def test_sigkill_mid_history_loses_nothing_and_counts_nothing_twice(env_factory):
    # the restarted worker gets the partitions once the killed one's session is over: 10 s,
    # not the default minute
    env = env_factory(kafka={"partitions": 3}, worker={"session_timeout": "10s"}, **PRESET_LIKE)
    history = generated(env, 1500, seed=11)
    expected, expected_states = env.replay(history)
    expected_changes = _replayed_segment_changes(env, history)
    env.lifecycle("send", str(history))
    first = env.start_worker("crashy")
    env.transitions(lambda ts: len(ts) >= len(expected) // 4, timeout=180)
    first.kill()
    env.start_worker("crashy")  # same data dir: RocksDB as the crash left it
    got = check_against_replay(env, expected, expected_states)
    assert len(got) >= len(expected)
    _check_segment_changes(env, expected_changes)
    check_no_offsets_skipped(env)
    # The crash may leave local writes that never reached the changelog; a worker that
    # takes the partitions over later restores from the changelog, so it must agree too.
    check_changelog(env, expected_states)


def _replayed_segment_changes(env, history: Path) -> list[dict]:
    out = env.directory / "segment-changes.jsonl"
    env.lifecycle("replay", str(history), "--segment-changes", str(out))
    return [orjson.loads(line) for line in out.read_bytes().splitlines()]


def _check_segment_changes(env, expected: list[dict], timeout: float = 120) -> None:
    """Every change of the replay, with its id, and no other id for a (customer, seq)."""
    want = {(c["customer_id"], c["seq"]): c["event_id"] for c in expected}
    assert want, "the history should move customers between segments"

    def ids(messages: list) -> dict[tuple[str, int], set[str]]:
        found: dict[tuple[str, int], set[str]] = {}
        for m in messages:
            c = orjson.loads(m.value)
            found.setdefault((c["customer_id"], c["seq"]), set()).add(c["event_id"])
        return found

    got = ids(env.read(env.config.topics.segment_changes, lambda ms: set(ids(ms)) >= set(want), timeout))
    assert {key: {event_id} for key, event_id in want.items()} == got


def test_a_killed_workers_partitions_go_to_the_other_worker_after_the_session_timeout(env_factory):
    """...which takes them over from its standby copy of them, applied but for its last batch."""
    env = env_factory(kafka={"partitions": 2}, worker={"session_timeout": "8s", "standby_replicas": 1})
    history = generated(env, 1500, seed=53)  # thousands of records a partition: several batches
    expected, expected_states = env.replay(history)
    env.lifecycle("send", str(history))
    first = env.start_worker("first")
    first.wait_ready()
    second = env.start_worker("second")
    wait_for(lambda: "took up partition" in second.output() or not second.alive(), 120, "a take-up")
    theirs = {n for n in range(2) if f"took up partition {n}:" in second.output()}
    assert theirs and second.alive()
    env.transitions(lambda ts: len(ts) >= len(expected), timeout=180)
    changelog_ends = env.end_offsets(f"{env.config.worker.app_id}-customers-changelog")

    def copy_lag(partition: int) -> float | None:
        lags = first.metric("lifecycle_standby_lag")
        mine = [
            lag
            for labels, lag in lags.items()
            if f'partition="{partition}"' in labels and "customers" in labels
        ]
        return mine[0] if mine else None

    def copies_applied() -> bool:
        lags = {n: copy_lag(n) for n in theirs}
        return all(lag is not None and lag < min(1000, changelog_ends[n] // 2) for n, lag in lags.items())

    wait_for(copies_applied, 60, "the first worker's standby copies to be applied")
    seen = len(first.output())
    second.kill()
    killed = time.monotonic()

    def taken_over() -> bool:
        return all(f"took up partition {n}:" in first.output()[seen:] for n in theirs)

    wait_for(taken_over, 90, "the first worker to take the killed one's partitions")
    # faust's default session of 60 s would keep them away twice as long as this allows
    assert time.monotonic() - killed < 30
    check_against_replay(env, expected, expected_states)
    check_no_offsets_skipped(env)


def test_with_static_membership_a_killed_worker_restarted_gets_its_partitions_back_at_once(env_factory):
    env = env_factory(kafka={"partitions": 3}, worker={"static_membership": True})
    history = generated(env, 1500, seed=19)
    expected, expected_states = env.replay(history)
    env.lifecycle("send", str(history))
    first = env.start_worker("static")
    env.transitions(lambda ts: len(ts) >= len(expected) // 4, timeout=180)
    taken_up = first.output().count("took up partition")
    first.kill()
    killed_at = time.monotonic()
    again = env.start_worker("static", port=first.port)  # same host, port and data dir
    wait_for(
        lambda: again.output().count("took up partition") > taken_up or not again.alive(),
        120,
        "the restarted worker to take up its partitions",
    )
    assert again.alive(), again.output()
    # A dynamic member gets them only once the killed member's session has expired (faust's
    # broker_session_timeout, 60 s by default).
    assert time.monotonic() - killed_at < 45
    check_against_replay(env, expected, expected_states)
    check_no_offsets_skipped(env)


def test_second_worker_joining_and_leaving_mid_stream_changes_nothing(env_factory):
    env = env_factory(kafka={"partitions": 4})
    history = generated(env, 1500, seed=13)
    expected, expected_states = env.replay(history)
    second_worker_joins_and_leaves(env, history, expected)
    check_against_replay(env, expected, expected_states)
    check_no_offsets_skipped(env)
    check_changelog(env, expected_states)


def test_bad_messages_go_to_dead_letters_with_reasons_and_the_partition_keeps_flowing(env_factory):
    env = env_factory(kafka={"partitions": 1})
    good = {
        "type": "order.placed",
        "event_id": "g1",
        "customer_id": "fine",
        "order_id": "o1",
        "occurred_at": "2025-01-01T00:00:00Z",
        "total": {"amount_minor": 100, "currency": "EUR"},
    }
    future = dict(good, event_id="f1", customer_id="later", occurred_at="2099-01-01T00:00:00Z")
    wrong_type = dict(
        good, event_id="w1", customer_id="typo", total={"amount_minor": "lots", "currency": "EUR"}
    )
    unknown = dict(good, event_id="u1", customer_id="odd", type="order.teleported")
    oversize = orjson.dumps(dict(good, event_id="big", customer_id="big", coupon="x" * (1024 * 1024 + 1)))
    after = dict(good, event_id="g2", customer_id="after", order_id="o2")
    lines = [
        b"{this is not json",
        orjson.dumps(wrong_type),
        orjson.dumps(unknown),
        oversize,
        orjson.dumps(future),
        orjson.dumps(good),
        orjson.dumps(after),
    ]
    env.lifecycle("topics", "create")
    env.produce(lines)
    env.start_worker()
    letters = env.read(env.config.topics.dead_letters, lambda ms: len(ms) >= 5, timeout=180)
    records = [orjson.loads(m.value) for m in letters]
    assert len(records) == 5
    reasons = [r["reason"] for r in records]
    assert reasons[0].startswith("not JSON")
    assert "$.total.amount_minor" in reasons[1]
    assert "$.type" in reasons[2] or "teleported" in reasons[2]
    assert "limit" in reasons[3]
    assert "max_future_skew" in reasons[4]
    assert [r["source"]["offset"] for r in records] == [0, 1, 2, 3, 4]
    assert all(r["source"]["topic"] == env.config.topics.orders for r in records)
    import base64

    assert base64.b64decode(records[0]["raw_base64"]) == lines[0]
    assert records[3]["raw_size"] == len(oversize) and records[3]["raw_base64_truncated"] is True
    got = env.transitions(lambda ts: {t["customer_id"] for t in ts} >= {"fine", "after"}, timeout=60)
    assert {t["customer_id"] for t in got} == {"fine", "after"}


# what stopped the worker for good before issue 31: each a rejection now
POISON = [
    b'{"a":' * 2000 + b"1" + b"}" * 2000,
    b"[" * 100_000 + b"]" * 100_000,
    b'{"type":"order.placed","event_id":"\xed\xa0\x80","customer_id":"c1","order_id":"o1"}',
    b'{"type":"order.placed","event_id":"p4","customer_id":"c1","occurred_at":"2025-03-01T10:00:00Z",'
    b'"order_id":"o1","total":{"amount_minor":' + b"9" * 400 + b',"currency":"EUR"}}',
]


def test_poison_messages_among_valid_events_are_dead_lettered_and_the_rest_is_exact(env_factory):
    env = env_factory(kafka={"partitions": 1}, **PRESET_LIKE)
    history = generated(env, 60, seed=31)
    expected, expected_states = env.replay(history, "--arrival-order")
    valid = history.read_bytes().splitlines()
    lines: list[bytes] = []
    for number, line in enumerate(valid):
        lines.append(line)
        if number % 25 == 0:
            lines.append(POISON[number // 25 % len(POISON)])
    poisoned = len(lines) - len(valid)
    env.lifecycle("topics", "create")
    env.produce(lines)
    worker = env.start_worker()
    check_against_replay(env, expected, expected_states)
    letters = env.read(env.config.topics.dead_letters, lambda ms: len(ms) >= poisoned, timeout=60)
    records = [orjson.loads(m.value) for m in letters]
    assert len(records) == poisoned
    reasons = {r["reason"] for r in records}
    assert reasons == {
        "not JSON this engine reads: nested too deeply",
        "invalid order event: Expected `object`, got `array`",
        "not UTF-8: bytes ED inside a string are not valid UTF-8",
        "invalid order event: Expected `int` <= 1000000000000000 - at `$.total.amount_minor`",
    }
    assert worker.alive(), worker.output()


def test_segment_changes_live_equal_replay_and_a_new_segment_arrives_replayed(env_factory):
    env = env_factory(kafka={"partitions": 3}, **PRESET_LIKE)
    history = generated(env, 300, seed=23)
    out = env.directory / "segmented"
    env.lifecycle(
        "replay",
        str(history),
        "--segment-changes",
        f"{out}.c",
        "--states",
        f"{out}.s",
        "--transitions",
        f"{out}.t",
    )
    expected = [orjson.loads(line) for line in Path(f"{out}.c").read_bytes().splitlines()]
    expected_states = [orjson.loads(line) for line in Path(f"{out}.s").read_bytes().splitlines()]
    assert {c["change"] for c in expected} == {"entered_segment", "left_segment", "class_changed"}
    env.lifecycle("send", str(history))
    worker = env.start_worker("seg")
    topic = env.config.topics.segment_changes
    want = {(c["customer_id"], c["seq"]): c["event_id"] for c in expected}

    def changes(messages: list) -> list[dict]:
        return [orjson.loads(m.value) for m in messages]

    got = changes(
        env.read(topic, lambda ms: {(c["customer_id"], c["seq"]) for c in changes(ms)} >= set(want), 180)
    )
    assert {(c["customer_id"], c["seq"]): c["event_id"] for c in got} == want
    by_id = {c["event_id"]: c for c in expected}
    for change in got:
        mine = by_id[change["event_id"]]
        assert (change["change"], change["segment"], change["to_class"], change["occurred_at"]) == (
            mine["change"],
            mine["segment"],
            mine["to_class"],
            mine["occurred_at"],
        )
    want_states = {s["customer_id"]: (s["segments"], s["class"]) for s in expected_states}
    env.latest_states(
        lambda latest: {k: (v["segments"], v["class"]) for k, v in latest.items()} == want_states
    )
    worker.stop()

    # a segment added: the restarted worker re-evaluates every customer it takes up
    env.reconfigure(**{"segments.buyers": {"orders_over": 0}})
    restarted = env.start_worker("seg")
    late = [_order(f"late-{p}", f"late-{p}", int(time.time() * 1e6)) for p in range(30)]
    (env.directory / "late.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in late))
    env.lifecycle("send", str(env.directory / "late.jsonl"))  # a message for every partition
    buyers = {s["customer_id"] for s in expected_states if s["order_count"] > 0}
    reevaluated = changes(
        env.read(
            topic,
            lambda ms: {c["customer_id"] for c in changes(ms) if c["cause"] == "configuration"} >= buyers,
            120,
        )
    )
    configured = [c for c in reevaluated if c["cause"] == "configuration"]
    assert {c["customer_id"] for c in configured} == buyers
    assert all(
        c["replayed"] and c["segment"] == "buyers" and c["change"] == "entered_segment" for c in configured
    )
    assert restarted.alive(), restarted.output()


def test_a_message_lost_on_its_way_to_the_worker_is_read_again_and_nothing_is_missing(env_factory):
    env = env_factory(kafka={"partitions": 1})
    history = generated(env, 200, seed=31)
    expected, expected_states = env.replay(history)
    env.lifecycle("send", str(history))
    # offsets 40 and 41 never reach the worker's code the first time, as faust loses a
    # message around a rebalance
    worker = env.start_worker("holes", environ={"LIFECYCLE_FAULT_DROP_ORDERS": "0:40,0:41"})
    check_against_replay(env, expected, expected_states)
    check_changelog(env, expected_states)
    check_no_offsets_skipped(env)
    assert "offset 42 arrived before 40; reading the partition again from 40" in worker.output()


def test_the_last_message_lost_on_its_way_is_read_again_though_nothing_follows_it(env_factory):
    # faust drops what it fetches for a partition it holds paused (its restore after a
    # rebalance; docs/field-notes.md). With nothing after it, no later offset shows the hole:
    # only the consumer's fetch position, past what was processed, does.
    env = env_factory(kafka={"partitions": 1})
    history = generated(env, 100, seed=37)
    expected, expected_states = env.replay(history)
    env.lifecycle("send", str(history))
    last = env.end_offsets(env.config.topics.orders)[0] - 1
    worker = env.start_worker("tail", environ={"LIFECYCLE_FAULT_DROP_ORDERS": f"0:{last}"})
    check_against_replay(env, expected, expected_states)
    check_changelog(env, expected_states)
    check_no_offsets_skipped(env)
    assert f"fetched up to {last + 1}, nothing processed from {last}" in worker.output()


def test_offsets_faust_jumped_over_and_the_worker_read_again_are_committed_whole(env_factory):
    # faust's read offset jumps from 39 to 140, as to a message fetched before a rebalance:
    # it records 40-140 as a gap, and the worker, seeing the hole, reads them again. Folded
    # into the acked offsets a second time, each of those offsets held the commits back by
    # one commit, 2.8 s (docs/field-notes.md, "faust's commits crawled").
    env = env_factory(kafka={"partitions": 1})
    history = generated(env, 200, seed=43)
    expected, expected_states = env.replay(history)
    orders = env.config.topics.orders
    env.lifecycle("send", str(history))
    end = env.end_offsets(orders)
    skipped = ",".join(f"0:{offset}" for offset in range(40, 140))
    worker = env.start_worker("jump", environ={"LIFECYCLE_FAULT_SKIP_FETCHED": skipped})
    check_against_replay(env, expected, expected_states)
    # the crawl: 101 commits, near five minutes; whole, the next commit or two
    wait_for(lambda: env.committed_offsets(orders) == end, 30, "the commits at the partition's end")
    assert "offset 140 arrived before 40; reading the partition again from 40" in worker.output()
    check_no_offsets_skipped(env)


def test_orders_committed_but_never_processed_are_read_again_from_where_the_state_stops(env_factory):
    # What faust did in the churn test (docs/field-notes.md): a worker committed the end of a
    # partition it had not processed. Here the commit is made by hand, and the next owner,
    # restoring from the changelog alone, must see the hole in its state and read it again.
    env = env_factory(kafka={"partitions": 2})
    history = generated(env, 300, seed=41)
    expected, expected_states = env.replay(history)
    lines = history.read_bytes().splitlines(keepends=True)
    (env.directory / "first.jsonl").write_bytes(b"".join(lines[: len(lines) // 2]))
    (env.directory / "second.jsonl").write_bytes(b"".join(lines[len(lines) // 2 :]))
    orders = env.config.topics.orders
    env.lifecycle("send", str(env.directory / "first.jsonl"))
    first = env.start_worker("before")
    half = env.end_offsets(orders)
    first.wait_ready()
    wait_for(lambda: env.committed_offsets(orders) == half, 120, "the first half committed")
    first.stop()
    env.lifecycle("send", str(env.directory / "second.jsonl"))
    env.commit_offsets(orders, env.end_offsets(orders))
    after = env.start_worker("after")  # its own data dir: the state comes from the changelog
    check_against_replay(env, expected, expected_states)
    check_changelog(env, expected_states)
    for number, offset in half.items():
        assert f"orders partition {number}: committed offset" in after.output()
        assert f"reading the partition again from {offset}" in after.output()


def test_a_message_whose_handling_fails_stops_the_worker_before_its_offset_is_committed(env_factory):
    # static membership: the restarted worker need not wait out the stopped one's session
    env = env_factory(kafka={"partitions": 1}, worker={"static_membership": True})
    history = generated(env, 120, seed=37)
    expected, expected_states = env.replay(history)
    env.lifecycle("send", str(history))
    failing = env.start_worker("fails", environ={"LIFECYCLE_FAULT_FAIL_ORDERS": "0:300"})
    assert failing.process.wait(timeout=120) == 70, failing.output()[-3000:]
    assert f"handling {env.config.topics.orders}[0] offset 300 failed; stopping" in failing.output()
    assert env.committed_offsets(env.config.topics.orders).get(0, 0) <= 300
    env.start_worker("fails", port=failing.port)  # the fault gone: handled this time, nothing lost
    check_against_replay(env, expected, expected_states)
    check_no_offsets_skipped(env)


def test_model_scores_in_live_snapshots_equal_replay(env_factory):
    env = env_factory(kafka={"partitions": 2})
    history = generated(env, 300, seed=29)
    model = env.directory / "model.json"
    env.lifecycle("model", "fit", str(history), "--calibration-end", "2025-07-01", "-o", str(model))
    env.reconfigure(model={"path": str(model)})
    expected, expected_states = env.replay(history)
    env.lifecycle("send", str(history))
    env.start_worker("scored")
    got = env.transitions(lambda ts: len(ts) >= len(expected), timeout=180)
    by_id = {t["event_id"]: t["customer"] for t in expected}
    scores = ("p_alive", "expected_orders_365d", "expected_value_365d")
    for transition in got:
        mine, theirs = transition["customer"], by_id[transition["event_id"]]
        assert [mine[k] for k in scores] == [theirs[k] for k in scores], transition
    assert all(t["customer"]["p_alive"] is not None for t in got if t["customer"]["order_count"])
    # state records are scored at the partition clock when written
    buyers = {s["customer_id"] for s in expected_states if s["order_count"]}
    latest = env.latest_states(lambda latest: buyers <= set(latest))
    assert all(0 < latest[c]["p_alive"] <= 1 and latest[c]["scores_at"] for c in buyers)


def test_segments_on_the_model_live_equal_replay(env_factory):
    env = env_factory(kafka={"partitions": 2})
    history = generated(env, 300, seed=31)
    model = env.directory / "model.json"
    env.lifecycle("model", "fit", str(history), "--calibration-end", "2025-07-01", "-o", str(model))
    env.reconfigure(
        model={"path": str(model)},
        **{
            "segments.overdue": {"overdue": 1.5},
            "segments.fading": {"p_alive_below": 0.3},
            "segments.valuable": {"expected_value_over": "40 EUR"},
        },
    )
    out = env.directory / "model-segments"
    env.lifecycle("replay", str(history), "--segment-changes", f"{out}.c")
    expected = [orjson.loads(line) for line in Path(f"{out}.c").read_bytes().splitlines()]
    assert {c["segment"] for c in expected} == {"overdue", "fading", "valuable"}
    env.lifecycle("send", str(history))
    env.start_worker("model-segments")
    want = {(c["customer_id"], c["seq"]): c for c in expected}
    got = [
        orjson.loads(m.value)
        for m in env.read(
            env.config.topics.segment_changes,
            lambda ms: (
                {(c["customer_id"], c["seq"]) for c in map(orjson.loads, (m.value for m in ms))} >= set(want)
            ),
            180,
        )
    ]
    for change in got:
        mine = want[change["customer_id"], change["seq"]]
        assert (change["event_id"], change["segment"], change["change"], change["occurred_at"]) == (
            mine["event_id"],
            mine["segment"],
            mine["change"],
            mine["occurred_at"],
        )


def test_experiment_groups_live_equal_replay_and_held_out_changes_never_reach_a_per_name_topic(env_factory):
    welcome = {"on": "became_one_timer", "holdout": 0.5, "within": "30d"}
    env = env_factory(kafka={"partitions": 3}, **{"experiments.welcome": welcome})
    now = time.time_ns() // 1000  # fresh changes: only they go to per-name topics at all
    events = [_order(f"c{i}", str(i), now - 60_000_000 + i * 1000) for i in range(80)]
    events += [_order(f"c{i}", f"{i}b", now - 30_000_000 + i * 1000) for i in range(0, 80, 4)]
    history = env.directory / "fresh.jsonl"
    history.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    expected, _ = env.replay(history)
    env.lifecycle("send", str(history))
    worker = env.start_worker()
    got = env.transitions(lambda ts: len(ts) >= len(expected), timeout=180)

    def groups(transitions: list[dict]) -> dict[tuple[str, int], list[dict]]:
        return {(t["customer_id"], t["seq"]): t["experiments"] for t in transitions}

    assert groups(got) == groups(expected)
    exposed = {t["customer_id"]: t["experiments"] for t in got if t["transition"] == "became_one_timer"}
    assert len(exposed) == 80 and all(len(entries) == 1 for entries in exposed.values())
    treatment = {c for c, entries in exposed.items() if entries[0]["group"] == "treatment"}
    assert 10 < len(treatment) < 70
    # every output is in Kafka once the orders are committed: the per-name topic is complete
    orders = env.config.topics.orders
    wait_for(lambda: env.committed_offsets(orders) == env.end_offsets(orders), 120, "the commit")
    per_name = f"{env.config.topics.transitions}.became_one_timer"
    mailed = env.read(per_name, lambda ms: len(ms) >= len(treatment), timeout=60)
    assert sum(env.end_offsets(per_name).values()) == len(treatment)
    assert {orjson.loads(m.value)["customer_id"] for m in mailed} == treatment
    assert worker.alive(), worker.output()
