"""The paho facade's faces keep what arrives before the program is ready for it, as paho
does: messages wait in the core until the loop dispatches them, so an ``on_message`` set
after ``subscribe()`` (before the loop runs) gets them all, and ``subscribe.simple`` gets
retained messages of every QoS."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import turbomqtt.client as mqtt
from turbomqtt import publish, subscribe

pytestmark = pytest.mark.timeout(30)

V2 = mqtt.CallbackAPIVersion.VERSION2
WAIT = 10.0


def wait_pending(c: mqtt.Client, n: int) -> None:
    deadline = time.monotonic() + WAIT
    while c._core.pending() < n:
        assert time.monotonic() < deadline, c._core.pending()
        c._core.wait(0.05)
        time.sleep(0.01)


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_on_message_set_after_subscribe_gets_what_arrived_before(mqtt_broker, qos):
    prefix = f"paho-early/{uuid.uuid4().hex[:8]}"
    publish.single(f"{prefix}/r", "retained", qos=qos, retain=True,
                   hostname=mqtt_broker.host, port=mqtt_broker.port)
    c = mqtt.Client(V2)
    c.connect(mqtt_broker.host, mqtt_broker.port)
    c.subscribe(f"{prefix}/#", qos)
    # No loop runs yet: CONNACK, SUBACK and the retained message wait in the core.
    wait_pending(c, 3)
    publish.single(f"{prefix}/live", "live", qos=qos,
                   hostname=mqtt_broker.host, port=mqtt_broker.port)
    wait_pending(c, 4)
    got: list[bytes] = []
    done = threading.Event()

    def on_message(client, userdata, message):
        got.append(message.payload)
        if len(got) == 2:
            done.set()

    c.on_message = on_message
    c.loop_start()
    try:
        assert done.wait(WAIT), got
        assert sorted(got) == [b"live", b"retained"]
    finally:
        c.disconnect()
        c.loop_stop()


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_subscribe_simple_gets_retained_messages_of_each_qos(mqtt_broker, qos):
    topic = f"paho-simple/{uuid.uuid4().hex[:8]}"
    publish.single(topic, f"r{qos}", qos=qos, retain=True,
                   hostname=mqtt_broker.host, port=mqtt_broker.port)
    m = subscribe.simple(topic, qos=qos, hostname=mqtt_broker.host, port=mqtt_broker.port)
    assert (m.topic, m.payload, m.qos, m.retain) == (topic, f"r{qos}".encode(), qos, True)
