"""Parked idle connections: a quiet plain-TCP client gives up its task and waits on the
broker's shared poller; whatever happens next (a packet, a message for it, a keep-alive
expiry, a takeover, the broker stopping) is handled exactly as for a running client.

``idle_park_after=0`` makes every quiet client park at the next housekeeping sweep
(250 ms), so the tests wait for ``stats()["connections_parked"]`` rather than sleep."""

from __future__ import annotations

import os
import sys

import pytest
from broker_support import (
    V5,
    V311,
    Peer,
    RawPeer,
    ack_packet,
    connect_packet,
    disconnect_reason,
    offline,
    packet,
    publish_packet,
    subscribe_packet,
    wait_until,
)


@pytest.fixture
def broker(mqtt_broker_factory):
    return mqtt_broker_factory(sys_interval=0, idle_park_after=0)


def parked(broker) -> int:
    return broker.stats()["connections_parked"]


@pytest.fixture
def raw(broker):
    made: list[RawPeer] = []

    def make() -> RawPeer:
        p = RawPeer(broker.port)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("version", [V311, V5])
def test_parked_clients_publish_and_receive(broker, peers, qos, version):
    sub = peers("sub", version)
    assert sub.subscribe("p/t", qos) == [qos]
    pub = peers("pub", version)
    wait_until(lambda: parked(broker) == 2)
    pub.publish("p/t", b"after parking", qos)
    m = sub.get()
    assert (m.topic, m.payload, m.qos) == ("p/t", b"after parking", qos)
    # Both went back to parking once the exchange was over, and still work.
    wait_until(lambda: parked(broker) == 2)
    pub.publish("p/t", b"again", qos)
    assert sub.get().payload == b"again"


def test_parked_clients_are_listed_and_counted(broker, peers):
    peers("a", V311)
    peers("b", V5)
    wait_until(lambda: parked(broker) == 2)
    assert sorted(c["client_id"] for c in broker.clients()) == ["a", "b"]
    assert broker.stats()["clients_connected"] == 2


def test_ping_while_parked(broker, raw):
    c = raw()
    c.connect(client_id="pinger", version=4)
    wait_until(lambda: parked(broker) == 1)
    c.send(packet(0xC0, b""))
    c.expect(13)  # PINGRESP
    wait_until(lambda: parked(broker) == 1)
    c.send(packet(0xC0, b""))
    c.expect(13)


def test_parked_client_that_drops_gets_its_will_published(broker, peers, raw):
    watcher = peers("watcher")
    watcher.subscribe("will/#", 1)
    c = raw()
    c.connect(client_id="doomed", version=4, will=("will/doomed", b"gone", 1, False))
    wait_until(lambda: parked(broker) == 2)
    c.close()
    m = watcher.get()
    assert (m.topic, m.payload) == ("will/doomed", b"gone")
    offline(broker, "doomed")


def test_keep_alive_expiry_of_a_parked_client_publishes_its_will(broker, peers, raw):
    watcher = peers("watcher")
    watcher.subscribe("will/#", 1)
    c = raw()
    c.connect(client_id="silent", version=5, keepalive=1, will=("will/silent", b"late", 1, False))
    wait_until(lambda: parked(broker) == 2)
    # Nothing sent for 1.5 keep-alive periods: closed with 0x8D, will published.
    assert disconnect_reason(c.expect_closed()) == 0x8D
    m = watcher.get()
    assert (m.topic, m.payload) == ("will/silent", b"late")


def test_takeover_of_a_parked_client(broker, peers, raw):
    first = raw()
    first.connect(client_id="same", version=5)
    wait_until(lambda: parked(broker) == 1)
    second = peers("same")
    assert disconnect_reason(first.expect_closed()) == 0x8E
    assert [c["client_id"] for c in broker.clients()] == ["same"]
    second.subscribe("x", 0)


