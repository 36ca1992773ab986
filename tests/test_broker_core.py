"""The embedded broker's MQTT behaviour, driven by the real paho-mqtt 2.2.0 client."""

from __future__ import annotations

import queue
import time

import pytest
from broker_support import (
    V5,
    V311,
    Peer,
    connect_props,
    offline,
    publish_props,
    wait_until,
)
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions


@pytest.fixture
def broker(mqtt_broker_factory):
    return mqtt_broker_factory(sys_interval=0)


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize(
    ("pub_version", "sub_version"), [(V311, V311), (V5, V5), (V311, V5), (V5, V311)]
)
def test_publish_subscribe_each_qos_and_version(peers, qos, pub_version, sub_version):
    sub = peers("sub", sub_version)
    assert sub.subscribe("a/b", qos) == [qos]
    pub = peers("pub", pub_version)
    pub.publish("a/b", b"payload-%d" % qos, qos)
    m = sub.get()
    assert (m.topic, m.payload, m.qos, m.retain) == ("a/b", b"payload-%d" % qos, qos, False)


def test_qos_downgraded_to_subscription_maximum(peers):
    sub = peers("sub")
    sub.subscribe("t", 1)
    peers("pub").publish("t", b"x", 2)
    assert sub.get().qos == 1
    sub.subscribe("t", 0)
    peers("pub2", V311).publish("t", b"y", 2)
    assert sub.get().qos == 0


def test_retained_set_replace_clear(peers, broker):
    pub = peers("pub")
    pub.publish("r/t", b"one", 1, retain=True)
    pub.publish("r/t", b"two", 1, retain=True)
    first = peers("s1", V311)
    first.subscribe("r/#", 1)
    m = first.get()
    assert (m.topic, m.payload, m.retain) == ("r/t", b"two", True)
    # A live message to an existing subscriber carries no retain flag (§3.3.1.3).
    pub.publish("r/t", b"three", 1, retain=True)
    live = first.get()
    assert (live.payload, live.retain) == (b"three", False)
    # An empty retained payload clears the topic.
    pub.publish("r/t", b"", 1, retain=True)
    assert first.get().payload == b""
    assert broker.stats()["retained_messages"] == 0
    late = peers("s2")
    late.subscribe("r/t", 1)
    pub.publish("r/t", b"live", 1)
    m = late.get()
    assert (m.payload, m.retain) == (b"live", False), "nothing retained before the live one"


def test_wildcards_and_dollar_topics(peers, broker):
    sub = peers("sub")
    sub.subscribe([("#", 0), ("+/x/+", 0)])
    dollar = peers("dollar")
    dollar.subscribe("$SYS/#", 0)
    broker.publish("$SYS/custom", b"d")
    broker.publish("a/x/b", b"w")
    m = sub.get()
    assert (m.topic, m.payload) == ("a/x/b", b"w"), "# and + never match a $ topic"
    assert dollar.get().topic == "$SYS/custom"
    sub.get_none()


def test_overlapping_subscriptions_v5_deliver_once_with_every_identifier(peers):
    sub = peers("sub")
    p1 = Properties(PacketTypes.SUBSCRIBE)
    p1.SubscriptionIdentifier = 1
    sub.subscribe("o/#", 1, properties=p1)
    p2 = Properties(PacketTypes.SUBSCRIBE)
    p2.SubscriptionIdentifier = 2
    sub.subscribe("o/+", 2, properties=p2)
    peers("pub").publish("o/x", b"m", 2)
    m = sub.get()
    assert m.qos == 2
    assert sorted(m.properties.SubscriptionIdentifier) == [1, 2]
    sub.get_none()


def test_will_published_on_unclean_disconnect_not_on_disconnect(peers, broker):
    watcher = peers("watcher")
    watcher.subscribe("will/#", 1)
    normal = Peer(broker.port, "normal", V311)
    normal.connect(will=("will/normal", b"bye", 1, False))
    normal.disconnect()
    dying = Peer(broker.port, "dying", V311)
    dying.connect(will=("will/dying", b"gone", 1, False))
    dying.kill()
    m = watcher.get()
    assert (m.topic, m.payload) == ("will/dying", b"gone")
    watcher.get_none()


def test_v5_disconnect_with_will_message(peers, broker):
    watcher = peers("watcher")
    watcher.subscribe("will/#", 0)
    p = Peer(broker.port, "w5", V5)
    p.connect(will=("will/w5", b"w", 0, False))
    p.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
    assert watcher.get().topic == "will/w5"


