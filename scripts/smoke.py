"""Smoke test of an installed turbomqtt: the embedded broker on a free port, a paho-style
client (`turbomqtt.client`) and an asyncio client (`turbomqtt.asyncio`) that each
subscribe and get their own QoS 1 message back. Needs nothing but turbomqtt itself, so
it runs on a freshly built wheel or sdist, also under emulation.

    python scripts/smoke.py        # exit status 0 and one line per check on success
"""

from __future__ import annotations

import asyncio
import platform
import sys
import threading
import time

import turbomqtt
import turbomqtt.client as mqtt
from turbomqtt import Broker

# Generous: under qemu user emulation everything runs 10-50 times slower.
TIMEOUT = 60.0


def paho_style_round_trip(port: int) -> None:
    got: list[tuple[str, bytes, int]] = []
    subscribed = threading.Event()
    arrived = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="smoke-paho")

    def on_connect(client, userdata, flags, reason_code, properties):
        client.subscribe("smoke/paho", qos=1)

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        subscribed.set()

    def on_message(client, userdata, msg):
        got.append((msg.topic, msg.payload, msg.qos))
        arrived.set()

    c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        if not subscribed.wait(TIMEOUT):
            raise SystemExit("turbomqtt.client: no SUBACK")
        info = c.publish("smoke/paho", b"hello", qos=1)
        info.wait_for_publish(TIMEOUT)
        if not info.is_published():
            raise SystemExit("turbomqtt.client: no PUBACK")
        if not arrived.wait(TIMEOUT):
            raise SystemExit("turbomqtt.client: the message did not come back")
    finally:
        c.disconnect()
        c.loop_stop()
    if got != [("smoke/paho", b"hello", 1)]:
        raise SystemExit(f"turbomqtt.client: got {got!r}")


async def asyncio_round_trip(port: int) -> None:
    from turbomqtt.asyncio import Client

    async with Client("127.0.0.1", port, identifier="smoke-asyncio") as c, \
            c.subscription("smoke/asyncio", qos=1) as sub:
        await c.publish("smoke/asyncio", b"hello", qos=1)
        async for msg in sub:
            if (msg.topic, msg.payload, msg.qos) != ("smoke/asyncio", b"hello", 1):
                raise SystemExit(f"turbomqtt.asyncio: got {msg!r}")
            break


def main() -> None:
    start = time.monotonic()
    print(f"turbomqtt {turbomqtt.__version__} on {platform.machine()} {sys.platform}, "
          f"Python {platform.python_version()}", flush=True)
    with Broker(port=0) as broker:
        paho_style_round_trip(broker.port)
        print("ok: turbomqtt.client QoS 1 round trip through the embedded broker", flush=True)
        asyncio.run(asyncio.wait_for(asyncio_round_trip(broker.port), TIMEOUT))
        print("ok: turbomqtt.asyncio QoS 1 round trip through the embedded broker", flush=True)
    print(f"smoke test passed in {time.monotonic() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
