"""mosquitto's bridge bit: 0x80 on the CONNECT protocol level (0x83 / 0x84), sent by
mosquitto bridges ("try_private") and by paho-mqtt's `enable_bridge_mode()`. mosquitto
makes every subscription of such a 3.1/3.1.1 connection no local and retain as
published; on a v5 connection (0x85) the bit changes nothing, a v5 bridge asks for those
options itself. Every test runs against the embedded broker and against mosquitto, with
the real paho-mqtt 2.2.0 as the clients, to show the behaviour matches."""

from __future__ import annotations

from typing import Any

import pytest
from broker_support import V5, V31, V311, Peer, RawPeer, connect_packet
from paho.mqtt.subscribeoptions import SubscribeOptions

pytestmark = pytest.mark.timeout(60)


class Target:
    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.port = port


@pytest.fixture(params=["turbomqtt", "mosquitto"])
def broker(request) -> Target:
    if request.param == "mosquitto":
        return Target("mosquitto", request.getfixturevalue("mosquitto")[1])
    port = request.getfixturevalue("mqtt_broker_factory")(sys_interval=0).port
    return Target("turbomqtt", port)


@pytest.fixture
def port(broker: Target) -> int:
    return broker.port


def peer(port: int, client_id: str, protocol: int = V311, bridge: bool = False) -> Peer:
    p = Peer(port, client_id, protocol)
    if bridge:
        p.client.enable_bridge_mode()
    return p.connect()


def topics_until(p: Peer, last: str) -> list[tuple[str, bool]]:
    """(topic, retain) of what `p` receives, up to and including `last`."""
    seen: list[tuple[str, bool]] = []
    while not seen or seen[-1][0] != last:
        m = p.get()
        seen.append((m.topic, bool(m.retain)))
    return seen


@pytest.fixture
def peers():
    made: list[Peer] = []
    yield made
    for p in made:
        p.disconnect()


@pytest.mark.parametrize("protocol", [V31, V311], ids=["3.1", "3.1.1"])
def test_a_v3_bridge_does_not_get_its_own_messages_back(port, peers, protocol):
    bridge = peer(port, "bridge", protocol, bridge=True)
    plain = peer(port, "plain", protocol)
    other = peer(port, "other")
    peers += [bridge, plain, other]
    bridge.subscribe("bt/#", 1)
    plain.subscribe("bt/#", 1)
    # Each publish is acknowledged (so routed) before the next one is sent.
    bridge.publish("bt/from-bridge", b"b", 1)
    plain.publish("bt/from-plain", b"p", 1)
    other.publish("bt/end", b"e", 1)
    assert [t for t, _ in topics_until(bridge, "bt/end")] == ["bt/from-plain", "bt/end"]
    assert [t for t, _ in topics_until(plain, "bt/end")] == [
        "bt/from-bridge",
        "bt/from-plain",
        "bt/end",
    ]


@pytest.mark.parametrize("protocol", [V31, V311], ids=["3.1", "3.1.1"])
def test_a_v3_bridge_sees_the_retain_flag_as_published(port, peers, protocol):
    bridge = peer(port, "bridge", protocol, bridge=True)
    plain = peer(port, "plain", protocol)
    other = peer(port, "other")
    peers += [bridge, plain, other]
    bridge.subscribe("br/#", 1)
    plain.subscribe("br/#", 1)
    other.publish("br/kept", b"1", 1, retain=True)
    other.publish("br/live", b"2", 1)
    # A live message keeps its retain flag for the bridge only (MQTT 3.1.1 §3.3.1.3:
    # a plain subscriber gets 0 on messages that were not sent because of SUBSCRIBE).
    assert topics_until(bridge, "br/live") == [("br/kept", True), ("br/live", False)]
    assert topics_until(plain, "br/live") == [("br/kept", False), ("br/live", False)]
    # Retained messages sent on SUBSCRIBE carry the flag for both.
    late_bridge = peer(port, "late-bridge", protocol, bridge=True)
    late_plain = peer(port, "late-plain", protocol)
    peers += [late_bridge, late_plain]
    for p in (late_bridge, late_plain):
        p.subscribe("br/#", 1)
        assert topics_until(p, "br/kept") == [("br/kept", True)]


