"""``python -m turbomqtt broker``, its TOML configuration file, and the pytest fixtures."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest
from broker_support import V5, V311, Peer
from turbomqtt import _toml
from turbomqtt.broker import OPTIONS, Broker, load_config

CONFIG = """\
# A broker configuration exercising every kind of value.
port = 0
allow_anonymous = false
max_queued_messages = 50
connect_timeout = 2.5
sys_interval = 0

[users]
alice = "s3cret"
"bob smith" = 'pa#ss'

[[listeners]]
host = "127.0.0.1"
port = 0

[[listeners]]
port = 0
transport = "tcp"
"""


def start_cli(*args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "turbomqtt", "broker", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.search(r"listening on mqtt://127\.0\.0\.1:(\d+)(,|$)", line.strip())
        if m and line.startswith("turbomqtt broker"):
            return proc, int(m.group(1))
    proc.kill()
    raise AssertionError(f"the CLI did not start: exit {proc.wait()}")


def test_cli_serves_until_ctrl_c():
    proc, port = start_cli("--host", "127.0.0.1", "--port", "0", "-v")
    try:
        sub = Peer(port, "cli-sub", V5).connect()
        sub.subscribe("c/t", 1)
        pub = Peer(port, "cli-pub", V311).connect()
        pub.publish("c/t", b"via cli", 1)
        assert sub.get().payload == b"via cli"
        pub.disconnect()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        assert sub.disconnected.wait(5)
        sub.client.loop_stop()
    finally:
        proc.kill()
        proc.wait()


def test_cli_with_config_file(tmp_path):
    cfg = tmp_path / "broker.toml"
    cfg.write_text(CONFIG)
    proc, port = start_cli("--config", str(cfg))
    try:
        anon = Peer(port, "anon", V5).connect(expect_success=False)
        assert anon.reason_code == 0x87
        anon.client.loop_stop()
        Peer(port, "bob", V311).connect(username="bob smith", password="pa#ss").disconnect()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        proc.kill()
        proc.wait()


def test_cli_port_in_use_fails_cleanly():
    with Broker(port=0) as b:
        out = subprocess.run(
            [sys.executable, "-m", "turbomqtt", "broker", "--port", str(b.port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert out.returncode == 1
    assert "cannot listen" in out.stderr


def test_config_file_maps_to_broker_options(tmp_path):
    cfg = tmp_path / "broker.toml"
    cfg.write_text(CONFIG)
    options = load_config(str(cfg))
    assert options["users"] == {"alice": "s3cret", "bob smith": "pa#ss"}
    assert len(options["listeners"]) == 2
    assert set(options) <= set(OPTIONS)
    with Broker(**options) as b:
        assert len(b.ports) == 2


def test_config_file_rejects_unknown_options(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("prot = 1883\n")
    with pytest.raises(ValueError, match="prot"):
        load_config(str(cfg))


def test_fallback_toml_reader_agrees_with_tomllib():
    tomllib = pytest.importorskip("tomllib")
    text = CONFIG + 'list = [1, 2.5, "x", true]\ninline = { a = 1, b = "two" }\n'
    assert _toml.loads(text) == tomllib.loads(text)
    with pytest.raises(ValueError):
        _toml.loads("key = \n")


def test_mqtt_broker_fixture(mqtt_broker):
    assert mqtt_broker.running and mqtt_broker.port > 0
    p = Peer(mqtt_broker.port, "fixture", V311).connect()
    p.subscribe("f", 0)
    p.publish("f", b"1", 0)
    assert p.get().payload == b"1"
    p.disconnect()


def test_mqtt_broker_session_fixture(mqtt_broker_session):
    assert mqtt_broker_session.running
    assert mqtt_broker_session.url.startswith("mqtt://127.0.0.1:")
