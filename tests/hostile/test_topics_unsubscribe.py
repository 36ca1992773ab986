"""A SUBSCRIBE or UNSUBSCRIBE with an invalid topic filter is a malformed packet.

MQTT 5 §3.8.3 / §3.10.3: the payload is a list of topic filters; §4.7.1 and §4.7.3 say
what a valid one is (not empty, `#` last and alone in its level, `+` alone in its level),
and a malformed packet closes the connection (§4.13), on v5 with DISCONNECT 0x81. Reason
0x8F (Topic Filter invalid) means a filter that is "correctly formed" but not accepted,
so it is not the answer here (it is the SUBACK code for a filter past
`max_topic_levels`). mosquitto 2.0.11 does the same: v5 DISCONNECT 0x81, v3 closed
without a word, and a log line ("Invalid unsubscription string ... disconnecting",
"Empty unsubscription string", "Invalid subscription string"). Other clients are not
disturbed.
"""

from __future__ import annotations

import struct

import pytest
from broker_support import (
    RawPeer,
    disconnect_reason,
    mqtt_str,
    packet,
    publish_packet,
    subscribe_packet,
    varint,
)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def broker(mqtt_broker_factory):
    return mqtt_broker_factory(sys_interval=0)


def unsubscribe_packet(filters: list[str], pkid: int = 2, v5: bool = True) -> bytes:
    body = struct.pack("!H", pkid) + (varint(0) if v5 else b"")
    return packet(0xA2, body + b"".join(mqtt_str(f) for f in filters))


def subscribe_filters(filters: list[str], pkid: int = 3, v5: bool = True) -> bytes:
    body = struct.pack("!H", pkid) + (varint(0) if v5 else b"")
    return packet(0x82, body + b"".join(mqtt_str(f) + b"\x00" for f in filters))


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("bad", ["a/#/b", "", "a+/b", "#a", "a/b#"])
@pytest.mark.parametrize("kind", ["unsubscribe", "subscribe"])
def test_an_invalid_filter_closes_the_connection(broker, version, bad, kind):
    v5 = version == 5
    bystander = RawPeer(broker.port)
    bystander.connect(client_id="bystander")
    bystander.send(subscribe_packet("keep/going", 0))
    bystander.expect(9)
    p = RawPeer(broker.port)
    p.connect(client_id="bad-unsub", version=version)
    p.send(subscribe_packet("a/b", 0, v5=v5))
    p.expect(9)
    make = unsubscribe_packet if kind == "unsubscribe" else subscribe_filters
    p.send(make(["a/b", bad], v5=v5))
    seen = p.expect_closed()
    assert [first >> 4 for first, _ in seen] == ([14] if v5 else [])
    if v5:
        assert disconnect_reason(seen) == 0x81
    p.close()
    bystander.send(publish_packet("keep/going", b"fine"))
    assert bystander.expect(3).endswith(b"fine")
    bystander.close()


def test_valid_unsubscribe_filters_are_answered(broker):
    p = RawPeer(broker.port)
    p.connect(client_id="good-unsub")
    p.send(subscribe_packet("a/#", 0))
    p.expect(9)
    p.send(unsubscribe_packet(["a/#", "+/+", "$share/g/x"]))
    assert list(p.expect(11)[-3:]) == [0x00, 0x11, 0x11]
    p.close()
