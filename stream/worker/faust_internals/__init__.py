"""Every faust-streaming, mode and aiokafka private part the worker reads or replaces, here
and nowhere else (`tests/worker/test_faust_internals.py` fails on a private used elsewhere).

Each was found by a failing test or a benchmark (docs/field-notes.md); the rule each one
serves is numbered in `stream/worker/commit_protocol.py`. Written for faust-streaming 0.15.x,
mode 0.7.x and aiokafka 0.14.x: `versions.check_versions` stops the worker at start on others.

Consumer (`consumer.py`):
- `Consumer.ack`, replaced (`correct`): faust's streams ack messages they skipped in a
  rebalance or a shutdown, and acks outlive the ownership they belong to (invariant 4).
- `Consumer._new_offset`, replaced: commits over a hole when the committed offset is unknown
  or 0, commits gaps past the last processed offset, counts a gap's offsets twice (5, 7).
- `Consumer._commit_offsets`, replaced: the last check that no orders offset past the last
  processed message is committed (8).
- `Consumer.perform_seek`, followed by a seek of never-committed partitions to their start:
  aiokafka leaves them where its fetcher got to (6).
- `_committed_offset`, `_acked`, `_gap`, `_read_offset`, `_unacked_messages`,
  `_waiting_for_ack`: read and changed through `ConsumerBook`, the bookkeeping of the rules.
- `_active_partitions`, `_paused_partitions`, `_buffered_partitions`, `Topics._topics`: read
  for the stall watchdog's log line (`ConsumerBook.describe`).
- aiokafka's partition state (`_thread`, `_subscription`, `_position`): the fetch position,
  so a fetch past unprocessed offsets is seen and undone (`Worker.fetched_past`).
- `Consumer.getmany`, wrapped for tests only (`skip_fetched_once`): faust's read offset jumping.
- mode's `Service.wait_first` overridden in faust's consumer (reads `_stopped`, `_crashed`):
  four tasks a delivered message took 11 % of the event loop.

Producer (`producer.py`):
- `ProducerBuffer._handle_pending`, `_send_pending`, overridden (`DrainingBuffer`): a flush
  that waits until flushed; faust's per-message coroutines were a third of each send's cost.
- `Producer.flush`, wrapped (`wrap_flush`): faust's gives up after 0.1 s, and a failed send is
  only logged (3).
- `Producer._ensure_producer`, called (`aiokafka_producer`): the worker's batches go to
  aiokafka directly.

Tables (`tables.py`):
- `Table.apply_changelog_batch`, replaced (`restore_resolving`): after a crash the local store
  runs ahead of the changelog, and a restore must not take it back.
- `RocksDBStore._db_for_partition`, `_visible_items`, called (`partition_access`,
  `partition_items`): one partition's store read and written once, not through faust's table
  (a fifth of the worker's time).
"""
