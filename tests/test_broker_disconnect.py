"""A PUBLISH immediately followed by DISCONNECT (or by closing the socket) is routed.

`publish.single()`-style scripts connect, publish and disconnect without waiting for
anything in between, often without reading CONNACK or PUBACK before closing. Every packet
that precedes DISCONNECT in the stream must reach the subscribers, whatever way the
bytes are split into TCP segments and however abruptly the socket is closed after them.
"""

from __future__ import annotations

import socket
import struct

import paho.mqtt.client as paho
import pytest
from broker_support import (
    TIMEOUT,
    V5,
    V311,
    Peer,
    RawPeer,
    connect_packet,
    packet,
    publish_packet,
    subscribe_packet,
)

ITERATIONS = 50


def disconnect_packet(version: int) -> bytes:
    # v5 §3.14.2.1: a DISCONNECT with reason 0 and no properties may have no body.
    return packet(0xE0, b"\x00\x00" if version == 5 else b"")


def parse_publish(first: int, body: bytes, v5: bool) -> tuple[str, bytes]:
    (n,) = struct.unpack("!H", body[:2])
    topic = body[2 : 2 + n].decode()
    i = 2 + n
    if (first >> 1) & 3:
        i += 2
    if v5:
        length, mult = 0, 1
        while True:
            b = body[i]
            i += 1
            length += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                break
        i += length
    return topic, body[i:]


class RawSubscriber:
    def __init__(self, port: int, topic: str) -> None:
        self.peer = RawPeer(port)
        self.peer.connect(client_id=f"sub-{topic}", version=5)
        self.peer.send(subscribe_packet(topic, qos=0))
        self.peer.expect(9)

    def next_payload(self) -> bytes:
        got = self.peer.read_packet(TIMEOUT)
        assert got is not None, "subscriber connection closed"
        first, body = got
        assert first >> 4 == 3, f"expected PUBLISH, got {first:#x}"
        return parse_publish(first, body, v5=True)[1]


def open_socket(port: int, rst_on_close: bool) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if rst_on_close:
        # Close with a reset, as a process that dies does with unread input.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return s


MODES = [
    # CONNECT, PUBLISH and DISCONNECT in one write, closed without reading anything.
    "all_in_one_send",
    # CONNECT; then PUBLISH + DISCONNECT in one write once CONNACK arrived.
    "publish_disconnect_one_send",
    # CONNECT, PUBLISH, DISCONNECT as three back-to-back writes, nothing read.
    "back_to_back_sends",
    # CONNECT + PUBLISH, then the socket closed (FIN) without DISCONNECT.
    "publish_then_close",
    # CONNECT + PUBLISH + DISCONNECT, then the socket reset (SO_LINGER 0).
    "publish_disconnect_then_reset",
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_publish_before_disconnect_is_always_routed(mqtt_broker, version, qos, mode):
    port = mqtt_broker.port
    topic = f"last/{version}/{qos}/{mode}"
    sub = RawSubscriber(port, topic)
    v5 = version == 5
    try:
        for i in range(ITERATIONS):
            payload = f"{mode}-{i}".encode()
            connect = connect_packet(client_id=f"pub-{i}", version=version)
            publish = publish_packet(topic, payload, qos=qos, pkid=1 + i, v5=v5)
            disconnect = disconnect_packet(version)
            s = open_socket(port, rst_on_close=mode == "publish_disconnect_then_reset")
            try:
                if mode == "all_in_one_send":
                    s.sendall(connect + publish + disconnect)
                elif mode == "publish_disconnect_one_send":
                    s.sendall(connect)
                    assert s.recv(4)[0] >> 4 == 2  # CONNACK (v3: 4 bytes; v5: at least)
                    s.sendall(publish + disconnect)
                elif mode == "back_to_back_sends":
                    s.sendall(connect)
                    s.sendall(publish)
                    s.sendall(disconnect)
                elif mode == "publish_then_close":
                    s.sendall(connect + publish)
                else:
                    s.sendall(connect + publish + disconnect)
            finally:
                s.close()
            assert sub.next_payload() == payload, f"iteration {i}"
    finally:
        sub.peer.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("protocol", [V311, V5], ids=["v311", "v5"])
def test_publish_single_style_script_reaches_a_paho_subscriber(mqtt_broker, protocol):
    """connect(), publish(qos=1), disconnect() with no network loop, like paho's
    `publish.single` when it returns early: the message is routed every time."""
    watcher = Peer(mqtt_broker.port, client_id="single-watch", protocol=protocol).connect()
    watcher.subscribe("single/#", 1)
    try:
        for i in range(20):
            c = paho.Client(
                paho.CallbackAPIVersion.VERSION2, client_id=f"single-{i}", protocol=protocol
            )
            c.connect("127.0.0.1", mqtt_broker.port)
            c.publish("single/x", f"m{i}", 1)
            c.disconnect()
            m = watcher.get()
            assert (m.topic, m.payload) == ("single/x", f"m{i}".encode())
    finally:
        watcher.disconnect()


def test_packets_after_connect_in_the_same_segment_are_answered(mqtt_broker):
    """A SUBSCRIBE and a PINGREQ that arrive with CONNECT are handled at once, without
    waiting for more input."""
    raw = RawPeer(mqtt_broker.port)
    try:
        raw.send(
            connect_packet(client_id="eager", version=5)
            + subscribe_packet("eager/t")
            + packet(0xC0, b"")
        )
        raw.expect(2)
        raw.expect(9)
        raw.expect(13)
        raw.send(publish_packet("eager/t", b"x", v5=True))
        first, body = raw.read_packet() or (0, b"")
        assert first >> 4 == 3 and parse_publish(first, body, v5=True) == ("eager/t", b"x")
    finally:
        raw.close()
