"""TLS for real: the worker, send and tail over a broker's SSL listeners, with certificates
made here with openssl and keytool: server-only TLS, mutual TLS, and the wrong CA."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream.kafka.local import Broker, SslFiles
from tests.kafka.env import ROOT, Env, free_port, transition_key, worker_matches_replay

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

STORE_PASSWORD = "broker-secret"


@dataclass(frozen=True)
class Certificates:
    ca: Path  # signs the broker's and the client's certificates
    client_cert: Path
    client_key: Path
    other_ca: Path  # unrelated: the wrong CA
    other_client_cert: Path  # a client certificate the broker does not trust
    other_client_key: Path
    broker_files: SslFiles


def _run(*command: str | Path, cwd: Path) -> None:
    result = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, command))} failed:\n{result.stdout}{result.stderr}")


def _ca(directory: Path, name: str, subject: str) -> None:
    """A self-signed CA: `name`.pem and its key."""
    (directory / f"{name}.cnf").write_text(
        "[req]\ndistinguished_name = dn\nx509_extensions = ca\n[dn]\n[ca]\n"
        "basicConstraints = critical, CA:TRUE\n"
        "keyUsage = critical, keyCertSign, cRLSign\n"
        "subjectKeyIdentifier = hash\n"
    )
    _run(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-config", f"{name}.cnf", "-subj", subject, "-keyout", f"{name}.key", "-out", f"{name}.pem",
        cwd=directory,
    )  # fmt: skip


def _leaf(directory: Path, name: str, ca: str, subject: str, extensions: str) -> None:
    """A key and a certificate for it signed by the CA `ca`."""
    (directory / f"{name}.ext").write_text(
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid\n" + extensions
    )
    _run(
        "openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
        cwd=directory,
    )  # fmt: skip
    _run(
        "openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
        cwd=directory,
    )  # fmt: skip


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    directory = tmp_path_factory.mktemp("tls")
    _ca(directory, "ca", "/CN=lifecycle test CA")
    _ca(directory, "other-ca", "/CN=some other CA")
    _leaf(
        directory,
        "broker",
        "ca",
        "/CN=localhost",
        "extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1, DNS:localhost\n",
    )
    _leaf(directory, "client", "ca", "/CN=shop", "extendedKeyUsage = clientAuth\n")
    _leaf(directory, "other-client", "other-ca", "/CN=stranger", "extendedKeyUsage = clientAuth\n")
    # the broker's keystore: its key, its certificate and the CA's (openssl's PKCS12 reads in Java)
    _run(
        "openssl", "pkcs12", "-export", "-name", "broker",
        "-inkey", "broker.key", "-in", "broker.pem", "-certfile", "ca.pem",
        "-out", "broker.p12", "-passout", f"pass:{STORE_PASSWORD}",
        cwd=directory,
    )  # fmt: skip
    # its truststore: the CA whose client certificates it accepts (keytool marks it trusted,
    # which a certificate-only PKCS12 from openssl is not, for Java)
    _run(
        "keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", "ca.pem",
        "-keystore", "truststore.p12", "-storetype", "PKCS12", "-storepass", STORE_PASSWORD,
        cwd=directory,
    )  # fmt: skip
    return Certificates(
        ca=directory / "ca.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        other_ca=directory / "other-ca.pem",
        other_client_cert=directory / "other-client.pem",
        other_client_key=directory / "other-client.key",
        broker_files=SslFiles(
            keystore=directory / "broker.p12",
            keystore_password=STORE_PASSWORD,
            truststore=directory / "truststore.p12",
            truststore_password=STORE_PASSWORD,
        ),
    )


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory, certificates: Certificates) -> Iterator[Broker]:
    broker = Broker(free_port(span=5), tmp_path_factory.mktemp("tls-kafka"), ssl=certificates.broker_files)
    broker.start()
    yield broker
    broker.stop()


def tls_env(
    broker: Broker, directory: Path, cafile: Path, mutual: bool, client: tuple[Path, Path] | None = None
) -> Env:
    """A config for the broker's SSL listener (mutual: the one that requires a client
    certificate) trusting `cafile`, with `client`'s certificate and key when given."""
    kafka: dict[str, Any] = {
        "bootstrap_servers": broker.mtls_bootstrap if mutual else broker.ssl_bootstrap,
        "security_protocol": "SSL",
        "ssl_cafile": str(cafile),
        "partitions": 2,
    }
    if client is not None:
        kafka.update(ssl_certfile=str(client[0]), ssl_keyfile=str(client[1]))
    return Env(broker, directory, kafka=kafka)


def tail_transitions(env: Env, count: int, timeout: float = 60) -> list[dict]:
    """`lifecycle tail --from-beginning --json` as a process, read until `count` transitions
    have come, then killed (it runs until stopped)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "stream", "tail", "--from-beginning", "--json", "--config", str(env.path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    lines: queue.Queue[bytes | None] = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)  # it exited

    threading.Thread(target=read, daemon=True).start()
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            got.append(orjson.loads(line))
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    if len(got) < count:
        stderr = process.stderr.read().decode(errors="replace")
        raise AssertionError(f"tail printed {len(got)} of {count} transitions; stderr:\n{stderr}")
    return got


@pytest.mark.parametrize("mutual", [False, True], ids=["server-tls", "mutual-tls"])
def test_worker_send_and_tail_over_tls(tls_broker, certificates, tmp_path, mutual):
    client = (certificates.client_cert, certificates.client_key) if mutual else None
    env = tls_env(tls_broker, tmp_path, certificates.ca, mutual, client)
    worker, expected = worker_matches_replay(env, customers=60, seed=5)
    assert "CERTIFICATE_VERIFY_FAILED" not in worker.output()
    tailed = tail_transitions(env, len(expected))
    assert sorted(map(transition_key, tailed)) == sorted(map(transition_key, expected))


def _stops_with_a_message(env: Env, command: tuple[str, ...]) -> str:
    result = env.lifecycle(*command, check=False, timeout=120)
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 2, stderr
    assert "kafka.bootstrap_servers" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    return stderr


def _commands(directory: Path) -> list[tuple[str, ...]]:
    history = directory / "history.jsonl"
    history.write_bytes(b"")
    return [
        ("topics", "create"),
        ("send", str(history)),
        ("tail", "--from-beginning", "--json"),
        ("worker", "--data-dir", str(directory / "w1-data"), "--web-port", str(free_port())),
    ]


def test_wrong_ca_stops_with_a_message(tls_broker, certificates, tmp_path):
    env = tls_env(tls_broker, tmp_path, certificates.other_ca, mutual=False)
    for command in _commands(tmp_path):
        stderr = _stops_with_a_message(env, command)
        # aiokafka's own log line says why: the broker's certificate is not signed by this CA
        assert "CERTIFICATE_VERIFY_FAILED" in stderr, stderr


@pytest.mark.parametrize("client", ["none", "untrusted"])
def test_mutual_tls_refuses_a_client_without_a_trusted_certificate(
    tls_broker, certificates, tmp_path, client
):
    stranger = (certificates.other_client_cert, certificates.other_client_key)
    env = tls_env(
        tls_broker, tmp_path, certificates.ca, mutual=True, client=stranger if client == "untrusted" else None
    )
    for command in _commands(tmp_path):
        _stops_with_a_message(env, command)
