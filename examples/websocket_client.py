#!/usr/bin/env python3
"""MQTT over WebSocket, with both client faces.

    python examples/websocket_client.py                  # its own broker with a WebSocket listener
    MQTT_WS_PORT=8080 python examples/websocket_client.py    # a running broker's WebSocket port

The broker's WebSocket listener speaks the ``mqtt`` subprotocol at ``/mqtt``. A paho-style
client (``transport="websockets"``) publishes; an asyncio client
(``transport="websockets"``) receives.

Settings: MQTT_HOST (default 127.0.0.1), MQTT_WS_PORT, MQTT_WS_PATH (default /mqtt).
"""

from __future__ import annotations

import asyncio
import contextlib
import os

import turbomqtt
import turbomqtt.asyncio as amqtt
import turbomqtt.client as mqtt


def publish_over_websocket(host: str, port: int, path: str) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, transport="websockets")
    client.ws_set_options(path=path)
    client.connect(host, port)
    client.loop_start()
    client.publish("ws/demo", "hello over WebSocket", qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


async def main() -> None:
    path = os.environ.get("MQTT_WS_PATH", "/mqtt")
    with contextlib.ExitStack() as stack:
        if "MQTT_WS_PORT" in os.environ:
            host, port = os.environ.get("MQTT_HOST", "127.0.0.1"), int(os.environ["MQTT_WS_PORT"])
        else:
            broker = stack.enter_context(turbomqtt.Broker(listeners=[
                {"host": "127.0.0.1", "port": 0, "transport": "websocket", "path": path}]))
            host, port = broker.host, broker.port
            print(f"broker on {broker.url}{path}")
        async with amqtt.Client(host, port, transport="websockets",
                                websocket_path=path) as client, \
                client.subscription("ws/#", qos=1) as stream:
            # The paho-style client blocks while it waits: run it in a thread.
            await asyncio.to_thread(publish_over_websocket, host, port, path)
            message = await asyncio.wait_for(stream.get(), 10)
            print(f"asyncio client got {message.payload.decode()!r} on {message.topic}")


if __name__ == "__main__":
    asyncio.run(main())
