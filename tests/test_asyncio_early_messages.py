"""Messages that arrive before any stream can take them: the aiomqtt-style program
(``subscribe()`` first, ``messages()`` after) gets every one of them, unacknowledged until
it reads them, bounded and flow-controlled like a stream, also across a reconnect."""

from __future__ import annotations

import asyncio
import collections
import socket
import struct
import uuid

import pytest
import turbomqtt.asyncio as mqtt

pytestmark = pytest.mark.timeout(60)

FAST = {"reconnect": True, "reconnect_delay": 0.05, "reconnect_max_delay": 0.3}


@pytest.fixture
def prefix() -> str:
    return f"early/{uuid.uuid4().hex[:10]}"


def client(broker, **kw) -> mqtt.Client:
    return mqtt.Client("127.0.0.1", broker.port, **kw)


async def take(stream: mqtt.MessageStream, n: int, timeout: float = 10) -> list[mqtt.Message]:
    return [await asyncio.wait_for(stream.get(), timeout) for _ in range(n)]


async def barrier(c: mqtt.Client, prefix: str) -> None:
    """A QoS 1 round trip of `c` through the broker: what the broker sent `c` before
    acknowledging it has been handed to the client by the time this returns."""
    await c.publish(f"{prefix}-barrier", b"", qos=1)


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("gap", ["none", "awaited"])
async def test_retained_messages_reach_messages_opened_after_subscribe(
    mqtt_broker, prefix, qos, gap
):
    async with client(mqtt_broker) as pub:
        for i in range(3):
            await pub.publish(f"{prefix}/r/{i}", f"retained {i}", qos=qos, retain=True)
    async with client(mqtt_broker) as late:
        await late.subscribe(f"{prefix}/r/#", qos=qos)
        if gap == "awaited":
            # Other work between subscribe() and messages(): the retained messages are
            # certainly in by the time the stream opens.
            await barrier(late, prefix)
        got = await take(late.messages(), 3)
    assert sorted((str(m.topic), m.payload, m.qos, m.retain) for m in got) == [
        (f"{prefix}/r/{i}", f"retained {i}".encode(), qos, True) for i in range(3)
    ]


@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_live_messages_right_after_suback_are_never_lost(mqtt_broker, prefix, qos):
    per_round = 4
    async with client(mqtt_broker) as pub:
        for i in range(200):
            topic = f"{prefix}/live/{i}"
            async with client(mqtt_broker) as late:
                await late.subscribe(topic, qos=qos)
                # Published and acknowledged by the broker right after SUBACK, while no
                # stream is open yet.
                await asyncio.gather(
                    *(pub.publish(topic, f"{i}.{k}", qos=qos) for k in range(per_round))
                )
                if i % 2:
                    await barrier(late, prefix)
                got = await take(late.messages(), per_round)
                assert sorted(m.payload for m in got) == [
                    f"{i}.{k}".encode() for k in range(per_round)
                ], f"round {i}"


async def test_manual_ack_messages_wait_unacknowledged_for_the_stream(mqtt_broker, prefix):
    ident = f"manual-{uuid.uuid4().hex[:8]}"
    session = {
        "identifier": ident,
        "clean_start": False,
        "properties": {"session_expiry_interval": 600},
        "manual_ack": True,
    }
    async with client(mqtt_broker) as pub:
        await pub.publish(f"{prefix}/m/r", "retained", qos=1, retain=True)
        async with client(mqtt_broker, **session) as late:
            await late.subscribe(f"{prefix}/m/#", qos=1)
            await pub.publish(f"{prefix}/m/live", "live", qos=1)
            await barrier(late, prefix)
            got = await take(late.messages(), 2)
            assert sorted(m.payload for m in got) == [b"live", b"retained"]
            # Only the first is acknowledged.
            next(m for m in got if m.payload == b"live").ack()
        # The broker sends the unacknowledged one again, and only that one.
        again = client(mqtt_broker, **session)
        stream = again.messages()
        async with again:
            m = await asyncio.wait_for(stream.get(), 10)
            assert (m.payload, m.dup) == (b"retained", True)
            m.ack()
            await barrier(again, prefix)
            assert stream.qsize() == 0


