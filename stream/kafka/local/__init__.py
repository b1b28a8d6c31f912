"""A local Apache Kafka broker (KRaft, one node on 127.0.0.1) that the project starts itself.

The broker comes from the official artifacts on Maven Central (fetched once with Maven into
a cache), runs in combined broker+controller mode, and is stopped with SIGTERM, then
SIGKILL after a timeout. Used by the demo, the tests and CI alike.
"""

from __future__ import annotations

import fcntl
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

KAFKA_VERSION = "4.1.1"
CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qk"
_HERE = Path(__file__).resolve().parent


class LocalKafkaError(RuntimeError):
    """The local broker could not be fetched, started or stopped; the message says why."""


def cache_dir() -> Path:
    base = os.environ.get("LIFECYCLE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lifecycle"
    )
    return Path(base) / f"kafka-{KAFKA_VERSION}"


def ensure_jars(log: bool = True) -> Path:
    """The broker's classpath folder, fetched from Maven Central on first use."""
    libs = cache_dir() / "libs"
    if (libs / ".complete").exists():
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    # one fetch at a time: test processes running side by side each start a broker
    with open(libs.parent / "fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _fetch_jars(libs, log)


def _fetch_jars(libs: Path, log: bool) -> Path:
    marker = libs / ".complete"
    if marker.exists():  # fetched by another process while this one waited
        return libs
    if shutil.which("java") is None:
        raise LocalKafkaError("java is not on PATH; the local broker needs Java 17 or newer")
    if shutil.which("mvn") is None:
        raise LocalKafkaError("mvn (Maven) is not on PATH; it fetches the broker from Maven Central")
    if log:
        print(
            f"local-kafka: fetching Apache Kafka {KAFKA_VERSION} from Maven Central into {libs}", flush=True
        )
    partial = libs.with_name("libs.partial")
    shutil.rmtree(partial, ignore_errors=True)
    result = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(_HERE / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}",
            f"-Dkafka.version={KAFKA_VERSION}",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise LocalKafkaError(
            f"mvn could not fetch the broker:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)
    marker.touch()
    return libs


@dataclass(frozen=True)
class SslFiles:
    """The broker's TLS material: a keystore with its key and certificate chain and, for
    mutual TLS, a truststore with the CA(s) whose client certificates it accepts. The key's
    password is the keystore's (as `openssl pkcs12 -export` makes it)."""

    keystore: Path
    keystore_password: str
    truststore: Path | None = None
    truststore_password: str = ""
    keystore_type: str = "PKCS12"  # or JKS
    truststore_type: str = "PKCS12"


@dataclass(frozen=True)
class Broker:
    port: int
    data_dir: Path
    # name -> password: adds a SASL_PLAINTEXT listener (PLAIN, SCRAM-SHA-256/512) on port + 2
    sasl_users: tuple[tuple[str, str], ...] = ()
    # adds an SSL listener without client authentication on port + 3 and, when the files have
    # a truststore, one that requires a client certificate (mutual TLS) on port + 4
    ssl: SslFiles | None = None

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.port + 2}"

    @property
    def ssl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.port + 3}"

    @property
    def mtls_bootstrap(self) -> str:
        return f"127.0.0.1:{self.port + 4}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def controller_port(self) -> int:
        return self.port + 1

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def pid(self) -> int | None:
        """The broker's pid when it is running, else None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        if _is_zombie(pid):
            return None
        return pid

    def serving(self) -> bool:
        return _accepts(self.port)

    def _client_ports(self) -> list[int]:
        """Every client listener's port: plaintext, then SASL and TLS when configured."""
        ports = [self.port]
        if self.sasl_users:
            ports.append(self.port + 2)
        if self.ssl is not None:
            ports.append(self.port + 3)
            if self.ssl.truststore is not None:
                ports.append(self.port + 4)
        return ports

    def start(self, timeout: float = 90.0) -> bool:
        """Start the broker and wait until it serves; False when it was already running."""
        if self.pid() is not None and self.serving():
            return False
        if self.serving():
            raise LocalKafkaError(f"port {self.port} is taken by another program; pick another with --port")
        libs = ensure_jars()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        properties = self._write_properties()
        classpath = f"{libs}/*"
        java = [
            "java",
            "-Xms256m",
            "-Xmx1g",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={_HERE / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.log_dir}",
            "-cp",
            classpath,
        ]
        if not (self.data_dir / "kraft" / "meta.properties").exists():
            scram = [
                arg
                for name, password in self.sasl_users
                for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
                for arg in ("--add-scram", f"{mechanism}=[name={name},password={password}]")
            ]
            formatted = subprocess.run(
                [*java, "kafka.tools.StorageTool", "format", "-t", CLUSTER_ID, "-c", str(properties), *scram],
                capture_output=True,
                text=True,
            )
            if formatted.returncode != 0:
                raise LocalKafkaError(
                    f"formatting broker storage failed:\n{formatted.stdout}{formatted.stderr}"
                )
        with open(self.log_dir / "stdout.log", "ab") as out:
            process = subprocess.Popen(
                [*java, "kafka.Kafka", str(properties)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LocalKafkaError(
                    f"the broker exited with status {process.returncode}; see {self.log_dir}/stdout.log "
                    f"and server.log"
                )
            if all(_accepts(port) for port in self._client_ports()):
                return True
            time.sleep(0.2)
        self.stop()
        raise LocalKafkaError(f"the broker did not serve on port {self.port} within {timeout:.0f} s")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker cleanly (SIGTERM), or by force after `timeout`; False if not running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _write_properties(self) -> Path:
        path = self.data_dir / "server.properties"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir / "kraft"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "default.replication.factor": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.cleaner.dedupe.buffer.size": "33554432",
            "auto.create.topics.enable": "false",
            # events over the engine's 1 MiB limit must reach it, to be dead-lettered with a reason
            "message.max.bytes": str(4 * 1024 * 1024),
        }
        if self.sasl_users:
            plain_users = " ".join(f'user_{name}="{password}"' for name, password in self.sasl_users)
            settings["listeners"] += f",SASL_PLAINTEXT://127.0.0.1:{self.port + 2}"
            settings["advertised.listeners"] += f",SASL_PLAINTEXT://127.0.0.1:{self.port + 2}"
            settings["listener.security.protocol.map"] += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
            settings["sasl.enabled.mechanisms"] = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
            prefix = "listener.name.sasl_plaintext"
            settings[f"{prefix}.plain.sasl.jaas.config"] = (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
            )
            for mechanism in ("scram-sha-256", "scram-sha-512"):
                settings[f"{prefix}.{mechanism}.sasl.jaas.config"] = (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                )
        if self.ssl is not None:
            files = self.ssl
            ssl_listeners = [("SSL", self.port + 3, "none")]
            if files.truststore is not None:
                ssl_listeners.append(("MTLS", self.port + 4, "required"))
            for name, port, client_auth in ssl_listeners:
                settings["listeners"] += f",{name}://127.0.0.1:{port}"
                settings["advertised.listeners"] += f",{name}://127.0.0.1:{port}"
                settings["listener.security.protocol.map"] += f",{name}:SSL"
                settings[f"listener.name.{name.lower()}.ssl.client.auth"] = client_auth
            settings["ssl.keystore.type"] = files.keystore_type
            settings["ssl.keystore.location"] = str(files.keystore)
            settings["ssl.keystore.password"] = files.keystore_password
            settings["ssl.key.password"] = files.keystore_password
            if files.truststore is not None:
                settings["ssl.truststore.type"] = files.truststore_type
                settings["ssl.truststore.location"] = str(files.truststore)
                settings["ssl.truststore.password"] = files.truststore_password
        path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        return path


_handed_out: set[int] = set()


def free_port(span: int = 1) -> int:
    """A port p on 127.0.0.1 such that p .. p+span-1 are free (a broker takes up to five).

    The ports come from below the kernel's ephemeral range: a port inside it can be free when
    probed and taken a moment later as the local end of some client's connection, and the
    broker then dies with 'Address already in use'. A port is free when it can be bound; one
    handed out earlier in this process is not handed out again.
    """
    ceiling = _ephemeral_ports_start()
    for _ in range(1000):
        first = random.randrange(10_000, ceiling - span)
        ports = set(range(first, first + span))
        if ports & _handed_out:
            continue
        if all(_bindable(port) for port in ports):
            _handed_out.update(ports)
            return first
    raise LocalKafkaError(f"found no {span} free consecutive ports between 10000 and {ceiling}")


def _ephemeral_ports_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
            return int(ranges.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False
