"""turbomqtt._core.ClientCore driven directly against a real mosquitto on 127.0.0.1.

These pin down the contract the paho facade builds on (the stubs in
turbomqtt/_core.pyi): events and their order, the notifier, return codes,
exceptions, reconnect behaviour and thread safety.
"""

import _thread
import asyncio
import pathlib
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest
from _raw_mqtt import read_packet as _read_packet
from turbomqtt import _core

pytestmark = pytest.mark.timeout(60)

EV_CONNACK, EV_MESSAGE, EV_PUBLISHED = _core.EV_CONNACK, _core.EV_MESSAGE, _core.EV_PUBLISHED
EV_SUBACK, EV_UNSUBACK = _core.EV_SUBACK, _core.EV_UNSUBACK
EV_DISCONNECTED, EV_LOG = _core.EV_DISCONNECTED, _core.EV_LOG
EV_CONNECT_FAILED = _core.EV_CONNECT_FAILED


class Peer:
    """A ClientCore plus the events drained from it so far."""

    def __init__(self):
        self.core = _core.ClientCore()
        self.events = []

    def connect(self, host, port, protocol=4, clean_start=True, client_id=None, **kw):
        kw.setdefault("keepalive", 60)
        self.core.connect(host=host, port=port, client_id=client_id or uuid.uuid4().hex[:12],
                          protocol=protocol, clean_start=clean_start, **kw)
        return self

    def until(self, predicate, timeout=10.0):
        """Drains events until `predicate(self.events)` is true; returns the event list."""
        deadline = time.monotonic() + timeout
        while not predicate(self.events):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"condition not met; events so far: {self.events[-20:]}")
            if self.core.wait(min(remaining, 0.5)):
                self.events.extend(self.core.drain())
        return self.events

    def of(self, kind):
        return [e for e in self.events if e[0] == kind]

    def connected(self, host, port, **kw):
        self.connect(host, port, **kw)
        self.until(lambda ev: any(e[0] == EV_CONNACK for e in ev))
        assert self.of(EV_CONNACK)[-1][2] == 0
        return self

    def subscribe(self, topic, qos):
        rc, mid = self.core.subscribe([(topic, qos)])
        assert rc == 0
        self.until(lambda ev: any(e[0] == EV_SUBACK and e[1] == mid for e in ev))
        return mid

    def messages(self):
        return [e for e in self.events if e[0] == EV_MESSAGE]


def topic():
    return f"test/{uuid.uuid4().hex[:8]}"


def test_connect_gives_connack_then_disconnect_gives_clean_disconnected(mosquitto):
    p = Peer().connected(*mosquitto)
    assert p.core.is_connected()
    connack = p.of(EV_CONNACK)[0]
    assert connack[1:] == (False, 0, None)
    assert p.core.disconnect() == 0
    p.until(lambda ev: any(e[0] == EV_DISCONNECTED for e in ev))
    assert p.of(EV_DISCONNECTED)[0] == (EV_DISCONNECTED, 0, False, None, None)
    assert not p.core.is_connected()
    assert p.core.disconnect() == 4, "not connected any more"


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_publish_round_trip_at_every_qos(mosquitto, protocol):
    p = Peer().connected(*mosquitto, protocol=protocol)
    t = topic()
    p.subscribe(t, 2)
    mids = []
    for qos in (0, 1, 2):
        rc, mid = p.core.publish(t, b"payload-%d" % qos, qos, False, None)
        assert rc == 0
        mids.append(mid)
    p.until(lambda ev: len(p.messages()) == 3 and len(p.of(EV_PUBLISHED)) == 3)
    got = sorted((m[2], m[3]) for m in p.messages())
    assert got == [(b"payload-0", 0), (b"payload-1", 1), (b"payload-2", 2)]
    assert all(m[1] == t.encode() for m in p.messages())
    assert sorted(e[1] for e in p.of(EV_PUBLISHED)) == sorted(mids)
    assert len(set(mids)) == 3


def test_messages_arrive_in_publish_order(mosquitto):
    p = Peer().connected(*mosquitto)
    t = topic()
    p.subscribe(t, 1)
    for i in range(300):
        assert p.core.publish(t, str(i).encode(), 1, False, None)[0] == 0
    p.until(lambda ev: len(p.messages()) == 300)
    assert [int(m[2]) for m in p.messages()] == list(range(300))


def test_slow_consumer_pauses_reading_instead_of_growing_or_dropping(mosquitto):
    p = Peer()
    p.core.set_event_limit(50)
    p.connected(*mosquitto)
    t = topic()
    p.subscribe(t, 1)
    for i in range(2000):
        p.core.publish(t, b"%04d" % i + b"." * 1000, 1, False, None)
    # Nothing signals "the reader paused", so give it time to (wrongly) read ahead.
    time.sleep(1.0)
    # One socket read may overshoot the limit (at most 64 KiB of packets).
    assert p.core.pending() < 50 + 100
    p.until(lambda ev: len(p.messages()) == 2000, timeout=30)
    assert [int(m[2][:4]) for m in p.messages()] == list(range(2000))


def test_one_mid_counter_for_subscribe_publish_unsubscribe(mosquitto):
    p = Peer().connected(*mosquitto)
    t = topic()
    assert p.core.subscribe([(t, 0)]) == (0, 1)
    assert p.core.publish(t, b"x", 0, False, None) == (0, 2)
    assert p.core.unsubscribe([t]) == (0, 3)
    p.until(lambda ev: any(e[0] == EV_UNSUBACK for e in ev))
    assert p.of(EV_UNSUBACK)[0] == (EV_UNSUBACK, 3, [], None)


