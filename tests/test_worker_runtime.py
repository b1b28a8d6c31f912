"""The live worker's logic without Kafka: plain dicts stand in for the Faust tables."""

from __future__ import annotations

import orjson

from stream.config import load_config
from stream.lifecycle.instants import from_us
from stream.messages import Tick, encode
from stream.worker.runtime import CATCH_UP_STEP, Worker
from tests.helpers import NOW, at, placed


def _worker() -> Worker:
    config = load_config(None, environ={}, overrides={"kafka": {"partitions": 1}})
    return Worker(config, {}, {}, {}, now_us=lambda: NOW, owned_partitions=lambda: [0])


def _names(worker: Worker) -> list[str]:
    topic = worker.topics.transitions
    return [orjson.loads(o.value)["transition"] for o in worker.drain() if o.topic == topic and o.value]


def test_a_tick_far_ahead_fires_its_deadlines_a_step_at_a_time_and_all_of_them():
    worker = _worker()
    customers = CATCH_UP_STEP * 2 + 7
    orders = worker.topics.orders
    for i in range(customers):
        event = placed(f"c{i}", f"o{i}", at(0, us=i))
        worker.on_message(orders, 0, i, f"c{i}".encode(), orjson.dumps(event))
    assert _names(worker) == ["became_one_timer"] * customers

    tick = encode(Tick(at=from_us(at(40))))
    worker.on_message(worker.topics.ticks, 0, 0, None, tick)
    steps = [_names(worker)]
    while worker.catching_up(0):
        worker.catch_up(0)
        steps.append(_names(worker))

    assert [len(step) for step in steps] == [CATCH_UP_STEP, CATCH_UP_STEP, 7]
    assert all(name == "went_inactive" for step in steps for name in step)
    assert worker.partitions[0].core.clock_us == at(40)
    assert not worker.catching_up(0)


def test_a_partition_let_go_of_mid_catch_up_stops_there():
    worker = _worker()
    orders = worker.topics.orders
    for i in range(CATCH_UP_STEP + 1):
        event = placed(f"c{i}", f"o{i}", at(0, us=i))
        worker.on_message(orders, 0, i, f"c{i}".encode(), orjson.dumps(event))
    worker.drain()
    worker.on_message(worker.topics.ticks, 0, 0, None, encode(Tick(at=from_us(at(40)))))
    assert worker.catching_up(0)
    worker.let_go([0])
    assert not worker.catching_up(0)
    worker.catch_up(0)  # nothing to do, nothing raised


def test_a_jump_in_orders_offsets_is_logged_and_counted_as_messages_skipped(caplog):
    worker = _worker()
    orders = worker.topics.orders
    for offset in (0, 1, 4):
        event = placed(f"c{offset}", f"o{offset}", at(0, us=offset))
        worker.on_message(orders, 0, offset, None, orjson.dumps(event))
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert skipped == ["orders partition 0: offset 4 follows 1: 2 message(s) skipped"]
    registry = worker.metrics.registry
    assert registry.get_sample_value("lifecycle_skipped_orders_total", {"partition": "0"}) == 2


def test_a_static_member_id_names_the_host_and_web_address_it_was_given_with():
    from stream.worker.app import _group_instance_id

    def member(port: int, host: str = "0.0.0.0") -> str:
        overrides = {"worker": {"static_membership": True, "web_port": port, "web_host": host}}
        return _group_instance_id(load_config(None, environ={}, overrides=overrides))

    # same address, same member (its assignment comes back); another address, a new member
    assert member(6066) == member(6066)
    assert len({member(6066), member(6067), member(6066, host="10.0.0.7")}) == 3
