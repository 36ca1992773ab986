"""Taking a client id over: which session the new connection gets, what becomes of the
old connection's will, and that nothing the old connection already received is lost.

Verdicts of mosquitto 2.0.11 on the same probes are noted where they differ from ours.
"""

from __future__ import annotations

import struct

import pytest
from broker_support import (
    TIMEOUT,
    V5,
    V311,
    Peer,
    RawPeer,
    mqtt_str,
    packet,
    publish_packet,
    varint,
    wait_until,
)
from turbomqtt import Broker

pytestmark = pytest.mark.timeout(120)

DISCONNECT = b"\xe0\x00"


@pytest.fixture
def broker():
    with Broker(port=0, sys_interval=0) as b:
        yield b


def connect(
    client_id: str,
    version: int,
    clean: bool,
    expiry: int | None = None,
    will: tuple[str, bytes] | None = None,
    will_delay: int | None = None,
) -> bytes:
    """A CONNECT (v3.1.1 or v5) with an optional QoS 0 will."""
    flags = 0x02 if clean else 0
    payload = mqtt_str(client_id)
    if will is not None:
        flags |= 0x04
        if version == 5:
            wprops = b"" if will_delay is None else b"\x18" + struct.pack("!I", will_delay)
            payload += varint(len(wprops)) + wprops
        payload += mqtt_str(will[0]) + mqtt_str(will[1])
    var = mqtt_str("MQTT") + bytes([version, flags]) + struct.pack("!H", 60)
    if version == 5:
        props = b"" if expiry is None else b"\x11" + struct.pack("!I", expiry)
        var += varint(len(props)) + props
    return packet(0x10, var + payload)


def raw_connect(port: int, data: bytes) -> tuple[RawPeer, bool]:
    """A connected raw client and its CONNACK's session present flag."""
    raw = RawPeer(port)
    raw.send(data)
    ack = raw.expect(2)
    assert ack[1] == 0, f"refused: {ack!r}"
    return raw, bool(ack[0] & 1)


def settled(broker: Broker, connected: int) -> None:
    """Waits until only `connected` clients are left: every closing connection has
    finished (published its will or not) by then."""
    wait_until(lambda: broker.stats()["clients_connected"] == connected)


def first_after(observer: Peer, broker: Broker, topic: str) -> tuple[str, bytes]:
    """Publishes a marker on `topic` and returns the first message the observer gets:
    the marker unless something was routed to it before."""
    broker.publish(topic, b"marker")
    m = observer.get()
    return m.topic, m.payload


# -- which session: [MQTT-3.1.2-6], MQTT 5 §3.1.2.11.2 ----------------------------------


@pytest.mark.parametrize("version", [4, 5])
def test_takeover_does_not_resume_a_session_that_ends_with_its_connection(broker, version):
    old, _ = raw_connect(broker.port, connect("X", version, clean=True))
    sub = b"\x00\x01" + (b"\x00" if version == 5 else b"") + mqtt_str("x/t") + b"\x01"
    old.send(packet(0x82, sub))
    old.expect(9)
    new, present = raw_connect(broker.port, connect("X", version, clean=False, expiry=300))
    assert not present, "the old session ended with its connection"
    assert old.expect_closed() is not None
    settled(broker, 1)
    # The old subscription went with the session.
    new.send(
        packet(0x82, b"\x00\x02" + (b"\x00" if version == 5 else b"") + mqtt_str("m") + b"\x00")
    )
    new.expect(9)
    broker.publish("x/t", b"for the ended session", qos=1)
    broker.publish("m", b"marker")
    body = new.expect(3)
    assert mqtt_str("m") == body[:3], f"got {body!r}"
    new.close()


@pytest.mark.parametrize("version", [4, 5])
def test_takeover_resumes_a_persistent_session(broker, version):
    old, _ = raw_connect(broker.port, connect("P", version, clean=False, expiry=300))
    new, present = raw_connect(broker.port, connect("P", version, clean=False, expiry=300))
    assert present
    old.close()
    new.close()


# -- the old connection's will ---------------------------------------------------------


@pytest.fixture
def observer(broker):
    p = Peer(broker.port, "observer", V5).connect()
    assert p.subscribe("will/#", 0) == [0]
    yield p
    p.disconnect()


def test_v5_takeover_resuming_the_session_does_not_publish_the_will(broker, observer):
    """[MQTT-3.1.3-9]: a new connection to the session came before the will delay (0
    here) had passed, while the old connection was still open. mosquitto 2.0.11: the
    same (the will is cleared when a persistent session is resumed)."""
    old, _ = raw_connect(
        broker.port, connect("W", 5, clean=False, expiry=300, will=("will/W", b"gone"))
    )
    new, present = raw_connect(broker.port, connect("W", 5, clean=False, expiry=300))
    assert present
    old.expect_closed()
    settled(broker, 2)
    assert first_after(observer, broker, "will/W") == ("will/W", b"marker")
    new.close()


