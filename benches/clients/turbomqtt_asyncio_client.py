"""turbomqtt's native asyncio client (``turbomqtt.asyncio``, issue 5's API) for the
end-to-end and latency scenarios (``--role pub|sub|latency``); the counterpart of
aiomqtt_client.py, with the same shape: ``--concurrency`` awaited publish() calls at once.
"""

import argparse
import asyncio

from _report import cpu_seconds, fail, now, ready, result
from turbomqtt.asyncio import Client

ap = argparse.ArgumentParser()
ap.add_argument("--role", choices=["pub", "sub", "latency"], required=True)
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--topic", default="bench/e2e")
ap.add_argument("-n", type=int, default=100_000)
ap.add_argument("--size", type=int, default=64)
ap.add_argument("--qos", type=int, default=0)
ap.add_argument("--concurrency", type=int, default=20)
ap.add_argument("--warmup", type=int, default=200)
ap.add_argument("--idle", type=float, default=5.0)
args = ap.parse_args()
IMPL = "turbomqtt.asyncio"


async def pub():
    payload = b"x" * args.size
    async with Client(args.host, args.port, identifier="bench-pub") as c:
        ready(impl=IMPL)
        cpu0 = cpu_seconds()
        t0 = now()
        per = args.n // args.concurrency

        async def worker():
            for _ in range(per):
                await c.publish(args.topic, payload, qos=args.qos)

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        t_done = now()
        cpu1 = cpu_seconds()
    result(impl=IMPL, t_start=t0, t_acked=t_done, n=per * args.concurrency, cpu_s=cpu1 - cpu0)


async def sub():
    async with Client(args.host, args.port, identifier="bench-sub") as c:
        await c.subscribe(args.topic, qos=args.qos)
        cpu0 = cpu_seconds()
        ready(impl=IMPL)
        count, first, last = 0, 0.0, 0.0
        it = c.messages().__aiter__()
        while count < args.n:
            try:
                await asyncio.wait_for(it.__anext__(), args.idle if count else 300)
            except asyncio.TimeoutError:
                break
            t = now()
            count += 1
            if count == 1:
                first = t
            last = t
        cpu1 = cpu_seconds()
    result(impl=IMPL, received=count, t_first=first, t_last=last, cpu_s=cpu1 - cpu0)


async def latency():
    payload = b"x" * args.size
    samples = []
    async with Client(args.host, args.port, identifier="bench-rtt") as c:
        await c.subscribe(args.topic, qos=args.qos)
        it = c.messages().__aiter__()
        for i in range(args.warmup + args.n):
            t0 = now()
            await c.publish(args.topic, payload, qos=args.qos)
            try:
                await asyncio.wait_for(it.__anext__(), 5)
            except asyncio.TimeoutError:
                fail(f"message {i} did not come back within 5 s")
            if i >= args.warmup:
                samples.append((now() - t0) * 1e6)
    samples.sort()

    def pct(p):
        return samples[min(len(samples) - 1, int(p / 100 * len(samples)))]

    result(impl=IMPL, n=len(samples), p50_us=pct(50), p90_us=pct(90), p99_us=pct(99))


asyncio.run({"pub": pub, "sub": sub, "latency": latency}[args.role]())
