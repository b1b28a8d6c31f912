"""faust's restore of the worker's tables over a local store that runs ahead of the changelog.

After a crash the local store runs ahead of the changelog, and faust restores the records
after the offset the store noted as persisted: an older record of a customer written again
since must not replace the newer one, and an older list of pending erasures must not replace
the newer one (docs/field-notes.md). A rebuild's records replace what the store holds.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from stream.lifecycle.customer import new_customer
from stream.worker.faust_internals.tables import restore_resolving
from stream.worker.state import (
    ClocksEntry,
    PendingErasure,
    StoredCustomer,
    clocks_key,
    decode_pending_erasures,
    encode_pending_erasures,
    encode_stored,
    restored_clocks_entry,
    restored_customer,
    written_later,
)


def record(through: int | None, clock: int | None, customer_id: str = "c1", rebuilt: bool = False) -> bytes:
    state = new_customer(customer_id, 1_000)
    return encode_stored(StoredCustomer(state, [], clock, ("orders", through or 0), through, rebuilt))


def test_a_record_is_later_by_the_orders_offset_processed_through_then_by_the_clock():
    assert written_later(record(281, 50), record(190, 90))
    assert not written_later(record(190, 90), record(281, 50))
    assert written_later(record(200, 60), record(200, 50))  # a deadline fired by a tick since
    assert not written_later(record(200, 50), record(200, 50))  # the same write: faust's copy
    assert written_later(record(None, 60), record(None, 50))  # records from before the offset was kept


class Store:
    def __init__(self, data: dict[bytes, bytes]) -> None:
        self.data = data
        self.persisted: dict[Any, int] = {}

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        self.persisted[tp] = offset


class Table:
    """A faust table's surface as the restore uses it: an in-memory store."""

    def __init__(self, data: dict[bytes, bytes]) -> None:
        self.data = Store(data)

    def send_changelog(self, *args: Any) -> None:  # marks it as a faust table
        raise AssertionError("a restore sends nothing")

    def apply_changelog_batch(self, batch: list[Any]) -> None:
        for event in batch:
            message = event.message
            if message.value is None:
                self.data.data.pop(message.key, None)
            else:
                self.data.data[message.key] = message.value
            self.data.set_persisted_offset(message.tp, message.offset)


def event(key: bytes, value: bytes | None, offset: int) -> Any:
    message = SimpleNamespace(key=key, value=value, partition=0, tp=("changelog", 0), offset=offset)
    return SimpleNamespace(message=message)


def test_the_restore_keeps_a_customer_written_later_and_applies_the_rest():
    newer, older = record(281, 50), record(190, 40)
    # a stopped worker's ticks wrote it after the last order; a rebuild under new rules since
    ticked, rebuilt = record(300, 90), record(300, 60, rebuilt=True)
    table = Table({b"ahead": newer, b"behind": older, b"erased": older, b"ticked": ticked})
    restore_resolving(table, restored_customer)
    table.apply_changelog_batch(
        [
            event(b"ahead", older, 193),  # the store has a later write: kept
            event(b"behind", newer, 194),  # the changelog has a later write: applied
            event(b"new", older, 195),  # not in the store: applied
            event(b"erased", None, 196),  # a tombstone: applied
            event(b"ticked", rebuilt, 197),  # a rebuild's record: applied
            event(b"ahead", older, 198),  # the last offset is noted even when it is not applied
        ]
    )
    assert table.data.data == {b"ahead": newer, b"behind": newer, b"new": older, b"ticked": rebuilt}
    assert table.data.persisted == {("changelog", 0): 198}


def erasures(*offsets: int) -> bytes:
    return encode_pending_erasures(
        [PendingErasure(f"c{n}", f"m{n}", 1_000 + n, ("orders", n), []) for n in offsets]
    )


def pending_offsets(raw: bytes) -> list[int]:
    return [p.written_by[1] for p in decode_pending_erasures(raw)]


def test_the_restore_merges_pending_erasures_and_applies_clocks_as_they_come():
    erasing = clocks_key(ClocksEntry.ERASING, 0)
    table = Table({erasing: erasures(10, 20), b"partition-0": b"900", b"erasing-1": erasures(30)})
    restore_resolving(table, restored_clocks_entry)
    table.apply_changelog_batch(
        [
            event(erasing, erasures(10), 40),  # an older list: the erasure at 20 stays pending
            event(erasing, erasures(5, 10), 41),  # one the store never had: added
            event(b"partition-0", b"800", 42),  # a clock: applied (take-up takes the maximum)
            event(b"erasing-1", None, 43),  # the list's removal, older than the store's list
        ]
    )
    data = table.data.data
    assert pending_offsets(data[erasing]) == [5, 10, 20]
    assert pending_offsets(data[b"erasing-1"]) == [30]
    assert data[b"partition-0"] == b"800"
    assert table.data.persisted == {("changelog", 0): 43}


def test_a_key_resolved_and_then_applied_in_one_batch_ends_as_the_last_record_says():
    newer, older, newest = record(281, 50), record(190, 40), record(400, 70)
    table = Table({b"c1": newer})
    restore_resolving(table, restored_customer)
    table.apply_changelog_batch([event(b"c1", older, 1), event(b"c1", newest, 2)])
    assert table.data.data == {b"c1": newest}
    table = Table({b"c1": older})
    restore_resolving(table, restored_customer)
    table.apply_changelog_batch([event(b"c1", newest, 3), event(b"c1", newer, 4)])
    assert table.data.data == {b"c1": newest}  # written back after faust's batch


def test_a_batch_over_two_partitions_notes_each_ones_last_offset():
    newer, older = record(281, 50), record(190, 40)
    table = Table({b"c1": newer})
    restore_resolving(table, restored_customer)
    zero, one = event(b"c1", older, 7), event(b"c2", older, 8)
    one.message.partition, one.message.tp = 1, ("changelog", 1)
    table.apply_changelog_batch([zero, one, event(b"c3", newer, 9)])
    assert table.data.data == {b"c1": newer, b"c2": older, b"c3": newer}
    assert table.data.persisted == {("changelog", 0): 9, ("changelog", 1): 8}
