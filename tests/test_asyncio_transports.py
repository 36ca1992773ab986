"""turbomqtt.asyncio over every transport mosquitto offers: unix socket, WebSocket and
TLS (TLSParameters and ssl.SSLContext), plus a TLS verification failure."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import uuid
from pathlib import Path

import pytest
import turbomqtt.asyncio as mqtt
from _asyncio_support import Mosquitto, free_port

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl"),
]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    d: Path = tmp_path_factory.mktemp("aio-tls")
    os.chmod(d, 0o755)
    ca, ca_key, key, csr, crt = (
        str(d / n) for n in ("ca.pem", "ca.key", "srv.key", "srv.csr", "srv.pem")
    )
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=aio test CA",
        "-keyout",
        ca_key,
        "-out",
        ca,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        key,
        "-out",
        csr,
    )
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca,
        "-CAkey",
        ca_key,
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        str(d / "san.cnf"),
        "-out",
        crt,
    )
    ws_port, tls_port = free_port(), free_port()
    sock = d / "mqtt.sock"
    extra = (
        f"listener 0 {sock}\n"
        f"listener {ws_port} 127.0.0.1\nprotocol websockets\n"
        f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {crt}\nkeyfile {key}\n"
    )
    m = Mosquitto(d, extra)
    m.start()
    yield {"tcp": m.port, "ws": ws_port, "tls": tls_port, "unix": str(sock), "ca": ca}
    m.stop()


async def round_trip(client: mqtt.Client) -> bytes:
    topic = f"tr/{uuid.uuid4().hex[:8]}"
    async with client, client.subscription(topic, qos=1) as sub:
        await client.publish(topic, "hi", qos=1)
        return (await asyncio.wait_for(sub.get(), 5)).payload


async def test_unix_socket(tls_broker):
    assert await round_trip(mqtt.Client(tls_broker["unix"], transport="unix")) == b"hi"


async def test_websockets(tls_broker):
    c = mqtt.Client("127.0.0.1", tls_broker["ws"], transport="websockets")
    assert await round_trip(c) == b"hi"


async def test_tls_with_parameters(tls_broker):
    tls = mqtt.TLSParameters(ca_certs=tls_broker["ca"])
    assert await round_trip(mqtt.Client("127.0.0.1", tls_broker["tls"], tls=tls)) == b"hi"


async def test_tls_with_ssl_context(tls_broker):
    ctx = ssl.create_default_context(cafile=tls_broker["ca"])
    assert await round_trip(mqtt.Client("localhost", tls_broker["tls"], tls=ctx)) == b"hi"


async def test_tls_unknown_ca_fails_verification(tls_broker):
    ctx = ssl.create_default_context()  # system roots only: our test CA is unknown
    with pytest.raises(ssl.SSLCertVerificationError):
        async with mqtt.Client("127.0.0.1", tls_broker["tls"], tls=ctx):
            pass
    insecure = mqtt.TLSParameters(verify=False, check_hostname=False)
    assert await round_trip(mqtt.Client("127.0.0.1", tls_broker["tls"], tls=insecure)) == b"hi"