def test_v5_will_delay(peers, broker):
    watcher = peers("watcher")
    watcher.subscribe("will/#", 0)
    wp = Properties(PacketTypes.WILLMESSAGE)
    wp.WillDelayInterval = 1
    p = Peer(broker.port, "delayed", V5)
    p.connect(
        will=("will/delayed", b"late", 0, False),
        will_properties=wp,
        properties=connect_props(SessionExpiryInterval=30),
    )
    p.kill()
    assert watcher.get(timeout=5).payload == b"late"


@pytest.mark.parametrize("version", [V311, V5])
def test_persistent_session_queues_while_offline(peers, broker, version):
    props = connect_props(SessionExpiryInterval=300) if version == V5 else None
    sub = peers("persist", version, clean=False, properties=props)
    assert not sub.session_present
    sub.subscribe("q/#", 1)
    sub.disconnect()
    offline(broker, "persist")
    pub = peers("pub")
    # QoS 0 first: the PUBACKs that follow prove the broker routed it while offline.
    pub.publish("q/t", b"qos0-dropped-offline", 0)
    for i in range(3):
        pub.publish("q/t", b"m%d" % i, 1)
    again = Peer(broker.port, "persist", version)
    again.connect(
        clean=False, properties=connect_props(SessionExpiryInterval=300) if version == V5 else None
    )
    assert again.session_present
    got = [again.get().payload for _ in range(3)]
    assert got == [b"m0", b"m1", b"m2"]
    again.get_none()
    # The subscription survived too.
    pub.publish("q/t", b"after", 1)
    assert again.get().payload == b"after"
    again.disconnect()


@pytest.mark.parametrize("version", [V311, V5])
def test_clean_session_discards(peers, broker, version):
    props = connect_props(SessionExpiryInterval=300) if version == V5 else None
    sub = peers("c", version, clean=False, properties=props)
    sub.subscribe("q/#", 1)
    sub.disconnect()
    offline(broker, "c")
    again = peers("c", version, clean=True)
    assert not again.session_present
    peers("pub").publish("q/t", b"x", 1)
    again.get_none()


def test_offline_queue_is_bounded_and_logged(mqtt_broker_factory, caplog):
    broker = mqtt_broker_factory(sys_interval=0, max_queued_messages=5)
    sub = Peer(broker.port, "slow", V311).connect(clean=False)
    sub.subscribe("b/#", 1)
    sub.disconnect()
    offline(broker, "slow")
    pub = Peer(broker.port, "pub", V311).connect()
    with caplog.at_level("WARNING", logger="turbomqtt.broker"):
        for i in range(10):
            pub.publish("b/t", b"%d" % i, 1)
        again = Peer(broker.port, "slow", V311).connect(clean=False)
        got = [again.get().payload for _ in range(5)]
        assert got == [b"0", b"1", b"2", b"3", b"4"]
        again.get_none()
        assert broker.stats()["messages_dropped"] == 5
        wait_until(lambda: any("queue full" in r.getMessage() for r in caplog.records))
    full = [r for r in caplog.records if "queue full" in r.getMessage()]
    assert len(full) == 1 and "slow" in full[0].getMessage()
    again.disconnect()
    pub.disconnect()


def test_takeover_v5_gets_session_taken_over(peers, broker):
    first = peers("same")
    second = Peer(broker.port, "same", V5).connect()
    assert first.disconnected.wait(5)
    assert first.disconnect_reason.value == 0x8E
    assert [c["client_id"] for c in broker.clients()] == ["same"]
    second.disconnect()


def test_assigned_client_identifier(peers, broker):
    p5 = peers("", V5)
    assigned = p5.connack[2].AssignedClientIdentifier
    assert assigned
    assert assigned in [c["client_id"] for c in broker.clients()]
    p3 = peers("", V311, clean=True)
    assert p3.reason_code == 0


def test_username_password(mqtt_broker_factory):
    broker = mqtt_broker_factory(sys_interval=0, users={"alice": "s3cret"}, allow_anonymous=False)
    ok = Peer(broker.port, "a", V311).connect(username="alice", password="s3cret")
    bad3 = Peer(broker.port, "b", V311).connect(
        username="alice", password="nope", expect_success=False
    )
    # paho reports 3.x return codes as their v5 equivalents (4 -> 0x86, 5 -> 0x87);
    # the raw bytes are checked in test_broker_malformed.py.
    assert bad3.reason_code == 0x86
    anon3 = Peer(broker.port, "c", V311).connect(expect_success=False)
    assert anon3.reason_code == 0x87
    bad5 = Peer(broker.port, "d", V5).connect(
        username="alice", password="nope", expect_success=False
    )
    assert bad5.reason_code == 0x86
    anon5 = Peer(broker.port, "e", V5).connect(expect_success=False)
    assert anon5.reason_code == 0x87
    for p in (bad3, anon3, bad5, anon5):
        p.client.disconnect()
        p.client.loop_stop()
    ok.disconnect()


