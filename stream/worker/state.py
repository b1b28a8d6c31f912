"""What the worker's tables hold, and how it is encoded: customers stored with the changes
not yet known to be delivered (`Outbox`), pending erasures, the clocks table's typed entries,
and which of two records a restore keeps.

How the core reads and writes them is in `customer_store.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, Generic, NamedTuple, TypeVar

import msgspec

from ..lifecycle import CustomerState, State
from ..lifecycle.customer import OrderRecord
from ..lifecycle.triggers import TriggerBook

Head = TypeVar("Head")  # CustomerState or CustomerHead
Record = TypeVar("Record")  # StoredCustomer or StoredHead


class Outbox(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """The changes (transitions and segment changes) one source message produced for a
    customer, as sent.

    Offsets are committed only after every send is flushed, so a transition whose send was
    lost in a crash belongs to a message at or after the committed offset. A customer keeps
    the outboxes of all such messages, not only the last: the local store is written before
    the changelog and the sends, so after a crash it may hold a customer as a later message
    left them while an earlier message's transitions never left. When the partition is taken
    up again, every outbox of a message at or after the committed offset is sent again, with
    the same event ids.
    """

    source_topic: str
    source_offset: int
    # encoded as an array: renaming a field changes nothing stored
    changes: list[bytes]


class StoredCustomer(msgspec.Struct, array_like=True, gc=False):
    state: CustomerState
    outboxes: list[Outbox] = msgspec.field(default_factory=list)
    # the partition clock when this record was written; see Worker._publish
    partition_clock: int | None = None
    # the message (topic, offset) whose handling wrote this record; see Worker.take_up
    written_by: tuple[str, int] | None = None
    # the last orders offset of the partition processed when this record was written; see
    # PartitionRuntime.recorded_through
    orders_through: int | None = None
    # written by `lifecycle rebuild`, which computes history afresh; see `restored_customer`
    rebuilt: bool = False


class CustomerHead(msgspec.Struct, gc=False):
    """The few fields of a stored customer that taking up a partition needs."""

    customer_id: str
    state: State
    deadline: int | None = None
    segments: list[str] = msgspec.field(default_factory=list)
    segment_class: str | None = None
    order_count: int = 0
    triggers: TriggerBook | None = None


class StoredHead(msgspec.Struct, array_like=True, gc=False):
    # same positions as StoredCustomer; decoding skips the orders, the bulk of a record
    state: CustomerHead
    outboxes: list[Outbox] = msgspec.field(default_factory=list)
    partition_clock: int | None = None
    written_by: tuple[str, int] | None = None
    orders_through: int | None = None
    rebuilt: bool = False


class _BeforeOutboxes(msgspec.Struct, Generic[Head], array_like=True, gc=False):
    """A record as written before 2026-11-22: one outbox, the last message's."""

    state: Head
    outbox: Outbox | None = None
    partition_clock: int | None = None
    written_by: tuple[str, int] | None = None


def _orders_as_arrays(raw: bytes) -> bytes:
    """A record written before 2026-11-27, its orders as maps, with them as arrays."""
    record = msgspec.msgpack.decode(raw)
    state = record[0] if isinstance(record, list) and record else None
    orders = state.get("orders") if isinstance(state, dict) else None
    if not isinstance(orders, dict):
        return raw
    for order_id, order in orders.items():
        if isinstance(order, dict):
            orders[order_id] = [order[name] if name in order else value() for name, value in _ORDER_FIELDS]
    return _encode(record)


def _default_of(field: msgspec.structs.FieldInfo) -> Callable[[], Any]:
    if field.default_factory is not msgspec.NODEFAULT:
        factory: Callable[[], Any] = field.default_factory
        return factory
    return lambda: field.default


_ORDER_FIELDS = [(field.encode_name, _default_of(field)) for field in msgspec.structs.fields(OrderRecord)]


