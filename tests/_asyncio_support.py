"""Shared helpers of the asyncio client tests: a mosquitto broker on a free loopback port
that a test can stop and start again (same port, optional persistence)."""

from __future__ import annotations

import getpass
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import MOSQUITTO_BIN as MOSQUITTO
from conftest import need_mosquitto


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """A mosquitto process; `extra` lines are appended to its configuration."""

    def __init__(self, directory: Path, extra: str = "", persistence: bool = False) -> None:
        self.port = free_port()
        self.dir = directory
        self.conf = directory / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            # Unlimited per-client queues: any loss in the tests is then ours, not a
            # broker limit.
            "max_queued_messages 0",
            # Run as root, mosquitto would switch to user "mosquitto" and could no
            # longer read the ACL file or write persistence in our temp directory.
            f"user {getpass.getuser()}",
        ]
        if persistence:
            lines += ["persistence true", f"persistence_location {directory}/"]
        self.conf.write_text("\n".join(lines) + "\n" + extra)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.dir / "mosquitto.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError((self.dir / "mosquitto.log").read_text()) from None
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its persistence file and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def make_mosquitto(extra: str = "", persistence: bool = False):
    need_mosquitto()
    d = Path(tempfile.mkdtemp(prefix="aio-mosq-"))
    m = Mosquitto(d, extra, persistence)
    m.start()
    return m


@pytest.fixture
def mosquitto():
    m = make_mosquitto()
    yield m
    m.stop()


@pytest.fixture
def mosquitto_factory():
    made = []

    def make(extra: str = "", persistence: bool = False) -> Mosquitto:
        m = make_mosquitto(extra, persistence)
        made.append(m)
        return m

    yield make
    for m in made:
        m.stop()


class Embedded:
    """turbomqtt's own broker, with the same start/stop interface as Mosquitto (in
    memory: a restart keeps nothing)."""

    def __init__(self, **options) -> None:
        self.port = free_port()
        # Large per-session queues: any loss in the tests is then the client's.
        options.setdefault("max_queued_messages", 1_000_000)
        self.options = options
        self.broker = None

    def start(self) -> None:
        import turbomqtt

        self.broker = turbomqtt.Broker(port=self.port, **self.options).start()

    def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()
            self.broker = None


def make_broker(kind: str):
    if kind == "mosquitto":
        return make_mosquitto()
    b = Embedded()
    b.start()
    return b


@pytest.fixture(params=["mosquitto", "embedded"])
def any_broker(request):
    b = make_broker(request.param)
    yield b
    b.stop()
