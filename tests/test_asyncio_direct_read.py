"""The loop reads the connection's socket itself (plain TCP on selector loops): messages
stay complete and ordered while reading switches between the loop and the core's task
(a full stream pauses reading, a drained one resumes it), on the default loop and on
uvloop, and no descriptor outlives a client."""

# ruff: noqa: F811, SIM117 - pytest fixtures imported from _asyncio_support shadow their names
from __future__ import annotations

import asyncio
import os
import uuid

import pytest
import turbomqtt.asyncio as mqtt
from _asyncio_support import any_broker, mosquitto_factory  # noqa: F401 - fixtures

pytestmark = pytest.mark.timeout(60)


async def ordered_through_pauses(port: int, qos: int, n: int = 3000) -> None:
    topic = f"direct/{uuid.uuid4().hex[:8]}"
    # A tiny stream: reading pauses and resumes (the loop stops and starts watching
    # the socket) many times during the run.
    sub = mqtt.Client("127.0.0.1", port, queue_size=8)
    async with sub, mqtt.Client("127.0.0.1", port) as pub:
        async with sub.subscription(topic, qos=qos) as stream:

            async def produce() -> None:
                for start in range(0, n, 250):
                    await asyncio.gather(*(pub.publish(topic, i.to_bytes(4, "big"), qos=qos)
                                           for i in range(start, min(n, start + 250))))

            producer = asyncio.ensure_future(produce())
            got = []
            while len(got) < n:
                m = await asyncio.wait_for(stream.get(), 20)
                got.append(int.from_bytes(m.payload, "big"))
                if len(got) % 50 == 0:
                    await asyncio.sleep(0.001)  # a consumer that is busy now and then
            await producer
            assert got == list(range(n))


@pytest.mark.parametrize("qos", [0, 1])
async def test_messages_stay_ordered_while_reading_pauses_and_resumes(any_broker, qos):
    await ordered_through_pauses(any_broker.port, qos)


def test_messages_stay_ordered_on_uvloop(any_broker):
    uvloop = pytest.importorskip("uvloop")
    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(ordered_through_pauses(any_broker.port, 1, 1000))
    finally:
        loop.close()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
async def test_no_descriptor_outlives_a_client(any_broker):
    topic = f"direct/{uuid.uuid4().hex[:8]}"
    # One client first: the runtime and the loop's own descriptors exist from then on.
    async with mqtt.Client("127.0.0.1", any_broker.port):
        pass
    before = open_fds()
    for _ in range(3):
        async with mqtt.Client("127.0.0.1", any_broker.port) as c:
            async with c.subscription(topic) as stream:
                await c.publish(topic, b"x")
                await asyncio.wait_for(stream.get(), 10)
    assert open_fds() == before


async def test_a_broker_restart_is_survived_while_the_loop_reads_the_socket(mosquitto_factory):
    m = mosquitto_factory()
    topic = f"direct/{uuid.uuid4().hex[:8]}"
    async with mqtt.Client("127.0.0.1", m.port, reconnect=True, reconnect_delay=0.05) as c:
        events = c.connection_events()
        async with c.subscription(topic, qos=1) as stream:
            await c.publish(topic, b"before", qos=1)
            assert (await asyncio.wait_for(stream.get(), 10)).payload == b"before"
            m.stop()
            while (await asyncio.wait_for(events.__anext__(), 10)).kind != "disconnected":
                pass
            m.start()
            await asyncio.wait_for(c.connected(), 20)
            await c.publish(topic, b"after", qos=1)
            assert (await asyncio.wait_for(stream.get(), 10)).payload == b"after"
