"""turbomqtt.asyncio next to aiomqtt and gmqtt on the same brokers in the same run.

    python benches/asyncio_bench.py [--brokers turbomqtt,mosquitto] [-n 50000] [--runs 3]
                                    [--clients turbomqtt.asyncio,aiomqtt,gmqtt] [--uvloop]

End to end: a subscriber process and a publisher process (64-byte payloads, QoS 0 and
QoS 1); messages per second = messages received / (last delivery - publisher start),
and the CPU time both client processes spent per message. Round trip: one client
publishes and waits for its own message (p50/p99 in µs), QoS 0 and QoS 1.

Every broker runs as its own process (``python -m turbomqtt broker`` for turbomqtt's,
with queues large enough that nothing is dropped; mosquitto with
``max_queued_messages 0``). Within one run the clients alternate case by case; with
``--runs 3`` the table shows medians of 3. Clients whose package is not installed in
this interpreter are skipped. A benchmark, not a test: nothing here asserts a timing.
The clients' stderr (aiomqtt warns per pending publish) goes to a log file.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import brokers

CLIENTS = {
    "turbomqtt.asyncio": ("turbomqtt_asyncio_client.py", "turbomqtt"),
    "aiomqtt": ("aiomqtt_client.py", "aiomqtt"),
    "gmqtt": ("gmqtt_client.py", "gmqtt"),
}
STDERR = Path(tempfile.gettempdir()) / "asyncio_bench_clients.log"


def spawn(script: str, role: str, port: int, extra: list[str]) -> subprocess.Popen[str]:
    with open(STDERR, "a") as err:
        return subprocess.Popen(
            [sys.executable, str(HERE / "clients" / script), "--role", role, "--port", str(port)]
            + extra,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=HERE / "clients",
        )


def wait_line(proc: subprocess.Popen[str], prefix: str, timeout: float = 120) -> dict:
    """The JSON of the client's next `prefix` line; a client that hangs is killed after
    `timeout` seconds (RuntimeError)."""
    assert proc.stdout is not None
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        for line in proc.stdout:
            if line.startswith("ERROR"):
                raise RuntimeError(line.strip())
            if line.startswith(prefix + " "):
                return json.loads(line[len(prefix) + 1 :])
    finally:
        killer.cancel()
    raise RuntimeError(f"client ended without {prefix} (killed after {timeout} s? see {STDERR})")


def end_to_end(script: str, port: int, n: int, qos: int, extra: list[str]) -> tuple[float, float]:
    """(messages/s, client CPU µs per message: publisher + subscriber)."""
    common = ["-n", str(n), "--qos", str(qos), "--topic", f"bench/aio/{qos}"] + extra
    sub = spawn(script, "sub", port, common)
    pub = None
    try:
        wait_line(sub, "READY")
        pub = spawn(script, "pub", port, common)
        wait_line(pub, "READY")
        p = wait_line(pub, "RESULT")
        s = wait_line(sub, "RESULT")
        pub.wait(120)
        sub.wait(120)
    finally:
        for proc in (pub, sub):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    if s["received"] < n:
        print(f"    (only {s['received']} of {n} received)", flush=True)
    rate = s["received"] / max(1e-9, s["t_last"] - p["t_start"])
    cpu = (p["cpu_s"] + s["cpu_s"]) / max(1, s["received"]) * 1e6
    return rate, cpu


def round_trip(script: str, port: int, n: int, qos: int, extra: list[str]) -> dict:
    lat = spawn(script, "latency", port, ["-n", str(n), "--qos", str(qos)] + extra)
    try:
        r = wait_line(lat, "RESULT", timeout=150)
        lat.wait(120)
    finally:
        if lat.poll() is None:
            lat.kill()
            lat.wait()
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", default="turbomqtt,mosquitto")
    ap.add_argument("--clients", default=",".join(CLIENTS))
    ap.add_argument("-n", type=int, default=50_000)
    ap.add_argument("--latency-n", type=int, default=2_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--uvloop", action="store_true", help="turbomqtt.asyncio on uvloop")
    args = ap.parse_args()
    names = []
    for name in args.clients.split(","):
        if importlib.util.find_spec(CLIENTS[name][1]) is None:
            print(f"{name}: not installed, skipped")
        else:
            names.append(name)
    # (broker, client, metric) -> samples
    samples: dict[tuple[str, str, str], list[float]] = {}

    def add(key: tuple[str, str, str], value: float) -> None:
        samples.setdefault(key, []).append(value)

    for kind in args.brokers.split(","):
        broker = brokers.start(kind)
        try:
            print(f"broker: {kind} on port {broker.port}", flush=True)
            for run in range(args.runs):
                for qos in (0, 1):
                    for name in names:
                        script = CLIENTS[name][0]
                        extra = ["--uvloop"] if args.uvloop and name == "turbomqtt.asyncio" else []
                        label = f"  run {run + 1} {name:18s} QoS {qos}:"
                        try:
                            rate, cpu = end_to_end(script, broker.port, args.n, qos, extra)
                            add((kind, name, f"rate{qos}"), rate)
                            add((kind, name, f"cpu{qos}"), cpu)
                            print(f"{label} {rate:9,.0f} msg/s {cpu:6.1f} µs CPU/msg", flush=True)
                        except RuntimeError as e:
                            print(f"{label} end to end failed: {e}", flush=True)
                        try:
                            r = round_trip(script, broker.port, args.latency_n, qos, extra)
                            add((kind, name, f"p50_{qos}"), r["p50_us"])
                            add((kind, name, f"p99_{qos}"), r["p99_us"])
                            print(
                                f"{label} round trip p50 {r['p50_us']:.0f} µs "
                                f"p99 {r['p99_us']:.0f} µs",
                                flush=True,
                            )
                        except RuntimeError as e:
                            print(f"{label} round trip failed: {e}", flush=True)
        finally:
            broker.stop()

    def med(kind: str, name: str, metric: str) -> float | None:
        v = samples.get((kind, name, metric))
        return statistics.median(v) if v else None

    print()
    print(
        f"Medians of {args.runs} (64 B; {args.n} messages end to end, {args.latency_n} round trips)"
    )
    print()
    print(
        "| broker | client | QoS 0 msg/s | x aiomqtt | QoS 1 msg/s | x aiomqtt "
        "| CPU µs/msg QoS 0 / 1 | RTT QoS 0 p50 / p99 µs | RTT QoS 1 p50 / p99 µs |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind in args.brokers.split(","):
        for name in names:
            cells = [kind, name]
            for qos in (0, 1):
                rate = med(kind, name, f"rate{qos}")
                base = med(kind, "aiomqtt", f"rate{qos}")
                cells.append(f"{rate:,.0f}" if rate else "-")
                cells.append(f"{rate / base:.1f}x" if rate and base else "-")
            c0, c1 = med(kind, name, "cpu0"), med(kind, name, "cpu1")
            cells.append(f"{c0:.1f} / {c1:.1f}" if c0 and c1 else "-")
            for qos in (0, 1):
                p50, p99 = med(kind, name, f"p50_{qos}"), med(kind, name, f"p99_{qos}")
                cells.append(f"{p50:,.0f} / {p99:,.0f}" if p50 and p99 else "-")
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