def test_the_bridge_bit_on_a_v5_connection_changes_nothing(mqtt_broker_factory, peers):
    """mosquitto sets `is_bridge` for 3.1/3.1.1 only and its own v5 bridges send the bare
    level 5; the embedded broker serves 0x85 as plain v5 (mosquitto 2.0.11 cannot parse
    such a CONNECT at all: see the next test)."""
    port = mqtt_broker_factory(sys_interval=0).port
    bridge = peer(port, "bridge5", V5, bridge=True)
    plain = peer(port, "plain5", V5)
    other = peer(port, "other")
    peers += [bridge, plain, other]
    for p in (bridge, plain):
        p.subscribe("b5/#", 1)
    bridge.publish("b5/bridge", b"o", 1)
    plain.publish("b5/plain", b"o", 1)
    other.publish("b5/kept", b"k", 1, retain=True)
    expected = [("b5/bridge", False), ("b5/plain", False), ("b5/kept", False)]
    assert topics_until(bridge, "b5/kept") == expected
    assert topics_until(plain, "b5/kept") == expected


def test_mosquitto_closes_a_v5_connect_with_the_bridge_bit(mosquitto):
    """Why the test above runs against the embedded broker only: mosquitto 2.0.11 takes
    0x85 for MQTT 5 but reads the CONNECT properties only for a bare 5, so it misreads
    the rest of the packet and closes the connection without CONNACK."""
    p = Peer(mosquitto[1], "bridge5", V5)
    p.client.enable_bridge_mode()
    p.client.connect("127.0.0.1", mosquitto[1])
    p.client.loop_start()
    try:
        assert p.disconnected.wait(10)
        assert not p.connected.is_set()
    finally:
        p.client.loop_stop()


@pytest.mark.parametrize("bit", [False, True], ids=["level 5", "level 0x85"])
def test_a_v5_bridge_asks_for_no_local_and_retain_as_published_itself(broker, peers, bit):
    if bit and broker.name == "mosquitto":
        pytest.skip("mosquitto 2.0.11 refuses 0x85 (test_mosquitto_closes_a_v5_connect...)")
    bridge = peer(broker.port, "bridge5", V5, bridge=bit)
    other = peer(broker.port, "other")
    peers += [bridge, other]
    options = SubscribeOptions(qos=1, noLocal=True, retainAsPublished=True)
    bridge.subscribe("b5/#", 0, options=options)
    bridge.publish("b5/own", b"o", 1)
    other.publish("b5/kept", b"k", 1, retain=True)
    assert topics_until(bridge, "b5/kept") == [("b5/kept", True)]


def test_a_v3_bridge_and_a_plain_client_share_a_broker(port, peers):
    """The bridge's options are its own: a plain client on the same topics still gets
    the bridge's messages, and the bridge gets the plain client's."""
    bridge = peer(port, "bridge", V311, bridge=True)
    plain = peer(port, "plain", V5)
    peers += [bridge, plain]
    bridge.subscribe("mix/#", 1)
    plain.subscribe("mix/#", 1)
    bridge.publish("mix/b", b"1", 1)
    plain.publish("mix/p", b"2", 1)
    assert [t for t, _ in topics_until(plain, "mix/p")] == ["mix/b", "mix/p"]
    assert [t for t, _ in topics_until(bridge, "mix/p")] == ["mix/p"]


def refusal(port: int, data: bytes) -> Any:
    raw = RawPeer(port)
    raw.send(data)
    got = raw.read_packet()
    raw.close()
    return got


def test_a_bad_v5_bridge_connect_is_answered_in_v5(mqtt_broker_factory):
    """The level is read before the CONNECT decodes, to answer a bad one in its version
    (MQTT 5 §3.1.4): with the bridge bit (0x85) it is the same answer as without."""
    broker = mqtt_broker_factory(sys_interval=0)
    # Will QoS 3: a malformed CONNECT.
    plain = bytearray(connect_packet("bad", version=5, will=("w", b"x", 1, False)))
    level_at = 2 + 2 + 4
    assert plain[level_at] == 5
    plain[level_at + 1] |= 0x18
    bridged = bytearray(plain)
    bridged[level_at] = 0x85
    answer = refusal(broker.port, bytes(plain))
    assert answer is not None and answer[0] >> 4 == 2 and answer[1][1] == 0x81
    assert refusal(broker.port, bytes(bridged)) == answer
