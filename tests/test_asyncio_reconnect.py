"""reconnect=True across broker restarts (no QoS 1/2 loss, resubscribe, connection
events) and the final disconnect when reconnect is off."""

# ruff: noqa: F811 - pytest fixtures imported from _asyncio_support shadow their names
from __future__ import annotations

import asyncio
import uuid

import pytest
import turbomqtt.asyncio as mqtt
from _asyncio_support import any_broker, mosquitto_factory  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(60)

FAST = {"reconnect": True, "reconnect_delay": 0.05, "reconnect_max_delay": 0.3}


async def restart(broker) -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, broker.stop)
    await loop.run_in_executor(None, broker.start)


async def next_event(events, kind: str) -> mqtt.ConnectionEvent:
    while True:
        ev = await asyncio.wait_for(events.__anext__(), 20)
        if ev.kind == kind:
            return ev


@pytest.mark.parametrize("qos", [1, 2])
async def test_broker_restart_with_reconnect_loses_no_qos1_or_qos2_message(mosquitto_factory, qos):
    broker = mosquitto_factory(persistence=True)
    topic = f"restart/{uuid.uuid4().hex[:8]}"
    session = {"clean_start": False, "properties": {"session_expiry_interval": 600}}
    n = 3000
    sub = mqtt.Client("127.0.0.1", broker.port, identifier=f"s-{topic}", **session, **FAST)
    pub = mqtt.Client("127.0.0.1", broker.port, identifier=f"p-{topic}", **session, **FAST)
    stream = sub.messages()  # before connecting: a resumed session delivers at once
    pub_events = pub.connection_events()
    async with sub, pub:
        await sub.subscribe(topic, qos)
        received: set[int] = set()
        halfway = asyncio.Event()

        async def consume():
            async for m in stream:
                received.add(int(m.payload))
                if len(received) >= 100:
                    halfway.set()
                if len(received) == n:
                    return

        async def produce():
            for start in range(0, n, 20):
                await asyncio.gather(
                    *(pub.publish(topic, str(i), qos=qos) for i in range(start, start + 20))
                )

        consumer = asyncio.create_task(consume())
        producer = asyncio.create_task(produce())
        await asyncio.wait_for(halfway.wait(), 20)
        assert not producer.done(), "the restart happens while messages are in flight"
        await restart(broker)
        ev = await next_event(pub_events, "disconnected")
        assert ev.will_reconnect
        await asyncio.wait_for(producer, 30)
        await asyncio.wait_for(consumer, 30)
        assert received == set(range(n))


async def test_reconnect_resubscribes_and_reports_events(any_broker):
    topic = f"resub/{uuid.uuid4().hex[:8]}"
    async with mqtt.Client("127.0.0.1", any_broker.port, **FAST) as c:
        events = c.connection_events()
        async with c.subscription(topic, qos=1) as sub:
            await restart_and_wait(any_broker, events)
            assert c.is_connected
            # A clean session after the restart: only the resubscription brings this in.
            async with mqtt.Client("127.0.0.1", any_broker.port) as other:
                await other.publish(topic, "after", qos=1)
            m = await asyncio.wait_for(sub.get(), 10)
            assert m.payload == b"after"


async def restart_and_wait(broker, events) -> None:
    await restart(broker)
    lost = await next_event(events, "disconnected")
    # mosquitto just closes (7: lost); turbomqtt's broker says v5 0x8B, server shutting down.
    assert lost.will_reconnect and lost.reason_code in (7, 0x8B)
    back = await next_event(events, "connected")
    assert back.session_present is False


async def test_qos1_publish_while_disconnected_completes_after_reconnect(any_broker):
    topic = f"queued/{uuid.uuid4().hex[:8]}"
    async with mqtt.Client("127.0.0.1", any_broker.port, **FAST) as c:
        events = c.connection_events()
        await asyncio.get_running_loop().run_in_executor(None, any_broker.stop)
        await next_event(events, "disconnected")
        assert not c.is_connected
        with pytest.raises(mqtt.NotConnectedError):
            await c.publish(topic, "qos0 is not kept", qos=0)
        pending = asyncio.create_task(c.publish(topic, "kept", qos=1))
        sub_pending = asyncio.create_task(c.subscribe(f"{topic}/x", 1))
        await asyncio.get_running_loop().run_in_executor(None, any_broker.start)
        await asyncio.wait_for(c.connected(), 20)
        assert await asyncio.wait_for(pending, 10) == 0x10  # no subscribers
        assert await asyncio.wait_for(sub_pending, 10) == [1]


async def test_final_disconnect_without_reconnect_raises(any_broker):
    topic = f"final/{uuid.uuid4().hex[:8]}"
    c = mqtt.Client("127.0.0.1", any_broker.port)
    async with c, c.subscription(topic, qos=1) as sub:
        waiting = asyncio.create_task(sub.get())
        await asyncio.sleep(0)  # let it start waiting
        await asyncio.get_running_loop().run_in_executor(None, any_broker.stop)
        with pytest.raises(mqtt.ConnectionLostError) as e:
            await asyncio.wait_for(waiting, 10)
        assert e.value.reason_code in (7, 0x8B)
        with pytest.raises(mqtt.ConnectionLostError):
            await sub.__anext__()
        with pytest.raises(mqtt.ConnectionLostError):
            await c.publish(topic, "x", qos=1)
        with pytest.raises(mqtt.ConnectionLostError):
            await c.connected()
        assert not c.is_connected


async def test_clean_exit_ends_streams_and_operations(any_broker):
    c = mqtt.Client("127.0.0.1", any_broker.port)
    async with c:
        stream = c.messages()
        waiting = asyncio.create_task(stream.__anext__())
        await asyncio.sleep(0)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)
    with pytest.raises(mqtt.NotConnectedError):
        await c.subscribe("a")
    # The same client object can connect again.
    async with c:
        assert await c.subscribe("a", 1) == [1]
