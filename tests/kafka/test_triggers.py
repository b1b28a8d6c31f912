"""Triggers on a real broker: the worker's firings are the replay's, through a SIGKILL; a
firing due with no event arriving comes from the partition's ticks; fresh firings reach the
per-trigger topic unless an experiment holds them out."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from stream.lifecycle.instants import format_rfc3339
from tests.kafka.env import check_against_replay, check_no_offsets_skipped, generated, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

TRIGGERS: dict[str, dict] = {
    "triggers.welcome": {"on": "signed_up", "only_state": ["prospect"], "once": True},
    "triggers.cart_abandoned": {"on": "engaged:added_to_cart", "after": "1h", "unless": ["order"]},
    "triggers.browse_abandoned": {
        "on": "engaged:product_viewed",
        "after": "1d",
        "unless": ["order", "engaged:added_to_cart"],
    },
    "triggers.second_look": {"on": "became_one_timer", "after": "20d", "only_state": ["one_timer"]},
    "segments.leads": {"state": ["prospect"], "engaged": ["added_to_cart"], "engaged_within": "30d"},
}


def replayed_firings(env, history: Path) -> list[dict]:
    out = env.directory / "firings.jsonl"
    env.lifecycle("replay", str(history), "--triggers", str(out))
    return [orjson.loads(line) for line in out.read_bytes().splitlines()]


def firings(env, until, timeout: float = 240) -> list[dict]:
    topic = env.config.topics.triggers
    messages = env.read(topic, lambda ms: until([orjson.loads(m.value) for m in ms]), timeout)
    return [orjson.loads(m.value) for m in messages]


def test_firings_live_equal_replay_through_a_sigkill(env_factory):
    env = env_factory(kafka={"partitions": 3}, worker={"session_timeout": "10s"}, **TRIGGERS)
    history = generated(env, 400, seed=21, engagement=4)
    expected, expected_states = env.replay(history)
    expected_firings = replayed_firings(env, history)
    assert {f["trigger"] for f in expected_firings} == {
        "welcome",
        "cart_abandoned",
        "browse_abandoned",
        "second_look",
    }
    want = {(f["customer_id"], f["seq"]): f["event_id"] for f in expected_firings}
    env.lifecycle("send", str(history))
    first = env.start_worker("crashy")
    firings(env, lambda fs: len(fs) >= len(want) // 4, timeout=180)
    first.kill()
    env.start_worker("crashy")  # the same data dir: RocksDB as the crash left it
    got = firings(env, lambda fs: {(f["customer_id"], f["seq"]) for f in fs} >= set(want))
    ids: dict[tuple[str, int], set[str]] = {}
    for f in got:
        ids.setdefault((f["customer_id"], f["seq"]), set()).add(f["event_id"])
    assert set(ids) == set(want)  # none lost, none made up
    assert all(found == {want[key]} for key, found in ids.items())  # sent again: the same id
    replayed = {f["event_id"]: f for f in expected_firings}
    for f in got:
        expected_one = replayed[f["event_id"]]
        assert (f["trigger"], f["occurred_at"], f["cause_event_id"]) == (
            expected_one["trigger"],
            expected_one["occurred_at"],
            expected_one["cause_event_id"],
        )
    check_against_replay(env, expected, expected_states)
    check_no_offsets_skipped(env)


def test_a_firing_due_with_no_event_arriving_comes_and_only_fresh_treatment_reaches_its_topic(env_factory):
    env = env_factory(
        kafka={"partitions": 3},
        time={"ticks": True, "tick_interval": "200ms", "tick_delay": "0s"},
        **{
            "triggers.cart_abandoned": {"on": "engaged:added_to_cart", "after": "3s", "unless": ["order"]},
            "experiments.cart_mail": {"on": "cart_abandoned", "holdout": 0.5, "within": "7d"},
        },
    )
    now = time.time_ns() // 1000
    events = []
    for n in range(40):
        events.append(
            {
                "type": "customer.engaged",
                "event_id": f"e{n}",
                "customer_id": f"c{n}",
                "occurred_at": format_rfc3339(now + n),
                "kind": "added_to_cart",
                "cart_id": f"k{n}",
            }
        )
    # every fourth cart is followed by its order within the three seconds: no firing
    events += [
        {
            "type": "order.placed",
            "event_id": f"o{n}",
            "customer_id": f"c{n}",
            "order_id": f"o{n}",
            "occurred_at": format_rfc3339(now + 1_000_000 + n),
            "total": {"amount_minor": 1000, "currency": "EUR"},
        }
        for n in range(0, 40, 4)
    ]
    history = env.directory / "carts.jsonl"
    history.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    env.lifecycle("send", str(history))
    worker = env.start_worker()
    got = firings(env, lambda fs: len(fs) >= 30, timeout=120)
    assert {f["customer_id"] for f in got} == {f"c{n}" for n in range(40) if n % 4}
    assert all(f["cart_id"] == f"k{f['customer_id'][1:]}" and not f["replayed"] for f in got)
    treatment = {f["customer_id"] for f in got if f["experiments"][0]["group"] == "treatment"}
    assert 3 < len(treatment) < 27
    per_trigger = f"{env.config.topics.triggers}.cart_abandoned"
    orders = env.config.topics.orders
    wait_for(lambda: env.committed_offsets(orders) == env.end_offsets(orders), 120, "the commit")
    wait_for(lambda: sum(env.end_offsets(per_trigger).values()) >= len(treatment), 60, "the mails")
    mailed = env.read(per_trigger, lambda ms: len(ms) >= len(treatment), timeout=60)
    assert sum(env.end_offsets(per_trigger).values()) == len(treatment)
    assert {orjson.loads(m.value)["customer_id"] for m in mailed} == treatment
    assert worker.metric("lifecycle_trigger_firings_total") == {'{trigger="cart_abandoned"}': 30.0}
    pending = worker.metric("lifecycle_trigger_pending")
    assert len(pending) == 3 and sum(pending.values()) == 0  # every partition's, none left
    assert worker.alive(), worker.output()


@pytest.mark.slow
def test_a_worker_after_a_rebuild_fires_what_the_replay_fires(env_factory):
    env = env_factory(kafka={"partitions": 3}, **TRIGGERS)
    history = generated(env, 300, seed=23, engagement=3)
    expected_firings = replayed_firings(env, history)
    want = {(f["customer_id"], f["seq"]): f["event_id"] for f in expected_firings}
    lines = history.read_bytes().splitlines(keepends=True)
    (env.directory / "history.jsonl").write_bytes(b"".join(lines[: len(lines) * 2 // 3]))
    (env.directory / "later.jsonl").write_bytes(b"".join(lines[len(lines) * 2 // 3 :]))
    env.lifecycle("rebuild", "--emit-transitions", str(env.directory / "history.jsonl"))
    rebuilt = firings(env, lambda fs: len(fs) > 0, timeout=30)
    assert all(f["replayed"] for f in rebuilt)  # history mails no one
    worker = env.start_worker("after-rebuild")
    worker.wait_ready()
    env.lifecycle("send", str(env.directory / "later.jsonl"))
    # firings armed in the rebuilt part and due in the later one come from the worker
    got = firings(env, lambda fs: {(f["customer_id"], f["seq"]) for f in fs} >= set(want))
    assert {(f["customer_id"], f["seq"]): f["event_id"] for f in got} == want
    assert len(got) == len(want)
