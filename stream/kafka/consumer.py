"""faust's Kafka consumer, handing each fetched message on without four tasks.

For every message it fetches, faust's consumer awaits `wait_first(deliver(message),
suspend_flow.wait())`. mode's `wait_first` runs each of the two, and the consumer's
`stopped` and `crashed` events, in a task of its own, waits for the first to finish and
cancels the other three: four tasks made, three cancelled, a message. Delivering almost
never waits (it puts the event in a stream's queue), yet in the worker those tasks took 11 %
of its event loop (py-spy over `bench/worker_bench.py`), the part of faust's per-message
price that buys nothing when nothing waits.

So the first step of whatever `wait_first` is given first runs at once, in the caller's
task. Done in that step, it is what faust's way would have returned, without a task. If it
has to wait (the flow suspended for a rebalance, a stream's buffer full, the producer's
buffer full), the rest of it goes through mode's `wait_first` as before: it is given up when
the flow is suspended or the consumer stops or crashes, exactly as faust gives up a delivery.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from types import CoroutineType
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import WaitArgT, WaitResults


class _Rest:
    """The rest of a coroutine whose first step already ran and stopped at `waiting_on`: an
    awaitable that goes on from there, as `await` would have had it not been interrupted."""

    __slots__ = ("coroutine", "waiting_on")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
        self.coroutine = coroutine
        self.waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine, waiting_on = self.coroutine, self.waiting_on
        while True:
            try:
                sent = yield waiting_on
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as error:  # thrown in by the task driving us: a cancellation
                try:
                    waiting_on = coroutine.throw(error)
                except StopIteration as finished:
                    return finished.value
            else:
                try:
                    waiting_on = coroutine.send(sent)
                except StopIteration as finished:
                    return finished.value


def _close_unstarted(waitables: tuple[WaitArgT, ...]) -> None:
    for waitable in waitables:
        if isinstance(waitable, CoroutineType):
            waitable.close()  # never started: closing it keeps "never awaited" out of the logs


class FirstStepInline:
    """Mixin for a mode `Service`: `wait_first` runs the first step of its first coroutine in
    the caller's task, and makes tasks only if that step has to wait."""

    async def wait_first(self, *coros: WaitArgT, timeout: float | None = None) -> WaitResults:
        first = coros[0] if coros else None
        if not isinstance(first, CoroutineType):
            return await super().wait_first(*coros, timeout=timeout)  # type: ignore[misc,no-any-return]
        try:
            waiting_on = first.send(None)
        except StopIteration as finished:
            _close_unstarted(coros[1:])
            if self._stopped.is_set() or self._crashed.is_set():  # type: ignore[attr-defined]
                return WaitResults([], [], True)
            return WaitResults([first], [finished.value], False)
        except BaseException:
            _close_unstarted(coros[1:])
            raise
        rest = _Rest(first, waiting_on)
        results: WaitResults = await super().wait_first(rest, *coros[1:], timeout=timeout)  # type: ignore[misc]
        # callers look their coroutine up among the winners: give them back the one they passed
        done = [first if winner is rest else winner for winner in results.done]
        return WaitResults(done, results.results, results.stopped)


class Consumer(FirstStepInline, faust_aiokafka.Consumer):  # type: ignore[misc]  # mode's own signature
    """faust's aiokafka consumer, delivering a message in the fetching task when it can."""


class Transport(faust_aiokafka.Transport):
    """faust's aiokafka transport with the consumer above."""

    Consumer = Consumer