def test_seed_scenario_qos2_with_credentials_and_keepalive_62(mqtt_broker_factory):
    """The seed's shape: username/password, QoS 2 JSON, keepalive 62, loop_start()."""
    broker = mqtt_broker_factory(users={"user": "pass"}, allow_anonymous=False)
    sub = Peer(broker.port, "printer", V311).connect(keepalive=62, username="user", password="pass")
    sub.subscribe("orders/new", 2)
    pub = Peer(broker.port, "sanic", V311).connect(keepalive=62, username="user", password="pass")
    for i in range(20):
        pub.publish("orders/new", b'{"id": %d}' % i, 2)
    got = [sub.get().payload for _ in range(20)]
    assert got == [b'{"id": %d}' % i for i in range(20)]
    sub.get_none()
    pub.disconnect()
    sub.disconnect()


def test_v5_properties_passed_through(peers):
    sub = peers("sub")
    sub.subscribe("p/t", 1)
    props = publish_props(
        PayloadFormatIndicator=1,
        ContentType="application/json",
        ResponseTopic="p/reply",
        CorrelationData=b"\x01\x02",
        UserProperty=[("k", "v"), ("k", "w")],
        MessageExpiryInterval=60,
    )
    peers("pub").publish("p/t", b"{}", 1, properties=props)
    m = sub.get()
    p = m.properties
    assert p.PayloadFormatIndicator == 1
    assert p.ContentType == "application/json"
    assert p.ResponseTopic == "p/reply"
    assert p.CorrelationData == b"\x01\x02"
    assert p.UserProperty == [("k", "v"), ("k", "w")]
    assert 0 < p.MessageExpiryInterval <= 60


def test_no_local_and_retain_as_published(peers, broker):
    me = peers("me")
    me.subscribe("n/t", options=SubscribeOptions(qos=1, noLocal=True, retainAsPublished=True))
    me.publish("n/t", b"mine", 1)
    other = peers("other")
    other.publish("n/t", b"theirs", 1, retain=True)
    m = me.get()
    assert (m.payload, m.retain) == (b"theirs", True)
    me.get_none()


@pytest.mark.parametrize(("handling", "first", "again"), [(0, 1, 1), (1, 1, 0), (2, 0, 0)])
def test_retain_handling(peers, broker, handling, first, again):
    broker.publish("rh/t", b"kept", 0, retain=True)
    sub = peers("rh")
    opts = SubscribeOptions(qos=0, retainHandling=handling)
    sub.subscribe("rh/t", options=opts)
    sub.subscribe("rh/t", options=opts)
    sub.subscribe("marker", 0)
    broker.publish("marker", b"end")
    seen = []
    while True:
        m = sub.get()
        if m.topic == "marker":
            break
        seen.append(m.payload)
    assert len(seen) == first + again


def test_shared_subscription_delivers_each_message_to_one_member(peers):
    a = peers("a")
    b = peers("b")
    a.subscribe("$share/g/jobs/+", 1)
    b.subscribe("$share/g/jobs/+", 1)
    pub = peers("pub")
    for i in range(6):
        pub.publish("jobs/x", b"%d" % i, 1)
    got = []
    deadline = time.monotonic() + 5
    while len(got) < 6 and time.monotonic() < deadline:
        for p in (a, b):
            try:
                got.append(p.messages.get(timeout=0.05).payload)
            except queue.Empty:
                pass
    a.get_none(0.2)
    b.get_none(0.1)
    assert sorted(got) == sorted(b"%d" % i for i in range(6))


def test_topic_alias_from_client(peers):
    sub = peers("sub")
    sub.subscribe("alias/t", 0)
    pub = peers("pub")
    pub.publish("alias/t", b"1", 1, properties=publish_props(TopicAlias=3))
    pub.publish("", b"2", 1, properties=publish_props(TopicAlias=3))
    assert [sub.get().payload, sub.get().payload] == [b"1", b"2"]


def test_request_response_information(peers):
    p = peers("rr", properties=connect_props(RequestResponseInformation=1))
    assert p.connack[2].ResponseInformation


def test_unsubscribe_stops_delivery(peers):
    sub = peers("sub")
    sub.subscribe("u/t", 0)
    codes = sub.unsubscribe("u/t")
    assert [c.value for c in codes] == [0]
    codes = sub.unsubscribe("u/none")
    assert [c.value for c in codes] == [0x11]
    peers("pub").publish("u/t", b"x", 1)
    sub.get_none()