@pytest.mark.parametrize("clean, expiry", [(True, 300), (False, 0)])
def test_v5_takeover_ending_the_session_publishes_a_delayed_will_at_once(
    broker, observer, clean, expiry
):
    """The session ends with the takeover (new connection with clean start, or old
    connection with session expiry 0): the will is due then, whatever its delay
    (MQTT 5 §3.1.3.2.2: "or the Session ends, whichever happens first"). mosquitto
    2.0.11 differs: neither case published the will within 0.5 s (it keeps the delay)."""
    old, _ = raw_connect(
        broker.port,
        connect("D", 5, clean=False, expiry=expiry, will=("will/D", b"gone"), will_delay=3600),
    )
    new, present = raw_connect(broker.port, connect("D", 5, clean=clean, expiry=300))
    assert not present
    m = observer.get()
    assert (m.topic, m.payload) == ("will/D", b"gone")
    old.close()
    new.close()


def test_v311_takeover_publishes_the_will(broker, observer):
    """MQTT 3.1.1 deletes the will only on DISCONNECT (§3.1.2.5), and a takeover closes
    the old connection without one (§3.1.4): the will is published even though the
    session is resumed. mosquitto 2.0.11 differs: it clears the will of a resumed
    persistent session (it publishes it only if the old or new connection was clean)."""
    old, _ = raw_connect(broker.port, connect("V", 4, clean=False, will=("will/V", b"gone")))
    new, present = raw_connect(broker.port, connect("V", 4, clean=False))
    assert present
    m = observer.get()
    assert (m.topic, m.payload) == ("will/V", b"gone")
    old.close()
    new.close()


# -- what the old connection received first: [MQTT-3.14.4-3] -----------------------------

TRIALS = 100


@pytest.mark.parametrize("version", [4, 5])
def test_disconnect_right_before_a_takeover_deletes_the_will(broker, observer, version):
    """DISCONNECT, close, reconnect at once with the same client id: the DISCONNECT
    was sent first, so the will is deleted every time. mosquitto 2.0.11: never
    published in 100 trials."""
    will = ("will/R", b"gone")
    current, _ = raw_connect(broker.port, connect("R", version, clean=True, will=will))
    for _ in range(TRIALS):
        current.send(DISCONNECT)
        current.close()
        current, _ = raw_connect(broker.port, connect("R", version, clean=True, will=will))
    current.send(DISCONNECT)
    current.close()
    settled(broker, 1)
    assert first_after(observer, broker, "will/R") == ("will/R", b"marker")


@pytest.mark.parametrize("version", [4, 5])
def test_publishes_right_before_a_takeover_are_routed(broker, version):
    """PUBLISH, DISCONNECT, close, reconnect at once with the same client id: every
    PUBLISH arrives (mosquitto 2.0.11: 100 of 100)."""
    sub = Peer(broker.port, "burst-sink", V311).connect()
    assert sub.subscribe("burst/#", 0) == [0]
    v5 = version == 5
    current, _ = raw_connect(broker.port, connect("B", version, clean=True))
    for i in range(TRIALS):
        current.send(publish_packet(f"burst/{i}", b"x", v5=v5) + DISCONNECT)
        current.close()
        current, _ = raw_connect(broker.port, connect("B", version, clean=True))
    current.send(DISCONNECT)
    current.close()
    settled(broker, 1)
    broker.publish("burst/end", b"marker")
    got = set()
    while True:
        m = sub.get(TIMEOUT)
        if m.topic == "burst/end":
            break
        got.add(m.topic)
    assert len(got) == TRIALS, f"{TRIALS - len(got)} of {TRIALS} lost"
    sub.disconnect()


def test_a_parked_connection_handles_its_last_packets_before_a_takeover():
    """The same with the old connection parked (idle, its task ended, see `park.rs`)
    when its last packets and the takeover arrive."""
    trials = 10
    with Broker(port=0, sys_interval=0, idle_park_after=0) as broker:
        sink = Peer(broker.port, "sink", V311).connect()
        assert sink.subscribe([("burst/#", 0), ("will/#", 0)]) == [0, 0]
        will = ("will/P", b"gone")
        current, _ = raw_connect(broker.port, connect("P", 4, clean=True, will=will))
        for i in range(trials):
            wait_until(lambda: broker.stats()["connections_parked"] >= 1)
            current.send(publish_packet(f"burst/{i}", b"x", v5=False) + DISCONNECT)
            current.close()
            current, _ = raw_connect(broker.port, connect("P", 4, clean=True, will=will))
        current.send(DISCONNECT)
        current.close()
        settled(broker, 1)
        broker.publish("burst/end", b"marker")
        got = []
        while True:
            m = sink.get(TIMEOUT)
            if m.topic == "burst/end":
                break
            got.append(m.topic)
        assert sorted(got) == sorted(f"burst/{i}" for i in range(trials)), got
        sink.disconnect()
