"""turbomqtt.asyncio peer for the end-to-end and latency scenarios (``--role pub|sub|latency``),
with the same arguments and READY/RESULT lines as ``aiomqtt_client.py`` and
``gmqtt_client.py`` so a harness can run the three side by side.

The publisher runs ``--concurrency`` publish() coroutines (each awaits its own
acknowledgement; QoS 0 completes once written to the socket).
"""

import argparse
import asyncio

import turbomqtt.asyncio as mqtt
from _report import cpu_seconds, fail, now, ready, result

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
ap.add_argument("--protocol", type=int, default=4)
ap.add_argument("--uvloop", action="store_true")
args = ap.parse_args()
IMPL = "turbomqtt.asyncio" + ("+uvloop" if args.uvloop else "")


async def pub():
    payload = b"x" * args.size
    async with mqtt.Client(
        args.host, args.port, identifier="bench-pub", protocol=args.protocol, max_inflight=20
    ) as c:
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
    client = mqtt.Client(args.host, args.port, identifier="bench-sub", protocol=args.protocol)
    stream = client.messages()
    async with client:
        await client.subscribe(args.topic, qos=args.qos)
        cpu0 = cpu_seconds()
        ready(impl=IMPL)
        count, first, last = 0, 0.0, 0.0
        progress = [0]

        async def watchdog():
            # Ends the iteration after --idle seconds without a message (300 s before
            # the first), without a timer per message.
            seen = -1
            while True:
                await asyncio.sleep(args.idle if progress[0] else 300)
                if progress[0] == seen:
                    stream.close()
                    return
                seen = progress[0]

        dog = asyncio.create_task(watchdog())
        async for _ in stream:
            t = now()
            count += 1
            progress[0] = count
            if count == 1:
                first = t
            last = t
            if count >= args.n:
                break
        dog.cancel()
        cpu1 = cpu_seconds()
    result(impl=IMPL, received=count, t_first=first, t_last=last, cpu_s=cpu1 - cpu0)


async def latency():
    payload = b"x" * args.size
    samples = []
    client = mqtt.Client(args.host, args.port, identifier="bench-rtt", protocol=args.protocol)
    stream = client.messages()
    async with client:
        await client.subscribe(args.topic, qos=args.qos)
        for i in range(args.warmup + args.n):
            t0 = now()
            await client.publish(args.topic, payload, qos=args.qos)
            try:
                await asyncio.wait_for(stream.get(), 5)
            except asyncio.TimeoutError:
                fail(f"message {i} did not come back within 5 s")
            if i >= args.warmup:
                samples.append((now() - t0) * 1e6)
    samples.sort()

    def pct(p):
        return samples[min(len(samples) - 1, int(p / 100 * len(samples)))]

    result(impl=IMPL, n=len(samples), p50_us=pct(50), p90_us=pct(90), p99_us=pct(99))


main = {"pub": pub, "sub": sub, "latency": latency}[args.role]
if args.uvloop:
    import uvloop

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
else:
    asyncio.run(main())