def test_notifier_is_readable_while_events_are_pending(mosquitto):
    p = Peer()
    fd = p.core.fileno()
    assert select.select([fd], [], [], 0)[0] == []
    p.connect(*mosquitto)
    assert select.select([fd], [], [], 5)[0] == [fd]
    assert p.core.pending() >= 1
    first = p.core.drain(1)
    assert len(first) == 1 and first[0][0] == EV_CONNACK
    p.core.publish(topic(), b"x", 0, False, None)
    assert p.core.wait(5)
    assert select.select([fd], [], [], 0)[0] == [fd], "level-triggered while undrained"
    p.core.drain()
    assert p.core.pending() == 0
    assert select.select([fd], [], [], 0)[0] == []


def test_wait_returns_false_after_its_timeout_without_events():
    core = _core.ClientCore()
    start = time.monotonic()
    assert core.wait(0.2) is False
    assert time.monotonic() - start >= 0.15
    assert core.drain() == []


def test_wake_ends_a_wait_in_another_thread():
    core = _core.ClientCore()
    result = []
    t = threading.Thread(target=lambda: result.append(core.wait(None)))
    t.start()
    time.sleep(0.05)  # let the thread block; wake() also covers a later wait()
    core.wake()
    t.join(5)
    assert result == [False]


def test_connection_refused_raises_connection_refused_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(ConnectionRefusedError) as info:
            Peer().connect("127.0.0.1", port)
    assert info.value.errno == 111


def test_unresolvable_host_raises_gaierror():
    with pytest.raises(socket.gaierror) as info:
        Peer().connect("invalid.invalid", 1883)
    assert info.value.errno == socket.EAI_NONAME


def test_connect_timeout_raises_timeout_error():
    # A listener whose backlog is never accepted still completes TCP; so use a
    # WebSocket upgrade that gets no answer to make the handshake hang.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with pytest.raises(TimeoutError):
            Peer().connect("127.0.0.1", server.getsockname()[1], transport="websockets",
                           timeout=0.3)


def test_publish_while_never_connected_keeps_qos_above_0(mosquitto):
    sub = Peer().connected(*mosquitto)
    t = topic()
    sub.subscribe(t, 2)
    pub = Peer()
    assert pub.core.publish(t, b"q0", 0, False, None) == (4, 1)
    assert pub.core.publish(t, b"q1", 1, False, None) == (4, 2)
    assert pub.core.publish(t, b"q2", 2, False, None) == (4, 3)
    assert pub.core.subscribe([(t, 0)], None) == (4, 0)
    pub.connected(*mosquitto)
    pub.until(lambda ev: len(pub.of(EV_PUBLISHED)) == 2)
    assert sorted(e[1] for e in pub.of(EV_PUBLISHED)) == [2, 3]
    sub.until(lambda ev: len(sub.messages()) == 2)
    assert sorted(m[2] for m in sub.messages()) == [b"q1", b"q2"]


def test_max_queued_refuses_with_queue_size():
    core = _core.ClientCore()
    core.set_max_queued(1)
    assert core.publish("a", b"x", 1, False, None)[0] == 4
    assert core.publish("a", b"x", 1, False, None)[0] == 15
    assert core.publish("a", b"x", 0, False, None)[0] == 4, "QoS 0 is never counted"
    assert core.drop_out_messages() == [1]


def test_publish_from_8_threads_gives_unique_mids_and_all_acks(mosquitto):
    sub = Peer().connected(*mosquitto)
    t = topic()
    sub.subscribe(t, 1)
    pub = Peer().connected(*mosquitto)
    results = [[] for _ in range(8)]
    barrier = threading.Barrier(8)

    def worker(i):
        barrier.wait()
        for n in range(200):
            results[i].append(pub.core.publish(t, b"%d-%d" % (i, n), 1, False, None))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    flat = [r for rs in results for r in rs]
    assert all(rc == 0 for rc, _ in flat)
    mids = [mid for _, mid in flat]
    assert len(set(mids)) == 1600
    pub.until(lambda ev: len(pub.of(EV_PUBLISHED)) == 1600, timeout=30)
    assert {e[1] for e in pub.of(EV_PUBLISHED)} == set(mids)
    sub.until(lambda ev: len(sub.messages()) == 1600, timeout=30)
    for i in range(8):
        mine = [m[2] for m in sub.messages() if m[2].startswith(b"%d-" % i)]
        assert mine == [b"%d-%d" % (i, n) for n in range(200)], "per-thread order kept"


def test_broker_loss_gives_conn_lost_and_queued_messages_survive_reconnect(
        mosquitto_process):
    host, port = mosquitto_process.host, mosquitto_process.port
    pub = Peer().connected(host, port)
    mosquitto_process.stop()
    pub.until(lambda ev: any(e[0] == EV_DISCONNECTED for e in ev))
    disc = pub.of(EV_DISCONNECTED)[0]
    assert disc[1] == 7 and disc[2] is False and disc[4]
    assert not pub.core.is_connected()
    t = topic()
    rc, mid = pub.core.publish(t, b"kept", 1, False, None)
    assert rc == 4
    mosquitto_process.start()
    sub = Peer().connected(host, port)
    sub.subscribe(t, 1)
    pub.core.reconnect()
    pub.until(lambda ev: any(e[0] == EV_PUBLISHED and e[1] == mid for e in ev))
    sub.until(lambda ev: len(sub.messages()) == 1)
    assert sub.messages()[0][2] == b"kept"


