"""Every program in examples/ runs as it stands and does what its docstring says.

Each example is started as a user would start it (``python examples/NAME.py``), in a
subprocess with a timeout, against the embedded broker: the ones that take a broker get
this test's broker through ``MQTT_HOST`` / ``MQTT_PORT``, the others start their own.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
import turbomqtt.client as mqtt

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TIMEOUT = 60

pytestmark = pytest.mark.timeout(120)


def run_example(*args: str, env: dict[str, str] | None = None, timeout: float = TIMEOUT) -> str:
    """Runs ``python examples/ARGS...``; returns its output (stdout and stderr)."""
    done = subprocess.run(
        [sys.executable, *args],
        cwd=EXAMPLES.parent,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stdout}"
    assert "Traceback" not in done.stdout, done.stdout
    return done.stdout


def broker_env(broker) -> dict[str, str]:
    return {"MQTT_HOST": broker.host, "MQTT_PORT": str(broker.port)}


def test_seed_runner_output_has_no_deprecation_warnings():
    """The main job's output: the seed's paho 1.x-style programs are explained once, and
    the DeprecationWarning paho 2.x (and turbomqtt) gives them does not fill the output."""
    out = run_example("examples/seed/run.py", "--records", "5")
    assert "DeprecationWarning" not in out, out
    notes = [line for line in out.splitlines() if "callback API version 1" in line]
    assert len(notes) == 1, out
    assert out.rstrip().endswith("every record arrived exactly once"), out


class Running:
    """An example running in the background; its output lines can be waited for."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=EXAMPLES.parent,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r}: {self.seen}") from None
            if line is None:
                raise AssertionError(f"exited ({self.proc.wait()}) before {pattern!r}: {self.seen}")
            self.seen.append(line)
            m = re.search(pattern, line)
            if m:
                return m

    def finish(self, interrupt: bool = False, timeout: float = TIMEOUT) -> str:
        """Waits for the exit (after Ctrl-C if ``interrupt``); returns the remaining output."""
        if interrupt:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(10)
        rest = []
        while (line := self.lines.get_nowait()) is not None:
            rest.append(line)
        out = "\n".join(self.seen + rest)
        assert code == 0, f"exit {code}:\n{out}"
        assert "Traceback" not in out, out
        return "\n".join(rest)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_paho_style_publisher_and_subscriber(mqtt_broker):
    sub = Running("examples/paho_subscriber.py", "--count", "3", env=broker_env(mqtt_broker))
    try:
        sub.wait_for(r"^subscribed to demo/readings/#")
        out = run_example("examples/paho_publisher.py", "--count", "3", "--sensor", "hall",
                          env=broker_env(mqtt_broker))
        assert out.count("published {") == 3, out
        readings = [sub.wait_for(r"^demo/readings/hall (\{.*\}) \(QoS 1\)$") for _ in range(3)]
        assert [json.loads(m.group(1))["seq"] for m in readings] == [0, 1, 2]
        assert "received 3 readings" in sub.finish()
    finally:
        sub.kill()


def test_asyncio_streams_survive_a_broker_restart():
    out = run_example("examples/asyncio_streams.py")
    lines = out.splitlines()
    assert lines[-1] == "received 6 readings across a broker restart", out
    readings = [line for line in lines if line.startswith("[consumer] sensors/")]
    assert len(readings) == 6, out
    restart = lines.index("stopping the broker")
    assert [r for r in lines[restart:] if r.startswith("[consumer] sensors/")] == readings[3:]
    for name in ("consumer", "producer"):
        assert any(line.startswith(f"[{name}] disconnected") and "will reconnect: True" in line
                   for line in lines[restart:]), out
        assert f"[{name}] connected (session present: False)" in lines[restart:], out


@pytest.mark.parametrize("own_broker", [True, False], ids=["own-broker", "fixture-broker"])
def test_request_response(mqtt_broker, own_broker):
    out = run_example("examples/request_response.py",
                      env={} if own_broker else broker_env(mqtt_broker))
    assert out.splitlines() == [
        "price of apple: 0.5 (application/json)",
        "price of pear: 0.75 (application/json)",
        "price of plum: None (application/json)",
        "unanswered request: no response within 0.5 s",
    ], out
    if not own_broker:
        assert mqtt_broker.stats()["publish_received"] >= 7


def test_sanic_app_publishes_on_request(mqtt_broker):
    pytest.importorskip("sanic")
    http_port = free_port()
    got: queue.Queue = queue.Queue()
    subscribed = threading.Event()
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    watcher.on_message = lambda c, u, m: got.put((m.topic, m.payload, m.qos))
    watcher.on_subscribe = lambda *a: subscribed.set()
    watcher.connect(mqtt_broker.host, mqtt_broker.port)
    watcher.subscribe("devices/#", qos=1)
    watcher.loop_start()
    app = Running("examples/sanic_app.py",
                  env={**broker_env(mqtt_broker), "HTTP_PORT": str(http_port)})
    try:
        assert subscribed.wait(10)
        app.wait_for(rf"^HTTP ready on port {http_port}$")
        request = urllib.request.Request(f"http://127.0.0.1:{http_port}/devices/lamp",
                                         data=b'{"state": "on"}', method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer == {"topic": "devices/lamp/set", "reason_code": 0}
        assert got.get(timeout=10) == ("devices/lamp/set", b'{"state": "on"}', 1)
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=10) as r:
            assert json.loads(r.read()) == {"mqtt_connected": True}
        app.finish(interrupt=True)
        assert "sanic-example" not in [c["client_id"] for c in mqtt_broker.clients()]
    finally:
        app.kill()
        watcher.disconnect()
        watcher.loop_stop()


def test_pytest_suite_example_passes():
    out = run_example("-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/pytest_suite",
                      timeout=120)
    assert re.search(r"^5 passed", out, re.MULTILINE), out


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
def test_broker_with_users_acl_and_tls():
    out = run_example("examples/broker_auth_acl_tls.py")
    assert re.search(r"^broker on mqtts://127\.0\.0\.1:\d+$", out, re.MULTILINE), out
    assert "alice: published and read back 'on, says alice'" in out
    assert "bob: publish refused by the ACL: " in out and "(0x87)" in out
    assert "mallory: connection refused: bad user name or password (code 134)" in out
    assert "without the CA: unable to get local issuer certificate" in out


@pytest.mark.parametrize("own_broker", [True, False], ids=["own-broker", "fixture-broker"])
def test_websocket_client(mqtt_broker_factory, own_broker):
    env = {}
    if not own_broker:
        broker = mqtt_broker_factory(listeners=[{"port": 0, "transport": "websocket"}])
        env = {"MQTT_HOST": broker.host, "MQTT_WS_PORT": str(broker.port)}
    out = run_example("examples/websocket_client.py", env=env)
    assert "asyncio client got 'hello over WebSocket' on ws/demo" in out, out
    assert ("broker on ws://" in out) == own_broker
