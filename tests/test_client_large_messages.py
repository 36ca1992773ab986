"""Large messages through the paho-compatible client: the core reads large frames into
read buffers it reuses once nothing refers to them any more. Whatever the reuse, every
payload a user keeps must stay exactly what was sent, and messages must arrive complete,
once and in order, whether the loop thread or the core's connection task read them."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid

import pytest
import turbomqtt.client as mqtt
from turbomqtt import Broker

pytestmark = pytest.mark.timeout(90)


def payload_for(i: int) -> bytes:
    """Message i: a size between 16 KiB and ~400 KiB (some small ones between), and
    content that differs from every other message's."""
    size = (0, 100, 16_384, 65_536, 65_537, 130_000, 400_000, 70_000)[i % 8] + i
    seed = hashlib.sha256(i.to_bytes(4, "big")).digest()
    return (seed * (size // len(seed) + 1))[:size]


class Subscriber:
    def __init__(self, port: int, topic: str, qos: int, n: int, slow_every: int = 0) -> None:
        self.n = n
        self.slow_every = slow_every
        self.messages: list[mqtt.MQTTMessage] = []
        self.done = threading.Event()
        self.subscribed = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:8]}")
        c.on_connect = lambda cl, ud, fl, rc, pr: cl.subscribe(topic, qos=qos)
        c.on_subscribe = lambda *a: self.subscribed.set()
        c.on_message = self.on_message
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.client = c

    def on_message(self, client, userdata, msg) -> None:
        # The message objects (and their payloads) are kept alive until the end.
        self.messages.append(msg)
        if self.slow_every and len(self.messages) % self.slow_every == 0:
            # A busy callback now and then: the connection task reads meanwhile, the
            # loop thread reads when it waits again.
            time.sleep(0.005)
        if len(self.messages) >= self.n:
            self.done.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run_stream(port: int, qos: int, n: int = 240, slow_every: int = 0) -> None:
    topic = f"large/{uuid.uuid4().hex[:8]}"
    sub = Subscriber(port, topic, qos, n, slow_every)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    try:
        assert sub.subscribed.wait(10), "not subscribed"
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        infos = [pub.publish(topic, payload_for(i), qos=qos) for i in range(n)]
        infos[-1].wait_for_publish(30)
        assert sub.done.wait(60), f"{len(sub.messages)} of {n} messages arrived"
        got = [m.payload for m in sub.messages]
        assert len(got) == n
        for i, p in enumerate(got):
            assert p == payload_for(i), f"message {i}: {len(p)} bytes, differs"
        assert all(m.topic == topic and m.qos == qos for m in sub.messages)
    finally:
        pub.disconnect()
        pub.loop_stop()
        sub.close()


@pytest.mark.parametrize("qos", [0, 1])
def test_large_payloads_kept_by_the_user_arrive_intact_and_in_order_via_mosquitto(mosquitto, qos):
    # mosquitto without limits queues every message for a slow subscriber.
    run_stream(mosquitto[1], qos)


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_large_payloads_arrive_intact_with_a_callback_busy_now_and_then(qos):
    with Broker(port=0) as broker:
        run_stream(broker.port, qos, slow_every=7)
