"""Direct reads: a thread waiting in ``ClientCore.wait()`` reads a plain-TCP socket itself
(the core's connection task reads whenever nobody waits). Whoever reads, messages must
arrive complete, once, in order; errors found by the waiting thread must end the
connection as usual; reconnects must work."""

import socket
import threading
import time
import uuid

import pytest
from _raw_mqtt import read_packet
from turbomqtt import _core

pytestmark = pytest.mark.timeout(60)

EV_CONNACK, EV_MESSAGE, EV_SUBACK = _core.EV_CONNACK, _core.EV_MESSAGE, _core.EV_SUBACK
EV_DISCONNECTED = _core.EV_DISCONNECTED


def connect(core, port, **kw):
    core.connect(host="127.0.0.1", port=port, keepalive=60, client_id=uuid.uuid4().hex[:12],
                 protocol=4, clean_start=True, **kw)


def until(core, events, predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate(events):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"condition not met; last events: {events[-10:]}")
        if core.wait(min(remaining, 0.5)):
            events.extend(core.drain())
    return events


def has(kind, n=1):
    return lambda ev: sum(1 for e in ev if e[0] == kind) >= n


@pytest.fixture
def mosquitto_unbounded(tmp_path):
    """mosquitto without its queue bound (`max_queued_messages 0`): its default of 1,000
    drops a burst's messages for a subscriber that falls behind, which a loaded machine
    makes this test's subscriber do; the test is about the client's readers."""
    from conftest import MosquittoProcess

    m = MosquittoProcess(tmp_path, extra_config="max_queued_messages 0\n").start()
    yield (m.host, m.port)
    m.stop()


@pytest.mark.parametrize("qos", [0, 1])
def test_messages_arrive_once_and_in_order_when_the_waiter_and_the_task_take_turns(
        mosquitto_unbounded, qos):
    _host, port = mosquitto_unbounded
    topic = f"direct/{uuid.uuid4().hex[:8]}"
    sub, pub = _core.ClientCore(), _core.ClientCore()
    sub_events, pub_events = [], []
    connect(sub, port)
    until(sub, sub_events, has(EV_CONNACK))
    sub.subscribe([(topic, qos)])
    until(sub, sub_events, has(EV_SUBACK))
    connect(pub, port)
    until(pub, pub_events, has(EV_CONNACK))
    n = 6000
    received = []

    def consume():
        # Alternates waiting (this thread reads the socket) with being busy elsewhere
        # (the connection task reads meanwhile), so both readers get batches.
        i = 0
        deadline = time.monotonic() + 40
        while len(received) < n and time.monotonic() < deadline:
            i += 1
            if i % 3 == 0:
                time.sleep(0.0005)
            elif not sub.wait(0.2):
                continue
            for e in sub.drain():
                if e[0] == EV_MESSAGE:
                    received.append(int.from_bytes(e[2], "big"))

    t = threading.Thread(target=consume)
    t.start()
    for i in range(n):
        assert pub.publish(topic, i.to_bytes(4, "big"), qos, False, None)[0] == 0
        if i % 500 == 499:
            pub.wait(0.001)  # let some batches go out between bursts
            pub.drain()
    t.join(50)
    assert received == list(range(n))
    pub.disconnect()
    sub.disconnect()


