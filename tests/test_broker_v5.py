"""MQTT 5 session and flow-control details: session expiry, delayed wills, message
expiry, receive maximum and maximum packet size towards the client, server keep alive."""

from __future__ import annotations

import socket
import struct

import pytest
from broker_support import (
    V5,
    V31,
    V311,
    Peer,
    RawPeer,
    ack_packet,
    connect_props,
    offline,
    publish_props,
    subscribe_packet,
    wait_until,
)
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


@pytest.fixture
def broker(mqtt_broker_factory):
    return mqtt_broker_factory(sys_interval=0, max_keepalive=30)


def test_session_expiry_ends_an_offline_session(broker):
    p = Peer(broker.port, "short", V5).connect(
        clean=False, properties=connect_props(SessionExpiryInterval=1)
    )
    p.subscribe("se/#", 1)
    p.disconnect()
    offline(broker, "short")
    assert broker.stats()["sessions"] == 1
    wait_until(lambda: broker.stats()["sessions"] == 0)
    again = Peer(broker.port, "short", V5).connect(clean=False)
    assert not again.session_present
    again.disconnect()


def test_reconnect_within_will_delay_cancels_the_will(broker):
    watcher = Peer(broker.port, "watcher", V5).connect()
    watcher.subscribe("will/#", 0)
    wp = Properties(PacketTypes.WILLMESSAGE)
    wp.WillDelayInterval = 2
    props = connect_props(SessionExpiryInterval=60)
    p = Peer(broker.port, "back", V5)
    p.connect(will=("will/back", b"x", 0, False), will_properties=wp, properties=props)
    p.kill()
    offline(broker, "back")
    Peer(broker.port, "back", V5).connect(clean=False, properties=props)
    watcher.get_none(2.5)
    watcher.disconnect()


def test_expired_messages_are_not_delivered(broker):
    sub = Peer(broker.port, "exp", V5).connect(
        clean=False, properties=connect_props(SessionExpiryInterval=60)
    )
    sub.subscribe("ex/#", 1)
    sub.disconnect()
    offline(broker, "exp")
    pub = Peer(broker.port, "pub", V5).connect()
    pub.publish("ex/short", b"gone", 1, properties=publish_props(MessageExpiryInterval=1))
    pub.publish("ex/long", b"kept", 1, properties=publish_props(MessageExpiryInterval=100))
    pub.get_none(1.2)  # let the first message's second pass
    again = Peer(broker.port, "exp", V5).connect(clean=False)
    m = again.get()
    assert m.payload == b"kept"
    assert 0 < m.properties.MessageExpiryInterval <= 100
    again.get_none()
    again.disconnect()
    pub.disconnect()


def raw_v5(port: int, client_id: str, props: bytes) -> RawPeer:
    raw = RawPeer(port)
    ack = raw.connect(client_id=client_id, version=5, props=props)
    assert ack[1] == 0
    return raw


def test_receive_maximum_towards_the_client(broker):
    raw = raw_v5(broker.port, "rm1", bytes([0x21]) + struct.pack("!H", 1))
    raw.send(subscribe_packet("rm/t", 1))
    raw.expect(9)
    pub = Peer(broker.port, "pub", V311).connect()
    for i in range(3):
        pub.publish("rm/t", b"%d" % i, 1)
    first = raw.expect(3)
    pkid = struct.unpack("!H", first[6:8])[0]
    with pytest.raises(socket.timeout):
        raw.read_packet(timeout=0.3)  # the window of one is full
    raw.send(ack_packet(4, pkid))
    second = raw.expect(3)
    assert second.endswith(b"1")
    raw.close()
    pub.disconnect()


def test_maximum_packet_size_towards_the_client(broker, caplog):
    raw = raw_v5(broker.port, "small", bytes([0x27]) + struct.pack("!I", 64))
    raw.send(subscribe_packet("mp/#", 0))
    raw.expect(9)
    with caplog.at_level("INFO", logger="turbomqtt.broker"):
        broker.publish("mp/big", b"x" * 200)
        broker.publish("mp/small", b"ok")
        body = raw.expect(3)
        assert body.endswith(b"ok"), "the too-large message was skipped"
        # Log lines reach Python through the broker's event thread.
        wait_until(lambda: any("maximum packet size 64" in r.getMessage() for r in caplog.records))
    raw.close()


def test_server_keep_alive_lowers_a_large_keep_alive(broker):
    p = Peer(broker.port, "ka", V5).connect(keepalive=120)
    assert p.connack[2].ServerKeepAlive == 30
    p.disconnect()


def test_mqtt_31_client(broker):
    sub = Peer(broker.port, "old-sub", V31).connect()
    sub.subscribe("v31/t", 1)
    Peer(broker.port, "new-pub", V5).connect().publish("v31/t", b"hi", 1)
    m = sub.get()
    assert (m.payload, m.qos) == (b"hi", 1)
    assert [c["protocol"] for c in broker.clients() if c["client_id"] == "old-sub"] == [3]
    sub.disconnect()


def test_enhanced_authentication_method_refused(broker):
    p = Peer(broker.port, "scram", V5).connect(
        properties=connect_props(AuthenticationMethod="SCRAM-SHA-1"), expect_success=False
    )
    assert p.reason_code == 0x8C
    p.client.loop_stop()


def test_protocol_error_carries_a_reason_string(broker):
    raw = RawPeer(broker.port)
    raw.connect(client_id="why", version=5)
    raw.send(b"\xc1\x00")  # PINGREQ with reserved flags
    packets = raw.expect_closed()
    assert len(packets) == 1 and packets[0][0] >> 4 == 14
    body = packets[0][1]
    assert body[0] == 0x81
    assert body[2] == 0x1F, "property: reason string"
    assert b"reserved" in body


def test_no_reason_string_when_problem_information_is_not_requested(broker):
    raw = RawPeer(broker.port)
    raw.connect(client_id="quiet", version=5, props=bytes([0x17, 0]))
    raw.send(b"\xc1\x00")
    packets = raw.expect_closed()
    assert packets[0][1] in (b"\x81", b"\x81\x00")


def test_outgoing_topic_aliases_when_enabled(mqtt_broker_factory):
    broker = mqtt_broker_factory(sys_interval=0, outgoing_topic_aliases=True)
    raw = raw_v5(broker.port, "aliased", bytes([0x22]) + struct.pack("!H", 5))
    raw.send(subscribe_packet("al/t", 0))
    raw.expect(9)
    broker.publish("al/t", b"one")
    broker.publish("al/t", b"two")
    first, second = raw.expect(3), raw.expect(3)
    # topic "al/t", properties: topic alias 1 (0x23 0x0001), then the payload
    assert first == b"\x00\x04al/t" + b"\x03\x23\x00\x01" + b"one"
    assert second == b"\x00\x00" + b"\x03\x23\x00\x01" + b"two", "empty topic, alias only"
    raw.close()


def test_disconnect_can_end_the_session_at_once(broker):
    raw = raw_v5(broker.port, "leaving", bytes([0x11]) + struct.pack("!I", 600))
    raw.send(subscribe_packet("dc/t", 1))
    raw.expect(9)
    # DISCONNECT, reason 0, session expiry interval 0.
    raw.send(b"\xe0\x07\x00\x05\x11\x00\x00\x00\x00")
    assert raw.expect_closed() == []
    wait_until(lambda: broker.stats()["sessions"] == 0)
    assert broker.stats()["subscriptions"] == 0
