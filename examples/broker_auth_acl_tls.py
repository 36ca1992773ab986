#!/usr/bin/env python3
"""An embedded broker with users, an ACL and a TLS listener, and what clients see.

    python examples/broker_auth_acl_tls.py

Needs the ``openssl`` command (to make a throwaway CA and server certificate in a
temporary directory; a real deployment uses its own certificate files).

- users: ``alice`` (may write ``home/#``) and ``bob`` (may only read ``home/#``);
  anonymous clients are refused;
- the ACL file is mosquitto's format;
- the listener is TLS only; clients verify the server against the throwaway CA.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import subprocess
import tempfile
from pathlib import Path

import turbomqtt
import turbomqtt.asyncio as mqtt

ACL = """\
user alice
topic readwrite home/#

user bob
topic read home/#
"""


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_certificates(d: Path) -> dict[str, str]:
    """A CA and a server certificate for 127.0.0.1 / localhost, valid for two days."""
    ca, ca_key = d / "ca.crt", d / "ca.key"
    crt, key, csr, ext = d / "server.crt", d / "server.key", d / "server.csr", d / "ext.cnf"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=example CA", "-keyout", str(ca_key), "-out", str(ca))
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", str(key), "-out", str(csr))
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt))
    return {"ca": str(ca), "certfile": str(crt), "keyfile": str(key)}


async def try_client(port: int, tls: ssl.SSLContext, user: str, password: str) -> None:
    try:
        async with mqtt.Client("127.0.0.1", port, username=user, password=password,
                               tls=tls) as client, client.subscription("home/#", qos=1) as home:
            try:
                await client.publish("home/lights", f"on, says {user}", qos=1)
                message = await asyncio.wait_for(home.get(), 5)
                print(f"{user}: published and read back {message.payload.decode()!r}", flush=True)
            except mqtt.PublishError as e:
                print(f"{user}: publish refused by the ACL: {e}", flush=True)
    except mqtt.MqttConnectError as e:
        print(f"{user}: {e}", flush=True)


async def main() -> None:
    # The broker logs refusals and denied publishes as warnings.
    logging.basicConfig(level=logging.WARNING, format="  broker log: %(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        certs = make_certificates(d)
        (d / "acl").write_text(ACL)
        broker = turbomqtt.Broker(
            listeners=[{"host": "127.0.0.1", "port": 0,
                        "certfile": certs["certfile"], "keyfile": certs["keyfile"]}],
            users={"alice": "wonderland", "bob": "builder"},
            allow_anonymous=False,
            acl_file=str(d / "acl"),
        )
        async with broker:
            print(f"broker on {broker.url}", flush=True)
            tls = ssl.create_default_context(cafile=certs["ca"])
            await try_client(broker.port, tls, "alice", "wonderland")
            await try_client(broker.port, tls, "bob", "builder")
            await try_client(broker.port, tls, "mallory", "guess")
            try:
                # No CA given: the system roots do not know the throwaway CA.
                async with mqtt.Client("127.0.0.1", broker.port, username="alice",
                                       password="wonderland", tls=True):
                    pass
            except ssl.SSLCertVerificationError as e:
                print(f"without the CA: {e.verify_message}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
