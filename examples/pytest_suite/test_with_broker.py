"""The embedded broker in a pytest suite: turbomqtt's fixtures, sync and async tests.

    python -m pytest examples/pytest_suite

``mqtt_broker`` (a fresh broker per test), ``mqtt_broker_session`` (one for the session)
and ``mqtt_broker_factory`` (brokers with options) come with turbomqtt: no conftest.py
needed. The async tests need an async test plugin: pytest-asyncio here
(``pip install pytest-asyncio``); anyio's plugin works too (``@pytest.mark.anyio``).
"""

from __future__ import annotations

import asyncio
import threading

import pytest
import turbomqtt.asyncio as amqtt
import turbomqtt.client as mqtt


def connected_client(broker, **kwargs) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def test_retained_message_reaches_a_late_subscriber(mqtt_broker):
    publisher = connected_client(mqtt_broker)
    publisher.publish("config/mode", "eco", qos=1, retain=True).wait_for_publish(5)
    publisher.disconnect()
    publisher.loop_stop()

    got = []
    arrived = threading.Event()
    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    subscriber.on_message = lambda c, u, m: (got.append((m.topic, m.payload, m.retain)),
                                             arrived.set())
    subscriber.connect(mqtt_broker.host, mqtt_broker.port)
    subscriber.subscribe("config/#", qos=1)
    subscriber.loop_start()
    try:
        assert arrived.wait(5)
        assert got == [("config/mode", b"eco", True)]
    finally:
        subscriber.disconnect()
        subscriber.loop_stop()


def test_broker_counts_connected_clients(mqtt_broker_session):
    before = mqtt_broker_session.stats()["clients_connected"]
    client = connected_client(mqtt_broker_session, client_id="counted")
    try:
        client.publish("ping", b"", qos=1).wait_for_publish(5)
        ids = [c["client_id"] for c in mqtt_broker_session.clients()]
        assert "counted" in ids
        assert mqtt_broker_session.stats()["clients_connected"] == before + 1
    finally:
        client.disconnect()
        client.loop_stop()


def test_wrong_password_is_refused(mqtt_broker_factory):
    broker = mqtt_broker_factory(users={"svc": "right"}, allow_anonymous=False)
    result = []
    answered = threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties):
        result.append(reason_code)
        answered.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set("svc", "wrong")
    client.on_connect = on_connect
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert answered.wait(5)
        assert result[0] == "Bad user name or password"
    finally:
        client.loop_stop()


@pytest.mark.asyncio
async def test_async_subscription_gets_messages_in_order(mqtt_broker):
    async with amqtt.Client(mqtt_broker.host, mqtt_broker.port) as client, \
            client.subscription("orders/+", qos=1) as orders:
        for n in range(3):
            await client.publish(f"orders/{n}", str(n), qos=1)
        received = [await asyncio.wait_for(orders.get(), 5) for _ in range(3)]
    assert [m.payload for m in received] == [b"0", b"1", b"2"]


@pytest.mark.asyncio
async def test_async_publish_to_a_topic_the_acl_denies(mqtt_broker_factory, tmp_path):
    acl = tmp_path / "acl"
    acl.write_text("user reader\ntopic read sensors/#\n")
    broker = mqtt_broker_factory(users={"reader": "pw"}, acl_file=str(acl))
    async with amqtt.Client(broker.host, broker.port, username="reader", password="pw") as c:
        with pytest.raises(amqtt.PublishError) as refused:
            await c.publish("sensors/1", "forged", qos=1)
    assert refused.value.reason_code == 0x87  # not authorized
