"""A subscriber that stops reading is isolated by its own queue limits: its publisher and
the other subscribers go on at full speed, its QoS 0 messages are dropped and counted
once its limit is reached, and its QoS 1/2 queue overflows by mosquitto's policy (the
newest messages are dropped). A slow subscriber that keeps reading loses nothing.

mosquitto 2.0.11 passes each of these probes (with its `max_queued_bytes` where set)."""

from __future__ import annotations

import asyncio
import socket
import uuid

import pytest
import turbomqtt.asyncio as amqtt
from broker_support import publish_packet, wait_until

from hostile._flow_peers import CountingClient, flood, stuck_subscriber

# Bytes a queued message accounts for besides its topic and payload (README: broker
# options, max_queued_bytes).
OVERHEAD = 64


def _lines(caplog: pytest.LogCaptureFixture, client_id: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if "queue full" in r.getMessage() and f"client {client_id}:" in r.getMessage()
    ]


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("qos", "n"), [(0, 50_000), (1, 20_000)])
def test_a_stuck_subscriber_does_not_hold_back_its_publisher(mqtt_broker_factory, qos, n):
    """With default limits, a raw subscriber that never reads is on the same topic as a
    healthy one: the publisher gets through all n messages (and its PUBACKs at QoS 1),
    and the healthy subscriber receives every one. (Before, the publisher's socket went
    unread for tens of seconds while the broker waited for the stuck subscriber.)"""
    broker = mqtt_broker_factory(sys_interval=0)
    topic = f"stuck/{uuid.uuid4().hex[:8]}"
    stuck = stuck_subscriber(broker.port, "stuck", topic, qos)
    healthy = CountingClient(broker.port, "healthy")
    healthy.subscribe(topic, qos)
    pub = CountingClient(broker.port, "pub")
    try:
        pub.sock.settimeout(60)
        pub.send(flood(topic, n, 200, qos))
        pub.send(publish_packet(topic, b"end", qos=1, pkid=65535, v5=False))
        acks = n + 1 if qos else 1
        assert pub.wait(lambda: pub.pubacks >= acks, 45), f"{pub.pubacks} of {acks} PUBACKs"
        assert healthy.wait(lambda: healthy.published.get(topic, 0) >= n + 1, 45), (
            f"healthy subscriber got {healthy.published.get(topic, 0)} of {n + 1}"
        )
        assert healthy.published[topic] == n + 1
    finally:
        stuck.close()
        healthy.close()
        pub.close()


@pytest.mark.timeout(60)
def test_a_stuck_subscribers_qos0_drops_are_counted_and_logged_once(mqtt_broker_factory, caplog):
    """Past `max_queued_bytes`, a stuck subscriber's QoS 0 messages are dropped: counted
    in `messages_dropped` (and `$SYS/broker/publish/messages/dropped`), with a warning
    when dropping starts rather than one per message. The other subscriber gets all."""
    caplog.set_level("WARNING", logger="turbomqtt.broker")
    limit = 64 * 1024
    broker = mqtt_broker_factory(sys_interval=0, max_queued_bytes=limit)
    topic = f"drop/{uuid.uuid4().hex[:8]}"
    n = 5000
    stuck = stuck_subscriber(broker.port, "stuck0", topic, 0)
    healthy = CountingClient(broker.port, "healthy0")
    healthy.subscribe(topic, 0)
    pub = CountingClient(broker.port, "pub0")
    try:
        pub.send(flood(topic, n, 1000, 0))
        pub.send(publish_packet(topic, b"end", qos=1, pkid=1, v5=False))
        assert pub.wait(lambda: pub.pubacks >= 1, 30)
        assert healthy.wait(lambda: healthy.published.get(topic, 0) >= n + 1, 30)
        dropped = broker.stats()["messages_dropped"]
        # What the stuck subscriber may still hold: its queue (up to the limit, plus
        # the one message that crosses it) and what sits in the two sockets' buffers.
        assert dropped > 0
        assert dropped <= n
        wait_until(lambda: _lines(caplog, "stuck0"))
        lines = _lines(caplog, "stuck0")
        assert all("max_queued_bytes" in m for m in lines)
        assert len(lines) < dropped, "one warning per episode, not one per message"
        assert not _lines(caplog, "healthy0")
    finally:
        stuck.close()
        healthy.close()
        pub.close()


