"""The partition of a customer must be the one Kafka's default partitioner picks: the worker
reads a customer's orders from it, and replay and rebuild split history by it."""

from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from stream.kafka.partitioning import murmur2, partition_for


def _signed(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


def test_murmur2_gives_what_kafkas_java_client_gives():
    # Kafka's own test vectors (clients' UtilsTest.testMurmur2), as Java's signed ints
    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    assert {data: _signed(murmur2(data)) for data in cases} == cases


@given(st.binary(max_size=64))
def test_murmur2_agrees_with_aiokafkas_on_any_bytes(data):
    assert murmur2(data) == aiokafka_murmur2(data)


@given(st.text(max_size=40), st.integers(min_value=1, max_value=64))
def test_partition_is_the_positive_hash_modulo_the_partition_count(customer_id, partitions):
    expected = (aiokafka_murmur2(customer_id.encode()) & 0x7FFFFFFF) % partitions
    assert partition_for(customer_id, partitions) == expected
