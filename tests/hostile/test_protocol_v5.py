"""MQTT 5 details a hostile or careless client runs into: the will after a DISCONNECT
with an error reason, the PUBACK code when the publisher's own no-local subscription is
the only match, a PUBREL for a flow already completed, a property not valid in its
packet. mosquitto 2.0.11's verdicts are noted where they differ.
"""

from __future__ import annotations

import pytest
from broker_support import (
    V5,
    Peer,
    RawPeer,
    connect_packet,
    mqtt_str,
    packet,
    publish_packet,
    wait_until,
)
from turbomqtt import Broker

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def broker():
    with Broker(port=0, sys_interval=0) as b:
        yield b


@pytest.fixture
def observer(broker):
    p = Peer(broker.port, "observer", V5).connect()
    assert p.subscribe("will/#", 0) == [0]
    yield p
    p.disconnect()


@pytest.mark.parametrize(
    "reason, published",
    [(0x00, False), (0x04, True), (0x80, True), (0x81, True), (0x93, True)],
)
def test_disconnect_reason_and_the_will(broker, observer, reason, published):
    """[MQTT-3.1.2-10]: only DISCONNECT 0x00 deletes the will; any other reason (0x04
    asks for it, an error reason is no normal disconnection) publishes it. mosquitto
    2.0.11: the same for 0x00 and 0x04; for an error reason it deletes the will too
    (it treats every reason but 0x04 as a normal disconnection)."""
    c = RawPeer(broker.port)
    c.send(connect_packet(client_id=f"w{reason}", version=5, will=("will/x", b"gone", 0, False)))
    c.expect(2)
    c.send(bytes([0xE0, 1, reason]))
    assert c.expect_closed() == []
    broker_marker_first = not published
    # The will, if any, is routed before the connection's end is counted.
    wait_until(lambda: broker.stats()["clients_connected"] == 1)
    broker.publish("will/x", b"marker")
    m = observer.get()
    assert (m.payload == b"marker") == broker_marker_first, m.payload


def test_puback_when_only_the_publishers_no_local_subscription_matches(broker):
    """§3.4.2.1: 0x10 means no subscription matched; the publisher's own no-local
    subscription did (the message is just not sent back to it), so PUBACK is 0x00.
    mosquitto 2.0.11: 0x00 as well."""
    c = RawPeer(broker.port)
    c.connect(client_id="nl", version=5)
    # Subscription options 0x05: QoS 1, no local.
    c.send(packet(0x82, b"\x00\x01\x00" + mqtt_str("nl/t") + b"\x05"))
    assert c.expect(9)[-1] == 1
    c.send(publish_packet("nl/t", b"x", qos=1, pkid=9))
    ack = c.expect(4)
    assert ack[2:3] in (b"", b"\x00"), f"PUBACK {ack!r}"
    # With no subscription at all it is 0x10.
    c.send(publish_packet("nobody/t", b"x", qos=1, pkid=10))
    assert c.expect(4)[2:3] == b"\x10"
    c.close()


def test_pubrel_for_a_completed_flow_gets_pubcomp_success(broker):
    """A PUBREL resent after our PUBCOMP was lost finds no flow: PUBCOMP 0x00 tells the
    client it is complete (0x92 would leave it in doubt). mosquitto 2.0.11: 0x00."""
    c = RawPeer(broker.port)
    c.connect(client_id="rel", version=5)
    c.send(publish_packet("rel/t", b"x", qos=2, pkid=4))
    c.expect(5)
    c.send(b"\x62\x02\x00\x04")
    assert c.expect(7) == b"\x00\x04"
    c.send(b"\x62\x02\x00\x04")
    assert c.expect(7)[2:3] in (b"", b"\x00")
    c.close()


def test_property_not_valid_in_its_packet_is_malformed(broker):
    """MQTT 5 §2.2.2.2: a property identifier not valid for the packet type makes a
    Malformed Packet: DISCONNECT 0x81 (here Session Expiry Interval in PUBLISH).
    mosquitto 2.0.11: 0x81 too."""
    c = RawPeer(broker.port)
    c.connect(client_id="prop", version=5)
    c.send(publish_packet("p/t", b"x", props=b"\x11\x00\x00\x00\x01"))
    seen = c.expect_closed()
    assert seen and seen[-1][0] == 0xE0, seen
    assert seen[-1][1][0] == 0x81