@pytest.mark.timeout(60)
def test_qos1_overflow_drops_the_newest_by_count_and_by_bytes(mqtt_broker_factory, caplog):
    """Two stuck QoS 1 subscribers (inflight window 2): one gets 1000-byte messages and
    overflows `max_queued_bytes` after 10 queued, the other gets 1-byte messages and
    overflows `max_queued_messages` after 20. Each keeps the oldest (2 in flight plus
    its queue), the newer ones are dropped and counted exactly, one warning names the
    limit; once it reads again it gets exactly those, in order. The publisher had all
    its PUBACKs meanwhile and a healthy subscriber everything."""
    caplog.set_level("WARNING", logger="turbomqtt.broker")
    big_topic, small_topic = "ovf/big", "ovf/small"
    big_cost = len(big_topic) + 1000 + OVERHEAD
    broker = mqtt_broker_factory(
        sys_interval=0,
        max_inflight_messages=2,
        max_queued_messages=20,
        max_queued_bytes=10 * big_cost,
    )
    n = 200
    big = stuck_subscriber(broker.port, "big", big_topic, 1)
    small = stuck_subscriber(broker.port, "small", small_topic, 1)
    healthy = CountingClient(broker.port, "healthy1")
    healthy.subscribe("ovf/#", 1)
    pub = CountingClient(broker.port, "pub1")
    try:
        pub.send(flood(big_topic, n, 1000, 1) + flood(small_topic, n, 4, 1))
        assert pub.wait(lambda: pub.pubacks >= 2 * n, 30), f"{pub.pubacks} PUBACKs"
        assert healthy.wait(lambda: sum(healthy.published.values()) >= 2 * n, 30)
        assert broker.stats()["messages_dropped"] == (n - 12) + (n - 22)
        wait_until(lambda: _lines(caplog, "big") and _lines(caplog, "small"))
        assert len(_lines(caplog, "big")) == 1 and "max_queued_bytes" in _lines(caplog, "big")[0]
        assert len(_lines(caplog, "small")) == 1
        assert "max_queued_messages" in _lines(caplog, "small")[0]
        # The same sessions read again: the kept messages arrive in order, then the next
        # new one (nothing else was queued).
        _reads_again(pub, big, big_topic, 12)
        _reads_again(pub, small, small_topic, 22)
    finally:
        for s in (big, small):
            s.close()
        healthy.close()
        pub.close()


def _reads_again(pub: CountingClient, sock: socket.socket, topic: str, kept: int) -> None:
    again = CountingClient.adopt(sock)
    assert again.wait(lambda: again.published.get(topic, 0) >= kept, 20)
    pub.send(publish_packet(topic, b"\xff\xff\xff\xffnext", qos=1, pkid=7, v5=False))
    assert again.wait(lambda: again.published.get(topic, 0) >= kept + 1, 20)
    got = [int.from_bytes(p[:4], "big") for p in again.payloads[topic]]
    assert got == [*range(kept), 0xFFFFFFFF], got


@pytest.mark.timeout(60)
async def test_a_burst_to_a_slow_subscriber_arrives_whole(mqtt_broker_factory):
    """An asyncio publisher and subscriber in one event loop, 20,000 QoS 0 messages of
    64 bytes in a burst, default broker limits: all 20,000 arrive (as with aiomqtt on
    mosquitto 2.0.11). Before, the subscriber's 1000-message queue overflowed and about
    19,000 were dropped."""
    broker = mqtt_broker_factory(sys_interval=0)
    topic = f"burst/{uuid.uuid4().hex[:8]}"
    n = 20_000
    payload = b"p" * 64
    sub = amqtt.Client("127.0.0.1", broker.port)
    pub = amqtt.Client("127.0.0.1", broker.port)
    async with sub, pub:  # noqa: SIM117 - the subscription needs the connected client
        async with sub.subscription(topic, qos=0) as stream:
            for _ in range(n):
                await pub.publish(topic, payload, qos=0)
            # Same publisher, same subscriber: the end marker comes after all of them.
            await pub.publish(topic, b"end", qos=1)
            count = 0
            while True:
                m = await asyncio.wait_for(stream.get(), 20)
                if m.payload == b"end":
                    break
                count += 1
            assert count == n
            assert broker.stats()["messages_dropped"] == 0
