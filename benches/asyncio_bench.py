"""turbomqtt.asyncio next to aiomqtt and gmqtt on the same broker in the same run.

    python benches/asyncio_bench.py [--broker mosquitto|turbomqtt] [-n 50000] [--uvloop]

End to end: a subscriber process and a publisher process (64-byte payloads, QoS 0 and
QoS 1); messages per second = messages received / (last delivery - publisher start).
Round trip: one client publishes and waits for its own message (p50/p99 in µs).
Clients whose package is not installed in this interpreter are skipped. A benchmark,
not a test: nothing here asserts a timing. (benches/run.py, owned by the benchmark
suite, is the full comparison; this script is the asyncio client's quick check.)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import brokers

CLIENTS = {
    "turbomqtt.asyncio": ("turbomqtt_asyncio_client.py", "turbomqtt"),
    "aiomqtt": ("aiomqtt_client.py", "aiomqtt"),
    "gmqtt": ("gmqtt_client.py", "gmqtt"),
}


def spawn(script: str, role: str, port: int, extra: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "clients" / script), "--role", role, "--port", str(port)]
        + extra,
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE / "clients",
    )


def wait_line(proc: subprocess.Popen[str], prefix: str) -> dict:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("ERROR"):
            raise RuntimeError(line.strip())
        if line.startswith(prefix + " "):
            return json.loads(line[len(prefix) + 1 :])
    raise RuntimeError(f"client ended without {prefix}")


def end_to_end(script: str, port: int, n: int, qos: int, extra: list[str]) -> float:
    common = ["-n", str(n), "--qos", str(qos), "--topic", f"bench/aio/{qos}"] + extra
    sub = spawn(script, "sub", port, common)
    wait_line(sub, "READY")
    pub = spawn(script, "pub", port, common)
    wait_line(pub, "READY")
    p = wait_line(pub, "RESULT")
    s = wait_line(sub, "RESULT")
    pub.wait(60)
    sub.wait(60)
    if s["received"] < n:
        print(f"    (only {s['received']} of {n} received)")
    return s["received"] / max(1e-9, s["t_last"] - p["t_start"])


def round_trip(script: str, port: int, n: int, qos: int, extra: list[str]) -> dict:
    lat = spawn(script, "latency", port, ["-n", str(n), "--qos", str(qos)] + extra)
    r = wait_line(lat, "RESULT")
    lat.wait(60)
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", default="mosquitto", choices=["mosquitto", "turbomqtt"])
    ap.add_argument("-n", type=int, default=50_000)
    ap.add_argument("--latency-n", type=int, default=2_000)
    ap.add_argument("--uvloop", action="store_true", help="turbomqtt.asyncio on uvloop")
    args = ap.parse_args()
    broker = brokers.start(args.broker)
    try:
        print(f"broker: {args.broker} on port {broker.port}")
        rates: dict[tuple[str, int], float] = {}
        for name, (script, package) in CLIENTS.items():
            if importlib.util.find_spec(package) is None:
                print(f"{name}: not installed, skipped")
                continue
            extra = ["--uvloop"] if args.uvloop and name == "turbomqtt.asyncio" else []
            for qos in (0, 1):
                rate = end_to_end(script, broker.port, args.n, qos, extra)
                rates[(name, qos)] = rate
                print(f"{name:20s} QoS {qos}: {rate:12,.0f} msg/s end to end")
            r = round_trip(script, broker.port, args.latency_n, 0, extra)
            print(
                f"{name:20s} round trip QoS 0: p50 {r['p50_us']:.0f} µs, p99 {r['p99_us']:.0f} µs"
            )
        for qos in (0, 1):
            base = rates.get(("aiomqtt", qos))
            ours = rates.get(("turbomqtt.asyncio", qos))
            if base and ours:
                print(f"QoS {qos}: turbomqtt.asyncio / aiomqtt = {ours / base:.1f}x")
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
