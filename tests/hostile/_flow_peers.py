"""Raw-socket MQTT 3.1.1 peers for the flow-control tests: a subscriber that never reads,
and clients whose reader thread counts what arrives (acknowledging QoS 1), so a test
waits on counts instead of sleeping."""

from __future__ import annotations

import socket
import struct
import threading
import time

from broker_support import (
    ack_packet,
    connect_packet,
    publish_packet,
    split_frame,
    subscribe_packet,
)


def stuck_subscriber(port: int, client_id: str, topic: str, qos: int) -> socket.socket:
    """Connects, subscribes and then never reads again (a small receive buffer, so the
    broker's writes to it stop early)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    s.sendall(connect_packet(client_id=client_id, version=4))
    reader = PacketReader(s)
    assert reader.next()[0] >> 4 == 2, "CONNACK"
    s.sendall(subscribe_packet(topic, qos, v5=False))
    assert reader.next()[0] >> 4 == 9, "SUBACK"
    return s


class PacketReader:
    """Packets off a blocking socket, buffered."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def next(self) -> tuple[int, bytes]:
        while True:
            parsed = self._parse()
            if parsed is not None:
                return parsed
            chunk = self.sock.recv(262144)
            if not chunk:
                raise ConnectionAbortedError("closed by the broker")
            self.buf += chunk

    def _parse(self) -> tuple[int, bytes] | None:
        frame = split_frame(self.buf)
        if frame is None:
            return None
        first, body, end = frame
        del self.buf[:end]
        return first, body


class CountingClient:
    """A 3.1.1 client whose thread reads everything: PUBLISHes are counted per topic
    (payloads kept if asked) and acknowledged at QoS 1; PUBACKs are counted."""

    def __init__(self, port: int, client_id: str, keep_payloads: bool = False) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(connect_packet(client_id=client_id, version=4))
        reader = PacketReader(sock)
        assert reader.next()[0] >> 4 == 2, "CONNACK"
        self._start(sock, reader, keep_payloads)

    @classmethod
    def adopt(cls, sock: socket.socket) -> CountingClient:
        """Starts reading a connected socket (a stuck subscriber that reads again),
        keeping payloads."""
        sock.settimeout(30)
        client = cls.__new__(cls)
        client._start(sock, PacketReader(sock), True)
        return client

    def _start(self, sock: socket.socket, reader: PacketReader, keep_payloads: bool) -> None:
        self.sock = sock
        self.reader = reader
        self.keep_payloads = keep_payloads
        self.cond = threading.Condition()
        self.published: dict[str, int] = {}
        self.payloads: dict[str, list[bytes]] = {}
        self.pubacks = 0
        self.subacks = 0
        self.closed = False
        self.write_lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def send(self, data: bytes) -> None:
        with self.write_lock:
            self.sock.sendall(data)

    def subscribe(self, topic: str, qos: int) -> None:
        self.send(subscribe_packet(topic, qos, v5=False))
        self.wait(lambda: self.subacks >= 1, 10)

    def _run(self) -> None:
        try:
            while True:
                first, body = self.reader.next()
                kind = first >> 4
                with self.cond:
                    if kind == 3:
                        qos = (first >> 1) & 3
                        n = struct.unpack("!H", body[:2])[0]
                        topic = body[2 : 2 + n].decode()
                        rest = body[2 + n :]
                        if qos:
                            pkid = struct.unpack("!H", rest[:2])[0]
                            rest = rest[2:]
                            self.send(ack_packet(4, pkid))
                        self.published[topic] = self.published.get(topic, 0) + 1
                        if self.keep_payloads:
                            self.payloads.setdefault(topic, []).append(rest)
                    elif kind == 4:
                        self.pubacks += 1
                    elif kind == 9:
                        self.subacks += 1
                    self.cond.notify_all()
        except (OSError, ConnectionAbortedError):
            with self.cond:
                self.closed = True
                self.cond.notify_all()

    def wait(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return condition()
                self.cond.wait(left)
            return True

    def close(self) -> None:
        self.sock.close()


def flood(topic: str, n: int, size: int, qos: int) -> bytes:
    """n PUBLISH packets (3.1.1) with payloads of `size` bytes starting with their index."""
    out = bytearray()
    for i in range(n):
        payload = i.to_bytes(4, "big") + b"x" * (size - 4)
        out += publish_packet(topic, payload, qos=qos, pkid=i % 65535 + 1, v5=False)
    return bytes(out)
