"""A host driving the paho facade's loop itself (aiomqtt's mode: ``on_socket_register_write``
set, ``loop_read()`` / ``loop_write()`` called by the host) sees what paho shows it: the
PUBREC of an incoming QoS 2 message goes out in a ``loop_write()`` of the host after
``loop_read()`` took the PUBLISH in, never earlier. Any other mode answers on receipt."""

from __future__ import annotations

import select
import socket

import pytest
import turbomqtt.client as mqtt
from _raw_mqtt import read_packet

pytestmark = pytest.mark.timeout(30)

V2 = mqtt.CallbackAPIVersion.VERSION2
WAIT = 10.0
# How long a fake broker listens to be sure a packet was *not* sent.
QUIET = 0.3

CONNACK = b"\x20\x02\x00\x00"
PUBLISH_QOS2_MID7 = b"\x34\x06\x00\x01q\x00\x07x"
PUBREL_MID7 = b"\x62\x02\x00\x07"


@pytest.fixture
def server():
    with socket.create_server(("127.0.0.1", 0)) as srv:
        srv.settimeout(WAIT)
        yield srv


def nothing_sent(conn: socket.socket) -> bool:
    conn.settimeout(QUIET)
    try:
        conn.recv(1, socket.MSG_PEEK)
    except TimeoutError:
        return True
    finally:
        conn.settimeout(WAIT)
    return False


def loop_read_until(c: mqtt.Client, done) -> None:
    sock = c.socket()
    for _ in range(200):
        if done():
            return
        select.select([sock], [], [], 0.05)
        assert c.loop_read() == mqtt.MQTT_ERR_SUCCESS
    raise AssertionError("condition not reached")


def test_an_external_loop_gets_the_pubrec_sent_only_in_its_write_turn(server):
    c = mqtt.Client(V2, client_id="ext-qos2")
    turns: list[str] = []
    got: list[mqtt.MQTTMessage] = []
    connected: list[int] = []
    c.on_socket_register_write = lambda *a: turns.append("register")
    c.on_socket_unregister_write = lambda *a: turns.append("unregister")
    c.on_connect = lambda cl, ud, flags, rc, props: connected.append(rc.value)
    c.on_message = lambda cl, ud, m: got.append(m)
    c.connect("127.0.0.1", server.getsockname()[1])
    conn, _ = server.accept()
    with conn:
        conn.settimeout(WAIT)
        assert turns == ["register"] and c.want_write()
        assert nothing_sent(conn), "CONNECT waits for the host's write turn, as in paho"
        assert c.loop_write() == mqtt.MQTT_ERR_SUCCESS
        assert turns == ["register", "unregister"] and not c.want_write()
        assert read_packet(conn)[0] == 0x10
        conn.sendall(CONNACK + PUBLISH_QOS2_MID7)
        assert nothing_sent(conn), "no PUBREC before loop_read() took the PUBLISH in"
        loop_read_until(c, lambda: connected and turns[-1] == "register")
        assert c.want_write() and got == []
        assert nothing_sent(conn), "nor before the host's loop_write()"
        # One turn later than paho (the core may hand over in two loop_read() calls what
        # paho reads in one): the first turn keeps the registration.
        assert c.loop_write() == mqtt.MQTT_ERR_SUCCESS
        assert turns[-1] == "register" and c.want_write()
        assert nothing_sent(conn)
        assert c.loop_write() == mqtt.MQTT_ERR_SUCCESS
        assert turns[-1] == "unregister" and not c.want_write()
        assert read_packet(conn) == (0x50, b"\x00\x07")
        conn.sendall(PUBREL_MID7)
        loop_read_until(c, lambda: got)
        assert (got[0].topic, got[0].payload, got[0].qos, got[0].mid) == ("q", b"x", 2, 7)
        assert read_packet(conn) == (0x70, b"\x00\x07")
        assert turns.count("register") == 2
        c._sock_close()


def test_without_an_external_loop_the_pubrec_goes_out_on_receipt(server):
    # No loop function is called at all: the core answers by itself.
    c = mqtt.Client(V2, client_id="plain-qos2")
    c.connect("127.0.0.1", server.getsockname()[1])
    conn, _ = server.accept()
    with conn:
        conn.settimeout(WAIT)
        assert read_packet(conn)[0] == 0x10
        conn.sendall(CONNACK + PUBLISH_QOS2_MID7)
        assert read_packet(conn) == (0x50, b"\x00\x07")
        c._sock_close()
