"""Client settings shared by every Kafka client the engine opens (admin, producer, consumer)."""

from __future__ import annotations

from typing import Any

from .config import Config


def client_settings(config: Config) -> dict[str, Any]:
    return {
        "bootstrap_servers": config.kafka.bootstrap_servers.split(","),
        "security_protocol": config.kafka.security_protocol,
        "client_id": config.worker.app_id,
    }


def faust_broker_url(config: Config) -> str:
    return ";".join(f"kafka://{server.strip()}" for server in config.kafka.bootstrap_servers.split(","))
