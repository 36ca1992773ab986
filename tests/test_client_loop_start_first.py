"""loop_start() before connect(), as paho-mqtt 2.2 behaves: the loop thread finds no
connection, sleeps its reconnect delay, then connects itself. A connect() made from the
main thread meanwhile only opened a connection and queued CONNECT on it (paho's loop
thread is the writer), so the broker sees that connection close without any data and
then the loop thread's own connection ("paho's double connection")."""

from __future__ import annotations

import socket
import threading

import pytest
import turbomqtt.client as mqtt
from _raw_mqtt import read_packet as _read_packet

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def server():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(2)
    s.settimeout(10)
    yield s
    s.close()


def test_connect_while_the_loop_thread_sleeps_is_replaced_by_the_threads_connection(server):
    connects = []
    done = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="twice")
    c.on_connect = lambda *a: (connects.append(a[3]), done.set())
    assert c.loop_start() == mqtt.MQTT_ERR_SUCCESS
    try:
        assert c.connect("127.0.0.1", server.getsockname()[1]) == mqtt.MQTT_ERR_SUCCESS
        info = c.publish("t/q0", b"lost", 0)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS  # queued, as paho reports it
        first, _ = server.accept()
        with first:
            first.settimeout(10)
            assert first.recv(1) == b"", "the first connection closes without any data"
        second, _ = server.accept()
        with second:
            second.settimeout(10)
            kind, body = _read_packet(second)
            assert kind == 0x10 and body.endswith(b"twice")
            second.sendall(b"\x20\x02\x00\x00")
            assert done.wait(10)
            # The QoS 0 message queued on the replaced connection is reported lost.
            with pytest.raises(RuntimeError):
                info.wait_for_publish(5)
            assert info.rc == mqtt.MQTT_ERR_CONN_LOST
            c.disconnect()
            assert _read_packet(second)[0] == 0xE0
    finally:
        c.loop_stop()
    assert connects == [0]


def test_connect_async_while_the_loop_thread_sleeps_opens_one_connection(server):
    done = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="once")
    c.on_connect = lambda *a: done.set()
    c.loop_start()
    try:
        c.connect_async("127.0.0.1", server.getsockname()[1])
        conn, _ = server.accept()
        with conn:
            conn.settimeout(10)
            kind, body = _read_packet(conn)
            assert kind == 0x10 and body.endswith(b"once")
            conn.sendall(b"\x20\x02\x00\x00")
            assert done.wait(10)
            c.disconnect()
            assert _read_packet(conn)[0] == 0xE0
    finally:
        c.loop_stop()
