"""Accept burst: N clients connect at once; the time until every one has its CONNACK.

    python benches/accept_burst.py [--conns 10000] [--rounds 2] [--brokers mosquitto,turbomqtt]

Each broker runs as its own process (benches/brokers.py: mosquitto 2.0 with persistence
off, `python -m turbomqtt broker`). The client is the Rust load generator
(benches/loadgen, `cargo build --release` there; `idle --gate 0` opens all N connections
at once, writes a 3.1.1 CONNECT on each as soon as it is connected and reports when the
last CONNACK is in), or with `--client asyncio` (or no load generator built) one Python
asyncio loop doing the same, which is itself slow enough at 10,000 connections to hide
the brokers' differences. Rounds alternate between the brokers; the median round is
reported, with the ratio to mosquitto.

A short listen backlog shows here: SYNs beyond the accept queue are dropped and the
client's kernel retries them after 1 s, 3 s, 7 s..., so a burst takes seconds instead of
the time the broker needs to accept and answer; `listen_overflows` (Linux, from
/proc/net/netstat, the whole machine) counts those drops during the round. Loopback only; the fd limit is raised
inside the script (it needs about N + 100 descriptors here and in the broker).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import brokers

LOADGEN = Path(__file__).resolve().parent / "loadgen" / "target" / "release" / "turbomqtt-loadgen"


def loadgen_burst(port: int, n: int, timeout: float) -> dict:
    """All n connections at once through the load generator; it holds them until its
    stdin closes."""
    cmd = [str(LOADGEN), "idle", "--port", str(port), "--conns", str(n), "--gate", "0",
           "--timeout", str(int(timeout))]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as p:
        line = p.stdout.readline()
        p.stdin.close()
        p.wait(timeout)
    r = json.loads(line)
    return {"connected": r["connected"], "wanted": n, "all_connack_s": r["connect_s"],
            "errors": r["errors"]}


def connect_packet(client_id: str) -> bytes:
    def s16(b: bytes) -> bytes:
        return len(b).to_bytes(2, "big") + b

    body = s16(b"MQTT") + bytes([4, 0x02]) + (600).to_bytes(2, "big") + s16(client_id.encode())
    return bytes([0x10, len(body)]) + body


class Burst:
    def __init__(self, n: int) -> None:
        self.n = n
        self.t0 = time.perf_counter()
        self.acked: list[float] = []
        self.failed = 0
        self.settled = asyncio.Event()
        self.hold = asyncio.Event()

    def count(self, ok: bool) -> None:
        if ok:
            self.acked.append(time.perf_counter() - self.t0)
        else:
            self.failed += 1
        if len(self.acked) + self.failed >= self.n:
            self.settled.set()


async def one(port: int, i: int, b: Burst):
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(connect_packet(f"burst-{i}"))
        ack = await reader.readexactly(4)
    except BaseException:
        b.count(False)
        raise
    b.count(ack[0] == 0x20 and ack[3] == 0)
    if ack[0] != 0x20 or ack[3] != 0:
        raise RuntimeError(f"refused: {ack.hex()}")
    await b.hold.wait()
    writer.write(b"\xe0\x00")
    try:
        await asyncio.wait_for(reader.read(1), 10)
    except (asyncio.TimeoutError, OSError):
        pass
    writer.close()


async def burst(port: int, n: int, timeout: float) -> dict:
    b = Burst(n)
    tasks = [asyncio.ensure_future(one(port, i, b)) for i in range(n)]
    try:
        await asyncio.wait_for(b.settled.wait(), timeout)
    except asyncio.TimeoutError:
        pass
    acked = sorted(b.acked)
    elapsed = acked[-1] if acked else float("nan")
    b.hold.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = sorted({type(r).__name__ + ": " + str(r)[:80] for r in results if r is not None})
    return {
        "connected": len(acked),
        "wanted": n,
        "all_connack_s": round(elapsed, 3),
        "p50_s": round(acked[len(acked) // 2], 3) if acked else None,
        "p99_s": round(acked[int(len(acked) * 0.99) - 1], 3) if acked else None,
        "errors": errors[:5],
    }


def listen_overflows() -> int | None:
    """Linux's count of connections dropped because a listen queue was full (all
    sockets of this network namespace), or None where it cannot be read."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            return int(table.get("ListenOverflows", 0))
    return None


def raise_fd_limit(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 200
    if hard != resource.RLIM_INFINITY and hard < want:
        raise SystemExit(f"the fd limit allows {hard} descriptors, {want} needed")
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conns", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--brokers", default="mosquitto,turbomqtt")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--client", choices=("loadgen", "asyncio"),
                    default="loadgen" if LOADGEN.exists() else "asyncio")
    args = ap.parse_args(argv)
    # Raised before the brokers start: they inherit it.
    raise_fd_limit(args.conns)
    kinds = args.brokers.split(",")
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    for _ in range(args.rounds):
        for kind in kinds:
            with brokers.start(kind) as b:
                overflows = listen_overflows()
                if args.client == "loadgen":
                    r = loadgen_burst(b.port, args.conns, args.timeout)
                else:
                    r = asyncio.run(burst(b.port, args.conns, args.timeout))
                if overflows is not None:
                    r["listen_overflows"] = listen_overflows() - overflows
                r["broker_cpu_s"] = round(b.cpu_s(), 2)
                r["broker_peak_rss_mb"] = round(b.peak_rss_mb(), 1)
            runs[kind].append(r)
            print(json.dumps({"broker": kind, **r}), flush=True)
    summary = {}
    for kind, rs in runs.items():
        summary[kind] = statistics.median(r["all_connack_s"] for r in rs)
    base = summary.get("mosquitto")
    print()
    print(f"{args.conns} clients connecting at once ({args.client} client), "
          f"median of {args.rounds} round(s):")
    for kind, s in summary.items():
        ratio = f"  ({s / base:.2f}x mosquitto)" if base and kind != "mosquitto" else ""
        print(f"  {kind:10s} all CONNACKs after {s:.3f} s{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
