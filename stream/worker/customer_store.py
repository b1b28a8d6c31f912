"""The worker's tables as the core sees them: plain mappings of one partition.

The core writes a customer back after every change; `TableCustomers` holds those writes until
the message is done, then writes each changed customer once, together with the transitions
not yet known to be delivered (the outboxes, re-sent after a crash, see `state.Outbox`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, NamedTuple

from ..lifecycle import CustomerState, State
from .faust_internals.tables import partition_access
from .state import EncodedOrders, Outbox, StoredCustomer, decode_stored, encode_stored_reusing


class WrittenCustomer(NamedTuple):
    customer_id: str
    before: State | None  # None: the customer is new
    state: CustomerState | None  # None: erased
    # outboxes not known to be delivered: stored with the customer, or, when it was erased,
    # for the caller to keep (see PendingErasure)
    outboxes: list[Outbox]
    orders_before: int = 0  # counted orders as stored before this message
    pending_before: int = 0  # trigger firings pending as stored before this message


class _Kept(NamedTuple):
    """A customer kept decoded: as last written, and their orders as encoded then."""

    stored: StoredCustomer
    orders: EncodedOrders


# customers written and not yet in the store, at most: past it they are written at once
UNWRITTEN_LIMIT = 1_000


class TableCustomers(MutableMapping[str, CustomerState]):
    """A write-back view of the customers table for one message at a time.

    Records are written to the local store together (`flush`), not one by one: a RocksDB
    write is a system call for its log, and a put per customer was a tenth of the worker's
    time. The worker flushes before anything could show that a write happened: before it
    hands any output to Kafka (the changelog records among them: the store is never behind
    its changelog, whose acks note the offsets it holds), before it writes another table
    (`before_write` of TableErasures, the partition clocks), and before it lets a partition
    go. A crash loses the writes not flushed, and with them only messages whose outputs
    never left and whose offsets were never committed: they are processed again.
    """

    def __init__(
        self,
        table: Any,
        partition: int,
        changelog: Callable[[bytes, bytes | None], None],
        *,
        keep_decoded: int = 0,
        count_read: Callable[[bool], None] = lambda from_memory: None,
    ) -> None:
        self.table = partition_access(table, partition)
        self.changelog = changelog  # each record written, for the table's changelog topic
        # The last `keep_decoded` customers written, as written, most recent last: a customer
        # read again soon (the next event of an order, a busy buyer) skips the store's read
        # and the decoding, a tenth of the worker's time. Nothing else writes a partition's
        # store while this worker owns it, and a customer read but not written back is
        # dropped (the core may have changed it in place before rejecting the event), so an
        # entry is always what the store holds (or will, once flushed).
        self.keep_decoded = keep_decoded
        self.count_read = count_read
        self.decoded: dict[str, _Kept] = {}
        self.unwritten: dict[bytes, bytes | None] = {}  # None: deleted
        self.changed: dict[str, CustomerState | None] = {}
        self._outboxes: dict[str, list[Outbox]] = {}
        # lifecycle state, counted orders and pending firings of each customer read, as
        # stored before this message (None: new)
        self._before: dict[str, tuple[State, int, int] | None] = {}

    def __getitem__(self, customer_id: str) -> CustomerState:
        if customer_id in self.changed:
            state = self.changed[customer_id]
            if state is None:
                raise KeyError(customer_id)
            return state
        kept = self.decoded.get(customer_id)
        self.count_read(kept is not None)
        if kept is not None:
            stored = kept.stored
        else:
            key = customer_id.encode()
            raw = self.unwritten[key] if key in self.unwritten else self.table.get(key)
            if raw is None:
                self._before.setdefault(customer_id, None)
                raise KeyError(customer_id)
            stored = decode_stored(raw)
        self._outboxes[customer_id] = stored.outboxes
        state = stored.state
        pending = len(state.triggers.pending) if state.triggers is not None else 0
        self._before.setdefault(customer_id, (state.state, state.order_count, pending))
        return stored.state

    def __setitem__(self, customer_id: str, state: CustomerState) -> None:
        self.changed[customer_id] = state

    def __delitem__(self, customer_id: str) -> None:
        self.changed[customer_id] = None

    def __iter__(self) -> Iterator[str]:
        raise TypeError("the customers table is not iterated through the core; see Runtime.take_up")

    def __len__(self) -> int:
        raise TypeError("the customers table has no cheap length")

    def write_back(
        self,
        outboxes: dict[str, Outbox],
        partition_clock: int | None,
        written_by: tuple[str, int],
        undelivered: Callable[[Outbox], bool],
        orders_through: int | None = None,
    ) -> list[WrittenCustomer]:
        """Write every changed customer to the table, with this message's outbox and the
        earlier ones still `undelivered`; returns what changed."""
        written = []
        for customer_id, state in self.changed.items():
            kept = [outbox for outbox in self._outboxes.get(customer_id, ()) if undelivered(outbox)]
            latest = outboxes.get(customer_id)
            if latest is not None:
                kept.append(latest)
            before = self._before.get(customer_id)
            written.append(
                WrittenCustomer(
                    customer_id,
                    before[0] if before else None,
                    state,
                    kept,
                    orders_before=before[1] if before else 0,
                    pending_before=before[2] if before else 0,
                )
            )
            key = customer_id.encode()
            previous = self.decoded.pop(customer_id, None)
            if state is None:
                self.unwritten[key] = None
                self.changelog(key, None)
            else:
                stored = StoredCustomer(state, kept, partition_clock, written_by, orders_through)
                known = previous.orders if previous is not None else None
                record, orders = encode_stored_reusing(stored, known)
                self.unwritten[key] = record
                self.changelog(key, record)
                self._keep(customer_id, _Kept(stored, orders))
        for customer_id in self._before.keys() - self.changed.keys():
            self.decoded.pop(customer_id, None)
        self.changed.clear()
        self._outboxes.clear()
        self._before.clear()
        if len(self.unwritten) >= UNWRITTEN_LIMIT:
            self.flush()
        return written

    def flush(self) -> None:
        """Write the customers written since the last flush to the local store, together."""
        if self.unwritten:
            unwritten, self.unwritten = self.unwritten, {}
            self.table.write_many(unwritten)

    def _keep(self, customer_id: str, kept: _Kept) -> None:
        if not self.keep_decoded:
            return
        decoded = self.decoded
        decoded[customer_id] = kept
        if len(decoded) > self.keep_decoded:
            del decoded[next(iter(decoded))]


class TableErasures(MutableMapping[str, int]):
    """Erasure markers (hashed id -> partition clock) of one partition, in a Faust table of
    bytes.

    Read from the partition's store alone (see `partition_access`): the core looks a marker
    up for every event of a customer it does not hold (a shop's first orders). Written
    through faust, which sends the changelog record; iterated over the whole table.
    """

    def __init__(self, table: Any, partition: int, before_write: Callable[[], None] = lambda: None) -> None:
        self.table = table
        self.local = partition_access(table, partition)
        self.before_write = before_write  # see TableCustomers

    def __getitem__(self, key: str) -> int:
        raw = self.local.get(key.encode())
        if raw is None:
            raise KeyError(key)
        return int(raw)

    def __setitem__(self, key: str, erased_at: int) -> None:
        self.before_write()
        self.table[key.encode()] = str(erased_at).encode()

    def __delitem__(self, key: str) -> None:
        self.before_write()
        self.table.pop(key.encode(), None)

    def __iter__(self) -> Iterator[str]:
        return (key.decode() for key in self.table)

    def __len__(self) -> int:
        return len(self.table)
