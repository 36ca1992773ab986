"""Publishing without a round trip to the connection task: a QoS 0 publish completes once
queued, publish_nowait() returns at once, the outgoing queue is bounded (QueueFullError
or waiting for room), and streams hand out queued messages without suspending."""

# ruff: noqa: F811 - pytest fixtures imported from _asyncio_support shadow their names
from __future__ import annotations

import asyncio
import socket
import threading
import uuid

import pytest
import turbomqtt.asyncio as mqtt
from _asyncio_support import any_broker  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(30)

FAST = {"reconnect": True, "reconnect_delay": 0.05, "reconnect_max_delay": 0.2}


def run_without_suspending(coro):
    """The value of a coroutine that must finish on its first step."""
    with pytest.raises(StopIteration) as done:
        coro.send(None)
    return done.value.value


async def test_qos0_publish_completes_without_suspending(any_broker):
    topic = f"nowait/{uuid.uuid4().hex[:8]}"
    async with mqtt.Client("127.0.0.1", any_broker.port) as c, c.subscription(topic) as sub:
        assert run_without_suspending(c.publish(topic, "at once", qos=0)) == 0
        assert (await asyncio.wait_for(sub.get(), 5)).payload == b"at once"


async def test_publish_nowait_returns_handles_with_the_publish_outcome(any_broker):
    topic = f"nowait/{uuid.uuid4().hex[:8]}"
    async with (
        mqtt.Client("127.0.0.1", any_broker.port, protocol=4) as c,
        c.subscription(topic, qos=2) as sub,
    ):
        handles = [c.publish_nowait(topic, str(qos), qos=qos) for qos in (0, 1, 2)]
        assert [h.qos for h in handles] == [0, 1, 2]
        assert len({h.mid for h in handles}) == 3
        assert handles[0].done() and handles[0].result() == 0
        assert [await asyncio.wait_for(h, 5) for h in handles] == [0, 0, 0]
        assert all(h.done() for h in handles)
        got = sorted([(await asyncio.wait_for(sub.get(), 5)).payload for _ in range(3)])
        assert got == [b"0", b"1", b"2"]


async def test_publish_nowait_validates_like_publish(any_broker):
    async with mqtt.Client("127.0.0.1", any_broker.port) as c:
        with pytest.raises(ValueError):
            c.publish_nowait("a/+", "x")
        with pytest.raises(ValueError):
            c.publish_nowait("a", "x", qos=3)
        with pytest.raises(TypeError):
            c.publish_nowait("a", [1])
    with pytest.raises(mqtt.NotConnectedError):
        c.publish_nowait("a", "x")


