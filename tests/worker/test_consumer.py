"""The consumer's `wait_first`: a delivery that does not wait runs in the fetching task; one
that waits is given up, as in faust, when the flow is suspended or the consumer stops."""

from __future__ import annotations

import asyncio
import warnings

import pytest
import pytest_asyncio
from mode import Service

from stream.worker.faust_internals.consumer import Consumer, FirstStepInline


class Fetching(FirstStepInline, Service):
    """A mode service with the consumer's `wait_first`."""


@pytest_asyncio.fixture(loop_scope="function")
async def fetching():
    service = Fetching()  # on the test's own loop: mode's tasks run on the service's loop
    await service.start()
    yield service
    await service.stop()


async def test_a_delivery_that_does_not_wait_runs_in_the_callers_task(fetching):
    ran_in = []

    async def deliver() -> str:
        ran_in.append(asyncio.current_task())
        return "delivered"

    suspended = asyncio.Event()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the flow's wait, never started, must not warn
        results = await fetching.wait_first(coroutine := deliver(), suspended.wait())
    assert ran_in == [asyncio.current_task()]
    assert results.done == [coroutine]
    assert results.results == ["delivered"]
    assert not results.stopped


async def test_a_delivery_that_waits_returns_its_result_under_the_coroutine_passed(fetching):
    room = asyncio.get_running_loop().create_future()

    async def deliver() -> str:
        await room
        return "delivered late"

    suspended = asyncio.Event()
    waiting = asyncio.ensure_future(fetching.wait_first(coroutine := deliver(), suspended.wait()))
    await asyncio.sleep(0)
    assert not waiting.done()
    room.set_result(None)
    results = await waiting
    assert results.done == [coroutine]
    assert results.results == ["delivered late"]


async def test_a_waiting_delivery_is_given_up_when_the_flow_is_suspended(fetching):
    given_up = asyncio.Event()

    async def deliver() -> None:
        try:
            await asyncio.get_running_loop().create_future()  # a full buffer: never room
        except asyncio.CancelledError:
            given_up.set()
            raise

    suspended = asyncio.Event()
    waiting = asyncio.ensure_future(fetching.wait_first(deliver(), suspended))
    await asyncio.sleep(0)
    suspended.set()
    results = await waiting
    assert results.done == [suspended]
    await asyncio.wait_for(given_up.wait(), timeout=5)


async def test_a_waiting_delivery_is_given_up_when_the_consumer_stops():
    service = Fetching()
    await service.start()
    given_up = asyncio.Event()

    async def deliver() -> None:
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            given_up.set()
            raise

    waiting = asyncio.ensure_future(service.wait_first(deliver(), asyncio.Event()))
    await asyncio.sleep(0)
    await service.stop()
    assert (await waiting).stopped
    await asyncio.wait_for(given_up.wait(), timeout=5)


async def test_a_stopped_consumer_reports_stopped_even_when_the_delivery_finished():
    service = Fetching()
    await service.start()
    await service.stop()

    async def deliver() -> str:
        return "delivered"

    assert (await service.wait_first(deliver(), asyncio.Event())).stopped


@pytest.mark.parametrize("waits_first", [False, True])
async def test_a_failing_delivery_raises_its_error(fetching, waits_first):
    async def deliver() -> None:
        if waits_first:
            await asyncio.sleep(0)
        raise ValueError("cannot decode")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="cannot decode"):
            await fetching.wait_first(deliver(), asyncio.Event().wait())


async def test_events_and_other_waitables_go_the_way_of_mode(fetching):
    ready = asyncio.Event()
    ready.set()
    results = await fetching.wait_first(ready)
    assert results.done == [ready]


def test_the_worker_consumes_with_this_consumer(tmp_path):
    from stream.config import load_config
    from stream.worker.app import create_app

    config_file = tmp_path / "shop.toml"
    config_file.write_text(f'[worker]\ndata_dir = "{tmp_path}"\n')
    app, _ = create_app(load_config(config_file))
    assert isinstance(app.consumer, Consumer)