def test_reconnect_drops_the_undrained_disconnect_of_the_replaced_connection(
        mosquitto_process):
    host, port = mosquitto_process.host, mosquitto_process.port
    p = Peer().connected(host, port)
    mosquitto_process.stop()
    deadline = time.monotonic() + 10
    while p.core.is_connected() and time.monotonic() < deadline:
        time.sleep(0.01)
    mosquitto_process.start()
    p.core.reconnect()
    p.until(lambda ev: len(p.of(EV_CONNACK)) == 2)
    assert p.of(EV_DISCONNECTED) == []


def test_close_without_disconnect_makes_the_broker_send_the_will(mosquitto):
    t = topic()
    watcher = Peer().connected(*mosquitto)
    watcher.subscribe(t, 1)
    dying = Peer().connected(*mosquitto, will=(t, b"gone", 1, False, None))
    dying.core.close()
    assert not dying.core.is_connected()
    watcher.until(lambda ev: len(watcher.messages()) == 1)
    assert watcher.messages()[0][2] == b"gone"


def test_connect_right_after_disconnect_still_sends_disconnect(mosquitto):
    t = topic()
    watcher = Peer().connected(*mosquitto)
    watcher.subscribe(t, 1)
    p = Peer().connected(*mosquitto, client_id="quick", will=(t, b"will", 1, False, None))
    assert p.core.disconnect() == 0
    p.connect(*mosquitto, client_id="quick")
    p.until(lambda ev: len(p.of(EV_CONNACK)) == 2)
    # A marker after the reconnect: had the will been published it would come first.
    p.core.publish(t, b"marker", 1, False, None)
    watcher.until(lambda ev: any(m[2] == b"marker" for m in watcher.messages()))
    assert [m[2] for m in watcher.messages()] == [b"marker"]
    assert p.of(EV_DISCONNECTED) == []


def test_keepalive_pings_keep_an_idle_connection(mosquitto):
    p = Peer()
    p.core.set_log_packets(True)
    p.connect(*mosquitto, keepalive=1)
    p.until(lambda ev: any(e[0] == EV_LOG and e[2] == "Received PINGRESP" for e in ev),
            timeout=10)
    assert any(e[0] == EV_LOG and e[2] == "Sending PINGREQ" for e in p.events)
    assert p.of(EV_DISCONNECTED) == []
    assert p.core.is_connected()


def test_paused_keepalive_lets_the_broker_drop_an_idle_client(mosquitto):
    p = Peer()
    p.core.set_log_packets(True)
    p.core.set_keepalive_paused(True)
    p.connect(*mosquitto, keepalive=1)
    # mosquitto closes the connection after 1.5 keepalive intervals of silence.
    p.until(lambda ev: any(e[0] == EV_DISCONNECTED for e in ev), timeout=10)
    assert not any(e[0] == EV_LOG and e[2] == "Sending PINGREQ" for e in p.events)
    assert p.of(EV_DISCONNECTED)[0][1] == 7


def test_log_lines_use_paho_wording(mosquitto):
    p = Peer()
    p.core.set_log_packets(True)
    p.connect(*mosquitto, client_id="logme", keepalive=62)
    t = topic()
    p.core.publish(t, b"abc", 2, False, None)
    p.until(lambda ev: any(e[0] == EV_PUBLISHED for e in ev))
    lines = [e[2] for e in p.events if e[0] == EV_LOG]
    assert "Sending CONNECT (u0, p0, wr0, wq0, wf0, c1, k62) client_id=b'logme'" in lines
    assert "Received CONNACK (0, 0)" in lines
    assert f"Sending PUBLISH (d0, q2, r0, m1), 'b'{t}'', ... (3 bytes)" in lines


def test_manual_ack_withholds_puback_until_ack(mosquitto):
    t = topic()
    p = Peer()
    p.core.set_manual_ack(True)
    p.core.set_log_packets(True)
    p.connected(*mosquitto)
    p.subscribe(t, 1)
    p.core.publish(t, b"m", 1, False, None)
    p.until(lambda ev: len(p.messages()) == 1)
    msg = p.messages()[0]
    assert not any(e[0] == EV_LOG and e[2].startswith("Sending PUBACK") for e in p.events)
    assert p.core.ack(msg[5], 1) == 0
    p.until(lambda ev: any(e[0] == EV_LOG and e[2] == f"Sending PUBACK (Mid: {msg[5]})"
                           for e in ev))


def test_manual_ack_of_qos2_withholds_pubcomp_until_ack(mosquitto):
    t = topic()
    p = Peer()
    p.core.set_manual_ack(True)
    p.core.set_log_packets(True)
    p.connected(*mosquitto)
    p.subscribe(t, 2)
    p.core.publish(t, b"m", 2, False, None)
    p.until(lambda ev: len(p.messages()) == 1)
    mid = p.messages()[0][5]
    sent = [e[2] for e in p.events if e[0] == EV_LOG and e[2].startswith("Sending PUB")]
    assert f"Sending PUBREC (Mid: {mid})" in sent, "PUBREC is always automatic, as in paho"
    assert f"Sending PUBCOMP (Mid: {mid})" not in sent
    assert p.core.ack(mid, 2) == 0
    p.until(lambda ev: any(e[0] == EV_LOG and e[2] == f"Sending PUBCOMP (Mid: {mid})"
                           for e in ev))


def test_v5_properties_cross_in_paho_wire_form(mosquitto):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    t = topic()
    p = Peer().connected(*mosquitto, protocol=5)
    p.subscribe(t, 1)
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = ("k", "v")
    props.ContentType = "text/plain"
    p.core.publish(t, b"x", 1, False, props.pack())
    p.until(lambda ev: len(p.messages()) == 1)
    wire = p.messages()[0][7]
    got = Properties(PacketTypes.PUBLISH)
    got.unpack(wire)
    assert got.UserProperty == [("k", "v")]
    assert got.ContentType == "text/plain"