class SilentBroker:
    """Accepts one MQTT 3.1.1 connection, answers its CONNECT, then reads nothing more
    (with a small receive buffer), so the client's writes back up."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(10)
            head = conn.recv(2)  # CONNECT: type byte and a one-byte remaining length
            left = head[1]
            while left:
                left -= len(conn.recv(left))
            conn.sendall(b"\x20\x02\x00\x00")
            self.release.wait(30)

    def close(self) -> None:
        self.release.set()
        self.thread.join(10)
        self.listener.close()


async def test_publish_nowait_raises_when_the_outgoing_queue_is_full():
    broker = SilentBroker()
    try:
        async with mqtt.Client(
            "127.0.0.1", broker.port, protocol=4, max_queued_outgoing_messages=3
        ) as c:
            # Far more than the socket buffers take: none of these is written out.
            big = b"x" * (4 << 20)
            handles = [c.publish_nowait("big", big) for _ in range(3)]
            assert all(h.done() for h in handles)
            with pytest.raises(mqtt.QueueFullError) as full:
                c.publish_nowait("big", b"one too many")
            assert isinstance(full.value, asyncio.QueueFull)
            assert full.value.reason_code == 15
            broker.close()
            events = c.connection_events()
            while (await asyncio.wait_for(events.__anext__(), 10)).kind != "disconnected":
                pass
    finally:
        broker.close()


async def test_publish_waits_for_room_in_the_outgoing_queue(any_broker):
    topic = f"full/{uuid.uuid4().hex[:8]}"
    limit = 5
    async with (
        mqtt.Client("127.0.0.1", any_broker.port, max_queued_outgoing_messages=limit) as c,
        c.subscription(topic) as sub,
    ):
        for i in range(limit):
            c.publish_nowait(topic, str(i))
        # Counted full until the completions are taken in: publish() waits for room
        # (rather than raising), then goes out after the others.
        for i in range(limit, 3 * limit):
            assert await asyncio.wait_for(c.publish(topic, str(i)), 5) == 0
        got = [(await asyncio.wait_for(sub.get(), 5)).payload for _ in range(3 * limit)]
        assert got == [str(i).encode() for i in range(3 * limit)]


async def test_many_qos0_completions_do_not_stop_the_client_reading(any_broker):
    """Completions of QoS 0 publishes are queued without waking the loop; a client that
    published many and then only waits for a message must still receive it."""
    topic = f"quiet/{uuid.uuid4().hex[:8]}"
    async with (
        mqtt.Client("127.0.0.1", any_broker.port, event_limit=64) as c,
        c.subscription(topic) as sub,
    ):
        for i in range(500):
            c.publish_nowait(f"{topic}/elsewhere", str(i))
        await c.publish(topic, "arrives")
        assert (await asyncio.wait_for(sub.get(), 10)).payload == b"arrives"


async def test_full_qos1_queue_while_disconnected(any_broker):
    """QoS 1 messages kept for the reconnect count against the bound too: beyond it
    publish_nowait() raises, and what was accepted is delivered after the reconnect."""
    topic = f"full1/{uuid.uuid4().hex[:8]}"
    limit = 3
    async with mqtt.Client(
        "127.0.0.1", any_broker.port, max_queued_outgoing_messages=limit, **FAST
    ) as c:
        events = c.connection_events()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, any_broker.stop)
        while (await asyncio.wait_for(events.__anext__(), 10)).kind != "disconnected":
            pass
        handles = [c.publish_nowait(topic, str(i), qos=1) for i in range(limit)]
        with pytest.raises(mqtt.QueueFullError):
            c.publish_nowait(topic, "refused", qos=1)
        assert not any(h.done() for h in handles)
        await loop.run_in_executor(None, any_broker.start)
        await asyncio.wait_for(c.connected(), 20)
        # No subscriber: v5 "no matching subscribers" (0x10) or 0.
        codes = [await asyncio.wait_for(h, 10) for h in handles]
        assert all(code in (0, 0x10) for code in codes)


async def test_stream_returns_queued_messages_without_suspending(any_broker):
    topic = f"drain/{uuid.uuid4().hex[:8]}"
    async with (
        mqtt.Client("127.0.0.1", any_broker.port) as pub,
        mqtt.Client("127.0.0.1", any_broker.port) as c,
        c.subscription(topic) as sub,
    ):
        for i in range(3):
            pub.publish_nowait(topic, str(i))
        # Block this thread (not the broker or the clients' Rust tasks) until messages
        # are in the subscriber's core: no turn of the event loop has taken them in, so
        # the stream drains the core itself. How many arrive before the wait returns is
        # up to the network: while this thread blocks, the socket may be left to the
        # event loop's reader, so the rest can stay in the kernel until the loop runs.
        while c._core.pending() == 0:
            assert c._core.wait(5), "the messages did not arrive"
        queued = c._core.pending()
        assert 1 <= queued <= 3
        got = [run_without_suspending(sub.__anext__()).payload for _ in range(queued)]
        for _ in range(3 - queued):
            got.append((await asyncio.wait_for(sub.__anext__(), 10)).payload)
        assert got == [b"0", b"1", b"2"]
