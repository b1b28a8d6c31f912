"""faust's send buffer, with flushes that mean flushed and waits that cost one wake-up.

Every table changelog write and every output of the worker passes through faust's
`ProducerBuffer`, in the order it was made (handoffs between workers rely on that order).
faust commits offsets right after flushing it, but its `flush()` gives up after 0.1 s
without progress, with messages still queued: under load the offsets ran ahead of the
changelog, and a partition handed to another worker came back without the customers
written last. Its size also drops when the sending task takes a message, before that
message reaches the producer, so even a patient "wait until empty" could miss one.

This subclass keeps faust's queue and its one sending task, and adds two events: `idle`,
set when the queue is empty and the last message taken from it has been handed to the
producer (whose own flush then covers it), and `ebbed`, set when the queue is back under
half its limit. A wait is one wake-up, not one `asyncio.wait_for` per message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from faust.transport.producer import ProducerBuffer
from faust.types.tuples import FutureMessage
from mode import Service

log = logging.getLogger(__name__)


class DrainingBuffer(ProducerBuffer):
    max_messages = 1000
    app: Any  # faust's app, set by `replace_buffer`

    def __post_init__(self) -> None:
        super().__post_init__()
        self.idle = asyncio.Event()
        self.idle.set()
        self.ebbed = asyncio.Event()
        self.ebbed.set()
        # handed to the producer since `take_handed` last took them
        self.unconfirmed: list[FutureMessage] = []
        self._topic_names: dict[Any, str] = {}

    def put(self, fut: FutureMessage) -> None:
        self.idle.clear()
        super().put(fut)

    @Service.task
    async def _handle_pending(self) -> None:
        get_pending = self.pending.get
        send_pending = self._send_pending
        low_water = self.max_messages // 2
        while not self.should_stop:
            message = await get_pending()
            self.unconfirmed.append(message)
            try:
                await send_pending(message)
            except Exception as error:  # refused before it reached the producer: a failure too
                message.set_exception(error)
            queued = self.pending.qsize()
            if queued <= low_water:
                self.ebbed.set()
                if queued == 0:
                    self.idle.set()

    async def _send_pending(self, fut: FutureMessage) -> None:
        """Hand the message to aiokafka's producer, and fulfil faust's promise when it is acked.

        What faust's `Topic.publish_message` does, without its per-message coroutines, debug
        log, transaction lookup and sensor calls: a third of the cost of each message sent in
        a profile of the worker. The message's callback still runs (for a changelog record,
        faust's note of the offset a restart resumes from).
        """
        pending = fut.message
        channel = pending.channel
        topic = self._topic_names.get(channel)
        if topic is None:
            topic = self._topic_names[channel] = channel.get_topic_name()
        timestamp = pending.timestamp
        headers = pending.headers
        if isinstance(headers, Mapping):
            headers = list(headers.items())
        sent = await self.app.producer._ensure_producer().send(
            topic,
            pending.value,
            key=pending.key,
            partition=pending.partition,
            timestamp_ms=int(timestamp * 1000.0) if timestamp else None,
            headers=headers,
        )
        sent.add_done_callback(partial(_published, fut))

    def take_handed(self) -> list[tuple[str, asyncio.Future[Any]]]:
        """(topic, ack) of every message handed to the producer since the last call."""
        handed, self.unconfirmed = self.unconfirmed, []
        return [(message.message.channel.get_topic_name(), message) for message in handed]

    async def flush(self) -> None:
        """Return when every message put so far has been handed to the producer."""
        while not self.idle.is_set():
            if self.state != "running":
                raise RuntimeError("Cannot flush: Producer not Running")
            # a timeout only to notice a stop; the event is what ends the wait
            try:
                await asyncio.wait_for(self.idle.wait(), timeout=1.0)
            except TimeoutError:
                continue

    async def flush_atmost(self, max_messages: int | None) -> int:
        before = self.size
        await self.flush()
        return before

    async def wait_until_ebb(self) -> None:
        if self.size > self.max_messages:
            self.ebbed.clear()
            await self.ebbed.wait()


def _published(message: FutureMessage, sent: asyncio.Future[Any]) -> None:
    try:
        metadata = sent.result()
    except Exception as error:  # after aiokafka's retries; the commit protocol stops the worker
        message.set_exception(error)
        log.warning("sending to %s failed: %r", message.message.channel.get_topic_name(), error)
        return
    message.set_result(metadata)
    if message.message.callback:
        message.message.callback(message)


def replace_buffer(producer: Any) -> DrainingBuffer:
    """Give the (not yet started) producer a DrainingBuffer in place of faust's buffer."""
    buffer = DrainingBuffer(loop=producer.loop, beacon=producer.beacon)
    buffer.app = producer.app
    producer.buffer = buffer
    return buffer


def wrap_flush(producer: Any, flush: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]]) -> None:
    """Make the producer's flush, which faust awaits before every commit (and which skips
    nothing only without transactions), `flush(faust_flush)`."""
    faust_flush = producer.flush

    async def flush_through() -> None:
        await flush(faust_flush)

    producer.flush = flush_through


def aiokafka_producer(producer: Any) -> Callable[[], Any]:
    """How to get faust's aiokafka producer (made on first use)."""
    ensure: Callable[[], Any] = producer._ensure_producer
    return ensure
