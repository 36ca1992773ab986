"""Configuration files: mosquitto.conf as mosquitto 2.0 reads it, TOML, and the one-line
errors of ``python -m turbomqtt broker -c FILE``."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from broker_support import V5, V311, Peer
from turbomqtt.broker import Broker, ConfigError, load_config

pytestmark = pytest.mark.timeout(60)

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[str], timeout: float = 10.0) -> None:
    """Until ``port`` accepts connections (a process has no readiness event to await)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            assert proc.poll() is None, f"exited with {proc.returncode}"
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            time.sleep(0.02)


def conf(tmp_path: Path, text: str, name: str = "mosquitto.conf") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs the broker CLI to its end (for configurations it must refuse)."""
    return subprocess.run(
        [sys.executable, "-m", "turbomqtt", "broker", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


class RunningCli:
    """The broker CLI serving in a subprocess; ``urls`` from its startup line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "turbomqtt", "broker", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("turbomqtt broker listening on "):
            self.proc.kill()
            _, err = self.proc.communicate()
            raise AssertionError(f"the CLI did not start: {line!r} {err!r}")
        self.urls = line.strip().removeprefix("turbomqtt broker listening on ").split(", ")

    def port(self, i: int = 0) -> int:
        return int(self.urls[i].rsplit(":", 1)[1])

    def stop(self) -> str:
        """SIGTERM, then the process's stderr; asserts a clean exit."""
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=15)
        assert self.proc.returncode == 0, err
        return err

    def __enter__(self) -> RunningCli:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def assert_one_line_error(out: subprocess.CompletedProcess[str], *parts: str) -> None:
    assert out.returncode == 1, out
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("turbomqtt broker: ")
    for part in parts:
        assert part in lines[0], lines[0]


# -- what each mosquitto.conf key becomes -----------------------------------------------

KEYS: list[tuple[str, str, dict[str, Any]]] = [
    ("listener", "listener 1884 127.0.0.1\n", {"listeners": [{"port": 1884, "host": "127.0.0.1"}]}),
    ("listener without address", "listener 1884\n", {"listeners": [{"port": 1884, "host": "0.0.0.0"}]}),
    ("port", "port 1885\n", {"port": 1885}),
    ("bind_address", "bind_address 127.0.0.2\nport 1885\n", {"host": "127.0.0.2", "port": 1885}),
    (
        "protocol",
        "listener 9001 127.0.0.1\nprotocol websockets\nlistener 1883 127.0.0.1\nprotocol mqtt\n",
        {
            "listeners": [
                {"port": 9001, "host": "127.0.0.1", "transport": "websocket"},
                {"port": 1883, "host": "127.0.0.1", "transport": "tcp"},
            ]
        },
    ),
    (
        "allow_anonymous",
        "listener 1 127.0.0.1\nallow_anonymous true\n",
        {"allow_anonymous": True, "listeners": [{"port": 1, "host": "127.0.0.1"}]},
    ),
    ("password_file", "password_file /etc/pw\n", {"password_file": "/etc/pw"}),
    ("acl_file", "acl_file /etc/acl\n", {"acl_file": "/etc/acl"}),
    (
        "certfile keyfile cafile require_certificate",
        (
            "listener 8883 127.0.0.1\ncertfile c.pem\nkeyfile k.pem\ncafile ca.pem\n"
            "require_certificate true\n"
        ),
        {
            "listeners": [
                {
                    "port": 8883,
                    "host": "127.0.0.1",
                    "certfile": "c.pem",
                    "keyfile": "k.pem",
                    "cafile": "ca.pem",
                    "require_certificate": True,
                }
            ]
        },
    ),
    ("max_queued_messages", "max_queued_messages 7\n", {"max_queued_messages": 7}),
    ("max_queued_bytes", "max_queued_bytes 65536\n", {"max_queued_bytes": 65536}),
    ("max_inflight_messages", "max_inflight_messages 5\n", {"max_inflight_messages": 5}),
    ("max_packet_size", "max_packet_size 1024\n", {"max_packet_size": 1024}),
    ("max_packet_size 0 is no limit", "max_packet_size 0\n", {"max_packet_size": 268435455}),
    ("max_connections", "max_connections 3\n", {"max_connections": 3}),
    ("max_connections -1 is no limit", "max_connections -1\n", {"max_connections": 0}),
    ("persistence false", "persistence false\n", {}),
    ("persistence_location", "persistence_location /var/lib/mosquitto/\n", {}),
    ("per_listener_settings false", "per_listener_settings false\n", {}),
]


@pytest.mark.parametrize(("text", "expected"), [k[1:] for k in KEYS], ids=[k[0] for k in KEYS])
def test_mosquitto_conf_key_maps_to_broker_options(tmp_path, text, expected):
    options = load_config(conf(tmp_path, text))
    for key, value in expected.items():
        assert options[key] == value
    # Nothing else is invented, beyond mosquitto 2.0's allow_anonymous default.
    assert set(options) - set(expected) <= {"allow_anonymous"}


