"""An example email subscriber: one mail per fresh transition, at most once per event id.

Consumes the per-transition topics of `became_one_timer` and `went_inactive` (they carry only
fresh transitions), renders a message per transition from a template, and sends it over
SMTP. It skips transitions marked `replayed` (a rebuild mails no one) and customers without
an email address or without marketing consent (`accepts_marketing` in the snapshot: send
contact data with your orders, see the README).

At most once per `event_id`: the id is written to a small SQLite store *before* the mail is
sent, and a restarted subscriber skips ids it finds there. A crash between the two leaves
the id marked `sending`: that mail may or may not have left, and the subscriber says which
ids at start, for someone to look at. Each mail's Message-ID derives from the event id too,
so a mail system that deduplicates by Message-ID can go further. Offsets are committed after
each batch, so a crash redelivers at most that batch, and the store makes it harmless.

    .venv/bin/python examples/email_subscriber.py --config shop.toml \\
        --smtp-host 127.0.0.1 --smtp-port 1025 --sender "Shop <hello@shop.example>" \\
        --store var/email-subscriber.sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sqlite3
import sys
from email.message import EmailMessage
from pathlib import Path
from string import Template
from typing import Any

import aiosmtplib
import orjson
from aiokafka import AIOKafkaConsumer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from stream.config import load_config
from stream.kafka.client import reader_settings
from stream.kafka.topics import per_name_topic

log = logging.getLogger("email-subscriber")

TEMPLATES: dict[str, tuple[str, str]] = {
    "became_one_timer": (
        "Thank you for your first order",
        "Hello,\n\nthank you for your first order with us ($first_items).\n"
        "Here is 10 % off your next one: WELCOME-BACK.\n",
    ),
    "went_inactive": (
        "We miss you",
        "Hello,\n\nit has been $days_since_last_order days since your last order.\n"
        "Come back for 15 % off: MISSYOU.\n",
    ),
}


class SentStore:
    """Event ids of mails sent (or being sent), in SQLite: survives restarts and crashes."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS mails (event_id TEXT PRIMARY KEY, status TEXT NOT NULL)")
        self.db.commit()

    def claim(self, event_id: str) -> bool:
        """Mark `event_id` as being sent; False when it was claimed before."""
        try:
            with self.db:
                self.db.execute("INSERT INTO mails VALUES (?, 'sending')", (event_id,))
        except sqlite3.IntegrityError:
            return False
        return True

    def sent(self, event_id: str) -> None:
        with self.db:
            self.db.execute("UPDATE mails SET status = 'sent' WHERE event_id = ?", (event_id,))

    def uncertain(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT event_id FROM mails WHERE status = 'sending'")]


def render(transition: dict[str, Any], sender: str) -> EmailMessage | None:
    """The mail for a transition, or None when it must not be sent."""
    snapshot = transition.get("customer") or {}
    if (
        transition.get("replayed")
        or not snapshot.get("email")
        or snapshot.get("accepts_marketing") is not True
    ):
        return None
    subject, body = TEMPLATES[transition["transition"]]
    items = ((snapshot.get("first_order") or {}).get("items")) or []
    values = {
        "first_items": ", ".join(item["sku"] for item in items) or "your order",
        "days_since_last_order": snapshot.get("days_since_last_order"),
        "order_count": snapshot.get("order_count"),
    }
    message = EmailMessage()
    message["From"] = sender
    message["To"] = snapshot["email"]
    message["Subject"] = subject
    message["Message-ID"] = f"<{transition['event_id']}@lifecycle>"
    message.set_content(Template(body).safe_substitute(values))
    return message


async def run(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    store = SentStore(args.store)
    uncertain = store.uncertain()
    if uncertain:
        log.warning("%d mail(s) may not have left before a crash: %s", len(uncertain), ", ".join(uncertain))
    topics = [per_name_topic(config, name) for name in TEMPLATES]
    consumer = AIOKafkaConsumer(
        *topics,
        # in exactly-once mode, never what a crash aborted (docs/exactly-once.md)
        **reader_settings(config),
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    log.info("consuming %s; mails to %s:%d", ", ".join(topics), args.smtp_host, args.smtp_port)
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    await handle(record.value, store, args)
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()


async def handle(raw: bytes, store: SentStore, args: argparse.Namespace) -> None:
    transition = orjson.loads(raw)
    message = render(transition, args.sender)
    event_id = transition["event_id"]
    if message is None or not store.claim(event_id):
        return
    await aiosmtplib.send(message, hostname=args.smtp_host, port=args.smtp_port)
    store.sent(event_id)
    log.info("sent %s for %s", transition["transition"], event_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the engine's TOML config (kafka, topics)")
    parser.add_argument("--smtp-host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, default=25)
    parser.add_argument("--sender", required=True, help='e.g. "Shop <hello@shop.example>"')
    parser.add_argument("--store", default="email-subscriber.sqlite", help="SQLite file of mails sent")
    parser.add_argument("--group", default="email-subscriber", help="Kafka consumer group")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