def _fake_broker(script):
    """A one-connection-at-a-time fake broker on a free port running `script(conn)` for
    each accepted connection in turn; returns (port, thread)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]

    def run():
        with server:
            for step in script:
                conn, _ = server.accept()
                with conn:
                    step(conn)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return port, t


def test_a_malformed_packet_read_by_the_waiting_thread_ends_the_connection_then_reconnect_works():
    def malformed(conn):
        read_packet(conn)  # CONNECT
        conn.sendall(b"\x20\x02\x00\x00")
        first, _ = read_packet(conn)  # the SUBSCRIBE sent while the client waits
        assert first >> 4 == 8
        conn.sendall(b"\x90\xff\xff\xff\xff\xff")  # a remaining length over 4 bytes
        try:
            read_packet(conn)  # until the client closes
        except (ConnectionError, OSError):
            pass

    def healthy(conn):
        read_packet(conn)
        conn.sendall(b"\x20\x02\x00\x00")
        _, body = read_packet(conn)  # SUBSCRIBE
        conn.sendall(b"\x90\x03" + body[:2] + b"\x00")
        topic = b"t/1"
        conn.sendall(b"\x30" + bytes([2 + len(topic) + 2]) + len(topic).to_bytes(2, "big")
                     + topic + b"ok")
        try:
            read_packet(conn)
        except (ConnectionError, OSError):
            pass

    port, t = _fake_broker([malformed, healthy])
    core, events = _core.ClientCore(), []
    connect(core, port)
    until(core, events, has(EV_CONNACK))
    core.subscribe([("t/#", 0)])
    until(core, events, has(EV_DISCONNECTED))
    assert next(e for e in events if e[0] == EV_DISCONNECTED)[1] == 2  # protocol error
    assert not core.is_connected()

    events.clear()
    core.reconnect()
    until(core, events, has(EV_CONNACK))
    core.subscribe([("t/#", 0)])
    until(core, events, has(EV_MESSAGE))
    assert [e[1:3] for e in events if e[0] == EV_MESSAGE] == [(b"t/1", b"ok")]
    core.disconnect()
    until(core, events, has(EV_DISCONNECTED))
    t.join(5)


def test_a_waiting_thread_sees_the_broker_go_and_reads_the_next_connection(mosquitto_process):
    port = mosquitto_process.port
    topic = f"direct/{uuid.uuid4().hex[:8]}"
    core, events = _core.ClientCore(), []
    connect(core, port)
    until(core, events, has(EV_CONNACK))
    mosquitto_process.stop()
    until(core, events, has(EV_DISCONNECTED))
    mosquitto_process.start()
    events.clear()
    core.reconnect()
    until(core, events, has(EV_CONNACK))
    core.subscribe([(topic, 1)])
    until(core, events, has(EV_SUBACK))
    for i in range(50):
        core.publish(topic, str(i).encode(), 1, False, None)
    until(core, events, has(EV_MESSAGE, 50))
    assert [e[2] for e in events if e[0] == EV_MESSAGE] == [str(i).encode() for i in range(50)]
    core.disconnect()
    until(core, events, has(EV_DISCONNECTED))


def test_wake_ends_a_wait_that_polls_the_socket(mosquitto):
    _host, port = mosquitto
    core, events = _core.ClientCore(), []
    connect(core, port)
    until(core, events, has(EV_CONNACK))
    done = threading.Event()
    result = []

    def waiter():
        result.append(core.wait(30))
        done.set()

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.05)  # let it block in its poll
    core.wake()
    assert done.wait(5), "wake() ended the wait"
    assert result == [False]
    t.join(5)
    core.disconnect()


@pytest.mark.parametrize("qos", [1, 2])
def test_acks_are_read_while_the_loop_thread_that_was_reading_sits_in_a_callback(mosquitto, qos):
    # The loop thread reads the socket while it waits, and the core's connection task
    # stops watching the socket meanwhile. When that thread then stays in a callback,
    # the task must take the reading back by itself: another thread's publish still
    # completes (paho would leave it pending until the callback returned).
    import turbomqtt.client as mqtt

    _host, port = mosquitto
    topic = f"direct/{uuid.uuid4().hex[:8]}"
    arrived, entered, release = threading.Event(), threading.Event(), threading.Event()
    subscribed = threading.Event()

    def on_message(client, userdata, msg):
        if msg.payload == b"block":
            entered.set()
            release.wait(30)
        else:
            arrived.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=uuid.uuid4().hex[:12])
    c.on_message = on_message
    c.on_subscribe = lambda *a: subscribed.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        c.subscribe(f"{topic}/echo")
        assert subscribed.wait(10)
        # Round trips with the loop thread waiting long in between (an idle
        # connection): it reads them itself, and the task steps aside.
        for _ in range(20):
            time.sleep(0.002)
            arrived.clear()
            c.publish(f"{topic}/echo", b"ping")
            assert arrived.wait(10)
        c.publish(f"{topic}/echo", b"block")
        assert entered.wait(10)
        infos = [c.publish(f"{topic}/other", str(i).encode(), qos=qos) for i in range(3)]
        deadline = time.monotonic() + 10
        for info in infos:
            info.wait_for_publish(max(0.01, deadline - time.monotonic()))
        assert all(info.is_published() for info in infos)
    finally:
        release.set()
        c.disconnect()
        c.loop_stop()