def test_allow_anonymous_defaults_as_in_mosquitto_2(tmp_path):
    """mosquitto 2.0: refused once a listener is configured, allowed in local-only mode."""
    assert load_config(conf(tmp_path, "listener 1883 127.0.0.1\n"))["allow_anonymous"] is False
    assert load_config(conf(tmp_path, "max_qos 1\n"))["allow_anonymous"] is True


def test_include_dir_reads_conf_files_in_name_order(tmp_path):
    extra = tmp_path / "conf.d"
    extra.mkdir()
    (extra / "b.conf").write_text("max_queued_messages 20\n")
    (extra / "a.conf").write_text("max_queued_messages 10\nmax_inflight_messages 4\n")
    (extra / "ignored.txt").write_text("not a setting\n")
    options = load_config(conf(tmp_path, f"max_qos 1\ninclude_dir {extra}\n"))
    assert options["max_queued_messages"] == 20
    assert options["max_inflight_messages"] == 4


def test_bridge_block_is_read_with_mosquitto_semantics(tmp_path):
    text = """\
connection hub
address 10.0.0.1:1884 hub.example
round_robin false
topic sensors/# out 1 edge/ hub/
topic "" in 2 local/cmd remote/cmd
topic status both
remote_username edge
remote_password secret
remote_clientid edge-1
local_clientid edge-1-local
cleansession false
bridge_protocol_version mqttv50
try_private true
notifications true
notification_topic edge/state
keepalive_interval 30
restart_timeout 5 60
start_type automatic
bridge_cafile ca.pem
bridge_certfile c.pem
bridge_keyfile k.pem
bridge_insecure false
bridge_max_packet_size 65536
"""
    path = conf(tmp_path, text)
    from turbomqtt._conf import read_config

    bridge = read_config(path).options["bridges"][0]
    assert bridge["name"] == "hub"
    assert bridge["address"] == ["10.0.0.1:1884", "hub.example:1883"]
    assert bridge["topic"] == [
        {
            "pattern": "sensors/#",
            "direction": "out",
            "qos": 1,
            "local_prefix": "edge/",
            "remote_prefix": "hub/",
        },
        {
            "pattern": "",
            "direction": "in",
            "qos": 2,
            "local_prefix": "local/cmd",
            "remote_prefix": "remote/cmd",
        },
        {"pattern": "status", "direction": "both", "qos": 0},
    ]
    assert bridge["remote_clientid"] == "edge-1"
    assert bridge["cleansession"] is False
    assert bridge["bridge_protocol_version"] == "mqttv50"
    assert bridge["restart_timeout"] == [5, 60]
    assert bridge["notification_topic"] == "edge/state"
    assert bridge["bridge_max_packet_size"] == 65536
    # Outgoing bridges are not built yet: the broker says so rather than ignoring them.
    with pytest.raises(NotImplementedError, match="bridges"):
        Broker(**read_config(path).options)


def test_log_type_and_log_dest(tmp_path):
    from turbomqtt._conf import read_config

    config = read_config(conf(tmp_path, "log_type error\nlog_type notice\nlog_dest stdout\n"))
    assert config.log_level == logging.INFO
    assert config.log_dest == ["stdout"]
    config = read_config(conf(tmp_path, f"log_type all\nlog_dest file {tmp_path}/b.log\n"))
    assert config.log_level == logging.DEBUG
    assert config.log_dest == [("file", f"{tmp_path}/b.log")]


# -- the same file on mosquitto and on turbomqtt ------------------------------------------


