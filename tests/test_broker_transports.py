"""TLS, WebSocket and WebSocket-over-TLS listeners, with paho-mqtt as the client."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess

import pytest
from broker_support import V5, V311, Peer, connect_packet
from turbomqtt import Broker

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


def make_cert(directory, name: str, ca: tuple[str, str] | None = None) -> tuple[str, str]:
    """A certificate for 127.0.0.1 (self-signed, or signed by `ca`) and its key."""
    cert, key = str(directory / f"{name}.pem"), str(directory / f"{name}.key")
    base = [
        "openssl",
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key,
        "-subj",
        f"/CN={name}",
    ]
    if ca is None:
        cmd = [
            *base,
            "-x509",
            "-days",
            "2",
            "-out",
            cert,
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    else:
        csr = str(directory / f"{name}.csr")
        subprocess.run([*base, "-out", csr], check=True, capture_output=True, timeout=60)
        ext = directory / f"{name}.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=clientAuth\n")
        subprocess.run(
            [
                "openssl",
                "x509",
                "-req",
                "-in",
                csr,
                "-CA",
                ca[0],
                "-CAkey",
                ca[1],
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                cert,
                "-extfile",
                str(ext),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    server = make_cert(d, "server")
    client = make_cert(d, "client", ca=server)
    return {"server": server, "client": client}


def roundtrip(port: int, transport: str = "tcp", tls: dict | None = None, path: str = "/mqtt"):
    peers = []
    for cid, version in (("sub", V5), ("pub", V311)):
        p = Peer(port, cid, version, transport=transport)
        if transport == "websockets":
            p.client.ws_set_options(path=path)
        if tls is not None:
            p.client.tls_set(**tls)
        peers.append(p.connect())
    sub, pub = peers
    sub.subscribe("tr/t", 2)
    pub.publish("tr/t", b"over " + transport.encode(), 2)
    m = sub.get()
    assert m.payload == b"over " + transport.encode()
    for p in peers:
        p.disconnect()


def test_tls_listener(certs):
    cert, key = certs["server"]
    with Broker(listeners=[{"port": 0, "certfile": cert, "keyfile": key}]) as b:
        assert b.url.startswith("mqtts://")
        roundtrip(b.port, tls={"ca_certs": cert})


def test_tls_client_certificate_required(certs):
    cert, key = certs["server"]
    ccert, ckey = certs["client"]
    listener = {
        "port": 0,
        "certfile": cert,
        "keyfile": key,
        "cafile": cert,
        "require_certificate": True,
    }
    with Broker(listeners=[listener]) as b:
        roundtrip(b.port, tls={"ca_certs": cert, "certfile": ccert, "keyfile": ckey})
        # Without a client certificate the broker refuses the handshake: TLS 1.3
        # reports it at the first read, which then fails or sees the connection closed.
        ctx = ssl.create_default_context(cafile=cert)
        raw = socket.create_connection(("127.0.0.1", b.port), timeout=5)
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            try:
                tls.sendall(connect_packet("nocert", version=4))
                data = tls.recv(100)
            except (ssl.SSLError, ConnectionError):
                data = b""
        assert data == b"", "no CONNACK without a client certificate"


def test_bad_certificate_file_raises_at_start(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(ValueError, match="no certificate"):
        Broker(listeners=[{"port": 0, "certfile": str(bad), "keyfile": str(bad)}]).start()
    with pytest.raises(FileNotFoundError):
        Broker(listeners=[{"port": 0, "certfile": str(tmp_path / "x"), "keyfile": "y"}]).start()


def test_websocket_listener():
    with Broker(listeners=[{"port": 0, "transport": "websocket", "path": "/mqtt"}]) as b:
        assert b.url.startswith("ws://")
        roundtrip(b.port, transport="websockets")


def test_websocket_wrong_path_is_refused():
    with Broker(listeners=[{"port": 0, "transport": "websocket", "path": "/mqtt"}]) as b:
        p = Peer(b.port, "lost", V311, transport="websockets")
        p.client.ws_set_options(path="/elsewhere")
        with pytest.raises((OSError, ValueError)):
            p.client.connect("127.0.0.1", b.port)


def test_websocket_over_tls(certs):
    cert, key = certs["server"]
    listener = {"port": 0, "transport": "websocket", "certfile": cert, "keyfile": key}
    with Broker(listeners=[listener]) as b:
        assert b.url.startswith("wss://")
        roundtrip(b.port, transport="websockets", tls={"ca_certs": cert})


def test_tcp_tls_and_websocket_listeners_share_one_router(certs):
    cert, key = certs["server"]
    listeners = [
        {"port": 0},
        {"port": 0, "certfile": cert, "keyfile": key},
        {"port": 0, "transport": "websocket"},
    ]
    with Broker(listeners=listeners, sys_interval=0) as b:
        tcp_port, tls_port, ws_port = b.ports
        sub = Peer(ws_port, "ws-sub", V5, transport="websockets").connect()
        sub.subscribe("mix/#", 1)
        pub = Peer(tls_port, "tls-pub", V311)
        pub.client.tls_set(ca_certs=cert)
        pub.connect().publish("mix/a", b"from tls", 1)
        Peer(tcp_port, "tcp-pub", V5).connect().publish("mix/b", b"from tcp", 1)
        got = sorted([sub.get().payload, sub.get().payload])
        assert got == [b"from tcp", b"from tls"]
        assert {c["listener"].split(":")[0] for c in b.clients()} == {"mqtt", "mqtts", "ws"}


def test_stop_closes_tls_and_websocket_connections(certs):
    cert, key = certs["server"]
    listeners = [
        {"port": 0, "certfile": cert, "keyfile": key},
        {"port": 0, "transport": "websocket"},
    ]
    b = Broker(listeners=listeners).start()
    tls_port, ws_port = b.ports
    over_tls = Peer(tls_port, "t", V5)
    over_tls.client.tls_set(ca_certs=cert)
    over_tls.connect()
    over_ws = Peer(ws_port, "w", V311, transport="websockets").connect()
    b.stop()
    assert over_tls.disconnected.wait(5) and over_ws.disconnected.wait(5)
    for p in (over_tls, over_ws):
        p.client.loop_stop()
    with Broker(listeners=[{"port": tls_port, "certfile": cert, "keyfile": key}]) as again:
        assert again.port == tls_port


def _payloads() -> list[bytes]:
    """Small and large payloads alternating; the large ones straddle the size from which
    the broker writes a payload from its own buffer and reads a packet into one."""
    pattern = bytes(range(256))
    out = []
    for i, n in enumerate([16 * 1024 - 1, 16 * 1024, 64 * 1024 + 3, 1024 * 1024, 200_000] * 2):
        out.append(b"small %d" % i)
        rotated = pattern[i:] + pattern[:i]
        out.append((rotated * (n // 256 + 1))[:n])
    return out


@pytest.mark.parametrize("transport", ["tcp", "tls", "websockets"])
def test_large_payloads_arrive_whole_and_in_order(certs, transport):
    cert, key = certs["server"]
    listener: dict = {"port": 0}
    if transport == "tls":
        listener.update(certfile=cert, keyfile=key)
    if transport == "websockets":
        listener.update(transport="websocket")
    with Broker(listeners=[listener]) as b:
        peers = []
        kind = "websockets" if transport == "websockets" else "tcp"
        for cid, version in (("big-sub", V5), ("big-pub", V311)):
            p = Peer(b.port, cid, version, transport=kind)
            if transport == "tls":
                p.client.tls_set(ca_certs=cert)
            peers.append(p.connect())
        sub, pub = peers
        sub.subscribe("big/#", 1)
        payloads = _payloads()
        # All in flight at once (QoS 0 and 1 mixed), so the broker's reads hold several
        # packets, whole and partial, and its writes several payloads.
        infos = [
            pub.client.publish(f"big/{i % 3}", data, qos=i % 2) for i, data in enumerate(payloads)
        ]
        for info in infos:
            info.wait_for_publish(10)
        got = [sub.get() for _ in payloads]
        assert [m.payload for m in got] == payloads
        assert [m.topic for m in got] == [f"big/{i % 3}" for i in range(len(payloads))]
        for p in peers:
            p.disconnect()
