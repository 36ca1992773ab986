"""Bad input closes only the offending connection, with the reason code MQTT 5 names.

Each case connects a well-behaved paho client first and checks afterwards that it still
publishes and receives: nothing else is disturbed."""

from __future__ import annotations

import random
import socket
import struct

import pytest
from broker_support import (
    V5,
    V311,
    Peer,
    RawPeer,
    ack_packet,
    connect_packet,
    disconnect_reason,
    mqtt_str,
    packet,
    publish_packet,
    subscribe_packet,
    varint,
    wait_until,
)

MAX_PACKET = 1024


@pytest.fixture
def broker(mqtt_broker_factory):
    return mqtt_broker_factory(
        sys_interval=0, max_packet_size=MAX_PACKET, connect_timeout=0.5, receive_maximum=2
    )


@pytest.fixture
def bystander(broker):
    p = Peer(broker.port, "bystander", V5).connect()
    p.subscribe("ok/#", 1)
    yield p
    p.disconnect()


def still_fine(bystander: Peer) -> None:
    bystander.publish("ok/t", b"still here", 1)
    assert bystander.get().payload == b"still here"


def closed_with(raw: RawPeer) -> int | None:
    return disconnect_reason(raw.expect_closed())


V5_CASES = {
    "bad remaining length": (packet(0x30, b"")[:1] + b"\xff\xff\xff\xff\x01", 0x81),
    "reserved flags on PINGREQ": (b"\xc1\x00", 0x81),
    "reserved packet type 0": (b"\x00\x00", 0x81),
    "second CONNECT": (connect_packet("again"), 0x82),
    "oversized PUBLISH": (publish_packet("big", b"x" * 2000, 1), 0x95),
    "QoS 3 PUBLISH": (bytes([0x36]) + publish_packet("t", b"", 0)[1:], 0x81),
    "wildcard in topic name": (publish_packet("a/#", b"x", 0), 0x90),
    "topic alias above maximum": (
        publish_packet("t", b"x", 0, props=bytes([0x23]) + struct.pack("!H", 999)),
        0x94,
    ),
    "unknown topic alias": (
        publish_packet("", b"x", 0, props=bytes([0x23]) + struct.pack("!H", 2)),
        0x82,
    ),
    "SUBSCRIBE without filters": (packet(0x82, struct.pack("!H", 1) + varint(0)), 0x82),
    "truncated PUBLISH topic": (packet(0x30, b"\x00\x09ab"), 0x81),
    "invalid UTF-8 topic": (packet(0x30, mqtt_str(b"\xff\xfe") + varint(0)), 0x81),
    "AUTH without method": (packet(0xF0, b"\x00\x00"), 0x82),
    "CONNACK from a client": (packet(0x20, b"\x00\x00\x00"), 0x82),
}


@pytest.mark.parametrize("case", sorted(V5_CASES))
def test_v5_bad_packet_gets_reason_code_and_only_that_client_closes(
    broker, bystander, case, caplog
):
    data, code = V5_CASES[case]
    raw = RawPeer(broker.port)
    raw.connect(client_id="bad", version=5)
    with caplog.at_level("WARNING", logger="turbomqtt.broker"):
        raw.send(data)
        got = closed_with(raw)
    assert got == code, f"{case}: DISCONNECT reason {got!r}, expected {code:#x}"
    still_fine(bystander)


def test_oversized_log_names_client_and_limit(broker, bystander, caplog):
    raw = RawPeer(broker.port)
    raw.connect(client_id="huge", version=5)
    with caplog.at_level("WARNING", logger="turbomqtt.broker"):
        raw.send(publish_packet("big", b"x" * 5000, 0))
        assert closed_with(raw) == 0x95
        still_fine(bystander)
        wait_until(lambda: any("huge" in r.getMessage() for r in caplog.records))
    lines = [r.getMessage() for r in caplog.records if "huge" in r.getMessage()]
    assert len(lines) == 1
    assert str(MAX_PACKET) in lines[0]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\xc1\x00", id="reserved flags"),
        pytest.param(publish_packet("big", b"x" * 2000, 0, v5=False), id="oversized"),
        pytest.param(packet(0x30, b"\x00\x09ab"), id="truncated"),
        pytest.param(connect_packet("again", version=4), id="second CONNECT"),
    ],
)
def test_v311_bad_packet_closes_without_disconnect(broker, bystander, data):
    raw = RawPeer(broker.port)
    raw.connect(client_id="bad3", version=4)
    raw.send(data)
    assert raw.expect_closed() == [], "3.1.1 has no DISCONNECT from the server"
    still_fine(bystander)


