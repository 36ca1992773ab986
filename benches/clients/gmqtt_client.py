"""gmqtt peer for the end-to-end and latency scenarios (``--role pub|sub|latency``).

gmqtt's ``publish()`` is synchronous and has no in-flight limit of its own, so the
publisher keeps at most ``--window`` QoS 1/2 messages unacknowledged (a store that wakes
the publisher when it drains below the window). The default, 20, is paho's and aiomqtt's
in-flight limit and mosquitto 2.0's ``max_inflight_messages``: beyond 20 unfinished
incoming QoS 2 flows, mosquitto 2.0.11 acknowledges MQTT 3.1.1 messages and drops them.
"""

import argparse
import asyncio

from _report import cpu_seconds, fail, now, ready, result
from gmqtt import Client
from gmqtt.mqtt.constants import MQTTv311
from gmqtt.storage import PersistentStorage

ap = argparse.ArgumentParser()
ap.add_argument("--role", choices=["pub", "sub", "latency"], required=True)
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--topic", default="bench/e2e")
ap.add_argument("-n", type=int, default=100_000)
ap.add_argument("--size", type=int, default=64)
ap.add_argument("--qos", type=int, default=0)
ap.add_argument("--window", type=int, default=20)
ap.add_argument("--warmup", type=int, default=200)
ap.add_argument("--idle", type=float, default=5.0)
args = ap.parse_args()


class WindowStore(PersistentStorage):
    """The default in-memory store, plus a wake-up when fewer than ``low`` are unacked."""

    def __init__(self, low):
        super().__init__()
        self.low = low
        self.waiter = None

    def remove_message_by_mid(self, mid):
        super().remove_message_by_mid(mid)
        if self.waiter is not None and not self.waiter.done() and len(self._messages) < self.low:
            self.waiter.set_result(None)

    async def below(self):
        while len(self._messages) >= self.low:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter


async def pub():
    store = WindowStore(args.window)
    c = Client("bench-pub", persistent_storage=store)
    await c.connect(args.host, args.port, version=MQTTv311)
    ready(impl="gmqtt")
    payload = b"x" * args.size
    cpu0 = cpu_seconds()
    t0 = now()
    for i in range(args.n):
        c.publish(args.topic, payload, qos=args.qos)
        if args.qos and len(store._messages) >= args.window:
            await store.below()
        elif i % 256 == 255:
            await asyncio.sleep(0)  # let the transport flush and the acks in
    if args.qos:
        await store.wait_empty()
    else:
        # QoS 0: "done" once the transport buffer is handed to the kernel.
        transport = c._connection._transport
        while transport.get_write_buffer_size():
            await asyncio.sleep(0.001)
    t_done = now()
    cpu1 = cpu_seconds()
    await c.disconnect()
    result(impl="gmqtt", t_start=t0, t_acked=t_done, n=args.n, cpu_s=cpu1 - cpu0)


async def sub():
    c = Client("bench-sub")
    state = {"count": 0, "first": 0.0, "last": 0.0}
    done = asyncio.Event()
    subscribed = asyncio.Event()

    def on_message(client, topic, payload, qos, properties):
        t = now()
        state["count"] += 1
        if state["count"] == 1:
            state["first"] = t
        state["last"] = t
        if state["count"] >= args.n:
            done.set()
        return 0

    c.on_message = on_message
    c.on_subscribe = lambda *a: subscribed.set()
    await c.connect(args.host, args.port, version=MQTTv311)
    c.subscribe(args.topic, qos=args.qos)
    await asyncio.wait_for(subscribed.wait(), 10)
    cpu0 = cpu_seconds()
    ready(impl="gmqtt")
    seen = -1
    while not done.is_set():
        try:
            await asyncio.wait_for(done.wait(), args.idle)
        except asyncio.TimeoutError:
            if state["count"] == seen and seen > 0:
                break
            seen = state["count"]
    cpu1 = cpu_seconds()
    await c.disconnect()
    result(impl="gmqtt", received=state["count"], t_first=state["first"], t_last=state["last"],
           cpu_s=cpu1 - cpu0)


async def latency():
    c = Client("bench-rtt")
    arrived = asyncio.Event()
    subscribed = asyncio.Event()

    def on_message(client, topic, payload, qos, properties):
        arrived.set()
        return 0

    c.on_message = on_message
    c.on_subscribe = lambda *a: subscribed.set()
    await c.connect(args.host, args.port, version=MQTTv311)
    c.subscribe(args.topic, qos=args.qos)
    await asyncio.wait_for(subscribed.wait(), 10)
    payload = b"x" * args.size
    samples = []
    for i in range(args.warmup + args.n):
        arrived.clear()
        t0 = now()
        c.publish(args.topic, payload, qos=args.qos)
        try:
            await asyncio.wait_for(arrived.wait(), 5)
        except asyncio.TimeoutError:
            fail(f"message {i} did not come back within 5 s")
        if i >= args.warmup:
            samples.append((now() - t0) * 1e6)
    await c.disconnect()
    samples.sort()

    def pct(p):
        return samples[min(len(samples) - 1, int(p / 100 * len(samples)))]

    result(impl="gmqtt", n=len(samples), p50_us=pct(50), p90_us=pct(90), p99_us=pct(99))


asyncio.run({"pub": pub, "sub": sub, "latency": latency}[args.role]())
