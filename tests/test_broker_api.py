"""turbomqtt.Broker's Python API, security options, hooks, and third-party clients
(mosquitto_pub / mosquitto_sub)."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import threading

import pytest
import turbomqtt
from broker_support import V5, V311, Peer, RawPeer, wait_until
from conftest import mosquitto_tool
from turbomqtt import Broker

needs_mosquitto_clients = pytest.mark.requires_mosquitto("mosquitto_pub", "mosquitto_sub")


def test_port_zero_reports_real_port_and_url():
    with Broker(port=0) as b:
        assert b.port > 0
        assert b.ports == [b.port]
        assert b.url == f"mqtt://127.0.0.1:{b.port}"
        assert b.running
        with socket.create_connection(("127.0.0.1", b.port), timeout=5):
            pass
    assert not b.running


def test_stop_closes_every_socket_and_port_rebinds_at_once():
    b = Broker(port=0).start()
    port = b.port
    peer = Peer(port, "c", V5).connect()
    events_thread = f"turbomqtt-broker-events-{port}"
    assert events_thread in {t.name for t in threading.enumerate()}
    b.stop()
    assert peer.disconnected.wait(5), "the client saw its connection closed"
    assert peer.disconnect_reason.value == 0x8B, "v5: server shutting down"
    peer.client.loop_stop()
    assert events_thread not in {t.name for t in threading.enumerate()}
    with Broker(port=port) as again:
        assert again.port == port
    b.stop()  # idempotent


def test_port_in_use_raises_oserror():
    with Broker(port=0) as b, pytest.raises(OSError, match="cannot listen"):
        Broker(port=b.port).start()


def test_unknown_option_raises_type_error():
    with pytest.raises(TypeError, match="bogus"):
        Broker(port=0, bogus=1)


def test_missing_password_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        Broker(port=0, password_file=str(tmp_path / "nope")).start()


def test_several_listeners():
    with Broker(listeners=[{"port": 0}, {"port": 0, "host": "127.0.0.1"}]) as b:
        assert len(b.ports) == 2 and b.ports[0] != b.ports[1]
        sub = Peer(b.ports[0], "s", V5).connect()
        sub.subscribe("x", 0)
        Peer(b.ports[1], "p", V311).connect().publish("x", b"across", 1)
        assert sub.get().payload == b"across"


async def test_async_context_manager():
    async with Broker(port=0) as b:
        _reader, writer = await asyncio.open_connection("127.0.0.1", b.port)
        writer.close()
        await writer.wait_closed()
    assert not b.running


def test_stats_clients_and_publish():
    with Broker(port=0, sys_interval=0) as b:
        sub = Peer(b.port, "watcher", V5).connect(username="someone", password="x")
        sub.subscribe("inj/#", 1)
        assert b.publish("inj/t", "text", qos=1) == 1
        m = sub.get()
        assert (m.topic, m.payload, m.qos) == ("inj/t", b"text", 1)
        assert b.publish("inj/r", b"kept", retain=True) == 1
        assert sub.get().payload == b"kept"
        with pytest.raises(ValueError, match="invalid topic"):
            b.publish("inj/#", b"x")
        clients = b.clients()
        assert [(c["client_id"], c["username"], c["protocol"]) for c in clients] == [
            ("watcher", "someone", 5)
        ]
        s = b.stats()
        assert s["clients_connected"] == 1
        assert s["subscriptions"] == 1
        assert s["retained_messages"] == 1
        assert s["publish_sent"] >= 2
        assert s["bytes_received"] > 0 and s["bytes_sent"] > 0
        sub.disconnect()
    with pytest.raises(RuntimeError):
        b.stats()


def test_logging_through_turbomqtt_broker_logger(caplog):
    with caplog.at_level(logging.INFO, logger="turbomqtt.broker"), Broker(port=0) as b:
        port = b.port
        Peer(b.port, "logged-client", V311).connect().disconnect()
        wait_until(lambda: any("logged-client" in r.getMessage() for r in caplog.records))
    assert all(r.name == "turbomqtt.broker" for r in caplog.records)
    assert any(f"listening on mqtt://127.0.0.1:{port}" in r.getMessage() for r in caplog.records)


def test_auth_callback_runs_in_python():
    seen = []

    def auth(client_id, username, password):
        seen.append((client_id, username, password, threading.current_thread().name))
        return password == b"open sesame"

    with Broker(port=0, auth_callback=auth) as b:
        ok = Peer(b.port, "good", V5).connect(username="u", password="open sesame")
        bad = Peer(b.port, "bad", V5).connect(username="u", password="no", expect_success=False)
        assert bad.reason_code == 0x86
        bad.client.loop_stop()
        ok.disconnect()
    assert [s[:3] for s in seen] == [("good", "u", b"open sesame"), ("bad", "u", b"no")]
    assert all(s[3].startswith("turbomqtt-broker-events-") for s in seen)


def test_on_message_observer():
    got = []
    done = threading.Event()

    def observe(msg):
        got.append(msg)
        done.set()

    with Broker(port=0, on_message=observe, sys_interval=0) as b:
        p = Peer(b.port, "pub", V311).connect()
        p.publish("obs/t", b"seen", 1)
        assert done.wait(5)
        p.disconnect()
    m = got[0]
    assert (m.client_id, m.topic, m.payload, m.qos, m.retain) == ("pub", "obs/t", b"seen", 1, False)


@pytest.mark.requires_mosquitto("mosquitto_passwd")
def test_password_file_from_mosquitto_passwd(tmp_path):
    tool = mosquitto_tool("mosquitto_passwd")
    pw = tmp_path / "passwd"
    pw.write_text("")
    subprocess.run([tool, "-b", str(pw), "alice", "wonderland"], check=True, timeout=30)
    with Broker(port=0, password_file=pw, allow_anonymous=False) as b:
        ok = Peer(b.port, "a", V311).connect(username="alice", password="wonderland")
        bad = Peer(b.port, "b", V5).connect(
            username="alice", password="wrong", expect_success=False
        )
        assert bad.reason_code == 0x86
        bad.client.loop_stop()
        ok.disconnect()


def test_acl_file_per_user_and_pattern(tmp_path):
    acl = tmp_path / "acl"
    acl.write_text(
        "user alice\n"
        "topic readwrite alice/#\n"
        "topic read public/#\n"
        "topic deny public/secret\n"
        "pattern readwrite clients/%c/#\n"
        "pattern read users/%u/#\n"
    )
    with Broker(port=0, acl_file=acl, sys_interval=0) as b:
        alice = Peer(b.port, "cid", V5).connect(username="alice", password="x")
        codes = alice.subscribe(
            [("alice/in", 1), ("secret/#", 1), ("clients/cid/x", 1), ("public/#", 1)]
        )
        assert codes == [1, 0x87, 1, 1]
        # Denied publish (read-only topic): PUBACK 0x87 and nothing routed.
        alice.client.publish("public/news", b"denied", 1).wait_for_publish(5)
        # Denied at delivery: the wildcard subscription does not cover a deny rule.
        b.publish("public/secret", b"hidden")
        alice.publish("alice/in", b"allowed", 1)
        assert alice.get().payload == b"allowed"
        alice.publish("clients/cid/x", b"pattern", 1)
        assert alice.get().payload == b"pattern"
        alice.get_none()
        old = Peer(b.port, "old", V311).connect(username="alice", password="x")
        assert old.subscribe("secret/x", 1) == [0x80]
        old.disconnect()
        alice.disconnect()


def test_max_connections_refuses_with_quota_exceeded():
    with Broker(port=0, max_connections=1) as b:
        first = Peer(b.port, "one", V5).connect()
        second = Peer(b.port, "two", V5).connect(expect_success=False)
        assert second.reason_code == 0x97
        second.client.loop_stop()
        raw = RawPeer(b.port)
        assert raw.connect(client_id="three", version=4)[1] == 3, "3.x: server unavailable"
        first.disconnect()


def test_sys_topics():
    with Broker(port=0, sys_interval=0.25) as b:
        p = Peer(b.port, "sys", V311).connect()
        p.subscribe("$SYS/broker/clients/connected", 0)
        # The value may predate this client (or the first refresh may race the
        # subscription); the next refresh counts it.
        if p.get().payload != b"1":
            assert p.get().payload == b"1"
        # Published before this subscription: delivered as a retained message.
        p.subscribe("$SYS/broker/uptime", 0)
        uptime = p.get()
        assert uptime.retain and uptime.payload.endswith(b"seconds")
        p.disconnect()


@needs_mosquitto_clients
@pytest.mark.parametrize("version", ["mqttv311", "mqttv5", "mqttv31"])
def test_mosquitto_pub_and_sub(version):
    with Broker(port=0, sys_interval=0) as b:
        port = str(b.port)
        sub = subprocess.Popen(
            [
                mosquitto_tool("mosquitto_sub"),
                "-h",
                "127.0.0.1",
                "-p",
                port,
                "-V",
                version,
                "-t",
                "m/#",
                "-q",
                "2",
                "-C",
                "2",
                "-v",
                "-i",
                "msub",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until(lambda: any(c["client_id"] == "msub" for c in b.clients()))
            wait_until(lambda: b.stats()["subscriptions"] == 1)
            for i in range(2):
                subprocess.run(
                    [
                        mosquitto_tool("mosquitto_pub"),
                        "-h",
                        "127.0.0.1",
                        "-p",
                        port,
                        "-V",
                        version,
                        "-t",
                        f"m/{i}",
                        "-m",
                        f"hello {i}",
                        "-q",
                        str(i + 1),
                    ],
                    check=True,
                    timeout=10,
                )
            out, _ = sub.communicate(timeout=10)
        finally:
            sub.kill()
            sub.wait()
    assert out.splitlines() == ["m/0 hello 0", "m/1 hello 1"]


@needs_mosquitto_clients
def test_mosquitto_sub_gets_retained_from_paho():
    with Broker(port=0, sys_interval=0) as b:
        Peer(b.port, "p", V5).connect().publish("ret/t", b"kept", 1, retain=True)
        out = subprocess.run(
            [
                mosquitto_tool("mosquitto_sub"),
                "-h",
                "127.0.0.1",
                "-p",
                str(b.port),
                "-t",
                "ret/#",
                "-C",
                "1",
                "-v",
                "--retained-only",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    assert out.stdout.strip() == "ret/t kept"


def test_exported_from_package():
    assert turbomqtt.Broker is Broker
    assert "Broker" in turbomqtt.__all__
