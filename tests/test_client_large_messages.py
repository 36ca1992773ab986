"""Large messages through the paho-compatible client: the core reads large frames into
read buffers it reuses once nothing refers to them any more. Whatever the reuse, every
payload a user keeps must stay exactly what was sent, and messages must arrive complete,
once and in order, whether the loop thread or the core's connection task read them."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
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
    def __init__(self, port: int, topic: str, qos: int, n: int, slow_every: int = 0,
                 transport: str = "tcp", host: str = "127.0.0.1") -> None:
        self.n = n
        self.slow_every = slow_every
        self.messages: list[mqtt.MQTTMessage] = []
        self.done = threading.Event()
        self.subscribed = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:8]}",
                        transport=transport)
        c.on_connect = lambda cl, ud, fl, rc, pr: cl.subscribe(topic, qos=qos)
        c.on_subscribe = lambda *a: self.subscribed.set()
        c.on_message = self.on_message
        c.connect(host, port)
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


def run_stream(port: int, qos: int, n: int = 240, slow_every: int = 0,
               transport: str = "tcp", host: str = "127.0.0.1") -> None:
    topic = f"large/{uuid.uuid4().hex[:8]}"
    sub = Subscriber(port, topic, qos, n, slow_every, transport, host)
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


@pytest.fixture(scope="module")
def mosquitto_unix():
    """mosquitto with a unix-socket listener: the core reads that transport in its
    connection task only (no direct reads), through the same buffers. (mosquitto
    2.0.11's WebSocket listener itself stalls on a stream of 400 KB messages, paho-mqtt
    as subscriber too, so WebSockets are tested on the embedded broker.)"""
    from conftest import MOSQUITTO_BIN, _free_port, need_mosquitto

    need_mosquitto()
    d = tempfile.mkdtemp(prefix="tmqtt-large-")
    os.chmod(d, 0o777)  # mosquitto may drop to its own user and must create the socket here
    tcp_port = _free_port()
    unix_path = os.path.join(d, "mqtt.sock")
    conf = os.path.join(d, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write(f"per_listener_settings false\nallow_anonymous true\n"
                f"listener {tcp_port} 127.0.0.1\nlistener 0 {unix_path}\n")
    proc = subprocess.Popen([MOSQUITTO_BIN, "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", tcp_port), timeout=0.2).close()
            if os.path.exists(unix_path):
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("mosquitto did not start")
        time.sleep(0.02)  # polling a port: there is no event to wait on
    yield unix_path
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(d, ignore_errors=True)


def stream_over(transport: str, host: str, port: int) -> None:
    topic = f"large/{uuid.uuid4().hex[:8]}"
    n = 120
    sub = Subscriber(port, topic, 1, n, transport=transport, host=host)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}",
                      transport=transport)
    try:
        assert sub.subscribed.wait(10), "not subscribed"
        pub.connect(host, port)
        pub.loop_start()
        infos = [pub.publish(topic, payload_for(i), qos=1) for i in range(n)]
        infos[-1].wait_for_publish(30)
        assert sub.done.wait(60), f"{len(sub.messages)} of {n} messages arrived"
        for i, m in enumerate(sub.messages):
            assert m.payload == payload_for(i), f"message {i}: {len(m.payload)} bytes, differs"
    finally:
        pub.disconnect()
        pub.loop_stop()
        sub.close()


def test_large_payloads_kept_by_the_user_arrive_intact_over_a_unix_socket(mosquitto_unix):
    stream_over("unix", mosquitto_unix, 1)


def test_large_payloads_kept_by_the_user_arrive_intact_over_websockets():
    with Broker(listeners=[{"port": 0, "transport": "websocket"}]) as broker:
        stream_over("websockets", "127.0.0.1", broker.port)
