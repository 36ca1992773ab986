# --- client: a real mosquitto on a free 127.0.0.1 port -----------------------------------
import os as _os
import shutil as _shutil
import socket as _socket
import subprocess as _subprocess
import time as _time

import pytest as _pytest

MOSQUITTO_BIN = _shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def _free_port():
    with _socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MosquittoProcess:
    """mosquitto on 127.0.0.1 with a minimal config; `stop()` / `start()` keep the port."""

    def __init__(self, directory, extra_config="", allow_anonymous=True):
        self.port = _free_port()
        self.host = "127.0.0.1"
        self.conf = _os.path.join(str(directory), "mosquitto.conf")
        with open(self.conf, "w") as f:
            anonymous = "true" if allow_anonymous else "false"
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous {anonymous}\n"
                    f"{extra_config}")
        self.proc = None

    def start(self, timeout=10.0):
        self.proc = _subprocess.Popen(
            [MOSQUITTO_BIN, "-c", self.conf],
            stdout=_subprocess.DEVNULL,
            stderr=_subprocess.DEVNULL,
        )
        deadline = _time.monotonic() + timeout
        while _time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}")
            try:
                _socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                _time.sleep(0.02)
        self.stop()
        raise RuntimeError("mosquitto did not start listening")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except _subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@_pytest.fixture
def mosquitto_process(tmp_path):
    """A started `MosquittoProcess` the test may stop and restart."""
    if not _os.path.exists(MOSQUITTO_BIN):
        _pytest.skip("mosquitto is not installed")
    m = MosquittoProcess(tmp_path).start()
    yield m
    m.stop()


@_pytest.fixture
def mosquitto(mosquitto_process):
    """(host, port) of a fresh mosquitto on 127.0.0.1."""
    return (mosquitto_process.host, mosquitto_process.port)


@_pytest.fixture
def peers(broker):
    """paho-mqtt peers on the test module's `broker` fixture: `peers(client_id, protocol,
    **connect_kw)` returns a connected `broker_support.Peer`; all are closed afterwards."""
    from broker_support import V5, Peer

    made = []

    def make(client_id: str = "", protocol: int = V5, **connect_kw):
        p = Peer(broker.port, client_id, protocol)
        made.append(p)
        return p.connect(**connect_kw)

    yield make
    for p in made:
        p.client.disconnect()
        p.client.loop_stop()
