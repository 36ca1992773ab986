"""Clients do not publish to `$SYS`: those topics are the broker's, and a client must not
overwrite the retained values it publishes there. The one exception is the
`$SYS/broker/connection/<id>/state` topic a bridge publishes about itself.

mosquitto 2.0.11 gives the same verdicts (`acl__check_dollar`: v5 PUBACK 0x87, v3
PUBACK without effect, QoS 0 dropped).
"""

from __future__ import annotations

import pytest
from broker_support import RawPeer, packet, publish_packet
from turbomqtt import Broker

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def broker():
    # $SYS published at start and not again during the test: the broker's retained
    # values exist, and every $SYS message a subscriber sees is either one of them or
    # a client's.
    with Broker(port=0, sys_interval=3600) as b:
        yield b


def subscribe(peer: RawPeer, v5: bool, *topics: str) -> None:
    body = b"\x00\x07" + (b"\x00" if v5 else b"")
    for t in topics:
        body += len(t).to_bytes(2, "big") + t.encode() + b"\x00"
    peer.send(packet(0x82, body))
    peer.expect(9)


def next_publish(peer: RawPeer) -> tuple[str, bytes]:
    first, body = peer.read_packet() or (0, b"")
    assert first >> 4 == 3, f"expected PUBLISH, got {first:#x}"
    n = int.from_bytes(body[:2], "big")
    return body[2 : 2 + n].decode(), body


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_client_publish_to_sys_is_refused(broker, version, qos):
    v5 = version == 5
    watcher = RawPeer(broker.port)
    watcher.connect(client_id="watcher", version=5)
    subscribe(watcher, True, "$SYS/broker/version", "$SYS/forged", "marker")
    # The broker's own retained value arrives on subscribe.
    topic, body = next_publish(watcher)
    assert topic == "$SYS/broker/version"
    assert b"turbomqtt" in body

    client = RawPeer(broker.port)
    client.connect(client_id="forger", version=version)
    for t in ("$SYS/broker/version", "$SYS/forged"):
        client.send(publish_packet(t, b"forged", qos=qos, pkid=5, v5=v5, retain=True))
        if qos:
            ack = client.expect(4 if qos == 1 else 5)
            # v5: 0x87 not authorized; v3 has no code (the message is dropped).
            assert ack[2:3] == (b"\x87" if v5 else b""), ack
        if qos == 2 and not v5:
            client.send(b"\x62\x02\x00\x05")
            client.expect(7)
    # Nothing was routed or retained: the marker comes first, and a new subscriber
    # still gets the broker's value.
    client.send(publish_packet("marker", b"m", v5=v5))
    assert next_publish(watcher)[0] == "marker"
    late = RawPeer(broker.port)
    late.connect(client_id="late", version=5)
    subscribe(late, True, "$SYS/forged", "$SYS/broker/version")
    topic, body = next_publish(late)
    assert topic == "$SYS/broker/version" and b"forged" not in body
    for p in (watcher, client, late):
        p.close()


def test_bridge_state_topic_is_allowed(broker):
    watcher = RawPeer(broker.port)
    watcher.connect(client_id="watcher", version=5)
    subscribe(watcher, True, "$SYS/broker/connection/+/state")
    bridge = RawPeer(broker.port)
    bridge.connect(client_id="edge", version=5)
    bridge.send(publish_packet("$SYS/broker/connection/edge/state", b"1", qos=1, pkid=3))
    ack = bridge.expect(4)
    assert ack[2:3] in (b"", b"\x00"), ack
    assert next_publish(watcher)[0] == "$SYS/broker/connection/edge/state"
    watcher.close()
    bridge.close()