def test_first_packet_not_connect_is_closed(broker, bystander):
    raw = RawPeer(broker.port)
    raw.send(b"\xc0\x00")
    assert raw.expect_closed() == []
    still_fine(bystander)


def test_unsupported_protocol_version(broker, bystander):
    raw = RawPeer(broker.port)
    raw.send(connect_packet("v6", version=6))
    packets = raw.expect_closed()
    assert packets and packets[0][0] >> 4 == 2
    assert packets[0][1][1] == 1, "CONNACK return code 1: unacceptable protocol version"
    still_fine(bystander)


def test_silent_client_dropped_after_connect_timeout(broker, bystander):
    raw = RawPeer(broker.port)
    assert raw.expect_closed(timeout=10) == []
    still_fine(bystander)


@pytest.mark.parametrize("version", [4, 5])
def test_keepalive_enforced_at_one_and_a_half_times(broker, bystander, version):
    raw = RawPeer(broker.port)
    raw.connect(client_id="sleepy", version=version, keepalive=1)
    packets = raw.expect_closed(timeout=10)
    if version == 5:
        assert disconnect_reason(packets) == 0x8D
    else:
        assert packets == []
    still_fine(bystander)


def test_receive_maximum_exceeded(broker, bystander):
    raw = RawPeer(broker.port)
    raw.connect(client_id="flood", version=5)
    for pkid in (1, 2, 3):
        raw.send(publish_packet("ok/flood", b"x", 2, pkid=pkid))
    assert closed_with(raw) == 0x93
    # The two accepted QoS 2 messages reached the bystander.
    assert bystander.get().payload == b"x"
    assert bystander.get().payload == b"x"
    still_fine(bystander)


def test_v3_connack_return_codes(mqtt_broker_factory):
    broker = mqtt_broker_factory(sys_interval=0, users={"u": "p"}, allow_anonymous=False)
    cases = [
        ({"username": "u", "password": "bad"}, 4),
        ({}, 5),
        ({"username": "u", "password": "p"}, 0),
    ]
    for kw, rc in cases:
        raw = RawPeer(broker.port)
        body = raw.connect(client_id="c", version=4, **kw)
        assert body[1] == rc
        raw.close()
    raw = RawPeer(broker.port)
    # 3.1.1 §3.1.3.1: an empty client id needs clean session.
    assert raw.connect(client_id="", version=4, clean=False, username="u", password="p")[1] == 2


def test_malformed_connect_v5_gets_connack_reason(broker, bystander):
    raw = RawPeer(broker.port)
    # Property identifier 0xFF does not exist (MQTT 5 §2.2.2.2).
    raw.send(connect_packet("x", version=5, props=b"\xff\x00"))
    packets = raw.expect_closed()
    assert len(packets) == 1 and packets[0][0] >> 4 == 2
    assert packets[0][1][1] in (0x81, 0x82)
    still_fine(bystander)


def test_qos2_exactly_once_across_reconnect_incoming(broker, bystander):
    """PUBLISH QoS 2, PUBREC, connection lost before PUBREL; the DUP resend after
    reconnecting is acknowledged but not delivered again (MQTT 5 §4.3.3)."""
    raw = RawPeer(broker.port)
    raw.connect(client_id="q2in", version=4, clean=False)
    raw.send(publish_packet("ok/q2", b"once", 2, pkid=7, v5=False))
    assert raw.expect(5) == struct.pack("!H", 7)
    raw.close()
    raw = RawPeer(broker.port)
    assert raw.connect(client_id="q2in", version=4, clean=False)[0] == 1, "session present"
    raw.send(publish_packet("ok/q2", b"once", 2, pkid=7, v5=False, dup=True))
    assert raw.expect(5) == struct.pack("!H", 7)
    raw.send(ack_packet(6, 7))
    assert raw.expect(7) == struct.pack("!H", 7)
    assert bystander.get().payload == b"once"
    still_fine(bystander)  # the next message is the marker, not a duplicate
    raw.close()


