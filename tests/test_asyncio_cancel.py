"""Cancellation leaves the client consistent: a cancelled publish only drops its waiter,
a cancelled iteration loses no message, a cancelled connect or subscribe leaks nothing."""

# ruff: noqa: F811 - pytest fixtures imported from _asyncio_support shadow their names
from __future__ import annotations

import asyncio
import socket
import uuid

import pytest
import turbomqtt.asyncio as mqtt
from _asyncio_support import any_broker  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("qos", [1, 2])
async def test_cancelled_publish_still_goes_out_and_client_stays_usable(any_broker, qos):
    topic = f"cancel/{uuid.uuid4().hex[:8]}"
    async with mqtt.Client("127.0.0.1", any_broker.port) as c, c.subscription(topic, 2) as sub:
        task = asyncio.create_task(c.publish(topic, "cancelled", qos=qos))
        await asyncio.sleep(0)  # the publish is handed to the core, its ack not yet read
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Acknowledgements arrive in order, so once this one is done the cancelled
        # one's was read too and its bookkeeping is gone.
        assert await c.publish(topic, "after", qos=qos) in (0, 0x10)
        assert c.pending_operations() == 0
        got = [(await asyncio.wait_for(sub.get(), 5)).payload for _ in range(2)]
        assert got == [b"cancelled", b"after"]


async def test_cancelled_iteration_loses_no_message(any_broker):
    topic = f"cancel-iter/{uuid.uuid4().hex[:8]}"
    async with (
        mqtt.Client("127.0.0.1", any_broker.port, queue_size=8) as c,
        c.subscription(topic, 1) as sub,
    ):
        got: list[bytes] = []
        first = asyncio.Event()

        async def consume():
            async for m in sub:
                got.append(m.payload)
                first.set()

        task = asyncio.create_task(consume())
        await c.publish(topic, "0", qos=1)
        await asyncio.wait_for(first.wait(), 5)
        task.cancel()  # while it waits for the next message
        with pytest.raises(asyncio.CancelledError):
            await task
        # get() cancelled by a timeout, too.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(sub.get(), 0.01)
        # Every later QoS 1 message reaches the next consumer of the same stream; more
        # than the window and the queue size, so acknowledgements must still flow.
        await asyncio.gather(*(c.publish(topic, str(i), qos=1) for i in range(1, 101)))
        async for m in sub:
            got.append(m.payload)
            if len(got) == 101:
                break
        assert got == [str(i).encode() for i in range(101)]


async def test_cancelled_subscription_entry_leaves_no_stream(any_broker):
    topic = f"cancel-sub/{uuid.uuid4().hex[:8]}"
    async with mqtt.Client("127.0.0.1", any_broker.port) as c:
        entered = asyncio.Event()

        async def enter():
            async with c.subscription(topic, 1):
                entered.set()
                await asyncio.Event().wait()

        task = asyncio.create_task(enter())
        await asyncio.sleep(0)  # SUBSCRIBE sent, SUBACK not yet read
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not entered.is_set()
        assert len(c._streams) == 0 and topic not in c._subscription_refs
        # Consistent afterwards: the same filter can be used again.
        async with c.subscription(topic, 1) as sub:
            await c.publish(topic, "x", qos=1)
            assert (await asyncio.wait_for(sub.get(), 5)).payload == b"x"


async def test_cancelled_connect_leaves_nothing_behind(any_broker):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    silent.setblocking(False)
    accepted = None
    try:
        c = mqtt.Client("127.0.0.1", silent.getsockname()[1])
        task = asyncio.create_task(c.connect())
        # Connected at TCP level; the CONNACK never comes.
        accepted, _ = await asyncio.wait_for(asyncio.get_running_loop().sock_accept(silent), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert c._core is None and not c.is_connected
    finally:
        if accepted is not None:
            accepted.close()
        silent.close()
    # The same object connects to a real broker afterwards.
    c.port = any_broker.port
    c._connect_kwargs["port"] = any_broker.port
    async with c:
        assert await c.publish("x", "y", qos=1) in (0, 0x10)


async def test_cancelled_exit_still_ends_the_client(any_broker):
    c = mqtt.Client("127.0.0.1", any_broker.port)
    inside = asyncio.Event()

    async def use():
        async with c:
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(use())
    await asyncio.wait_for(inside.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert c._core is None and not c.is_connected
    with pytest.raises(mqtt.NotConnectedError):
        await c.publish("a", "b")
