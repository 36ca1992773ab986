"""A stuck subscriber next to healthy ones: publisher throughput with and without it.

    python benches/stuck_subscriber.py [--rounds 3] [--scale 1.0]

One publisher sends 200-byte messages to a topic that two healthy subscribers read
(the Rust load generator, benches/loadgen: `cargo build --release` there). In half the
runs a third subscriber is present that connects, subscribes with a 4 KiB receive
buffer and never reads again (a raw socket). The figure is the rate of deliveries to the
healthy subscribers; the ratio with/without the stuck one should be close to 1: a
consumer that stops reading must not slow its publisher or the other consumers.

Runs last several seconds each (mosquitto gets fewer messages: it is ten to twenty
times slower here), so the one-time cost of isolating the stuck subscriber is part of
the figure but not all of it: its queue fills to the backpressure mark, the publisher
waits 0.2 s in which nothing leaves it, then the queue fills on to `max_queued_bytes`
(64 MiB by default) before its messages are dropped. With 2,000,000 messages at QoS 0
(runs of about 2 s) that one-time cost alone made the ratio 0.6. Both brokers run as their own processes with their default queue limits (turbomqtt:
`python -m turbomqtt broker` without a configuration file; mosquitto 2.0 with
persistence off, its defaults otherwise). Runs alternate with and without the stuck
subscriber; the median of the rounds is reported.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import brokers

LOADGEN = HERE / "loadgen" / "target" / "release" / "turbomqtt-loadgen"
TOPIC = "bench/stuck"
# Messages per run at QoS 0 and QoS 1.
MESSAGES = {"turbomqtt": (5_000_000, 1_500_000), "mosquitto": (300_000, 100_000)}


def start(kind: str) -> brokers.BrokerProcess:
    port = brokers.free_port()
    if kind == "turbomqtt":
        work = Path(tempfile.mkdtemp(prefix="bench-turbomqtt-"))
        cmd = [sys.executable, "-m", "turbomqtt", "broker", "--host", "127.0.0.1",
               "--port", str(port)]
        return brokers.BrokerProcess(kind, cmd, port, work)
    exe = brokers.mosquitto_path()
    if not exe:
        raise SystemExit("mosquitto is not installed")
    work = Path(tempfile.mkdtemp(prefix="bench-mosquitto-"))
    (work / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\npersistence false\nallow_anonymous true\n"
        "log_dest stderr\nlog_type error\n"
    )
    return brokers.BrokerProcess(kind, [exe, "-c", str(work / "mosquitto.conf")], port, work)


def s16(b: bytes) -> bytes:
    return len(b).to_bytes(2, "big") + b


def packet(first: int, body: bytes) -> bytes:
    n, out = len(body), bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            break
    return bytes([first]) + bytes(out) + body


def stuck_subscriber(port: int, qos: int) -> socket.socket:
    """Connects, subscribes to TOPIC, reads the CONNACK and SUBACK, then never reads."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    s.sendall(packet(0x10, s16(b"MQTT") + bytes([4, 2]) + (600).to_bytes(2, "big")
                     + s16(b"stuck-subscriber")))
    s.sendall(packet(0x82, (1).to_bytes(2, "big") + s16(TOPIC.encode()) + bytes([qos])))
    got = b""
    while len(got) < 9:  # CONNACK (4 bytes) + SUBACK (5 bytes)
        chunk = s.recv(9 - len(got))
        if not chunk:
            raise RuntimeError("stuck subscriber: broker closed the connection")
        got += chunk
    return s


def run(kind: str, qos: int, msgs: int, stuck: bool, timeout: float) -> dict:
    with start(kind) as b:
        peer = stuck_subscriber(b.port, qos) if stuck else None
        try:
            cmd = [str(LOADGEN), "pubsub", "--port", str(b.port), "--pubs", "1", "--subs", "2",
                   "--msgs", str(msgs), "--qos", str(qos), "--size", "200", "--topic", TOPIC,
                   "--idle-ms", "2000"]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
            if r.returncode != 0:
                raise RuntimeError(f"loadgen failed: {r.stderr[-500:]}")
            res = json.loads(r.stdout.strip().splitlines()[-1])
            cpu = b.cpu_s()
            rss = b.peak_rss_mb()
        finally:
            if peer is not None:
                peer.close()
    return {
        "broker": kind, "qos": qos, "stuck": stuck, "msgs": msgs,
        "deliveries_per_s": round(res["deliveries_per_s"]),
        "delivered": res["delivered"], "expected": res["expected"],
        "broker_cpu_s": round(cpu, 2), "broker_peak_rss_mb": round(rss, 1),
        "errors": res["errors"],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the message counts")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--brokers", default="mosquitto,turbomqtt")
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args(argv)
    if not LOADGEN.exists():
        raise SystemExit(f"build the load generator first: cargo build --release in {LOADGEN.parents[2]}")
    rates: dict[tuple, list[float]] = {}
    for _ in range(args.rounds):
        for kind in args.brokers.split(","):
            counts = MESSAGES[kind]
            for qos in (0, 1):
                msgs = int(counts[qos] * args.scale)
                for stuck in (False, True):
                    r = run(kind, qos, msgs, stuck, args.timeout)
                    print(json.dumps(r), flush=True)
                    rates.setdefault((kind, qos, stuck), []).append(r["deliveries_per_s"])
    print()
    print("deliveries/s to the two healthy subscribers (median of rounds), 200-byte messages:")
    for kind in args.brokers.split(","):
        for qos in (0, 1):
            without = statistics.median(rates[(kind, qos, False)])
            with_ = statistics.median(rates[(kind, qos, True)])
            # Each round ran both cases back to back: their ratio is less exposed to the
            # machine's load drifting between rounds than the ratio of the medians.
            paired = [w / o for w, o in zip(rates[(kind, qos, True)], rates[(kind, qos, False)])]
            print(f"  {kind:10s} QoS {qos}: without {without:>9.0f}  with a stuck subscriber "
                  f"{with_:>9.0f}  ratio {with_ / without:.2f}  per round "
                  + " ".join(f"{r:.2f}" for r in paired))
    return 0


if __name__ == "__main__":
    sys.exit(main())
