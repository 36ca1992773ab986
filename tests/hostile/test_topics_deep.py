"""Deep topic names and filters: no crash, a clear refusal past `max_topic_levels`.

A topic with thousands of levels used to crash the whole process (SIGSEGV, exit 139)
because the subscription tree was walked recursively; an embedded broker took its host
Python interpreter with it. So the crash probes run the broker in a subprocess
(`python -m turbomqtt broker`) and check that it is still alive and serving others.

mosquitto 2.0.11 on the same probes: a topic name or filter with more than 200 `/`
separators (202 levels and more) is refused: PUBLISH closes the connection (v5 with
DISCONNECT 0x82), SUBSCRIBE closes it too (v5 DISCONNECT 0x81) and logs "Invalid
subscription string ... disconnecting"; 201 levels are accepted. We count levels
(default 200) and answer a too-deep filter with a SUBACK failure (v5 0x8F Topic
Filter invalid, v3 0x80), so the client keeps its connection and other filters of the
packet; a too-deep PUBLISH topic closes the connection as mosquitto does (v5 with
DISCONNECT 0x90 Topic Name invalid).
"""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
from collections.abc import Iterator

import pytest
from broker_support import (
    RawPeer,
    connect_packet,
    disconnect_reason,
    mqtt_str,
    packet,
    publish_packet,
    subscribe_packet,
    varint,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)


def deep(levels: int) -> str:
    return "/".join(["a"] * levels)


def unsubscribe_packet(topic: str, pkid: int = 2, v5: bool = True) -> bytes:
    return packet(0xA2, struct.pack("!H", pkid) + (varint(0) if v5 else b"") + mqtt_str(topic))


class BrokerProcess:
    """`python -m turbomqtt broker --port 0` in a subprocess, so a crash cannot take the
    test process with it."""

    def __init__(self, tmp_path: os.PathLike[str], config: str = "") -> None:
        args = [sys.executable, "-m", "turbomqtt", "broker", "--port", "0"]
        if config:
            path = os.path.join(str(tmp_path), "broker.toml")
            with open(path, "w") as f:
                f.write(config)
            args += ["--config", path]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "listening on mqtt://" in line, (
            line,
            self.proc.stderr.read() if self.proc.stderr else "",
        )
        self.port = int(line.rsplit(":", 1)[1])

    def assert_serving(self) -> None:
        """Still running, and a new client publishes to itself and gets it back."""
        assert self.proc.poll() is None, f"broker exited with {self.proc.returncode}"
        p = RawPeer(self.port)
        try:
            p.connect(client_id="bystander")
            p.send(subscribe_packet("still/alive", 0))
            p.expect(9)
            p.send(publish_packet("still/alive", b"yes"))
            body = p.expect(3)
            assert body.endswith(b"yes")
        finally:
            p.close()
        assert self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def broker_process(tmp_path) -> Iterator[BrokerProcess]:
    b = BrokerProcess(tmp_path)
    yield b
    b.stop()


@pytest.fixture
def unlimited_broker_process(tmp_path) -> Iterator[BrokerProcess]:
    b = BrokerProcess(tmp_path, "max_topic_levels = 0\n")
    yield b
    b.stop()


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("ending", ["disconnect", "unsubscribe"])
def test_a_deep_filter_is_refused_and_the_broker_survives(broker_process, version, ending):
    """About 7,500 levels (15 KB) then DISCONNECT or UNSUBSCRIBE crashed the process."""
    v5 = version == 5
    p = RawPeer(broker_process.port)
    p.connect(client_id="deep", version=version)
    p.send(subscribe_packet(deep(7_500), 1, pkid=1, v5=v5))
    suback = p.expect(9)
    if ending == "unsubscribe":
        p.send(unsubscribe_packet(deep(7_500), v5=v5))
        p.expect(11)
    p.send(packet(0xE0, b""))
    p.expect_closed()
    p.close()
    broker_process.assert_serving()
    assert suback[-1] == (0x8F if v5 else 0x80)


@pytest.mark.parametrize("version", [4, 5])
def test_a_deep_publish_closes_only_its_connection(broker_process, version):
    """A PUBLISH to 15,000 levels, with a subscription that deep, crashed the process."""
    v5 = version == 5
    sub = RawPeer(broker_process.port)
    sub.connect(client_id="deep-sub", version=version)
    sub.send(subscribe_packet(deep(15_000), 0, pkid=1, v5=v5))
    suback = sub.expect(9)
    p = RawPeer(broker_process.port)
    p.connect(client_id="deep-pub", version=version)
    p.send(publish_packet(deep(15_000), b"x", qos=1, v5=v5))
    seen = p.expect_closed()
    p.close()
    broker_process.assert_serving()
    assert suback[-1] == (0x8F if v5 else 0x80)
    if v5:
        assert disconnect_reason(seen) == 0x90
    else:
        assert seen == []
    sub.close()


