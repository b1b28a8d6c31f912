"""Ports for local brokers and servers: free now, outside the range the kernel hands to
clients' connections (where a probed-free port can be taken a moment later), never twice."""

from __future__ import annotations

import random
import socket

import pytest

from stream.kafka import local
from stream.kafka.local import free_port


def _ephemeral_start() -> int:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
        return int(ranges.read().split()[0])


def test_a_span_of_ports_is_bindable_and_below_the_ephemeral_range() -> None:
    first = free_port(span=5)
    assert first + 5 <= _ephemeral_start()
    held = []
    try:
        for port in range(first, first + 5):
            listener = socket.socket()
            held.append(listener)
            listener.bind(("127.0.0.1", port))  # raises if any of the five is taken
    finally:
        for listener in held:
            listener.close()


def test_a_port_is_not_handed_out_twice() -> None:
    spans = [free_port(span=3) for _ in range(50)]
    ports = [port for first in spans for port in range(first, first + 3)]
    assert len(ports) == len(set(ports))


def _bindable_ports(count: int) -> list[int]:
    """Consecutive bindable ports from a random start: tests in other processes probe too."""
    found = []
    start = random.randrange(20_000, 29_000)
    for port in range(start, start + 1_000):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise AssertionError(f"no {count} bindable ports from {start}")


def test_a_port_someone_listens_on_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    taken, free = _bindable_ports(2)
    # this process's earlier tests may have been handed either port: start afresh
    monkeypatch.setattr(local, "_handed_out", set())
    candidates = iter([taken, free])
    monkeypatch.setattr(local.random, "randrange", lambda *_: next(candidates))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", taken))
        listener.listen()
        assert free_port() == free