def _scripted_broker(replies, unix_path=None):
    """A one-connection raw-socket peer: reads the CONNECT, writes `replies`, then waits
    for the client to close. Returns (port, thread)."""
    if unix_path:
        server = socket.socket(socket.AF_UNIX)
        server.bind(unix_path)
    else:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve():
        conn, _ = server.accept()
        with conn, server:
            conn.settimeout(10)
            conn.recv(1024)
            conn.sendall(replies)
            while conn.recv(1024):
                pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return (0 if unix_path else server.getsockname()[1]), t


def test_v5_server_disconnect_is_reported_with_its_reason_code():
    # CONNACK success, then DISCONNECT 0x8E "session taken over" with a reason string.
    reason = b"\x1f\x00\x04gone"
    disconnect = b"\xe0" + bytes([2 + len(reason)]) + b"\x8e" + bytes([len(reason)]) + reason
    port, t = _scripted_broker(b"\x20\x03\x00\x00\x00" + disconnect)
    p = Peer().connect("127.0.0.1", port, protocol=5)
    p.until(lambda ev: any(e[0] == EV_DISCONNECTED for e in ev))
    _, code, from_server, props, _ = p.of(EV_DISCONNECTED)[0]
    assert (code, from_server, props) == (0x8E, True, bytes([len(reason)]) + reason)
    assert not p.core.is_connected()
    t.join(5)


@pytest.mark.parametrize("disconnect,report,expected", [
    (b"\xe0\x00", True, (None, None)),
    (b"\xe0\x01\x8e", True, (0x8E, None)),
    (b"\xe0\x02\x00\x00", True, (0, b"\x00")),
    (b"\xe0\x00", False, (0, None)),
])
def test_v5_server_disconnect_without_reason_or_properties(disconnect, report, expected):
    # MQTT 5 §3.14.2.1: the reason code and the properties may be omitted; paho reports
    # the omitted ones as None.
    port, t = _scripted_broker(b"\x20\x03\x00\x00\x00" + disconnect)
    p = Peer()
    p.core.set_report_absent_disconnect_fields(report)
    p.connect("127.0.0.1", port, protocol=5)
    p.until(lambda ev: any(e[0] == EV_DISCONNECTED for e in ev))
    _, code, from_server, props, _ = p.of(EV_DISCONNECTED)[0]
    assert ((code, props), from_server) == (expected, True)
    t.join(5)


@pytest.mark.parametrize("accept", [True, False])
def test_publish_with_a_non_utf8_topic(accept):
    # paho delivers it (msg.topic raises, the raw bytes are kept) and stays connected.
    bad = b"\x30\x05\x00\x01\xffhi"
    good = b"\x30\x06\x00\x01aok!"
    port, t = _scripted_broker(b"\x20\x02\x00\x00" + bad + good)
    p = Peer()
    p.core.set_accept_invalid_topics(accept)
    p.connect("127.0.0.1", port)
    if accept:
        p.until(lambda ev: len(p.messages()) == 2)
        assert [(m[1], m[2]) for m in p.messages()] == [(b"\xff", b"hi"), (b"a", b"ok!")]
        assert p.core.is_connected()
        p.core.disconnect()
    else:
        p.until(lambda ev: any(e[0] == EV_DISCONNECTED for e in ev))
        assert p.messages() == []
        assert p.of(EV_DISCONNECTED)[0][1] == 2
    t.join(5)


def test_unacknowledged_qos1_is_resent_with_dup_after_reconnect():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(2)
    seen = []

    def serve():
        with server:
            server.settimeout(10)
            # First connection: take the PUBLISH, never acknowledge it, drop the link.
            conn, _ = server.accept()
            with conn:
                conn.settimeout(10)
                _read_packet(conn)  # CONNECT
                conn.sendall(b"\x20\x02\x00\x00")
                seen.append(_read_packet(conn))
            # Second connection: resume the session and acknowledge the resend.
            conn, _ = server.accept()
            with conn:
                conn.settimeout(10)
                _read_packet(conn)
                conn.sendall(b"\x20\x02\x01\x00")
                first, body = _read_packet(conn)
                seen.append((first, body))
                conn.sendall(b"\x40\x02" + body[-len(b"data") - 2:-len(b"data")])
                while conn.recv(1024):
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    p = Peer().connected("127.0.0.1", server.getsockname()[1], clean_start=False,
                         client_id="resender")
    rc, mid = p.core.publish("r/t", b"data", 1, False, None)
    assert rc == 0
    p.until(lambda ev: any(e[0] == EV_DISCONNECTED for e in ev))
    assert p.of(EV_PUBLISHED) == []
    p.core.reconnect()
    p.until(lambda ev: any(e[0] == EV_PUBLISHED and e[1] == mid for e in ev))
    (first1, body1), (first2, body2) = seen
    assert first1 == 0x32, "QoS 1, DUP clear the first time"
    assert first2 == 0x3A, "QoS 1 with DUP set when resent"
    assert body1 == body2
    p.core.disconnect()
    t.join(10)


def test_v5_client_sends_disconnect_0x94_for_an_unknown_topic_alias():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    got = []

    def serve():
        with server:
            server.settimeout(10)
            conn, _ = server.accept()
            with conn:
                conn.settimeout(10)
                _read_packet(conn)
                # CONNACK, then a PUBLISH naming topic alias 9 that was never set.
                conn.sendall(b"\x20\x03\x00\x00\x00" + b"\x30\x07\x00\x00\x03\x23\x00\x09x")
                got.append(_read_packet(conn))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    p = Peer().connect("127.0.0.1", server.getsockname()[1], protocol=5)
    p.until(lambda ev: any(e[0] == EV_DISCONNECTED for e in ev))
    t.join(10)
    assert got == [(0xE0, b"\x94\x00")] or got == [(0xE0, b"\x94")]
    assert p.of(EV_DISCONNECTED)[0][1] == 2
    assert p.messages() == []


