"""How a connection ends after disconnect(): everything queued before DISCONNECT reaches
the broker, and the socket is closed without a reset.

A raw-socket broker on 127.0.0.1 scripts the worst order of events: the CONNACK arrives
only after the client has queued PUBLISH and DISCONNECT (connect(), publish(),
disconnect() with no loop running, as publish.single() does).
"""

from __future__ import annotations

import socket
import threading

import pytest
import turbomqtt.client as mqtt
from _raw_mqtt import read_packet as _read_packet

pytestmark = pytest.mark.timeout(30)


class LateConnackBroker:
    """Reads CONNECT, PUBLISH and DISCONNECT, only then answers CONNACK and PUBACK (data
    the client has not read when it closes), then closes its side."""

    def __init__(self, v5: bool) -> None:
        self.v5 = v5
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.port = self.server.getsockname()[1]
        self.packets: list[tuple[int, bytes]] = []
        self.client_eof = False
        self.reset = False
        self.error: Exception | None = None
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            with self.server:
                self.server.settimeout(10)
                conn, _ = self.server.accept()
                with conn:
                    conn.settimeout(10)
                    for _ in range(3):
                        self.packets.append(_read_packet(conn))
                    # The client shuts its write side after DISCONNECT.
                    self.client_eof = conn.recv(1) == b""
                    connack = b"\x20\x03\x00\x00\x00" if self.v5 else b"\x20\x02\x00\x00"
                    mid = self.packets[1][1][2 + len(b"late/t"):][:2]
                    conn.sendall(connack + b"\x40\x02" + mid)
                    self.closing.set()
                    conn.shutdown(socket.SHUT_WR)
                    # A client that closed over the unread CONNACK/PUBACK made its
                    # kernel answer them with a reset.
                    try:
                        while conn.recv(1024):
                            pass
                    except ConnectionResetError:
                        self.reset = True
        except OSError as e:  # reported by the test (EOFError, timeouts, resets)
            self.error = e


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5])
def test_publish_then_disconnect_before_connack_is_flushed_and_closed_cleanly(protocol):
    broker = LateConnackBroker(v5=protocol == mqtt.MQTTv5)
    calls: list[tuple] = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="late", protocol=protocol)
    c.on_connect = lambda *a: calls.append(("connect", a[3]))
    c.on_disconnect = lambda *a: calls.append(("disconnect", a[3]))
    c.connect("127.0.0.1", broker.port)
    assert c.publish("late/t", b"kept", 1).rc == mqtt.MQTT_ERR_SUCCESS
    assert c.disconnect() == mqtt.MQTT_ERR_SUCCESS
    # disconnect() with no loop completes inline, and only after the broker closed: the
    # client read what the broker sent last instead of closing over unread data (which
    # resets the connection and can discard the PUBLISH at the broker).
    assert broker.closing.is_set()
    broker.thread.join(10)
    assert broker.error is None, broker.error
    assert not broker.reset
    kinds = [first >> 4 for first, _ in broker.packets]
    assert kinds == [1, 3, 14], "CONNECT, PUBLISH, DISCONNECT in that order"
    first, body = broker.packets[1]
    assert first & 0x06 == 0x02 and body.endswith(b"kept")
    assert broker.client_eof
    # The late CONNACK is not reported (paho never reads it); the disconnect is clean.
    assert [k for k, _ in calls] == ["disconnect"] and calls[0][1] == 0
    assert c.socket() is None
