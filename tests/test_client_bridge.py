"""enable_bridge_mode(), as paho-mqtt 2.2 does it: the CONNECT protocol level carries
mosquitto's bridge bit 0x80 (every version). mosquitto treats a 3.1/3.1.1 bridge's
subscriptions as no-local and retain-as-published, and so does the embedded broker
(tests/test_broker_bridge*.py); a v5 level with the bit is served as plain v5."""

from __future__ import annotations

import socket
import threading
import uuid

import pytest
import turbomqtt.client as mqtt
from turbomqtt import Broker

pytestmark = pytest.mark.timeout(30)
V2 = mqtt.CallbackAPIVersion.VERSION2
WAIT = 10.0


class Peer:
    """A turbomqtt.client.Client on a loop_start() thread, recording what it receives."""

    def __init__(self, port: int, protocol: int = mqtt.MQTTv311, bridge: bool = False):
        self.messages: list[mqtt.MQTTMessage] = []
        self.cond = threading.Condition()
        self.c = mqtt.Client(V2, client_id=f"br-{uuid.uuid4().hex[:8]}", protocol=protocol)
        if bridge:
            self.c.enable_bridge_mode()
        connected = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p: connected.set() if rc == 0 else None
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert connected.wait(WAIT)

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.messages.append(msg)
            self.cond.notify_all()

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.c.on_subscribe = lambda *a: done.set()
        self.c.subscribe(topic, 1)
        assert done.wait(WAIT)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.c.publish(topic, payload, 1, retain).wait_for_publish(WAIT)

    def wait_topic(self, topic: str) -> mqtt.MQTTMessage:
        with self.cond:
            assert self.cond.wait_for(lambda: any(m.topic == topic for m in self.messages),
                                      WAIT), f"no message on {topic}"
            return next(m for m in self.messages if m.topic == topic)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.mark.parametrize("protocol,level", [
    (mqtt.MQTTv31, 0x83), (mqtt.MQTTv311, 0x84), (mqtt.MQTTv5, 0x85),
])
def test_bridge_mode_sets_bit_0x80_of_the_protocol_level(protocol, level):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(10)
    with server:
        c = mqtt.Client(V2, client_id="bridge", protocol=protocol)
        c.enable_bridge_mode()
        c.connect("127.0.0.1", server.getsockname()[1])
        conn, _ = server.accept()
        with conn:
            conn.settimeout(10)
            head = b""
            while len(head) < 12:
                chunk = conn.recv(12 - len(head))
                assert chunk
                head += chunk
            c.disconnect()
    name_len = int.from_bytes(head[2:4], "big")
    assert head[4 + name_len] == level


def test_plain_client_keeps_the_bare_protocol_level():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(10)
    with server:
        c = mqtt.Client(V2, client_id="plain")
        c.connect("127.0.0.1", server.getsockname()[1])
        conn, _ = server.accept()
        with conn:
            conn.settimeout(10)
            head = b""
            while len(head) < 9:
                chunk = conn.recv(9 - len(head))
                assert chunk
                head += chunk
            c.disconnect()
    assert head[8] == 4


def test_mosquitto_treats_a_v311_bridge_as_no_local_and_retain_as_published(mosquitto):
    _, port = mosquitto
    bridge = Peer(port, bridge=True)
    plain = Peer(port)
    other = Peer(port)
    try:
        bridge.subscribe("br/#")
        plain.subscribe("br/#")
        # The bridge's own message is not sent back to it (a plain client's would be).
        bridge.publish("br/own", b"1")
        plain.publish("br/plain", b"2")
        other.publish("br/done", b"3")
        bridge.wait_topic("br/done")
        plain.wait_topic("br/done")
        assert "br/own" not in [m.topic for m in bridge.messages]
        assert plain.wait_topic("br/plain").payload == b"2"
        # A live retained message keeps its retain flag for the bridge only.
        other.publish("br/kept", b"4", retain=True)
        assert bridge.wait_topic("br/kept").retain is True
        assert plain.wait_topic("br/kept").retain is False
    finally:
        other.publish("br/kept", b"", retain=True)
        for p in (bridge, plain, other):
            p.close()


@pytest.mark.parametrize("protocol", [mqtt.MQTTv31, mqtt.MQTTv311, mqtt.MQTTv5])
def test_embedded_broker_accepts_a_bridge_connect(protocol):
    with Broker(port=0) as broker:
        bridge = Peer(broker.port, protocol=protocol, bridge=True)
        other = Peer(broker.port)
        try:
            bridge.subscribe("e/#")
            other.publish("e/x", b"hello")
            assert bridge.wait_topic("e/x").payload == b"hello"
        finally:
            bridge.close()
            other.close()