def takeover(port: int, client_id: str) -> None:
    """Connects with `client_id` (MQTT 5, clean start 0, session expiry 600 s) and closes
    the socket right after CONNACK, acknowledging nothing: the broker closes the other
    connection with that id and keeps the session."""
    cid = client_id.encode()
    props = b"\x11" + struct.pack("!I", 600)
    body = (
        b"\x00\x04MQTT\x05\x00\x00\x3c"
        + bytes([len(props)])
        + props
        + struct.pack("!H", len(cid))
        + cid
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(bytes([0x10, len(body)]) + body)
        first = s.recv(1)
        assert first == b"\x20", first


@pytest.mark.parametrize("qos", [1, 2])
async def test_messages_resent_after_a_reconnect_wait_for_the_stream(mqtt_broker, prefix, qos):
    ident = f"resume-{uuid.uuid4().hex[:8]}"
    n = 20
    sub = client(
        mqtt_broker,
        identifier=ident,
        clean_start=False,
        properties={"session_expiry_interval": 600},
        # The broker's window for us (v5 receive maximum) is n: if any of these messages
        # stayed unacknowledged after it was read, the second batch could not all come.
        queue_size=n,
        **FAST,
    )
    events = sub.connection_events()
    async with sub, client(mqtt_broker) as pub:
        await sub.subscribe(f"{prefix}/s/#", qos=qos)
        await asyncio.gather(*(pub.publish(f"{prefix}/s/{i}", str(i), qos=qos) for i in range(n)))
        await barrier(sub, prefix)
        # Another connection takes the session over; ours reconnects and resumes it,
        # and the broker sends again what we had not acknowledged.
        await asyncio.get_running_loop().run_in_executor(None, takeover, mqtt_broker.port, ident)
        while True:
            ev = await asyncio.wait_for(events.__anext__(), 10)
            if ev.kind == "connected" and ev.session_present:
                break
        await asyncio.wait_for(sub.connected(), 10)
        stream = sub.messages()
        got = await take(stream, n)
        assert sorted(int(m.payload) for m in got) == list(range(n))
        await barrier(sub, prefix)
        assert stream.qsize() == 0, "no message twice"
        await asyncio.gather(
            *(pub.publish(f"{prefix}/s/{i}", f"new {i}", qos=qos) for i in range(n))
        )
        got = await take(stream, n)
        assert sorted(m.payload for m in got) == sorted(f"new {i}".encode() for i in range(n))


async def test_qos0_messages_without_a_stream_pause_reading_at_the_bound(
    mqtt_broker_factory, prefix
):
    # Per-client queues in the broker large enough that any loss is the client's.
    mqtt_broker = mqtt_broker_factory(max_queued_messages=1_000_000)
    n = 20000
    queue_size = 50
    topic = f"{prefix}/flood"
    sub = client(mqtt_broker, queue_size=queue_size, event_limit=64)
    async with sub, client(mqtt_broker) as pub:
        await sub.subscribe(topic, qos=0)
        for start in range(0, n, 2000):
            await asyncio.gather(
                *(pub.publish(topic, i.to_bytes(4, "big")) for i in range(start, start + 2000))
            )
        for _ in range(3):
            await pub.publish(f"{topic}/ping", b"", qos=1)
        # Bounded as a stream of queue_size is (see test_asyncio_flow): the rest waits in
        # TCP buffers and in the broker.
        bound = queue_size + 64 + (72 * 1024) // 22
        assert sub._core.pending() + sub.pending_messages() <= bound
        last = -1
        async for m in sub.messages():
            i = int.from_bytes(m.payload, "big")
            assert i == last + 1, "in order, none lost"
            last = i
            if last == n - 1:
                break


async def test_a_subscription_stream_takes_the_waiting_messages_it_matches(mqtt_broker, prefix):
    async with client(mqtt_broker) as c, client(mqtt_broker) as pub:
        await c.subscribe(f"{prefix}/w/#", qos=1)
        for t in ("a", "b", "a"):
            await pub.publish(f"{prefix}/w/{t}", t, qos=1)
        await barrier(c, prefix)
        assert c.pending_messages() == 3
        async with c.subscription(f"{prefix}/w/a", qos=1) as only_a:
            got = await take(only_a, 2)
            assert [m.topic for m in got] == [f"{prefix}/w/a"] * 2
        assert c.pending_messages() == 1
        (m,) = await take(c.messages(), 1)
        assert m.topic == f"{prefix}/w/b"


async def test_leftovers_of_a_closed_subscription_do_not_fill_the_window(mqtt_broker, prefix):
    # A closed subscription() stream's messages end with it: what the broker still
    # sends for its filter (buffered before the UNSUBSCRIBE, §3.10.4) goes to an open
    # messages() stream if there is one, else it is acknowledged and dropped, like what
    # the stream still held when it closed. Held unacknowledged instead, a few rounds
    # of leftovers would fill the window (receive maximum 5) and stop the client.
    async with client(mqtt_broker, queue_size=5) as c, client(mqtt_broker) as pub:
        for r in range(4):
            topic = f"{prefix}/left/{r}"
            async with c.subscription(topic, qos=1) as sub:
                await asyncio.gather(*(pub.publish(topic, str(i), qos=1) for i in range(10)))
                await take(sub, 1)
            await barrier(c, prefix)
        async with c.subscription(f"{prefix}/marker", qos=1) as marker:
            await pub.publish(f"{prefix}/marker", "m", qos=1)
            (m,) = await take(marker, 1)
            assert m.payload == b"m"
        assert c.pending_messages() == 0


async def test_connection_events_opened_after_connecting_report_that_connect(mqtt_broker):
    async with client(mqtt_broker) as c:
        await c.subscribe("early/x", qos=1)
        events = c.connection_events()
        first = await asyncio.wait_for(events.__anext__(), 10)
        assert (first.kind, first.session_present) == ("connected", False)
        # Taken by that stream: a later one starts with what happens from then on.
        assert c.connection_events()._queue == collections.deque()
