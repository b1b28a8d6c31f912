"""Client settings shared by every Kafka client the engine opens (admin, producer, consumer,
and faust's), including TLS and SASL as managed Kafka services require."""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context

from ..config import Config


def ssl_context(config: Config) -> ssl.SSLContext | None:
    kafka = config.kafka
    if not kafka.security_protocol.endswith("SSL"):
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=kafka.ssl_cafile or None,
        certfile=kafka.ssl_certfile or None,
        keyfile=kafka.ssl_keyfile or None,
    )
    return context


def client_settings(config: Config) -> dict[str, Any]:
    kafka = config.kafka
    settings: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers.split(","),
        "security_protocol": kafka.security_protocol,
        "client_id": config.worker.app_id,
    }
    context = ssl_context(config)
    if context is not None:
        settings["ssl_context"] = context
    if kafka.security_protocol.startswith("SASL_"):
        settings.update(
            sasl_mechanism=kafka.sasl_mechanism,
            sasl_plain_username=kafka.sasl_username,
            sasl_plain_password=kafka.sasl_password,
        )
    return settings


def reader_settings(config: Config) -> dict[str, Any]:
    """Settings of a consumer of the engine's topics: committed data only, so that in
    exactly-once mode what a crash aborted is never read (without transactions, the same)."""
    return {**client_settings(config), "isolation_level": "read_committed"}


def faust_credentials(config: Config) -> Any:
    """faust's `broker_credentials` for the configured security protocol (None: plaintext)."""
    import faust

    kafka = config.kafka
    if kafka.security_protocol.startswith("SASL_"):
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password,
            mechanism=kafka.sasl_mechanism,
            ssl_context=ssl_context(config),
        )
    if kafka.security_protocol == "SSL":
        return faust.SSLCredentials(ssl_context(config))
    return None


def faust_broker_url(config: Config) -> str:
    return ";".join(f"kafka://{server.strip()}" for server in config.kafka.bootstrap_servers.split(","))


def transactional_producer(config: Config, transactional_id: str) -> Any:
    """An aiokafka producer for exactly-once output: one transaction at a time under
    `transactional_id`; starting it fences any older producer of that id and aborts what
    that producer left open."""
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(
        **client_settings(config),
        transactional_id=transactional_id,
        enable_idempotence=True,
        acks="all",
        # the worker's settings for faust's producer (stream/worker/app.py says why)
        linger_ms=20,
        max_batch_size=256 * 1024,
        # A transaction's first send often comes while Kafka still writes the previous one's
        # markers; Kafka 4 answers NOT_ENOUGH_REPLICAS, to be retried (aiokafka#1172), and at
        # aiokafka's 100 ms a retry stalled the worker for longer than a transaction lasts.
        retry_backoff_ms=10,
        # Kafka aborts a transaction open longer than this, fencing its producer; a tick far
        # ahead of the clock holds one open while it fires a backlog of deadlines (35 s for
        # 1M customers). Within the broker's transaction.max.timeout.ms (15 min by default).
        transaction_timeout_ms=600_000,
    )


async def group_offsets(config: Config, group_id: str, partitions: list[Any]) -> dict[Any, int]:
    """The offsets `group_id` has committed for `partitions` (TopicPartitions), -1 for none."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**client_settings(config))
    await admin.start()
    try:
        stored = await admin.list_consumer_group_offsets(group_id, partitions=partitions)
    finally:
        await admin.close()
    return {tp: stored[tp].offset if tp in stored else -1 for tp in partitions}
