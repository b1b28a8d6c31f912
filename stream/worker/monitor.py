"""A faust monitor that keeps only what faust itself reads back.

faust calls its monitor (a sensor) several times for every message in and out: a stream
event in and out, each send initiated and completed, each table get and set. Its Prometheus
monitor updates labelled metrics on each call: about a tenth of the worker's time in a
profile (docs/field-notes.md). Nothing of ours reads them; faust reads one thing back, when
each partition's stream last took an event (its "stream idle" warnings), so that is kept.
`worker.faust_metrics = true` puts faust's Prometheus monitor back.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from faust.sensors.monitor import Monitor


class QuietMonitor(Monitor):
    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        self.stream_inbound_time[tp] = monotonic()

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        pass

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_send_initiated(self, producer: Any, topic: str, message: Any, keysize: int, valsize: int) -> None:
        pass

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        pass

    def on_table_get(self, table: Any, key: Any) -> None:
        pass

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        pass

    def on_table_del(self, table: Any, key: Any) -> None:
        pass
