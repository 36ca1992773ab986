"""turbomqtt.client over unix sockets, WebSockets and TLS, against mosquitto on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import pytest
import turbomqtt.client as mqtt
from conftest import MOSQUITTO_BIN
from turbomqtt import _core

pytestmark = [
    pytest.mark.skipif(not hasattr(_core, "ClientCore"), reason="core without ClientCore"),
    pytest.mark.requires_mosquitto,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl"),
]

WAIT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def broker():
    """mosquitto with a TCP, a unix-socket, a WebSocket and a TLS listener."""
    d = tempfile.mkdtemp(prefix="tmqtt-transports-")
    os.chmod(d, 0o777)  # mosquitto may drop to its own user and must create the socket here
    ca_key, ca, key, csr, crt = (os.path.join(d, n) for n in
                                 ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=turbomqtt test CA", "-keyout", ca_key, "-out", ca)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", key,
            "-out", csr)
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days",
            "2", "-extfile", ext, "-out", crt)
    for name in os.listdir(d):
        os.chmod(os.path.join(d, name), 0o644)
    ports = {"tcp": free_port(), "ws": free_port(), "tls": free_port()}
    unix_path = os.path.join(d, "mqtt.sock")
    conf = os.path.join(d, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write(f"per_listener_settings false\nallow_anonymous true\n"
                f"listener {ports['tcp']} 127.0.0.1\n"
                f"listener 0 {unix_path}\n"
                f"listener {ports['ws']} 127.0.0.1\nprotocol websockets\n"
                f"listener {ports['tls']} 127.0.0.1\ncafile {ca}\ncertfile {crt}\nkeyfile {key}\n")
    proc = subprocess.Popen([MOSQUITTO_BIN, "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", ports["tls"]), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield {"ports": ports, "unix": unix_path, "ca": ca, "dir": d}
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(d, ignore_errors=True)


def round_trip(client: mqtt.Client, host: str, port: int, topic: str) -> bytes:
    got: list[bytes] = []
    done = threading.Event()
    subscribed = threading.Event()
    client.on_connect = lambda c, *a: c.subscribe(topic, 1)
    client.on_subscribe = lambda *a: subscribed.set()

    def on_message(c, u, m):
        got.append(m.payload)
        done.set()

    client.on_message = on_message
    client.connect(host, port)
    client.loop_start()
    try:
        assert subscribed.wait(WAIT)
        client.publish(topic, b"via " + topic.encode(), 1)
        assert done.wait(WAIT)
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0]


def test_unix_socket_transport(broker):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, transport="unix")
    assert round_trip(c, broker["unix"], 1, "unix") == b"via unix"


def test_websocket_transport_with_path_and_headers(broker):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, transport="websockets")
    c.ws_set_options(path="/", headers={"X-Test": "1"})
    assert round_trip(c, "127.0.0.1", broker["ports"]["ws"], "ws") == b"via ws"


def test_websocket_upgrade_refused_raises_websocket_connection_error(broker):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, transport="websockets")
    # The plain MQTT listener answers the HTTP upgrade request with garbage / a close.
    with pytest.raises(mqtt.WebsocketConnectionError) as info:
        c.connect("127.0.0.1", broker["ports"]["tcp"])
    assert isinstance(info.value, ConnectionError)


def test_tls_with_ca_file(broker):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.tls_set(ca_certs=broker["ca"])
    assert round_trip(c, "127.0.0.1", broker["ports"]["tls"], "tls") == b"via tls"


def test_tls_set_context_with_loaded_ca(broker):
    ctx = ssl.create_default_context(cafile=broker["ca"])
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.tls_set_context(ctx)
    assert round_trip(c, "localhost", broker["ports"]["tls"], "ctx") == b"via ctx"


def test_tls_insecure_context_as_aiomqtt_uses_it(broker):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.tls_set_context(ssl.SSLContext(ssl.PROTOCOL_TLS))  # CERT_NONE, as in aiomqtt's test
    assert round_trip(c, "127.0.0.1", broker["ports"]["tls"], "insecure") == b"via insecure"


def test_tls_verification_failure_raises_ssl_error(broker):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.tls_set()  # system roots: our throwaway CA is not among them
    with pytest.raises(ssl.SSLError) as info:
        c.connect("127.0.0.1", broker["ports"]["tls"])
    assert "certificate verify failed" in str(info.value) or info.value.errno == 1


def test_tls_set_with_missing_ca_file_raises_at_once():
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    with pytest.raises(FileNotFoundError):
        c.tls_set(ca_certs="/nonexistent/ca.crt")


@pytest.mark.parametrize("transport", ["tcp", "unix", "websockets", "tls"])
def test_large_payloads_interleaved_with_small_ones_arrive_intact(broker, transport):
    # Large payloads are written from the publisher's own buffer (vectored on TCP, one
    # after the other elsewhere) between packets encoded into the write buffer: every
    # transport must deliver them whole and in order.
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                    transport="unix" if transport == "unix" else
                    "websockets" if transport == "websockets" else "tcp")
    host, port = "127.0.0.1", broker["ports"].get(
        {"websockets": "ws"}.get(transport, transport), 1)
    if transport == "unix":
        host = broker["unix"]
    if transport == "tls":
        c.tls_set(ca_certs=broker["ca"])
    payloads = [bytes([i % 251]) * (70_000 if i % 3 == 0 else 10 + i) for i in range(30)]
    got: list[bytes] = []
    done = threading.Event()
    subscribed = threading.Event()
    c.on_connect = lambda cl, *a: cl.subscribe(f"big/{transport}", 1)
    c.on_subscribe = lambda *a: subscribed.set()

    def on_message(cl, u, m):
        got.append(m.payload)
        if len(got) == len(payloads):
            done.set()

    c.on_message = on_message
    c.connect(host, port)
    c.loop_start()
    try:
        assert subscribed.wait(WAIT)
        infos = [c.publish(f"big/{transport}", p, 1) for p in payloads]
        assert done.wait(WAIT)
        infos[-1].wait_for_publish(WAIT)
    finally:
        c.disconnect()
        c.loop_stop()
    assert got == payloads
