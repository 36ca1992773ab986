"""Limits a v5 server sets in CONNACK for what the client sends, against the embedded
broker.

Maximum Packet Size (MQTT 5 §3.2.2.3.6, [MQTT-3.2.2-15]: the client MUST NOT send a larger
packet). paho-mqtt 2.2 ignores it (the server then disconnects with 0x95); turbomqtt does
not send such a packet: publish() gives rc MQTT_ERR_PAYLOAD_SIZE (paho's own code for a
too large message), subscribe()/unsubscribe() give (MQTT_ERR_PAYLOAD_SIZE, None), and a
message queued before the limit was known is dropped after CONNACK with on_publish
reason code 0x80. The connection stays up.

Topic Alias Maximum (§3.2.2.3.8): the client never picks aliases itself; an alias the
application sets is sent as given, as paho-mqtt does, and a server that allows fewer
aliases ends the connection with 0x94 (Topic Alias invalid).
"""

from __future__ import annotations

import threading
import uuid

import pytest
import turbomqtt.client as mqtt
from turbomqtt import Broker
from turbomqtt.packettypes import PacketTypes
from turbomqtt.properties import Properties

pytestmark = pytest.mark.timeout(30)
V2 = mqtt.CallbackAPIVersion.VERSION2
WAIT = 10.0


class Peer:
    def __init__(self, port: int, start: bool = True):
        self.port = port
        self.cond = threading.Condition()
        self.calls: list[tuple] = []
        self.c = mqtt.Client(V2, client_id=f"lim-{uuid.uuid4().hex[:8]}",
                             protocol=mqtt.MQTTv5)
        for name in ("on_connect", "on_message", "on_publish", "on_subscribe",
                     "on_disconnect"):
            setattr(self.c, name, self._hook(name))
        if start:
            self.start()

    def _hook(self, name):
        def callback(*args):
            with self.cond:
                self.calls.append((name, args))
                self.cond.notify_all()
        return callback

    def start(self) -> None:
        self.c.connect("127.0.0.1", self.port)
        self.c.loop_start()
        self.wait("on_connect")

    def of(self, name):
        return [a for n, a in self.calls if n == name]

    def wait(self, name, pred=lambda a: True):
        with self.cond:
            assert self.cond.wait_for(lambda: any(pred(a) for a in self.of(name)), WAIT), \
                f"no {name}: {self.calls}"
            return next(a for a in self.of(name) if pred(a))

    def topics(self):
        return [a[2].topic for a in self.of("on_message")]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def small_broker():
    with Broker(port=0, max_packet_size=256) as b:
        yield b


def test_nothing_above_the_servers_maximum_packet_size_is_sent(small_broker):
    sub = Peer(small_broker.port)
    pub = Peer(small_broker.port)
    try:
        assert pub.of("on_connect")[0][4].MaximumPacketSize == 256
        sub.c.subscribe("lim/#", 1)
        sub.wait("on_subscribe")
        for qos in (0, 1):
            info = pub.c.publish("lim/big", b"x" * 300, qos)
            assert info.rc == mqtt.MQTT_ERR_PAYLOAD_SIZE
            with pytest.raises(RuntimeError):
                info.wait_for_publish(1)
        assert pub.c.subscribe("lim/" + "f" * 300, 1) == (mqtt.MQTT_ERR_PAYLOAD_SIZE, None)
        assert pub.c.unsubscribe("lim/" + "f" * 300) == (mqtt.MQTT_ERR_PAYLOAD_SIZE, None)
        # Still connected (the broker saw nothing too large) and smaller messages flow.
        pub.c.publish("lim/small", b"y" * 200, 1).wait_for_publish(WAIT)
        assert pub.c.is_connected()
        sub.wait("on_message", lambda a: a[2].topic == "lim/small")
        assert "lim/big" not in sub.topics()
        assert pub.of("on_disconnect") == []
    finally:
        sub.close()
        pub.close()


def test_message_queued_before_the_limit_was_known_is_dropped_as_failed(small_broker):
    sub = Peer(small_broker.port)
    pub = Peer(small_broker.port, start=False)
    try:
        sub.c.subscribe("lim/#", 1)
        sub.wait("on_subscribe")
        # Not connected: QoS 1 messages are kept and sent after the next CONNACK.
        big = pub.c.publish("lim/big", b"x" * 300, 1)
        small = pub.c.publish("lim/small", b"y", 1)
        assert big.rc == small.rc == mqtt.MQTT_ERR_NO_CONN
        pub.start()
        reason = pub.wait("on_publish", lambda a: a[2] == big.mid)[3]
        assert reason.is_failure and reason.value == 0x80
        pub.wait("on_publish", lambda a: a[2] == small.mid and not a[3].is_failure)
        sub.wait("on_message", lambda a: a[2].topic == "lim/small")
        assert "lim/big" not in sub.topics()
        assert pub.c.is_connected()
    finally:
        sub.close()
        pub.close()


def _alias(n: int) -> Properties:
    p = Properties(PacketTypes.PUBLISH)
    p.TopicAlias = n
    return p


def test_application_topic_aliases_are_sent_as_given():
    with Broker(port=0, topic_alias_maximum=2) as broker:
        sub = Peer(broker.port)
        pub = Peer(broker.port)
        try:
            assert pub.of("on_connect")[0][4].TopicAliasMaximum == 2
            sub.c.subscribe("alias/#", 1)
            sub.wait("on_subscribe")
            pub.c.publish("alias/a", b"1", 1, properties=_alias(2)).wait_for_publish(WAIT)
            pub.c.publish("", b"2", 1, properties=_alias(2)).wait_for_publish(WAIT)
            sub.wait("on_message", lambda a: a[2].payload == b"2")
            assert sub.topics() == ["alias/a", "alias/a"]
            # Above the server's maximum: sent anyway (paho-mqtt does not check either);
            # the server ends the connection with Topic Alias invalid.
            pub.c.publish("alias/b", b"3", 1, properties=_alias(3))
            (_, _, _, reason, _) = pub.wait("on_disconnect")
            assert reason.value == 0x94
        finally:
            sub.close()
            pub.close()