def test_bind_address_and_port_choose_the_local_end():
    from conftest import _free_port

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    local_port = _free_port()
    peers = []

    def serve():
        with server:
            server.settimeout(10)
            conn, addr = server.accept()
            peers.append(addr)
            with conn:
                conn.settimeout(10)
                _read_packet(conn)
                conn.sendall(b"\x20\x02\x00\x00")
                while conn.recv(1024):
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    p = Peer().connected("127.0.0.1", server.getsockname()[1], bind_address="127.0.0.1",
                         bind_port=local_port)
    assert peers == [("127.0.0.1", local_port)]
    p.core.disconnect()
    t.join(10)


def test_malformed_packet_from_the_broker_closes_with_protocol_error():
    port, t = _scripted_broker(b"\x20\x02\x00\x00" + b"\x90\xff\xff\xff\xff\xff")
    p = Peer().connect("127.0.0.1", port)
    p.until(lambda ev: any(e[0] == EV_DISCONNECTED for e in ev))
    assert p.of(EV_DISCONNECTED)[0][1] == 2
    t.join(5)


def test_refused_connack_is_reported_then_disconnected(tmp_path):
    from conftest import MosquittoProcess

    strict = MosquittoProcess(tmp_path, allow_anonymous=False).start()
    try:
        p = Peer().connect(strict.host, strict.port)
        p.until(lambda ev: any(e[0] == EV_DISCONNECTED for e in ev))
        assert p.of(EV_CONNACK)[0][2] == 5
        assert p.of(EV_DISCONNECTED)[0][1] == 5
        assert not p.core.is_connected()
    finally:
        strict.stop()


# --- transports ---------------------------------------------------------------------------


@pytest.fixture
def mosquitto_extra(tmp_path):
    """Starts mosquitto with extra listener lines; yields a factory (config) -> process."""
    from conftest import MosquittoProcess

    started = []

    def start(extra):
        directory = tmp_path / f"m{len(started)}"
        directory.mkdir()
        m = MosquittoProcess(directory, extra)
        started.append(m)
        return m

    yield start
    for m in started:
        m.stop()


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no unix sockets on this system")
def test_unix_socket_transport(tmp_path):
    # mosquitto 2.0.11 from Debian has no Unix listener; a scripted peer answers instead.
    path = str(tmp_path / "mqtt.sock")
    _, t = _scripted_broker(b"\x20\x02\x01\x00", unix_path=path)
    p = Peer().connect(path, 0, transport="unix")
    p.until(lambda ev: any(e[0] == EV_CONNACK for e in ev))
    assert p.of(EV_CONNACK)[0][1:3] == (True, 0)
    assert p.core.is_connected()
    p.core.disconnect()
    p.until(lambda ev: any(e[0] == EV_DISCONNECTED for e in ev))
    t.join(5)


