"""turbomqtt.asyncio over every transport mosquitto offers: unix socket, WebSocket and
TLS (TLSParameters and ssl.SSLContext), plus a TLS verification failure, and the TLS
settings the paho face honours (cipher lists, version bounds) honoured here too."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import uuid
import warnings
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
    ws_port, tls_port, one_cipher = free_port(), free_port(), free_port()
    sock = d / "mqtt.sock"
    # one_cipher: TLS 1.2 offers only ECDHE-RSA-AES128-GCM-SHA256 (tls_version is a
    # minimum, so TLS 1.3 stays possible).
    extra = (
        f"listener 0 {sock}\n"
        f"listener {ws_port} 127.0.0.1\nprotocol websockets\n"
        f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {crt}\nkeyfile {key}\n"
        f"listener {one_cipher} 127.0.0.1\ncertfile {crt}\nkeyfile {key}\n"
        "tls_version tlsv1.2\nciphers ECDHE-RSA-AES128-GCM-SHA256\n"
    )
    m = Mosquitto(d, extra)
    m.start()
    yield {
        "tcp": m.port,
        "ws": ws_port,
        "tls": tls_port,
        "one_cipher": one_cipher,
        "unix": str(sock),
        "ca": ca,
    }
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


def _tls12_context(ca: str, ciphers: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(ciphers)
    return ctx


async def test_cipher_list_of_an_ssl_context_is_honoured(tls_broker):
    # The listener's TLS 1.2 has only ECDHE-RSA-AES128-GCM-SHA256: a context without it
    # finds nothing in common, one with it connects.
    port, ca = tls_broker["one_cipher"], tls_broker["ca"]
    ctx = _tls12_context(ca, "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384")
    with pytest.raises(ssl.SSLError) as info:
        async with mqtt.Client("localhost", port, tls=ctx):
            pass
    assert not isinstance(info.value, ssl.SSLCertVerificationError)
    ctx = _tls12_context(ca, "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256")
    assert await round_trip(mqtt.Client("localhost", port, tls=ctx)) == b"hi"


async def test_cipher_string_of_tls_parameters_is_honoured(tls_broker):
    port, ca = tls_broker["one_cipher"], tls_broker["ca"]
    refused = mqtt.TLSParameters(
        ca_certs=ca, max_version="1.2", ciphers="ECDHE-RSA-AES256-GCM-SHA384"
    )
    with pytest.raises(ssl.SSLError) as info:
        async with mqtt.Client("localhost", port, tls=refused):
            pass
    assert not isinstance(info.value, ssl.SSLCertVerificationError)
    accepted = mqtt.TLSParameters(
        ca_certs=ca, max_version="1.2", ciphers="ECDHE-RSA-AES128-GCM-SHA256"
    )
    assert await round_trip(mqtt.Client("localhost", port, tls=accepted)) == b"hi"


async def test_no_usable_cipher_raises_like_cpython(tls_broker):
    # AES128-SHA (CBC) exists in OpenSSL but not in rustls; TLS 1.2 only leaves nothing.
    ctx = _tls12_context(tls_broker["ca"], "AES128-SHA")
    with pytest.raises(ssl.SSLError) as info:
        async with mqtt.Client("localhost", tls_broker["tls"], tls=ctx):
            pass
    assert info.value.args == ("No cipher can be selected.",)


def test_cipher_string_selecting_nothing_is_refused_at_once():
    # As SSLContext.set_ciphers (and paho's tls_set) refuse it.
    with pytest.raises(ssl.SSLError, match="No cipher can be selected"):
        mqtt.Client("localhost", tls=mqtt.TLSParameters(ciphers="NO-SUCH-CIPHER"))


async def test_ssl_context_limited_below_tls_1_2_is_not_implemented(tls_broker):
    # rustls has nothing older than TLS 1.2: the bound is refused, not silently raised.
    ctx = ssl.create_default_context(cafile=tls_broker["ca"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(NotImplementedError, match="TLS version 1.1"):
        async with mqtt.Client("localhost", tls_broker["tls"], tls=ctx):
            pass
