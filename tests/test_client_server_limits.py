"""Limits a v5 server sets in CONNACK for what the client sends, against the embedded
broker.

Maximum Packet Size (MQTT 5 §3.2.2.3.6, [MQTT-3.2.2-15]: the client MUST NOT send a larger
packet). The core enforces it by default: publish() gives rc 9 (MQTT_ERR_PAYLOAD_SIZE),
subscribe()/unsubscribe() (9, 0), and a message queued before the limit was known is
dropped after CONNACK with EV_PUBLISHED code 0x80; the connection stays up. paho-mqtt 2.2
ignores the limit (its own test_maximum_packet_size expects the server's DISCONNECT 0x95),
so the paho facade turns enforcement off and behaves the same way.

Topic Alias Maximum (§3.2.2.3.8): the client never picks aliases itself; an alias the
application sets is sent as given, as paho-mqtt does, and a server that allows fewer
aliases ends the connection with 0x94 (Topic Alias invalid).
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import turbomqtt.client as mqtt
from turbomqtt import Broker, _core
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


class Core:
    """A ClientCore (the default, enforcing configuration) and its drained events."""

    def __init__(self, port: int, connect: bool = True):
        self.port = port
        self.core = _core.ClientCore()
        self.events: list[tuple] = []
        if connect:
            self.connect()

    def connect(self) -> None:
        self.core.connect(host="127.0.0.1", port=self.port, keepalive=60,
                          client_id=f"core-{uuid.uuid4().hex[:8]}", protocol=5,
                          clean_start=True)
        self.until(lambda e: e[0] == _core.EV_CONNACK)

    def until(self, pred):
        deadline = time.monotonic() + WAIT
        while not any(pred(e) for e in self.events):
            left = deadline - time.monotonic()
            assert left > 0, f"not seen; events: {self.events}"
            if self.core.wait(min(left, 0.5)):
                self.events.extend(self.core.drain())
        return next(e for e in self.events if pred(e))


def test_core_sends_nothing_above_the_servers_maximum_packet_size(small_broker):
    sub = Peer(small_broker.port)
    try:
        sub.c.subscribe("lim/#", 1)
        sub.wait("on_subscribe")
        # Queued while not connected, before the limit is known.
        c = Core(small_broker.port, connect=False)
        rc, queued = c.core.publish("lim/queued", b"x" * 300, 1, False, None)
        assert rc == 4
        c.connect()
        assert c.until(lambda e: e[0] == _core.EV_PUBLISHED and e[1] == queued)[2] == 0x80
        for qos in (0, 1):
            rc, mid = c.core.publish("lim/big", b"x" * 300, qos, False, None)
            assert rc == 9 and mid != 0
        assert c.core.subscribe([("lim/" + "f" * 300, 1)]) == (9, 0)
        assert c.core.unsubscribe(["lim/" + "f" * 300]) == (9, 0)
        # Still connected (the broker saw nothing too large) and smaller messages flow.
        rc, mid = c.core.publish("lim/small", b"y" * 200, 1, False, None)
        assert rc == 0
        assert c.until(lambda e: e[0] == _core.EV_PUBLISHED and e[1] == mid)[2] == 0
        sub.wait("on_message", lambda a: a[2].topic == "lim/small")
        assert c.core.is_connected()
        assert not [e for e in c.events if e[0] == _core.EV_DISCONNECTED]
        assert sub.topics() == ["lim/small"]
        c.core.disconnect()
    finally:
        sub.close()


def test_paho_facade_sends_it_anyway_and_the_server_disconnects(small_broker):
    pub = Peer(small_broker.port)
    try:
        assert pub.of("on_connect")[0][4].MaximumPacketSize == 256
        assert pub.c.publish("lim/big", b"x" * 300, 0).rc == mqtt.MQTT_ERR_SUCCESS
        reason = pub.wait("on_disconnect")[3]
        assert reason.getName() == "Packet too large"
    finally:
        pub.c.loop_stop()


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
