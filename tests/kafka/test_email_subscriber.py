"""The example email subscriber against a real broker and a real SMTP server (aiosmtpd):
one mail per fresh transition with consent, none twice, through a SIGKILL of itself."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller

from stream.kafka.client import client_settings
from stream.kafka.topics import per_name_topic
from tests.kafka.env import ROOT, free_port, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


class Inbox:
    """An SMTP handler that keeps every mail it accepts, and holds one mail unanswered (the
    subscriber is then in the middle of sending it: the moment to kill it)."""

    def __init__(self, hold: int) -> None:
        self.lock = threading.Lock()
        self.mails: list[tuple[str, str]] = []  # (Message-ID, To)
        self.offered = 0
        self.hold = hold
        self.held: str | None = None

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd calls it by this name
        text = envelope.content.decode()
        found = re.search(r"^Message-ID: (.+)$", text, re.M | re.I)
        message_id = found.group(1).strip() if found else ""
        with self.lock:
            number, self.offered = self.offered, self.offered + 1
            if number == self.hold:
                self.held = message_id
        if number == self.hold:
            await asyncio.sleep(3600)  # never accepted: cancelled when the server stops
        with self.lock:
            self.mails.append((message_id, ",".join(envelope.rcpt_tos)))
        return "250 OK"

    def ids(self) -> list[str]:
        with self.lock:
            return [message_id for message_id, _ in self.mails]


def _transition(number: int, name: str, **customer: object) -> dict:
    snapshot = {"email": f"c{number}@example.com", "accepts_marketing": True, "order_count": 1, **customer}
    return {
        "event_id": f"ev-{number:03d}",
        "customer_id": f"c{number}",
        "transition": name,
        "replayed": False,
        "customer": snapshot,
    }


def test_one_mail_per_fresh_transition_with_consent_none_twice_through_a_sigkill(env_factory, tmp_path: Path):
    """At most once: the mail being sent when the subscriber is killed is not sent again
    (it may have left); the restarted subscriber names it, and sends every other one."""
    env = env_factory(kafka={"partitions": 2})
    env.lifecycle("topics", "create")
    fresh = [_transition(n, "became_one_timer" if n % 2 else "went_inactive") for n in range(60)]
    not_to_mail = [
        {**_transition(100, "became_one_timer"), "replayed": True},
        _transition(101, "went_inactive", accepts_marketing=False),
        _transition(102, "went_inactive", email=None),
    ]
    messages = [*fresh, *not_to_mail, fresh[0]]  # the last: a redelivery

    async def produce() -> None:
        producer = AIOKafkaProducer(**client_settings(env.config))
        await producer.start()
        try:
            for t in messages:
                topic = per_name_topic(env.config, t["transition"])
                await producer.send_and_wait(topic, orjson.dumps(t), key=t["customer_id"].encode())
        finally:
            await producer.stop()

    asyncio.run(produce())
    inbox = Inbox(hold=15)
    smtp_port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    log = tmp_path / "subscriber.log"
    command = [
        sys.executable,
        str(ROOT / "examples" / "email_subscriber.py"),
        "--config",
        str(env.path),
        "--smtp-port",
        str(smtp_port),
        "--sender",
        "Shop <hello@shop.example>",
        "--store",
        str(tmp_path / "sent.sqlite"),
        "--group",
        f"{env.config.worker.app_id}-mail",
    ]

    def start() -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)

    try:
        first = start()
        wait_for(lambda: inbox.held is not None or first.poll() is not None, 120, "the 16th mail on its way")
        first.send_signal(signal.SIGKILL)  # in the middle of sending it
        first.wait(timeout=30)
        second = start()
        expected = {f"<{t['event_id']}@lifecycle>" for t in fresh} - {inbox.held}
        wait_for(lambda: set(inbox.ids()) >= expected or second.poll() is not None, 120, "every other mail")
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0, log.read_text()
    finally:
        controller.stop()
    # one each: none twice, none replayed, none without consent or address
    assert sorted(inbox.ids()) == sorted(expected)
    assert len(expected) == 59
    held_event = inbox.held.strip("<>").split("@")[0]
    assert f"1 mail(s) may not have left before a crash: {held_event}" in log.read_text()
