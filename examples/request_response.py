#!/usr/bin/env python3
"""Request/response over MQTT 5: a small "price" service and a caller.

    python examples/request_response.py              # with its own embedded broker
    MQTT_PORT=1883 python examples/request_response.py   # against a running broker

The service subscribes to ``shop/price`` and answers each request on the request's
response topic, copying its correlation data (MQTT 5 §4.10). The caller uses
``client.request()``, which sets both for it and returns the matching response, and
shows what a request no service answers does: RequestTimeoutError.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os

import turbomqtt
import turbomqtt.asyncio as mqtt

PRICES = {"apple": 0.5, "pear": 0.75}


async def price_service(client: mqtt.Client, ready: asyncio.Event) -> None:
    async with client.subscription("shop/price", qos=1) as requests:
        ready.set()
        async for request in requests:
            item = request.text()
            answer = {"item": item, "price": PRICES.get(item)}
            await client.publish(
                request.response_topic,
                json.dumps(answer),
                qos=1,
                properties={"correlation_data": request.correlation_data,
                            "content_type": "application/json"},
            )


async def main() -> None:
    async with contextlib.AsyncExitStack() as stack:
        if "MQTT_PORT" in os.environ:
            host, port = os.environ.get("MQTT_HOST", "127.0.0.1"), int(os.environ["MQTT_PORT"])
        else:
            broker = await stack.enter_async_context(turbomqtt.Broker(port=0))
            host, port = broker.host, broker.port
        service = await stack.enter_async_context(mqtt.Client(host, port, protocol=5))
        caller = await stack.enter_async_context(mqtt.Client(host, port, protocol=5))

        ready = asyncio.Event()
        task = asyncio.create_task(price_service(service, ready))
        await ready.wait()
        for item in ("apple", "pear", "plum"):
            reply = await caller.request("shop/price", item, qos=1, timeout=5)
            print(f"price of {item}: {json.loads(reply.payload)['price']} "
                  f"({reply.content_type})", flush=True)
        try:
            await caller.request("shop/nobody-listens", "hello?", timeout=0.5)
        except mqtt.RequestTimeoutError as e:
            print(f"unanswered request: {e}", flush=True)
        task.cancel()


if __name__ == "__main__":
    asyncio.run(main())
