"""Helpers for the broker tests: a paho-mqtt peer that turns callbacks into waitable
events, and a raw-socket MQTT peer that writes hand-built packets."""

from __future__ import annotations

import queue
import socket
import struct
import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

TIMEOUT = 5.0

V311 = paho.MQTTv311
V5 = paho.MQTTv5
V31 = paho.MQTTv31


class Peer:
    """A real paho-mqtt 2.2.0 client running its own loop thread."""

    def __init__(self, port: int, client_id: str = "", protocol: int = V5, **kw: Any) -> None:
        self.port = port
        self.protocol = protocol
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            **kw,
        )
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack: tuple[Any, Any, Any] | None = None
        self.disconnect_reason: Any = None
        self._acks: dict[int, threading.Event] = {}
        self._ack_codes: dict[int, Any] = {}
        self._lock = threading.Lock()
        c = self.client
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = lambda _c, _u, m: self.messages.put(m)
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_subscribe

    def _on_connect(self, _c: Any, _u: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connack = (flags, rc, props)
        self.connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, rc: Any, _props: Any) -> None:
        self.disconnect_reason = rc
        self.disconnected.set()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: Any, _props: Any) -> None:
        with self._lock:
            self._ack_codes[mid] = codes
            self._acks.setdefault(mid, threading.Event()).set()

    def connect(
        self,
        keepalive: int = 60,
        clean: bool = True,
        properties: Properties | None = None,
        username: str | None = None,
        password: str | None = None,
        will: tuple[str, bytes, int, bool] | None = None,
        will_properties: Properties | None = None,
        expect_success: bool = True,
    ) -> Peer:
        c = self.client
        if username is not None:
            c.username_pw_set(username, password)
        if will is not None:
            c.will_set(*will, properties=will_properties)
        self.connected.clear()
        self.disconnected.clear()
        if self.protocol == V5:
            c.connect("127.0.0.1", self.port, keepalive, clean_start=clean, properties=properties)
        else:
            # paho takes clean_session in its constructor only; a Peer reconnects with
            # either value, so set the attribute that constructor argument sets.
            c._clean_session = clean
            c.connect("127.0.0.1", self.port, keepalive)
        c.loop_start()
        assert self.connected.wait(TIMEOUT), "no CONNACK"
        if expect_success:
            assert self.reason_code == 0, f"connect refused: {self.connack}"
        return self

    @property
    def reason_code(self) -> int:
        assert self.connack is not None
        rc = self.connack[1]
        return rc.value if isinstance(rc, ReasonCode) else int(rc)

    @property
    def session_present(self) -> bool:
        assert self.connack is not None
        return bool(self.connack[0].session_present)

    def subscribe(self, topic: Any, qos: int = 0, **kw: Any) -> list[int]:
        rc, mid = self.client.subscribe(topic, qos, **kw)
        assert rc == 0
        with self._lock:
            ev = self._acks.setdefault(mid, threading.Event())
        assert ev.wait(TIMEOUT), "no SUBACK"
        return [c.value if isinstance(c, ReasonCode) else int(c) for c in self._ack_codes[mid]]

    def unsubscribe(self, topic: Any, **kw: Any) -> Any:
        rc, mid = self.client.unsubscribe(topic, **kw)
        assert rc == 0
        with self._lock:
            ev = self._acks.setdefault(mid, threading.Event())
        assert ev.wait(TIMEOUT), "no UNSUBACK"
        return self._ack_codes[mid]

    def publish(
        self, topic: str, payload: Any = b"", qos: int = 0, retain: bool = False, **kw: Any
    ) -> paho.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos, retain, **kw)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published()
        return info

    def get(self, timeout: float = TIMEOUT) -> paho.MQTTMessage:
        return self.messages.get(timeout=timeout)

    def get_none(self, timeout: float = 0.3) -> None:
        """Asserts that no message arrives within `timeout` (used after a marker)."""
        try:
            m = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message on {m.topic}: {m.payload!r}")

    def disconnect(self, **kw: Any) -> None:
        self.client.disconnect(**kw)
        self.disconnected.wait(TIMEOUT)
        self.client.loop_stop()

    def kill(self) -> None:
        """Drops the TCP connection without DISCONNECT (an unclean disconnect)."""
        sock = self.client.socket()
        self.client.loop_stop()
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def wait_until(condition: Any, timeout: float = TIMEOUT) -> None:
    """Polls `condition` (broker state has no event to wait on) until true or timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def offline(broker: Any, client_id: str) -> None:
    """Waits until the broker has processed `client_id`'s disconnection."""
    wait_until(lambda: client_id not in [c["client_id"] for c in broker.clients()])


