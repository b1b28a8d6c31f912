"""What the worker sends again when it takes up a partition: the outputs of messages past
the committed offset, which a crash may have lost.

Offsets are committed only after every output is confirmed (commit protocol, invariant 3),
so an output lost in a crash belongs to a message past the committed offset, and that
message's redelivery changes nothing (it is a duplicate): what it produced is sent again
from the outboxes stored with the customers it wrote, and from the pending erasures.

In exactly-once mode what is sent again is held until its message is delivered again, and
leaves in the transaction that commits that message's offset: sent at take-up, it could be
committed in a transaction before its message's offset is, and a crash in between would
send it a second time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

from ..inputs.messages import customer_record, encode
from ..lifecycle import CustomerState
from ..lifecycle.customer import Scorer
from ..lifecycle.erasure import back_after_erasure
from .metrics import WorkerMetrics
from .outputs import Outputs
from .state import ERASURES_TABLE, Outbox, PendingErasure, StoredHead, decode_stored

CommittedOffset = Callable[[str, int], "int | None"]
ResendChangelog = Callable[[str, int, bytes, "bytes | None"], None]
Source = tuple[str, int]  # the message (topic, offset) that produced what is sent again


class Resends:
    def __init__(
        self,
        outputs: Outputs,
        committed_offset: CommittedOffset,
        resend_changelog: ResendChangelog,
        scorer: Scorer | None,
        metrics: WorkerMetrics,
        *,
        hold: bool = False,
    ) -> None:
        """`hold`: exactly-once mode; what is sent again waits for `release`."""
        self.hold = hold
        self.held: dict[int, list[tuple[Source, Callable[[], None]]]] = {}
        self.outputs = outputs
        self.committed_offset = committed_offset
        self.resend_changelog = resend_changelog
        self.scorer = scorer
        self.metrics = metrics

    def uncommitted(self, number: int, source: tuple[str, int]) -> bool:
        """True if the message (topic, offset) of partition `number` is past the committed offset."""
        topic, offset = source
        committed = self.committed_offset(topic, number)
        return committed is None or offset >= committed

    def undelivered(self, number: int, outbox: Outbox) -> bool:
        return self.uncommitted(number, (outbox.source_topic, outbox.source_offset))

    def _send(self, number: int, source: Source, send: Callable[[], None]) -> None:
        if self.hold:
            self.held.setdefault(number, []).append((source, send))
        else:
            send()

    def release(self, number: int, topic: str, offset: int) -> None:
        """A message of partition `number` is about to be processed: send what is held for it,
        and for any message of its topic before it (not delivered again: gone from the topic
        by its retention)."""
        held = self.held.get(number)
        if not held:
            return
        due = [(source, send) for source, send in held if source[0] == topic and source[1] <= offset]
        if not due:
            return
        self.held[number] = [(s, send) for s, send in held if s[0] != topic or s[1] > offset]
        for source, send in due:
            # committed meanwhile (by the previous owner, found at the take-up's fence)
            if self.uncommitted(number, source):
                send()

    def forget(self, number: int) -> None:
        """Partition `number` went to another worker, which sends again what it finds."""
        self.held.pop(number, None)

    def customer(self, customer_id: str, number: int, stored: StoredHead, raw: bytes) -> None:
        """Send again what a message past the committed offset produced for this customer."""
        key = customer_id.encode()
        self.outboxes(number, key, stored.outboxes)
        if stored.written_by is not None and self.uncommitted(number, stored.written_by):
            # The local store is written before the changelog: after a crash this record may
            # exist here only, and the message that wrote it will be redelivered as a
            # duplicate that writes nothing. Sending it again keeps the changelog, and so any
            # later owner of the partition, equal to what this worker holds.
            self._send(number, stored.written_by, partial(self._record, number, key, stored, raw))

    def _record(self, number: int, key: bytes, stored: StoredHead, raw: bytes) -> None:
        self.outputs.changelog(number, key, raw)
        state = decode_stored(raw).state
        record = customer_record(state, stored.partition_clock, self.scorer)
        self.outputs.customer_state(number, key, encode(record))

    def erasures(
        self, number: int, pending: list[PendingErasure], customers: Mapping[str, CustomerState]
    ) -> None:
        """Send again what an erasure past the committed offset sent; see PendingErasure."""
        for erasure in pending:
            key = erasure.customer_id.encode()
            customer = customers.get(erasure.customer_id)
            if customer is not None and not back_after_erasure(customer, erasure.erased_at):
                # The customer's record from before the erasure, its tombstone lost in the
                # crash while the pending erasure was kept (the two tables reach the store
                # by two paths): the erasure's message, delivered again, erases again and
                # sends what it sent, and the record's own outboxes cover what came before.
                # Sent from here as well, they would leave twice.
                continue
            self.outboxes(number, key, erasure.outboxes)
            if not self.uncommitted(number, erasure.written_by):
                continue
            # A customer back since as a new one had its record sent again (take-up sends
            # customers first): a tombstone after it would erase the new life downstream.
            tombstone = customer is None or not back_after_erasure(customer, erasure.erased_at)
            self._send(number, erasure.written_by, partial(self._erasure, number, erasure, tombstone))

    def _erasure(self, number: int, erasure: PendingErasure, tombstone: bool) -> None:
        marker = erasure.marker.encode()
        self.resend_changelog(ERASURES_TABLE, number, marker, str(erasure.erased_at).encode())
        if tombstone:
            key = erasure.customer_id.encode()
            self.outputs.changelog(number, key, None)
            self.outputs.customer_state(number, key, None)

    def outboxes(self, number: int, key: bytes, outboxes: list[Outbox]) -> None:
        for outbox in outboxes:
            if self.undelivered(number, outbox):
                source = (outbox.source_topic, outbox.source_offset)
                self._send(number, source, partial(self._outbox, number, key, outbox))

    def _outbox(self, number: int, key: bytes, outbox: Outbox) -> None:
        for raw in outbox.changes:
            self.outputs.change_again(key, raw, number)
            self.metrics.resent.inc()
