"""Backpressure without loss: a slow consumer holds acknowledgements back, memory stays
bounded by the queue sizes, and every QoS 1 message arrives once consumed."""

# ruff: noqa: F811, SIM117 - pytest fixtures imported from _asyncio_support shadow their names
from __future__ import annotations

import asyncio
import os
import uuid

import pytest
import turbomqtt.asyncio as mqtt
from _asyncio_support import any_broker  # noqa: F401 - fixture

N = int(os.environ.get("TURBOMQTT_SLOW_CONSUMER_N", "100000"))


async def publish_all(client: mqtt.Client, topic: str, n: int, qos: int) -> None:
    chunk = 2000
    for start in range(0, n, chunk):
        await asyncio.gather(
            *(
                client.publish(topic, i.to_bytes(4, "big"), qos=qos)
                for i in range(start, min(n, start + chunk))
            )
        )


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("protocol", "n"), [(5, N), (4, N // 5)])
async def test_slow_consumer_gets_every_qos1_message_with_bounded_memory(any_broker, protocol, n):
    N = n
    topic = f"flow/{uuid.uuid4().hex[:8]}"
    queue_size = 100
    sub = mqtt.Client("127.0.0.1", any_broker.port, protocol=protocol, queue_size=queue_size)
    async with sub, mqtt.Client("127.0.0.1", any_broker.port) as pub:
        async with sub.subscription(topic, qos=1) as stream:
            # The consumer is asleep while everything is published and acknowledged
            # by the broker: the broker holds the backlog, not us.
            await publish_all(pub, topic, N, 1)
            # Round trips through the broker to be sure it had every chance to push.
            for _ in range(3):
                await pub.publish(f"{topic}/ping", b"", qos=1)
            assert stream.qsize() <= queue_size
            assert sub._core.pending() <= sub._event_limit + 1024
            got = bytearray(N)
            count = 0
            async for m in stream:
                got[int.from_bytes(m.payload, "big")] = 1
                count += 1
                if count == N:
                    break
            assert sum(got) == N, "every message arrived"
            assert stream.qsize() == 0


@pytest.mark.timeout(60)
async def test_qos0_flood_pauses_reading_instead_of_growing(any_broker):
    topic = f"flood/{uuid.uuid4().hex[:8]}"
    n = 20000
    queue_size = 50
    sub = mqtt.Client("127.0.0.1", any_broker.port, queue_size=queue_size, event_limit=64)
    async with sub, mqtt.Client("127.0.0.1", any_broker.port) as pub:
        async with sub.subscription(topic, qos=0) as stream:
            await publish_all(pub, topic, n, 0)
            for _ in range(3):
                await pub.publish(f"{topic}/ping", b"", qos=1)
            # Bounded: the stream's size, plus what the core had already read when it
            # paused: its event limit, plus one socket read (at most ~72 KiB, in PUBLISH
            # packets of 22 bytes here) by each of the two readers that may find room
            # at the same moment, the connection task and the event loop's direct read
            # (each checks for room before its read, not during it). The rest waits in
            # TCP buffers and in the broker. Without the pause all 20000 would be here.
            bound = queue_size + 64 + 2 * ((72 * 1024) // 22)
            assert stream.qsize() <= bound
            assert sub._core.pending() <= bound
            seen = 0
            last = -1
            async for m in stream:
                i = int.from_bytes(m.payload, "big")
                assert i > last, "in order"
                last = i
                seen += 1
                if i == n - 1:
                    break
            # QoS 0 over one TCP connection from a broker with unlimited queues: nothing
            # is dropped by the client.
            assert seen == n


@pytest.mark.timeout(60)
async def test_publishing_while_own_qos1_streams_are_full_does_not_deadlock(any_broker):
    """Full QoS 1 streams hold acknowledgements back but keep reading, so the PUBACKs
    of our own publishes still arrive."""
    topic = f"two/{uuid.uuid4().hex[:8]}"
    async with mqtt.Client("127.0.0.1", any_broker.port, queue_size=10) as c:
        async with (
            c.subscription(f"{topic}/a", qos=1) as a,
            c.subscription(f"{topic}/b", qos=1) as b,
        ):
            await asyncio.gather(*(c.publish(f"{topic}/a", str(i), qos=1) for i in range(100)))
            await asyncio.gather(*(c.publish(f"{topic}/b", str(i), qos=1) for i in range(100)))
            got_a = [int((await asyncio.wait_for(a.get(), 5)).payload) for _ in range(100)]
            got_b = [int((await asyncio.wait_for(b.get(), 5)).payload) for _ in range(100)]
            assert got_a == list(range(100)) and got_b == list(range(100))