@pytest.mark.parametrize("qos", [1, 2])
def test_unacknowledged_message_resent_after_parking(broker, peers, raw, qos):
    c = raw()
    c.connect(client_id="slow", version=4, clean=False)
    c.send(subscribe_packet("q/t", qos, pkid=1, v5=False))
    c.expect(9)
    peers("pub").publish("q/t", b"unacked", qos)
    first, body = c.read_packet()
    assert first >> 4 == 3 and not first & 0x08
    assert body.endswith(b"unacked")
    pkid = body[2 + 3 : 2 + 3 + 2]
    # Not acknowledged: the client parks with the message in flight.
    wait_until(lambda: parked(broker) == 2)
    c.close()
    offline(broker, "slow")
    again = raw()
    connack = again.connect(client_id="slow", version=4, clean=False)
    assert connack[0] & 1  # session present
    first, body = again.read_packet()
    assert first >> 4 == 3 and first & 0x08, "resent with DUP"
    assert body[2 + 3 : 2 + 3 + 2] == pkid and body.endswith(b"unacked")
    again.send(ack_packet(4 if qos == 1 else 5, int.from_bytes(pkid, "big")))
    if qos == 2:
        again.expect(6)  # PUBREL
        again.send(ack_packet(7, int.from_bytes(pkid, "big")))
    # The acknowledgement of a parked client completes the flow: nothing more comes.
    again.send(packet(0xC0, b""))
    again.expect(13)


def test_parked_client_acknowledges_later(broker, peers, raw):
    c = raw()
    c.connect(client_id="acker", version=4)
    c.send(subscribe_packet("a/t", 1, pkid=1, v5=False))
    c.expect(9)
    peers("pub").publish("a/t", b"m1", 1)
    _, body = c.read_packet()
    wait_until(lambda: parked(broker) == 2)
    # The PUBACK arrives while parked; the next message is delivered normally.
    c.send(ack_packet(4, int.from_bytes(body[5:7], "big")))
    peers("pub2").publish("a/t", b"m2", 1)
    _, body = c.read_packet()
    assert body.endswith(b"m2")


def test_broker_stop_closes_parked_clients(mqtt_broker_factory):
    broker = mqtt_broker_factory(sys_interval=0, idle_park_after=0)
    clients = []
    for i in range(20):
        c = RawPeer(broker.port)
        c.connect(client_id=f"c{i}", version=5)
        clients.append(c)
    wait_until(lambda: parked(broker) == 20)
    # Thread names are read from /proc: counted on Linux only.
    pollers = _park_threads() if sys.platform.startswith("linux") else 0
    broker.stop()
    for c in clients:
        assert disconnect_reason(c.expect_closed()) == 0x8B
        c.close()
    if sys.platform.startswith("linux"):
        assert _park_threads() == pollers - 1, "the poller thread outlived stop()"


def _park_threads() -> int:
    """Live poller threads of parked connections in this process (one per broker)."""
    n = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                n += f.read().strip() == "tmqtt-park"
        except OSError:
            continue
    return n


def test_never_parks_when_disabled(mqtt_broker_factory):
    broker = mqtt_broker_factory(sys_interval=0, idle_park_after=None)
    quiet = RawPeer(broker.port)
    p = Peer(broker.port, "steady", V311)
    try:
        # With parking on, a client that sends nothing after CONNECT parks at once.
        quiet.connect(client_id="quiet", version=4)
        p.connect()
        p.subscribe("s/t", 1)
        p.publish("s/t", b"x", 1)
        assert p.get().payload == b"x"
        assert parked(broker) == 0
        assert sorted(c["client_id"] for c in broker.clients()) == ["quiet", "steady"]
    finally:
        p.disconnect()
        quiet.close()


def test_a_client_busy_right_after_connect_is_served(broker, raw):
    # CONNECT, SUBSCRIBE and PUBLISH in one write: handled before any parking.
    c = raw()
    c.send(
        connect_packet(client_id="eager", version=4)
        + subscribe_packet("e/t", 0, pkid=1, v5=False)
        + publish_packet("e/t", b"self", 0, v5=False)
    )
    c.expect(2)
    c.expect(9)
    _, body = c.read_packet()
    assert body.endswith(b"self")