def v5_props(packet_type: int, **values: Any) -> Properties:
    p = Properties(packet_type)
    for k, v in values.items():
        setattr(p, k, v)
    return p


def connect_props(**values: Any) -> Properties:
    return v5_props(PacketTypes.CONNECT, **values)


def publish_props(**values: Any) -> Properties:
    return v5_props(PacketTypes.PUBLISH, **values)


# -- raw packets ---------------------------------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def connect_packet(
    client_id: str = "raw",
    version: int = 5,
    keepalive: int = 60,
    clean: bool = True,
    will: tuple[str, bytes, int, bool] | None = None,
    username: str | None = None,
    password: str | None = None,
    props: bytes = b"",
) -> bytes:
    flags = 0x02 if clean else 0
    payload = mqtt_str(client_id)
    if will is not None:
        topic, msg, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        if version == 5:
            payload += varint(0)
        payload += mqtt_str(topic) + mqtt_str(msg)
    if username is not None:
        flags |= 0x80
        payload += mqtt_str(username)
    if password is not None:
        flags |= 0x40
        payload += mqtt_str(password)
    name = b"MQIsdp" if version == 3 else b"MQTT"
    var = mqtt_str(name) + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        var += varint(len(props)) + props
    return packet(0x10, var + payload)


def publish_packet(
    topic: str,
    payload: bytes,
    qos: int = 0,
    pkid: int = 1,
    v5: bool = True,
    dup: bool = False,
    retain: bool = False,
    props: bytes = b"",
) -> bytes:
    first = 0x30 | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
    body = mqtt_str(topic)
    if qos:
        body += struct.pack("!H", pkid)
    if v5:
        body += varint(len(props)) + props
    return packet(first, body + payload)


def subscribe_packet(topic: str, qos: int = 0, pkid: int = 1, v5: bool = True) -> bytes:
    body = struct.pack("!H", pkid) + (varint(0) if v5 else b"") + mqtt_str(topic) + bytes([qos])
    return packet(0x82, body)


def ack_packet(kind: int, pkid: int) -> bytes:
    """PUBACK (4), PUBREC (5), PUBREL (6) or PUBCOMP (7) with reason success."""
    first = (kind << 4) | (0x02 if kind == 6 else 0)
    return packet(first, struct.pack("!H", pkid))


def split_frame(buf: bytes | bytearray) -> tuple[int, bytes, int] | None:
    """(first byte, body, bytes used) of the MQTT packet at the front of ``buf``, or
    None while it is incomplete."""
    length, mult, i = 0, 1, 1
    while True:
        if i >= len(buf):
            return None
        b = buf[i]
        length += (b & 0x7F) * mult
        mult *= 128
        i += 1
        if not b & 0x80:
            break
    if len(buf) < i + length:
        return None
    return buf[0], bytes(buf[i : i + length]), i + length


class RawPeer:
    """A client speaking MQTT through a plain socket, for protocol-level tests."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_packet(self, timeout: float = TIMEOUT) -> tuple[int, bytes] | None:
        """(first byte, body) of the next packet, or None when the socket closed."""
        self.sock.settimeout(timeout)
        while True:
            parsed = self._parse()
            if parsed is not None:
                return parsed
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return None
            if not chunk:
                return None
            self.buf += chunk

    def _parse(self) -> tuple[int, bytes] | None:
        frame = split_frame(self.buf)
        if frame is None:
            return None
        first, body, end = frame
        self.buf = self.buf[end:]
        return first, body

    def expect(self, packet_type: int, timeout: float = TIMEOUT) -> bytes:
        got = self.read_packet(timeout)
        assert got is not None, f"connection closed while waiting for packet type {packet_type}"
        assert got[0] >> 4 == packet_type, (
            f"expected type {packet_type}, got {got[0]:#x} {got[1]!r}"
        )
        return got[1]

    def connect(self, **kw: Any) -> bytes:
        self.send(connect_packet(**kw))
        return self.expect(2)

    def expect_closed(self, timeout: float = TIMEOUT) -> list[tuple[int, bytes]]:
        """Reads until the broker closes the connection; returns what came before."""
        seen = []
        while True:
            got = self.read_packet(timeout)
            if got is None:
                return seen
            seen.append(got)

    def close(self) -> None:
        self.sock.close()


def disconnect_reason(packets: list[tuple[int, bytes]]) -> int | None:
    """The reason code of the DISCONNECT among `packets` (v5), if any."""
    for first, body in packets:
        if first >> 4 == 14:
            return body[0] if body else 0
    return None
