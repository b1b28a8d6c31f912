"""One partition of a faust table of bytes, read and written in the local store only.

faust's `table[key] = value` sends the changelog record for the partition of the event in
hand and writes the local store; `table.get(key)` reads RocksDB twice (a membership test,
then the value), each finding its partition from the current event, with a sensor call and
a codec round on each side: a fifth of the worker's time went to its customer lookups and
writes (docs/field-notes.md). The worker knows the partition: it asks the partition's store
once, and sends the changelog record itself, in line with its outputs (`Outputs.changelog`).

A plain mapping (the runtime's tests) is read and written as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, NamedTuple

from faust.types import TP
from rocksdict import WriteBatch

from ...kafka.partitioning import partition_for


class PartitionAccess(NamedTuple):
    get: Callable[[bytes], bytes | None]
    put: Callable[[bytes, bytes], None]
    delete: Callable[[bytes], None]
    # values by key (None: delete), written together: one RocksDB write batch
    write_many: Callable[[Mapping[bytes, bytes | None]], None]


def partition_access(table: Any, partition: int) -> PartitionAccess:
    """How to read and write `partition` of `table`'s local store: a faust table of bytes, or
    a mapping."""
    if not hasattr(table, "send_changelog"):
        mapping: MutableMapping[bytes, bytes] = table

        def delete_from_mapping(key: bytes) -> None:
            mapping.pop(key, None)

        def write_many_to_mapping(values: Mapping[bytes, bytes | None]) -> None:
            _write_each(values, mapping.__setitem__, delete_from_mapping)

        return PartitionAccess(mapping.get, mapping.__setitem__, delete_from_mapping, write_many_to_mapping)

    def local() -> Any:
        # The store is made on first use, and RocksDB opens (and closes) a database per
        # partition as partitions come and go: asked for each time, as faust does. In memory,
        # one dict holds every partition.
        store = table.data
        opener = getattr(store, "_db_for_partition", None)
        return _Dict(store.data) if opener is None else opener(partition)

    def get(key: bytes) -> bytes | None:
        value: bytes | None = local().get(key)
        return value

    def put(key: bytes, value: bytes) -> None:
        local().put(key, value)

    def delete(key: bytes) -> None:
        local().delete(key)

    def write_many(values: Mapping[bytes, bytes | None]) -> None:
        store = local()
        if isinstance(store, _Dict):
            _write_each(values, store.put, store.delete)
            return
        batch = WriteBatch(raw_mode=True)
        _write_each(values, batch.put, batch.delete)
        store.write(batch)

    return PartitionAccess(get, put, delete, write_many)


def _write_each(
    values: Mapping[bytes, bytes | None], put: Callable[[bytes, bytes], None], delete: Callable[[bytes], None]
) -> None:
    for key, value in values.items():
        if value is None:
            delete(key)
        else:
            put(key, value)


Resolve = Callable[[bytes, bytes, bytes | None], bytes | None]


def restore_resolving(table: Any, resolve: Resolve) -> None:
    """Make faust's restore of `table` from its changelog ask `resolve(key, here, incoming)`
    what the local store should hold when a changelog record (`incoming`, None for a
    tombstone) meets a key the store holds (`here`).

    faust restores from the offset the store noted as persisted (on each ack) up to the end
    of the changelog, over what the store holds, and after a crash the store runs ahead of
    the changelog. Records `resolve` answers with `incoming` go to faust as they are; the
    answers it gives otherwise are written after faust's batch. The batch's last offset is
    noted as persisted either way.
    """
    apply = table.apply_changelog_batch

    def apply_resolving(batch: Any) -> None:
        events = list(batch)
        stores: dict[int, PartitionAccess] = {}
        # what each key will hold once the events so far are applied, and those not by faust
        holding: dict[tuple[int, bytes], bytes | None] = {}
        resolved: dict[tuple[int, bytes], bytes | None] = {}
        passed = []
        for event in events:
            message = event.message
            store = stores.get(message.partition)
            if store is None:
                store = stores[message.partition] = partition_access(table, message.partition)
            slot = (message.partition, message.key)
            here = holding[slot] if slot in holding else store.get(message.key)
            value = message.value if here is None else resolve(message.key, here, message.value)
            holding[slot] = value
            if value is message.value:
                passed.append(event)
                resolved.pop(slot, None)
            else:
                resolved[slot] = value
        apply(passed)
        for (partition, key), value in resolved.items():
            if value is None:
                stores[partition].delete(key)
            else:
                stores[partition].put(key, value)
        if len(passed) < len(events):  # faust notes the last offset of what it was given
            last: dict[Any, int] = {}
            for event in events:
                tp = event.message.tp
                last[tp] = max(last.get(tp, -1), event.message.offset)
            for tp, offset in last.items():
                table.data.set_persisted_offset(tp, offset)

    table.apply_changelog_batch = apply_resolving


def partition_items(table: Any, partition: int, partitions: int) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, value) of `partition` of `table` (of `partitions`): read from that
    partition's RocksDB database alone, where there is one; otherwise each key's partition
    is worked out.

    Iterating a faust table goes through every local partition, standby copies included,
    and the caller then had to find each key's partition (murmur2, in Python): a worker
    taking over a dead one's partitions read all its million local customers to keep half.
    """
    store = table.data if hasattr(table, "send_changelog") else None
    opener = getattr(store, "_db_for_partition", None)
    if opener is not None:
        yield from store._visible_items(opener(partition))  # type: ignore[union-attr]
        return
    mapping = table if store is None else store.data
    for key, value in mapping.items():
        if partition_for(key.decode(), partitions) == partition:
            yield key, value


def restore_whole_next_time(table: Any, partition: int) -> None:
    """Make the next restore of `partition` of `table` read its whole changelog.

    A restore starts after the offset the local store last noted as persisted, on the
    assumption that every record before it is in the store. A worker frozen past its session
    breaks it: another worker owned the partition meanwhile and wrote to the changelog, and
    the frozen one, woken, wrote after those records, and noted its own offsets, before it
    learnt it was fenced. Its next restore would skip the other's records (a test lost 46
    customers' transitions so)."""
    tp = TP(table.changelog_topic.get_topic_name(), partition)
    table.data.set_persisted_offset(tp, -1)


class _Dict(NamedTuple):
    """faust's in-memory store, read and written like a RocksDB database."""

    data: dict[bytes, bytes]

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.data[key] = value

    def delete(self, key: bytes) -> None:
        self.data.pop(key, None)
