"""Retained messages on subscribe: all of them, in topic order, without stalling the
broker, through the subscriber's ordinary flow control.

mosquitto 2.0.11 on the same probes, with its defaults: at QoS 0 all 10,000 retained
messages of `ret/#` arrive, at QoS 1 only 1,020 (20 in flight plus its
`max_queued_messages` of 1,000; the rest are dropped); they come in the order of its
retain tree (per level, the order the topics were first retained), not sorted; a
SUBSCRIBE of 1,000 or 3,000 filters over 100,000 retained messages is answered within
tens of milliseconds (`benches/retained_scan.py` and `benches/RESULTS.md`).
"""

from __future__ import annotations

import random

import pytest
from broker_support import RawPeer, packet, subscribe_packet, wait_until

from hostile._retained_support import (
    level_order,
    receive_publishes,
    retain_many,
    subscribe_many,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def broker(mqtt_broker_factory):
    return mqtt_broker_factory(sys_interval=0)


@pytest.mark.parametrize("qos", [0, 1])
def test_every_retained_message_is_delivered(broker, qos):
    """10,000 retained topics and a subscriber to `ret/#`: it used to get 1,000 (the
    session queue bound), the rest dropped without a log line or a count."""
    n = 10_000
    topics = [f"ret/{i // 100}/{i % 100}" for i in range(n)]
    retain_many(broker, broker.port, topics, qos=qos)
    p = RawPeer(broker.port)
    p.connect(client_id=f"all-retained-{qos}")
    p.send(subscribe_packet("ret/#", qos))
    assert p.expect(9)[-1] == qos
    got = receive_publishes(p, n)
    assert [t for t, *_ in got] == level_order(topics)
    assert all(retain and payload == b"r" and q == qos for _, payload, q, _, retain in got)
    assert broker.stats()["messages_dropped"] == 0
    # Nothing else was sent after them: the next packet is the ping's answer.
    p.send(packet(0xC0, b""))
    assert p.expect(13) == b""
    p.close()


def test_retained_messages_come_in_topic_order(broker):
    """Sorted level by level (a parent before its children), not in hash order."""
    topics = ["t/b", "t/a/z", "t/a", "t/c/1", "t/a/b", "t", "t/A", "t/a b", "t//x", "u/1"]
    shuffled = topics[:]
    random.Random(7).shuffle(shuffled)
    retain_many(broker, broker.port, shuffled)
    p = RawPeer(broker.port)
    p.connect(client_id="ordered")
    p.send(subscribe_packet("t/#", 0))
    p.expect(9)
    got = [t for t, *_ in receive_publishes(p, 9)]
    assert got == ["t", "t//x", "t/A", "t/a", "t/a/b", "t/a/z", "t/a b", "t/b", "t/c/1"]
    assert got == level_order(topics[:-1])
    p.send(subscribe_packet("t/+", 0, pkid=2))
    p.expect(9)
    got = [t for t, *_ in receive_publishes(p, 4)]
    assert got == ["t/A", "t/a", "t/a b", "t/b"]
    p.close()


def test_wildcard_rules_for_retained_messages(broker):
    """`$` topics are not matched by a leading wildcard (MQTT 5 §4.7.2), `#` matches the
    parent level (§4.7.1.2), and a shared subscription gets no retained messages
    (§4.8.2)."""
    retain_many(broker, broker.port, ["$app/x", "sport", "sport/tennis", "x/sport"])
    p = RawPeer(broker.port)
    p.connect(client_id="rules")

    def retained_for(flt: str, count: int, pkid: int) -> list[str]:
        p.send(subscribe_packet(flt, 0, pkid=pkid))
        p.expect(9)
        got = [t for t, *_ in receive_publishes(p, count)]
        # A ping answered next shows nothing more was sent for this filter.
        p.send(packet(0xC0, b""))
        assert p.expect(13) == b""
        return got

    assert retained_for("#", 3, 1) == ["sport", "sport/tennis", "x/sport"]
    assert retained_for("+/x", 0, 2) == []
    assert retained_for("$app/#", 1, 3) == ["$app/x"]
    assert retained_for("sport/#", 2, 4) == ["sport", "sport/tennis"]
    assert retained_for("+/sport", 1, 5) == ["x/sport"]
    assert retained_for("$share/g/#", 0, 6) == []
    p.close()


def test_a_subscribe_of_many_filters_over_many_retained_is_answered(broker):
    """One SUBSCRIBE with 5,000 filters while 100,000 retained messages exist: it used to
    scan the whole store under the router lock once per filter (6.8 s for 1,000 filters),
    so the SUBACK came after tens of seconds. With a retained tree each literal filter
    is one lookup: the SUBACK, another client's ping and the 5,000 retained messages
    all come well within the test's waits (timings in `benches/retained_scan.py`)."""
    n = 100_000
    retain_many(broker, broker.port, [f"ret/{i}" for i in range(n)])
    bystander = RawPeer(broker.port)
    bystander.connect(client_id="bystander")
    p = RawPeer(broker.port)
    p.connect(client_id="many-filters")
    filters = [f"ret/{i * 20}" for i in range(5_000)]
    p.send(subscribe_many(filters))
    bystander.send(packet(0xC0, b""))
    assert bystander.expect(13, timeout=10) == b""
    suback = p.expect(9, timeout=10)
    assert suback[-5_000:] == bytes(5_000)
    got = receive_publishes(p, 5_000, timeout=10)
    assert [t for t, *_ in got] == filters
    wait_until(lambda: broker.stats()["retained_messages"] == n)
    p.close()
    bystander.close()