def test_qos2_exactly_once_across_reconnect_outgoing(broker, bystander):
    """The broker resends an unacknowledged PUBLISH with DUP, then after PUBREC and
    another reconnect resends PUBREL only."""
    raw = RawPeer(broker.port)
    raw.connect(client_id="q2out", version=4, clean=False)
    raw.send(subscribe_packet("q2/t", 2, v5=False))
    raw.expect(9)
    bystander.publish("q2/t", b"payload", 2)
    first = raw.read_packet()
    assert first is not None and first[0] >> 4 == 3 and not first[0] & 0x08
    pkid = struct.unpack("!H", first[1][6:8])[0]
    raw.close()

    raw = RawPeer(broker.port)
    assert raw.connect(client_id="q2out", version=4, clean=False)[0] == 1
    again = raw.read_packet()
    assert again is not None and again[0] >> 4 == 3
    assert again[0] & 0x08, "resent with DUP"
    assert struct.unpack("!H", again[1][6:8])[0] == pkid
    raw.send(ack_packet(5, pkid))
    assert raw.expect(6) == struct.pack("!H", pkid)
    raw.close()

    raw = RawPeer(broker.port)
    assert raw.connect(client_id="q2out", version=4, clean=False)[0] == 1
    assert raw.expect(6) == struct.pack("!H", pkid), "PUBREL resent, not the PUBLISH"
    raw.send(ack_packet(7, pkid))
    raw.send(b"\xc0\x00")
    assert raw.expect(13) == b""
    raw.close()


def test_slow_subscriber_memory_is_bounded(mqtt_broker_factory, caplog):
    """A subscriber that never reads: its QoS 0 queue stops at max_queued_bytes (the
    message count bounds QoS 1/2 only) and the excess is dropped and counted, with a
    warning when dropping starts (not one per message); the publisher is not blocked."""
    caplog.set_level("WARNING", logger="turbomqtt.broker")
    broker = mqtt_broker_factory(sys_interval=0, max_queued_messages=50, max_queued_bytes=1 << 20)
    raw = RawPeer(broker.port)
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(client_id="slow", version=4)
    raw.send(subscribe_packet("s/#", 0, v5=False))
    raw.expect(9)
    pub = Peer(broker.port, "fast", V311).connect()
    payload = b"x" * 16384
    for _ in range(1500):
        pub.client.publish("s/t", payload, 0)
    pub.publish("s/t", b"last", 1)
    stats = broker.stats()
    assert stats["messages_dropped"] > 0
    assert stats["publish_received"] >= 1501
    wait_until(lambda: any("queue full" in r.getMessage() for r in caplog.records))
    full = [r.getMessage() for r in caplog.records if "queue full" in r.getMessage()]
    assert all("client slow" in m and "max_queued_bytes" in m for m in full)
    assert len(full) < stats["messages_dropped"]
    pub.disconnect()
    raw.close()


def test_will_published_on_keepalive_timeout(broker, bystander):
    raw = RawPeer(broker.port)
    raw.connect(
        client_id="silent", version=4, keepalive=1, will=("ok/will", b"timed out", 1, False)
    )
    m = bystander.get()
    assert (m.topic, m.payload) == ("ok/will", b"timed out")
    assert raw.expect_closed() == []


def test_v311_takeover_closes_the_first_connection(broker, bystander):
    first = RawPeer(broker.port)
    first.connect(client_id="twin", version=4)
    second = RawPeer(broker.port)
    assert second.connect(client_id="twin", version=4)[1] == 0
    assert first.expect_closed() == []
    second.send(b"\xc0\x00")
    assert second.expect(13) == b""
    still_fine(bystander)


@pytest.mark.parametrize("version", [4, 5])
def test_random_garbage_after_connect_never_disturbs_others(broker, bystander, version):
    """Seeded random bytes (some starting with a plausible packet header) from many
    clients: each is closed or keeps going, the broker stays up, the bystander works."""
    rng = random.Random(version)
    raws = []
    for i in range(30):
        raw = RawPeer(broker.port)
        raw.connect(client_id=f"fuzz{i}", version=version)
        header = bytes([rng.choice([0x30, 0x32, 0x34, 0x62, 0x82, 0xA2, 0xC0, 0xE0, 0xF0])])
        body = rng.randbytes(rng.randint(0, 300))
        try:
            raw.send(header + body)
        except OSError:
            pass
        raws.append(raw)
    still_fine(bystander)
    for raw in raws:
        raw.close()
    assert broker.running