def _decoder(record: type[Record], state: type[Head]) -> Callable[[bytes], Record]:
    """A decoder of `record` that also reads a table written by an earlier worker."""
    current = msgspec.msgpack.Decoder(record).decode
    earlier = msgspec.msgpack.Decoder(_BeforeOutboxes[state]).decode  # type: ignore[valid-type]

    def decode(raw: bytes) -> Record:
        try:
            return current(raw)
        except msgspec.ValidationError:
            raw = _orders_as_arrays(raw)
        try:
            return current(raw)
        except msgspec.ValidationError:
            old = earlier(raw)
            outboxes = [] if old.outbox is None else [old.outbox]
            make: Callable[..., Record] = record
            return make(old.state, outboxes, old.partition_clock, old.written_by)

    return decode


class PendingErasure(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """An erasure whose message is not yet committed: what to send again if it was lost.

    Erasing deletes the customer's record, and with it the outboxes that would re-send its
    transitions after a crash; and the local store forgets the customer before the changelog
    does, so a worker restarted after a crash takes the redelivered erasure for a duplicate,
    while a later owner of the partition would restore the customer from the changelog. So
    the partition keeps its pending erasures (in the partition-clocks table) until the
    erasing message's offset is committed, and taking the partition up sends their
    tombstones, erasure markers and transitions again. The customer id is kept no longer.
    """

    customer_id: str
    marker: str  # the key of the erasure marker (a hash of the id), see `erasure_key`
    erased_at: int  # the marker's value
    written_by: tuple[str, int]
    outboxes: list[Outbox]


_encode = msgspec.msgpack.Encoder().encode
decode_stored = _decoder(StoredCustomer, CustomerState)
decode_head = _decoder(StoredHead, CustomerHead)
decode_pending_erasures = msgspec.msgpack.Decoder(list[PendingErasure]).decode


def restored_customer(key: bytes, here: bytes, incoming: bytes | None) -> bytes | None:
    """What a restore from the changelog leaves of a customer the local store holds as
    `here`, when the changelog brings `incoming` (None: a tombstone).

    After a crash the store runs ahead of the changelog: a customer written twice, the second
    write's record never sent, must not go back to the first (docs/field-notes.md). So a
    stored record written later in the partition's processing is kept, and sent to the
    changelog again at take-up, as every record written by an uncommitted message is. A
    rebuild's record always wins: it replaces the history under the rules of the day, and the
    store it meets is the one the stopped worker left, whose ticks may have written its
    customers after the rebuilt history's last order. Tombstones are applied.
    """
    if incoming is None:
        return incoming
    arriving = decode_head(incoming)  # once: both questions read it
    if arriving.rebuilt:
        return incoming
    return here if _write_order(decode_head(here)) > _write_order(arriving) else incoming


def written_later(local: bytes, incoming: bytes) -> bool:
    """True when the stored record `local` was written after `incoming` in its partition's
    processing: a later orders offset processed through, or the same and a later partition
    clock. (Equal: not later.)"""
    return _write_order(decode_head(local)) > _write_order(decode_head(incoming))


def _write_order(stored: StoredHead) -> tuple[int, int]:
    through = -1 if stored.orders_through is None else stored.orders_through
    clock = -1 if stored.partition_clock is None else stored.partition_clock
    return through, clock


def restored_clocks_entry(key: bytes, here: bytes, incoming: bytes | None) -> bytes | None:
    """What a restore from the changelog leaves of an entry of the partition-clocks table.

    Pending erasures are merged, not replaced: after a crash the changelog may bring back an
    older list (or its removal) over the one the store holds, and an erasure missing from it
    would not be sent again (see PendingErasure). An entry whose message is committed by now
    is dropped at the next message. Clocks and "orders processed through" are applied as they
    come: taking up a partition takes the maximum of those and the customers' own.
    """
    if clocks_entry_of(key)[0] is not ClocksEntry.ERASING:
        return incoming
    pending = decode_pending_erasures(here)
    known = {(p.marker, p.written_by) for p in pending}
    if incoming is not None:
        pending += [p for p in decode_pending_erasures(incoming) if (p.marker, p.written_by) not in known]
    return encode_pending_erasures(sorted(pending, key=lambda p: p.written_by))


def encode_stored(stored: StoredCustomer) -> bytes:
    return _encode(stored)


class EncodedOrders(NamedTuple):
    """A customer's orders as they were last encoded: ids and records in the customer's
    order, and each record's bytes by id, in the same order."""

    ids: list[str]
    records: list[OrderRecord]
    encoded: dict[str, msgspec.Raw]


def encode_stored_reusing(stored: StoredCustomer, known: EncodedOrders | None) -> tuple[bytes, EncodedOrders]:
    """`encode_stored(stored)`, the same bytes, with each order that `known` holds encoded
    already not encoded again; also the orders as encoded now, for the next time.

    A stored customer is mostly their orders, and the worker writes the whole record after
    every event that changes the customer: encoding it was a tenth of the worker's time.
    Orders are values (`OrderRecord`), so an order still held as the same record has the
    same bytes: an order placed encodes one order, a deadline none.
    """
    state = stored.state
    orders = state.orders
    now = _encoded_orders(orders, known)
    # The record is encoded with the orders' bytes in place of the orders: msgspec writes a
    # Raw as it is, and the customer is put back as it was before anyone else can see it.
    state.orders = now.encoded  # type: ignore[assignment]
    try:
        return _encode(stored), now
    finally:
        state.orders = orders


def _encoded_orders(orders: dict[str, OrderRecord], known: EncodedOrders | None) -> EncodedOrders:
    ids, records = list(orders), list(orders.values())
    if known is None:
        known = EncodedOrders([], [], {})
    held = len(known.ids)
    if ids[:held] == known.ids and records[:held] == known.records:
        # the usual case: the same orders (list equality tries identity first), maybe more
        encoded = known.encoded
        if len(ids) > held:
            encoded = dict(encoded)
            for order_id, order in zip(ids[held:], records[held:], strict=True):
                encoded[order_id] = msgspec.Raw(_encode(order))
        return EncodedOrders(ids, records, encoded)
    before = dict(zip(known.ids, zip(known.records, known.encoded.values(), strict=True), strict=True))
    encoded = {}
    for order_id, order in zip(ids, records, strict=True):
        seen = before.get(order_id)
        encoded[order_id] = seen[1] if seen is not None and seen[0] is order else msgspec.Raw(_encode(order))
    return EncodedOrders(ids, records, encoded)


def encode_pending_erasures(pending: list[PendingErasure]) -> bytes:
    return _encode(pending)


# The worker's tables, and the changelog topics faust keeps them in
CUSTOMERS_TABLE = "customers"
CLOCKS_TABLE = "partition-clocks"
ERASURES_TABLE = "erasures"


def changelog_topic(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"


class ClocksEntry(StrEnum):
    """The kinds of entry of the partition-clocks table, one of each per partition, keyed
    `<kind>-<partition>` (`clocks_key`); take-up reads them back by kind (`clocks_entry_of`)."""

    CLOCK = "partition"  # the partition clock, when the last message that moved it wrote no customer
    ORDERS_THROUGH = "orders"  # the last orders offset processed, when the message wrote no customer
    SEGMENTS = "segments"  # the fingerprint of the segment definitions customers were evaluated under
    ERASING = "erasing"  # erasures whose message is not yet committed; see PendingErasure


def clocks_key(kind: ClocksEntry, number: int) -> bytes:
    return f"{kind.value}-{number}".encode()


def clocks_entry_of(key: bytes | str) -> tuple[ClocksEntry | None, int]:
    """The kind (None: not one this worker writes) and partition of a partition-clocks key."""
    kind, _, number = (key.decode() if isinstance(key, bytes) else key).partition("-")
    try:
        return ClocksEntry(kind), int(number)
    except ValueError:
        return None, -1
