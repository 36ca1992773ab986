"""Reading MQTT packets off a blocking socket, for the raw-socket fake brokers of tests."""

from __future__ import annotations

import socket


def recv_exact(conn: socket.socket, n: int) -> bytes:
    """Exactly n bytes; ConnectionAbortedError if the peer closes first."""
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionAbortedError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def read_packet(conn: socket.socket) -> tuple[int, bytes]:
    """One MQTT packet as (first byte, body)."""
    first = recv_exact(conn, 1)[0]
    length, shift = 0, 0
    while True:
        b = recv_exact(conn, 1)[0]
        length |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return first, recv_exact(conn, length)