@pytest.mark.skipif(not os.path.exists(MOSQUITTO), reason="mosquitto is not installed")
def test_a_mosquitto_conf_runs_unchanged_on_both_brokers(tmp_path):
    """Listeners, a password file made by mosquitto_passwd and an ACL file, with the
    same verdicts from mosquitto 2.0 and from turbomqtt.

    Where they differ: a SUBSCRIBE to ``#`` by alice gets 0x80 from mosquitto (the filter
    is wider than her ACL) and is granted by turbomqtt, which then delivers only what her
    ACL lets her read."""
    passwd = tmp_path / "passwd"
    subprocess.run(
        [MOSQUITTO_PASSWD, "-b", "-c", str(passwd), "alice", "wonder"], check=True, timeout=30
    )
    acl = tmp_path / "acl"
    acl.write_text("user alice\ntopic readwrite alice/#\n")
    port = free_port()
    path = conf(
        tmp_path,
        f"""\
# written for mosquitto 2.0 (which, started as root, would switch to the user
# "mosquitto" and could not read the test's private folder)
user root
per_listener_settings false
listener {port} 127.0.0.1
allow_anonymous false
password_file {passwd}
acl_file {acl}
max_queued_messages 100
max_inflight_messages 20
""",
    )

    def verdicts(broker_port: int) -> tuple[int, list[bytes]]:
        anon = Peer(broker_port, "anon", V5).connect(expect_success=False)
        refused = anon.reason_code
        anon.client.loop_stop()
        alice = Peer(broker_port, "alice-1", V311).connect(username="alice", password="wonder")
        alice.subscribe("alice/#", 1)
        alice.publish("alice/x", b"mine", 1)
        alice.publish("bob/x", b"not mine", 1)
        alice.publish("alice/y", b"mine too", 1)
        got = [alice.get().payload, alice.get().payload]
        alice.get_none()
        alice.disconnect()
        return refused, got

    mosquitto = subprocess.Popen(
        [MOSQUITTO, "-c", path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_listening(port, mosquitto)
        theirs = verdicts(port)
    finally:
        mosquitto.terminate()
        mosquitto.wait(10)
    with RunningCli("-c", path) as ours:
        assert ours.port() == port
        assert verdicts(port) == theirs
        assert theirs == (0x87, [b"mine", b"mine too"])
        ours.stop()


# -- the command line ---------------------------------------------------------------------


def test_startup_line_names_every_listener(tmp_path):
    path = conf(tmp_path, "listener 0 127.0.0.1\nlistener 0 127.0.0.1\nprotocol websockets\n")
    with RunningCli("-c", path) as ours:
        assert len(ours.urls) == 2
        assert re.fullmatch(r"mqtt://127\.0\.0\.1:\d+", ours.urls[0])
        assert re.fullmatch(r"ws://127\.0\.0\.1:\d+", ours.urls[1])
        assert ours.port(0) != ours.port(1)
        ours.stop()


def test_unsupported_known_key_warns_with_file_and_line_and_serves(tmp_path):
    path = conf(tmp_path, "listener 0 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n")
    with RunningCli("-c", path) as ours:
        Peer(ours.port(), "w", V311).connect().disconnect()
        err = ours.stop()
    assert f"warning: {path}:3: set_tcp_nodelay is not supported" in err


@pytest.mark.parametrize(
    ("name", "text", "parts"),
    [
        ("unknown key", "listener 0\nmax_queued_mesages 5\n", [":2:", "max_queued_mesages",
                                                                  "max_queued_messages"]),
        ("bad integer", "max_inflight_messages many\n", [":1:", "max_inflight_messages",
                                                        "many"]),
        ("bad boolean", "allow_anonymous yes\n", [":1:", "allow_anonymous", "yes"]),
        ("bad port", "listener 70000\n", [":1:", "listener", "70000"]),
        ("per_listener_settings", "per_listener_settings true\n",
         [":1:", "per_listener_settings true is not supported"]),
        ("bridge key outside a bridge", "address 127.0.0.1\n", [":1:", "address", "connection"]),
        ("bridge without topic", "connection c\naddress 127.0.0.1\n", [":1:", "no topic"]),
        ("bad topic direction", "connection c\naddress h\ntopic a sideways\n",
         [":3:", "direction"]),
        ("unix socket", "listener 0 /tmp/mqtt.sock\n", [":1:", "unix socket"]),
        ("missing include_dir", "include_dir /nonexistent/conf.d\n", [":1:", "include_dir"]),
        ("include_dir of its own folder", "include_dir {dir}\n", [":1:", "includes itself"]),
    ],
)
def test_mosquitto_conf_error_is_one_line_naming_file_and_line(tmp_path, name, text, parts):
    path = conf(tmp_path, text.format(dir=tmp_path))
    assert_one_line_error(cli("-c", path), path, *parts)


@pytest.mark.parametrize(
    ("name", "text", "parts"),
    [
        ("typo", "max_queued_mesages = 5\n", ["max_queued_mesages", "max_queued_messages"]),
        ("invalid TOML", "port = \n", ["invalid TOML", "line 1"]),
        ("bad value", 'port = "1883"\n', ["port", "integer"]),
        ("bad listener key", "[[listeners]]\nprot = 1\n", ["listeners[1]", "prot"]),
        ("callable only in code", 'on_message = "print"\n', ["on_message", "Python code"]),
        ("out of range", "max_qos = 3\n", ["max_qos"]),
    ],
)
def test_toml_error_is_one_line_naming_the_file(tmp_path, name, text, parts):
    path = conf(tmp_path, text, "broker.toml")
    assert_one_line_error(cli("-c", path), path, *parts)


def test_missing_config_file_is_one_line(tmp_path):
    path = str(tmp_path / "nowhere.toml")
    assert_one_line_error(cli("--config", path), path, "No such file")
    with pytest.raises(ConfigError, match="nowhere"):
        load_config(path)


def test_command_line_port_and_file_listeners_do_not_mix(tmp_path):
    path = conf(tmp_path, "listener 0 127.0.0.1\n")
    assert_one_line_error(cli("-c", path, "--port", "0"), path, "not both")


def test_command_line_port_wins_over_the_file_default_listener(tmp_path):
    path = conf(tmp_path, "port = 1\nhost = \"127.0.0.1\"\n", "broker.toml")
    with RunningCli("-c", path, "--port", "0") as ours:
        assert ours.port() > 1
        Peer(ours.port(), "p", V311).connect().disconnect()
        ours.stop()