def test_without_a_level_limit_deep_topics_route_and_are_removed(unlimited_broker_process):
    """`max_topic_levels = 0` lifts the limit: the tree is walked without recursion, so
    even 30,000 levels (the most a 65,535-byte topic can have, about) are subscribed,
    matched, retained, unsubscribed and dropped with the session."""
    b = unlimited_broker_process
    topic = deep(30_000)
    p = RawPeer(b.port)
    p.connect(client_id="deep-sub")
    p.send(subscribe_packet(topic, 0, pkid=1))
    assert p.expect(9)[-1] == 0
    p.send(subscribe_packet(deep(29_999) + "/#", 0, pkid=2))
    assert p.expect(9)[-1] == 0
    p.send(publish_packet(topic, b"deep", retain=True))
    # Matched by both filters: one delivery (overlapping subscriptions merge).
    assert p.expect(3).endswith(b"deep")
    p.send(unsubscribe_packet(topic))
    assert p.expect(11)[-1] == 0
    # The retained message is found again through the retained tree.
    p.send(subscribe_packet("a/+/#", 0, pkid=3))
    assert p.expect(9)[-1] == 0
    assert p.expect(3).endswith(b"deep")
    # Clearing the retained message and ending the session remove deep branches.
    p.send(publish_packet(topic, b"", retain=True))
    p.send(packet(0xE0, b""))
    p.expect_closed()
    p.close()
    b.assert_serving()


@pytest.fixture
def broker(mqtt_broker_factory):
    return mqtt_broker_factory(sys_interval=0)


@pytest.mark.parametrize("version", [4, 5])
def test_max_topic_levels_bounds_filters_with_one_log_line(broker, version, caplog):
    """200 levels pass, 201 are refused in the SUBACK; the other filter of the same
    SUBSCRIBE is granted (mosquitto closes the connection instead, see the module)."""
    v5 = version == 5
    p = RawPeer(broker.port)
    p.connect(client_id=f"levels{version}", version=version)
    with caplog.at_level(logging.WARNING, logger="turbomqtt.broker"):
        body = struct.pack("!H", 1) + (varint(0) if v5 else b"")
        body += mqtt_str(deep(200)) + b"\x00" + mqtt_str(deep(201)) + b"\x01"
        p.send(packet(0x82, body))
        suback = p.expect(9)
        assert list(suback[-2:]) == [0, 0x8F if v5 else 0x80]
        wait_until(lambda: any("max_topic_levels" in r.getMessage() for r in caplog.records))
    assert len([r for r in caplog.records if "max_topic_levels" in r.getMessage()]) == 1
    p.send(publish_packet(deep(200), b"ok", v5=v5))
    assert p.expect(3).endswith(b"ok")
    p.close()


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("qos", [0, 1])
def test_max_topic_levels_bounds_topic_names(mqtt_broker_factory, version, qos, caplog):
    broker = mqtt_broker_factory(sys_interval=0, max_topic_levels=3)
    v5 = version == 5
    ok = RawPeer(broker.port)
    ok.connect(client_id="ok", version=version)
    ok.send(publish_packet("a/b/c", b"fine", qos=qos, v5=v5))
    if qos:
        ok.expect(4)
    p = RawPeer(broker.port)
    p.connect(client_id="too-deep", version=version)
    with caplog.at_level(logging.WARNING, logger="turbomqtt.broker"):
        p.send(publish_packet("a/b/c/d", b"no", qos=qos, v5=v5, retain=True))
        seen = p.expect_closed()
        wait_until(lambda: any("max_topic_levels" in r.getMessage() for r in caplog.records))
    assert disconnect_reason(seen) == (0x90 if v5 else None)
    assert broker.stats()["retained_messages"] == 0
    ok.close()
    p.close()


@pytest.mark.parametrize("version", [4, 5])
def test_max_topic_levels_bounds_will_topics(broker, version):
    """A will topic deeper than the limit refuses the CONNECT: v5 CONNACK 0x90 (Topic Name
    invalid, which MQTT 5 §3.2.2.2 lists for a will topic the server does not accept),
    3.1.1 CONNACK 3 (as the other refusals without a 3.x code). mosquitto 2.0.11 closes
    the connection without a CONNACK in both versions."""
    p = RawPeer(broker.port)
    p.send(
        connect_packet(
            client_id=f"will{version}", version=version, will=(deep(201), b"w", 0, False)
        )
    )
    body = p.expect(2)
    assert body[1] == (0x90 if version == 5 else 3)
    assert p.expect_closed() == []
    p.close()
    ok = RawPeer(broker.port)
    assert (
        ok.connect(client_id="will-ok", version=version, will=(deep(200), b"w", 0, False))[1] == 0
    )
    ok.close()