def _wait_listening(port, timeout=10.0):
    """Extra listeners may open after the first one accepts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def test_websocket_transport(mosquitto_extra):
    from conftest import _free_port

    ws_port = _free_port()
    # libwebsockets takes an interface name, not an address: "lo" keeps it on loopback.
    mosquitto_extra(f"listener {ws_port} lo\nprotocol websockets\n").start()
    _wait_listening(ws_port)
    p = Peer().connected("127.0.0.1", ws_port, transport="websockets", ws_path="/mqtt",
                         ws_headers={"X-Test": "1"})
    t = topic()
    p.subscribe(t, 2)
    p.core.publish(t, b"over ws", 2, False, None)
    p.until(lambda ev: len(p.messages()) == 1)
    assert p.messages()[0][2] == b"over ws"


def test_websocket_upgrade_failure_raises_websocket_connection_error(mosquitto):
    with pytest.raises(_core.WebsocketConnectionError) as info:
        Peer().connect(*mosquitto, transport="websockets")
    assert isinstance(info.value, ConnectionError)


def _ws_server(accept_for, extra_headers, after=None):
    """A one-connection WebSocket peer: answers the upgrade with `accept_for(key)` as
    Sec-WebSocket-Accept plus `extra_headers`, then (if `after`) reads one masked frame and
    sends `after` as a binary frame. Returns (port, thread, request_lines)."""
    import base64
    import hashlib

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    request = []

    def serve():
        conn, _ = server.accept()
        with conn, server:
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(1024)
                if not chunk:
                    return
                data += chunk
            lines = data.decode().split("\r\n")
            request.extend(lines)
            key = next(v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
                       if k.lower() == "sec-websocket-key")
            digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode())
            good = base64.b64encode(digest.digest()).decode()
            head = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket",
                    "Connection: Upgrade", f"Sec-WebSocket-Accept: {accept_for(good)}",
                    *extra_headers]
            conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            if after is None:
                return
            _, b1 = _recv_exact(conn, 2)
            length = b1 & 0x7F
            if length == 126:
                length = int.from_bytes(_recv_exact(conn, 2), "big")
            _recv_exact(conn, 4 + length)  # mask key and the CONNECT
            conn.sendall(bytes([0x82, len(after)]) + after)
            while conn.recv(1024):
                pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return server.getsockname()[1], t, request


@pytest.mark.parametrize("subprotocol", ["Sec-WebSocket-Protocol: chat", None])
def test_websocket_accepts_any_or_no_server_subprotocol(subprotocol):
    # paho checks only Connection: Upgrade and Sec-WebSocket-Accept.
    port, t, request = _ws_server(lambda good: good, [subprotocol] if subprotocol else [],
                                  after=b"\x20\x02\x00\x00")
    p = Peer().connected("127.0.0.1", port, transport="websockets", ws_path="/special",
                         ws_headers={"Authorization": "test123"})
    assert request[0] == "GET /special HTTP/1.1"
    assert "Authorization: test123" in request
    assert "Sec-WebSocket-Protocol: mqtt" in request
    p.core.disconnect()
    t.join(5)


def test_websocket_path_none_is_the_default_path():
    # paho's ws_set_options(path=None) still connects.
    port, t, request = _ws_server(lambda good: good, [], after=b"\x20\x02\x00\x00")
    p = Peer().connected("127.0.0.1", port, transport="websockets", ws_path=None)
    assert request[0] == "GET /mqtt HTTP/1.1"
    p.core.disconnect()
    t.join(5)


def test_websocket_wrong_accept_key_raises_with_paho_message():
    port, t, _ = _ws_server(lambda good: "testwebsocketkey", [])
    with pytest.raises(_core.WebsocketConnectionError) as info:
        Peer().connect("127.0.0.1", port, transport="websockets")
    assert str(info.value) == "WebSocket handshake error, invalid secret key"
    t.join(5)


def test_v3_connack_refusing_a_v5_connect_is_reported_and_closed_without_disconnect():
    # A pre-5.0 broker answers a v5 CONNECT with `20 02 00 01` (unacceptable protocol).
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    after = []

    def serve():
        conn, _ = server.accept()
        with conn, server:
            conn.settimeout(10)
            _read_packet(conn)
            conn.sendall(b"\x20\x02\x00\x01")
            while chunk := conn.recv(1024):
                after.append(chunk)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    p = Peer().connect("127.0.0.1", server.getsockname()[1], protocol=5)
    p.until(lambda ev: any(e[0] == EV_DISCONNECTED for e in ev))
    _, session_present, code, props = p.of(EV_CONNACK)[0]
    assert (session_present, code, props) == (False, 1, None)
    assert p.of(EV_DISCONNECTED)[0][1] == 5
    t.join(5)
    assert after == []


def _make_certs(d):
    """A CA and a server certificate for 127.0.0.1 / localhost, made with openssl."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=turbomqtt test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")
    return d / "ca.crt", d / "server.crt", d / "server.key"


@pytest.fixture
def tls_mosquitto(mosquitto_extra):
    from conftest import _free_port

    # mosquitto started as root reads its files after dropping to its own user, which
    # cannot enter pytest's private tmp_path: use a world-readable directory.
    certs = pathlib.Path(tempfile.mkdtemp(prefix="turbomqtt-tls-"))
    certs.chmod(0o755)
    ca, crt, key = _make_certs(certs)
    for f in certs.iterdir():
        f.chmod(0o644)
    tls_port = _free_port()
    mosquitto_extra(
        f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {crt}\nkeyfile {key}\n").start()
    _wait_listening(tls_port)
    yield tls_port, str(ca)
    shutil.rmtree(certs, ignore_errors=True)


def test_tls_with_ca_file_round_trip(tls_mosquitto):
    port, ca = tls_mosquitto
    p = Peer().connected("127.0.0.1", port, tls={"ca_certs": ca, "verify": True,
                                                  "check_hostname": True})
    t = topic()
    p.subscribe(t, 1)
    p.core.publish(t, b"secret", 1, False, None)
    p.until(lambda ev: len(p.messages()) == 1)


def test_tls_unknown_ca_raises_ssl_cert_verification_error(tls_mosquitto):
    port, _ = tls_mosquitto
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        Peer().connect("127.0.0.1", port, tls={"verify": True, "use_native_roots": True})
    assert isinstance(info.value, ssl.SSLError)
    assert "certificate verify failed" in str(info.value)


def test_tls_wrong_name_fails_unless_hostname_check_is_off(tls_mosquitto):
    port, ca = tls_mosquitto
    with pytest.raises(ssl.SSLCertVerificationError):
        Peer().connect("127.0.0.1", port, tls={"ca_certs": ca, "server_hostname": "other.example"})
    Peer().connected("127.0.0.1", port, tls={"ca_certs": ca, "server_hostname": "other.example",
                                             "check_hostname": False})


def test_tls_without_verification_accepts_any_certificate(tls_mosquitto):
    port, _ = tls_mosquitto
    Peer().connected("127.0.0.1", port, tls={"verify": False})


@pytest.fixture
def mutual_tls_mosquitto(mosquitto_extra):
    """A TLS listener that requires a client certificate; yields (port, ca, cert, key)
    with the client key encrypted under the password "secret"."""
    from conftest import _free_port

    certs = pathlib.Path(tempfile.mkdtemp(prefix="turbomqtt-mtls-"))
    certs.chmod(0o755)
    ca, crt, key = _make_certs(certs)

    def run(*args):
        subprocess.run(["openssl", *args], cwd=certs, check=True, capture_output=True)

    run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-aes256",
        "-pass", "pass:secret", "-out", "client.key")
    run("req", "-new", "-key", "client.key", "-passin", "pass:secret", "-out", "client.csr",
        "-subj", "/CN=client")
    # Extensions make it an X.509 v3 certificate, which rustls requires.
    (certs / "client.cnf").write_text("extendedKeyUsage=clientAuth\n")
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "client.crt", "-days", "2", "-extfile", "client.cnf")
    for f in certs.iterdir():
        f.chmod(0o644)
    port = _free_port()
    mosquitto_extra(f"listener {port} 127.0.0.1\ncafile {ca}\ncertfile {crt}\n"
                    f"keyfile {key}\nrequire_certificate true\n").start()
    _wait_listening(port)
    yield port, str(ca), str(certs / "client.crt"), str(certs / "client.key")
    shutil.rmtree(certs, ignore_errors=True)


