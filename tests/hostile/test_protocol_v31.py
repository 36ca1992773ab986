"""MQTT 3.1 (`MQIsdp`): a resent PUBREL, SUBSCRIBE or UNSUBSCRIBE carries the DUP flag
(3.1 §2.1), and the broker must answer it rather than close the connection. 3.1.1 made
those flags reserved: there the same bytes still close the connection.

mosquitto 2.0.11 accepts the 3.1 packets too (it checks these flags only for 3.1.1 and 5).
"""

from __future__ import annotations

import pytest
from broker_support import RawPeer, mqtt_str, packet, publish_packet
from turbomqtt import Broker

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def broker():
    with Broker(port=0, sys_interval=0) as b:
        yield b


def test_v31_dup_on_resent_subscribe_unsubscribe_and_pubrel(broker):
    c = RawPeer(broker.port)
    assert c.connect(client_id="old-device", version=3)[1] == 0
    # SUBSCRIBE resent with DUP (0x8A): SUBACK granting QoS 2.
    c.send(packet(0x8A, b"\x00\x01" + mqtt_str("v31/t") + b"\x02"))
    assert c.expect(9) == b"\x00\x01\x02"
    # QoS 2 flow with a resent PUBREL (0x6A): PUBCOMP, and the message is delivered.
    c.send(publish_packet("v31/t", b"hello", qos=2, pkid=7, v5=False))
    assert c.expect(5) == b"\x00\x07"
    c.send(packet(0x6A, b"\x00\x07"))
    got = {}
    for _ in range(2):
        first, body = c.read_packet() or (0, b"")
        got[first >> 4] = body
    assert got[7] == b"\x00\x07", "PUBCOMP"
    assert mqtt_str("v31/t") in got[3] and got[3].endswith(b"hello")
    # UNSUBSCRIBE resent with DUP (0xAA): UNSUBACK.
    c.send(packet(0xAA, b"\x00\x02" + mqtt_str("v31/t")))
    assert c.expect(11) == b"\x00\x02"
    # Still connected.
    c.send(b"\xc0\x00")
    c.expect(13)
    c.close()


@pytest.mark.parametrize("first", [0x8A, 0xAA])
def test_v311_still_refuses_the_dup_flag(broker, first):
    c = RawPeer(broker.port)
    assert c.connect(client_id="strict", version=4)[1] == 0
    c.send(packet(first, b"\x00\x01" + mqtt_str("t") + (b"\x00" if first == 0x8A else b"")))
    assert c.expect_closed() == []
