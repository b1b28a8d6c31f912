"""faust's restore of the customers table keeps a local record written after the incoming one.

After a crash the local store runs ahead of the changelog, and faust restores the records
after the offset the store noted as persisted: an older record of a customer written again
since must not replace the newer one (docs/field-notes.md).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from stream.lifecycle.customer import new_customer
from stream.worker.state import StoredCustomer, encode_stored, written_later
from stream.worker.tables import restore_keeping_later


def record(through: int | None, clock: int | None, customer_id: str = "c1") -> bytes:
    state = new_customer(customer_id, 1_000)
    return encode_stored(StoredCustomer(state, [], clock, ("orders", through or 0), through))


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


def test_the_restore_keeps_what_was_written_later_and_applies_the_rest():
    newer, older = record(281, 50), record(190, 40)
    table = Table({b"ahead": newer, b"behind": older, b"erased": older})
    restore_keeping_later(table, written_later)
    table.apply_changelog_batch(
        [
            event(b"ahead", older, 193),  # the store has a later write: kept
            event(b"behind", newer, 194),  # the changelog has a later write: applied
            event(b"new", older, 195),  # not in the store: applied
            event(b"erased", None, 196),  # a tombstone: applied
            event(b"ahead", older, 197),  # the last offset is noted even when it is not applied
        ]
    )
    assert table.data.data == {b"ahead": newer, b"behind": newer, b"new": older}
    assert table.data.persisted == {("changelog", 0): 197}