def test_client_certificate_with_encrypted_key(mutual_tls_mosquitto):
    port, ca, cert, key = mutual_tls_mosquitto
    tls = {"ca_certs": ca, "certfile": cert, "keyfile": key, "keyfile_password": "secret"}
    Peer().connected("127.0.0.1", port, tls=tls)
    with pytest.raises(ssl.SSLError, match="wrong keyfile_password"):
        Peer().connect("127.0.0.1", port, tls={**tls, "keyfile_password": "nope"})


def test_websocket_over_tls(mosquitto_extra):
    from conftest import _free_port

    certs = pathlib.Path(tempfile.mkdtemp(prefix="turbomqtt-wss-"))
    try:
        certs.chmod(0o755)
        ca, crt, key = _make_certs(certs)
        for f in certs.iterdir():
            f.chmod(0o644)
        port = _free_port()
        mosquitto_extra(f"listener {port} lo\nprotocol websockets\ncafile {ca}\n"
                        f"certfile {crt}\nkeyfile {key}\n").start()
        _wait_listening(port)
        p = Peer().connected("localhost", port, transport="websockets",
                             ws_headers=[("X-Pairs", "also accepted")],
                             tls={"ca_certs": str(ca)})
        t = topic()
        p.subscribe(t, 1)
        p.core.publish(t, b"wss", 1, False, None)
        p.until(lambda ev: len(p.messages()) == 1)
    finally:
        shutil.rmtree(certs, ignore_errors=True)


def test_missing_ca_file_raises_file_not_found(tls_mosquitto, tmp_path):
    port, _ = tls_mosquitto
    with pytest.raises(FileNotFoundError):
        Peer().connect("127.0.0.1", port, tls={"ca_certs": str(tmp_path / "nope.pem")})


# --- blocking calls and Ctrl-C ------------------------------------------------------------


def _interrupt_main_soon():
    t = threading.Timer(0.3, _thread.interrupt_main)
    t.start()
    return t


def test_ctrl_c_interrupts_wait_forever():
    core = _core.ClientCore()
    t = _interrupt_main_soon()
    with pytest.raises(KeyboardInterrupt):
        core.wait(None)
    t.join()


def test_ctrl_c_interrupts_a_hanging_connect():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        core = _core.ClientCore()
        t = _interrupt_main_soon()
        with pytest.raises(KeyboardInterrupt):
            # The WebSocket upgrade is never answered: only Ctrl-C ends this.
            core.connect(host="127.0.0.1", port=server.getsockname()[1], keepalive=60,
                         client_id="c", protocol=4, clean_start=True, transport="websockets",
                         timeout=60)
        t.join()
        assert not core.is_connected()


# --- proxies ------------------------------------------------------------------------------


def _recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return data


def _recv_until(conn, end):
    data = b""
    while not data.endswith(end):
        data += _recv_exact(conn, 1)
    return data


