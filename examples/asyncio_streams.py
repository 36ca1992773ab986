#!/usr/bin/env python3
"""asyncio streams with reconnect: a consumer keeps its subscription across a broker restart.

    python examples/asyncio_streams.py

1. starts an embedded broker on a free port;
2. a consumer (``reconnect=True``) reads ``sensors/+/temp`` as a stream, and watches its
   connection events in a second task;
3. a producer publishes three readings at QoS 1;
4. the broker stops (both clients lose their connection) and starts again on the same
   port: both reconnect by themselves, the consumer's subscription is restored before
   ``connected()`` returns;
5. three more readings arrive on the same stream.
"""

from __future__ import annotations

import asyncio

import turbomqtt
import turbomqtt.asyncio as mqtt

READINGS_PER_ROUND = 3


async def watch(client: mqtt.Client, name: str, lost: asyncio.Event) -> None:
    async for event in client.connection_events():
        if event.kind == "connected":
            print(f"[{name}] connected (session present: {event.session_present})", flush=True)
        else:
            print(f"[{name}] disconnected ({event.error}; will reconnect: "
                  f"{event.will_reconnect})", flush=True)
            lost.set()


async def consume(stream: mqtt.MessageStream, got: list, first_round: asyncio.Event) -> None:
    async for message in stream:
        print(f"[consumer] {message.topic} = {message.text()}", flush=True)
        got.append(message)
        if len(got) == READINGS_PER_ROUND:
            first_round.set()
        if len(got) == 2 * READINGS_PER_ROUND:
            return


async def main() -> None:
    broker = turbomqtt.Broker(port=0).start()
    port = broker.port
    print(f"broker on {broker.url}", flush=True)
    got: list = []
    first_round = asyncio.Event()
    async with mqtt.Client("127.0.0.1", port, identifier="consumer", reconnect=True) as consumer, \
            mqtt.Client("127.0.0.1", port, identifier="producer", reconnect=True) as producer:
        lost = {"consumer": asyncio.Event(), "producer": asyncio.Event()}
        watchers = [asyncio.create_task(watch(consumer, "consumer", lost["consumer"])),
                    asyncio.create_task(watch(producer, "producer", lost["producer"]))]
        async with consumer.subscription("sensors/+/temp", qos=1) as temps:
            reader = asyncio.create_task(consume(temps, got, first_round))
            for i in range(READINGS_PER_ROUND):
                await producer.publish(f"sensors/room{i}/temp", f"{20 + i}.5", qos=1)
            await asyncio.wait_for(first_round.wait(), 30)

            print("stopping the broker", flush=True)
            broker.stop()
            # connected() returns at once while a client has not yet seen its connection
            # go: wait for both to notice, then for both to be back (and resubscribed).
            for event in lost.values():
                await asyncio.wait_for(event.wait(), 30)
            broker = turbomqtt.Broker(port=port).start()
            print(f"broker back on {broker.url}", flush=True)
            await asyncio.wait_for(consumer.connected(), 30)
            await asyncio.wait_for(producer.connected(), 30)

            for i in range(READINGS_PER_ROUND):
                await producer.publish(f"sensors/room{i}/temp", f"{22 + i}.0", qos=1)
            await asyncio.wait_for(reader, 30)
        for task in watchers:
            task.cancel()
    broker.stop()
    print(f"received {len(got)} readings across a broker restart", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