class ForwardingProxy:
    """A one-connection SOCKS4a / SOCKS5 / HTTP CONNECT proxy on 127.0.0.1 that records
    what the client asked for and then relays bytes."""

    def __init__(self, kind):
        self.kind = kind
        self.requests = []
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _handshake(self, c):
        if self.kind == "socks5":
            _, n = _recv_exact(c, 2)
            methods = _recv_exact(c, n)
            auth = None
            if 2 in methods:
                c.sendall(b"\x05\x02")
                _, ulen = _recv_exact(c, 2)
                user = _recv_exact(c, ulen)
                plen = _recv_exact(c, 1)[0]
                auth = (user, _recv_exact(c, plen))
                c.sendall(b"\x01\x00")
            else:
                c.sendall(b"\x05\x00")
            _, _, _, atyp = _recv_exact(c, 4)
            host = (_recv_exact(c, _recv_exact(c, 1)[0]).decode() if atyp == 3
                    else socket.inet_ntoa(_recv_exact(c, 4)))
            port = int.from_bytes(_recv_exact(c, 2), "big")
            c.sendall(b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00")
        elif self.kind == "socks4":
            head = _recv_exact(c, 8)
            port = int.from_bytes(head[2:4], "big")
            auth = _recv_until(c, b"\x00")[:-1]
            host = (_recv_until(c, b"\x00")[:-1].decode() if head[4:7] == b"\x00\x00\x00"
                    else socket.inet_ntoa(head[4:8]))
            c.sendall(b"\x00\x5a" + b"\x00" * 6)
        else:
            head = _recv_until(c, b"\r\n\r\n").decode()
            target = head.split()[1]
            host, port = target.rsplit(":", 1)
            port = int(port)
            auth = [line for line in head.split("\r\n") if line.startswith("Proxy-Authorization")]
            c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.requests.append((host, port, auth))
        return host, port

    def _serve(self):
        c, _ = self.server.accept()
        host, port = self._handshake(c)
        upstream = socket.create_connection((host, port))

        def pipe(a, b):
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        t = threading.Thread(target=pipe, args=(upstream, c), daemon=True)
        t.start()
        pipe(c, upstream)
        t.join(5)
        c.close()
        upstream.close()
        self.server.close()


@pytest.mark.parametrize("kind,user", [("socks5", None), ("socks5", "u"), ("socks4", "u"),
                                       ("http", None), ("http", "u")])
def test_connect_through_a_proxy(mosquitto, kind, user):
    proxy = ForwardingProxy(kind)
    spec = {"type": kind, "host": "127.0.0.1", "port": proxy.port}
    if user:
        spec.update(username=user, password="pw")
    p = Peer().connected("localhost", mosquitto[1], proxy=spec)
    t = topic()
    p.subscribe(t, 1)
    p.core.publish(t, b"via proxy", 1, False, None)
    p.until(lambda ev: len(p.messages()) == 1)
    host, port, auth = proxy.requests[0]
    assert (host, port) == ("localhost", mosquitto[1]), "the proxy resolves the name"
    if user and kind == "socks5":
        assert auth == (b"u", b"pw")
    if user and kind == "http":
        assert auth == ["Proxy-Authorization: Basic dTpwdw=="]
    p.core.disconnect()
    p.until(lambda ev: any(e[0] == EV_DISCONNECTED for e in ev))


# --- driving the core from an asyncio loop (the pattern the asyncio face builds on) -------


class AsyncPeer:
    """Connects without blocking and resolves futures from events read on the notifier."""

    def __init__(self, loop):
        self.core = _core.ClientCore()
        self.loop = loop
        self.acks = {}
        self.connack = loop.create_future()
        self.messages = asyncio.Queue()
        loop.add_reader(self.core.fileno(), self._on_readable)

    def _on_readable(self):
        for e in self.core.drain():
            if e[0] in (EV_CONNACK, EV_CONNECT_FAILED) and not self.connack.done():
                if e[0] == EV_CONNACK:
                    self.connack.set_result(e[2])
                else:
                    self.connack.set_exception(e[1])
            elif e[0] in (EV_PUBLISHED, EV_SUBACK) and e[1] in self.acks:
                self.acks.pop(e[1]).set_result(e[2])
            elif e[0] == EV_MESSAGE:
                self.messages.put_nowait(e[2])

    async def connect(self, host, port):
        self.core.connect(host=host, port=port, keepalive=60, client_id=uuid.uuid4().hex[:8],
                          protocol=5, clean_start=True, block=False)
        return await asyncio.wait_for(self.connack, 10)

    async def call(self, rc_mid):
        rc, mid = rc_mid
        assert rc == 0
        fut = self.acks[mid] = self.loop.create_future()
        return await asyncio.wait_for(fut, 10)

    def close(self):
        self.loop.remove_reader(self.core.fileno())
        self.core.close()


def test_asyncio_loop_awaits_connack_acks_and_messages(mosquitto):
    async def main():
        p = AsyncPeer(asyncio.get_running_loop())
        try:
            assert await p.connect(*mosquitto) == 0
            t = topic()
            assert await p.call(p.core.subscribe([(t, 2)])) == [2]
            for qos in (1, 2):
                assert await p.call(p.core.publish(t, b"q%d" % qos, qos, False, None)) == 0
            got = [await asyncio.wait_for(p.messages.get(), 10) for _ in range(2)]
            assert sorted(got) == [b"q1", b"q2"]
        finally:
            p.close()

    asyncio.run(main())


def test_nonblocking_connect_failure_arrives_as_an_exception_event():
    async def main():
        p = AsyncPeer(asyncio.get_running_loop())
        try:
            with pytest.raises(socket.gaierror):
                await p.connect("invalid.invalid", 1883)
        finally:
            p.close()

    asyncio.run(main())


def test_interpreter_exit_with_a_thread_blocked_in_wait_does_not_hang(mosquitto):
    script = f"""
import threading
from turbomqtt import _core
core = _core.ClientCore()
core.connect(host={mosquitto[0]!r}, port={mosquitto[1]}, keepalive=60, client_id="exit",
             protocol=4, clean_start=True)
def loop():
    while True:
        if core.wait(None):
            core.drain()
threading.Thread(target=loop, daemon=True).start()
core.subscribe([("exit/#", 1)])
print("ready", flush=True)
"""
    proc = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ready"


def test_broker_restart_loses_no_qos1_or_qos2_message(tmp_path):
    from conftest import MosquittoProcess

    # mosquitto drops to its own user before writing: a world-writable persistence dir.
    store = pathlib.Path(tempfile.mkdtemp(prefix="turbomqtt-persist-"))
    store.chmod(0o777)
    broker = MosquittoProcess(
        tmp_path, f"persistence true\npersistence_location {store}/\n").start()
    try:
        t = topic()
        sub = Peer().connected(broker.host, broker.port, clean_start=False, client_id="keeper")
        sub.subscribe(t, 2)
        pub = Peer().connected(broker.host, broker.port, clean_start=False, client_id="sender")
        mids = {}
        for i in range(600):
            rc, mid = pub.core.publish(t, b"%d" % i, 1 + i % 2, False, None)
            assert rc == 0
            mids[mid] = i
        broker.stop()  # mid-stream: some messages are still unacknowledged
        pub.until(lambda ev: any(e[0] == EV_DISCONNECTED for e in ev))
        sub.until(lambda ev: any(e[0] == EV_DISCONNECTED for e in ev))
        broker.start()
        sub.core.reconnect()
        pub.core.reconnect()
        pub.until(lambda ev: {e[1] for e in ev if e[0] == EV_PUBLISHED} >= set(mids),
                  timeout=30)
        sub.until(lambda ev: {int(m[2]) for m in sub.messages()} == set(range(600)),
                  timeout=30)
    finally:
        broker.stop()
        shutil.rmtree(store, ignore_errors=True)
