#!/usr/bin/env python3
"""turbomqtt's side-by-side benchmark: every scenario, turbomqtt and its peers, one run.

    python benches/run.py                      # everything, 3 runs each, latency 5 (about 17 min)
    python benches/run.py --quick              # smaller N, 1 run: a smoke test
    python benches/run.py --only e2e,broker    # some scenarios
    python benches/run.py --list               # what there is

Implementations alternate inside each run (A B C, A B C, ...), so slow drifts of this
shared machine hit every one alike. Prints a table of medians and ratios to the baseline
(paho-mqtt through mosquitto; mosquitto for the broker scenarios), writes the raw
results to benches/results/<timestamp>.json and a chart to benches/results/chart.png.
A turbomqtt piece that is not built yet is detected (a real probe, not an import) and
listed as "not available yet"; no figure is ever made up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import brokers

CLIENTS = HERE / "clients"
RESULTS = HERE / "results"
LOADGEN_DIR = HERE / "loadgen"
LOADGEN = LOADGEN_DIR / "target" / "release" / "turbomqtt-loadgen"


# ------------------------------------------------------------------ plumbing


@dataclass
class Ctx:
    args: argparse.Namespace
    python: str
    records: list = field(default_factory=list)
    available: dict = field(default_factory=dict)
    missing: list = field(default_factory=list)

    @property
    def runs(self) -> int:
        return self.args.runs

    def q(self, full, quick):
        """A parameter: its full value, or the smaller one under --quick."""
        return quick if self.args.quick else full

    def record(self, scenario, case, impl, run, **metrics):
        rec = {"scenario": scenario, "case": case, "impl": impl, "run": run, **metrics}
        self.records.append(rec)
        shown = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in metrics.items()}
        print(f"  [{scenario}] {case:<28} {impl:<26} run {run}: {shown}", flush=True)

    def not_available(self, scenario, case, impl, why):
        key = (scenario, case, impl)
        if key not in {(m["scenario"], m["case"], m["impl"]) for m in self.missing}:
            self.missing.append({"scenario": scenario, "case": case, "impl": impl, "why": why})
            print(f"  [{scenario}] {case:<28} {impl:<26} not available yet: {why}", flush=True)


class ClientProcess:
    """A benchmark client subprocess that prints READY/RESULT/ERROR lines."""

    def __init__(self, cmd, env=None):
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True, env=env)
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.result: dict | None = None
        self.error: str | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stderr = ""
        self._err_reader = threading.Thread(target=self._read_err, daemon=True)
        self._err_reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            if line.startswith("READY"):
                self.ready.set()
            elif line.startswith("RESULT "):
                self.result = json.loads(line[7:])
            elif line.startswith("ERROR "):
                self.error = line[6:]
        self.ready.set()  # EOF: never leave a waiter hanging

    def _read_err(self):
        self.stderr = self.proc.stderr.read()

    def wait_ready(self, timeout=30.0) -> bool:
        return self.ready.wait(timeout) and self.proc.poll() is None and self.error is None

    def wait(self, timeout) -> dict:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"timed out after {timeout:.0f} s: {' '.join(self.cmd)}") from None
        self._reader.join(5)
        self._err_reader.join(5)
        if self.result is None:
            tail = (self.error or "") + "\n" + self.stderr[-1500:]
            raise RuntimeError(f"no result from {' '.join(self.cmd[-8:])}: {tail.strip()}")
        return self.result

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def client_env() -> dict:
    env = dict(os.environ)
    # The client scripts import _report from their folder, also when started through
    # `python -m turbomqtt run`.
    env["PYTHONPATH"] = str(CLIENTS) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("TURBOMQTT_AS_PAHO", None)
    return env


def client_cmd(ctx: Ctx, impl: str, script: str, *args) -> list[str]:
    """How implementation ``impl`` runs client script ``script``. turbomqtt runs the
    very same paho (or aiomqtt) script through the paho switch."""
    path = str(CLIENTS / script)
    if impl in ("turbomqtt", "aiomqtt+turbomqtt"):
        return [ctx.python, "-m", "turbomqtt", "run", path, *map(str, args)]
    return [ctx.python, path, *map(str, args)]


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# ------------------------------------------------------------------ availability probes


def probe_turbomqtt_client(ctx: Ctx) -> str | None:
    """None if `python -m turbomqtt run` really runs a paho script on turbomqtt (a
    message round trip through mosquitto); else why not."""
    if "client" in ctx.available:
        return ctx.available["client"]
    why = None
    try:
        with brokers.start_mosquitto() as b:
            p = ClientProcess(client_cmd(ctx, "turbomqtt", "paho_latency.py", "--port", b.port,
                                         "-n", 5, "--warmup", 0), env=client_env())
            try:
                res = p.wait(30)
            except RuntimeError:
                raise RuntimeError(p.error or p.stderr or "no result") from None
            if res.get("impl") != "turbomqtt":
                why = "`python -m turbomqtt run` still ran the real paho-mqtt"
    except Exception as e:  # noqa: BLE001 - any failure means "not yet"
        why = _short(e)
    ctx.available["client"] = why
    return why


def probe_turbomqtt_asyncio(ctx: Ctx) -> str | None:
    """None if ``turbomqtt.asyncio.Client`` exists (the runs themselves show if it works)."""
    if "asyncio" in ctx.available:
        return ctx.available["asyncio"]
    r = subprocess.run([ctx.python, "-c", "from turbomqtt.asyncio import Client"],
                       capture_output=True, text=True, timeout=60, check=False)
    why = None if r.returncode == 0 else _short(r.stderr)
    ctx.available["asyncio"] = why
    return why


def probe_turbomqtt_broker(ctx: Ctx) -> str | None:
    """None if `python -m turbomqtt broker --port N` answers a CONNECT; else why not."""
    if "broker" in ctx.available:
        return ctx.available["broker"]
    why = None
    try:
        brokers.start_turbomqtt(ctx.python).stop()
    except Exception as e:  # noqa: BLE001
        why = _short(e)
    ctx.available["broker"] = why
    return why


def probe_embedded_broker(ctx: Ctx) -> str | None:
    """None if ``turbomqtt.Broker(port=0)`` starts inside a Python process."""
    if "embedded" in ctx.available:
        return ctx.available["embedded"]
    code = ("import turbomqtt\nb = turbomqtt.Broker(host='127.0.0.1', port=0)\nb.start()\n"
            "print('PORT', b.port)\nb.stop()\n")
    r = subprocess.run([ctx.python, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    why = None if r.returncode == 0 and "PORT" in r.stdout else _short(r.stderr or r.stdout)
    ctx.available["embedded"] = why
    return why


def probe_loadgen(ctx: Ctx) -> str | None:
    if "loadgen" in ctx.available:
        return ctx.available["loadgen"]
    why = None
    if not LOADGEN.exists():
        r = subprocess.run(["cargo", "build", "--release", "-q"], cwd=LOADGEN_DIR,
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            why = "cargo build of benches/loadgen failed: " + _short(r.stderr)
    ctx.available["loadgen"] = why
    return why


def _short(e) -> str:
    s = str(e).strip().splitlines()
    s = [x for x in s if x.strip()]
    return (s[-1] if s else repr(e))[:200]


# ------------------------------------------------------------------ measurements


def measure_e2e(ctx: Ctx, impl: str, broker_kind: str, size: int, n: int, qos: int) -> dict:
    """One publisher process and one subscriber process through a fresh broker."""
    env = client_env()
    topic = f"bench/e2e/{size}/{qos}"
    if impl.startswith("paho") or impl == "turbomqtt":
        pub_s, sub_s, extra = "paho_pub.py", "paho_sub.py", []
    elif impl.startswith("aiomqtt"):
        pub_s = sub_s = "aiomqtt_client.py"
        extra = ["--role"]
    elif impl == "turbomqtt.asyncio":
        pub_s = sub_s = "turbomqtt_asyncio_client.py"
        extra = ["--role"]
    else:
        pub_s = sub_s = "gmqtt_client.py"
        extra = ["--role"]
    impl_run = "turbomqtt" if impl == "turbomqtt" else impl
    common = ["--port", None, "--topic", topic, "-n", n, "--qos", qos]
    with brokers.start(broker_kind, ctx.python) as b:
        common[1] = b.port
        sub = ClientProcess(client_cmd(ctx, impl_run, sub_s, *(extra + ["sub"] if extra else []),
                                       *common), env=env)
        try:
            if not sub.wait_ready(30):
                sub.kill()
                raise RuntimeError("subscriber not ready: " + (sub.error or sub.stderr[-500:]))
            cpu_b0 = b.cpu_s()
            pub = ClientProcess(client_cmd(ctx, impl_run, pub_s, *(extra + ["pub"] if extra else []),
                                           *common, "--size", size), env=env)
            pres = pub.wait(ctx.args.timeout)
            sres = sub.wait(ctx.args.timeout)
            cpu_b1 = b.cpu_s()
            broker_rss = b.peak_rss_mb()
        finally:
            sub.kill()
    received = sres["received"]
    elapsed = max(sres["t_last"] - pres["t_start"], 1e-9)
    broker_cpu_per_msg = (cpu_b1 - cpu_b0) / max(received, 1)
    return {
        "msgs_per_s": received / elapsed if received else 0.0,
        "mb_per_s": received * size / elapsed / 1e6 if received else 0.0,
        "lost": n - received,
        "client_cpu_us_per_msg": (pres["cpu_s"] + sres["cpu_s"]) / n * 1e6,
        "pub_cpu_us_per_msg": pres["cpu_s"] / n * 1e6,
        "sub_cpu_us_per_msg": sres["cpu_s"] / n * 1e6,
        "pub_rss_mb": pres["peak_rss_mb"],
        "sub_rss_mb": sres["peak_rss_mb"],
        "broker_cpu_us_per_msg": broker_cpu_per_msg * 1e6,
        # Cores the broker's work per message takes at this rate: mosquitto is single-
        # threaded, so near 1.0 it is the bottleneck, whatever the clients do.
        "broker_cores": broker_cpu_per_msg * received / elapsed,
        "broker_rss_mb": broker_rss,
        "publish_call_us": pres.get("publish_call_us"),
        # Publishes the client refused or never completed (paho: MQTT_ERR_QUEUE_SIZE
        # past 65,535 unfinished QoS 1/2 messages).
        "refused": pres.get("errors", 0) + pres.get("unpublished", 0),
    }


def run_loadgen(args: list, timeout: float) -> dict:
    r = subprocess.run([str(LOADGEN), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, check=False)
    if r.returncode != 0:
        raise RuntimeError("loadgen failed: " + _short(r.stderr))
    return json.loads(r.stdout.strip().splitlines()[-1])


def measure_broker_flow(ctx: Ctx, b: brokers.BrokerProcess, pubs, subs, msgs, qos, size) -> dict:
    cpu0 = b.cpu_s()
    res = run_loadgen(["pubsub", "--port", b.port, "--pubs", pubs, "--subs", subs, "--msgs", msgs,
                       "--qos", qos, "--size", size, "--threads", ctx.args.loadgen_threads],
                      ctx.args.timeout)
    cpu1 = b.cpu_s()
    if res["errors"]:
        raise RuntimeError("loadgen: " + "; ".join(res["errors"])[:300])
    return {
        "deliveries_per_s": res["deliveries_per_s"],
        "delivered": res["delivered"],
        "lost": res["expected"] - res["delivered"],
        "broker_cpu_us_per_delivery": (cpu1 - cpu0) / max(res["delivered"], 1) * 1e6,
        "broker_peak_rss_mb": b.peak_rss_mb(),
    }


# ------------------------------------------------------------------ scenarios

SCENARIOS = {}


def scenario(name, title):
    def deco(fn):
        SCENARIOS[name] = (title, fn)
        return fn
    return deco


def client_impls(ctx: Ctx, with_broker=True):
    """(label, client impl, broker kind) for the client scenarios; turbomqtt rows are
    included only when their pieces really work, else listed as not available."""
    rows = [("paho+mosquitto", "paho", "mosquitto"),
            ("turbomqtt+mosquitto", "turbomqtt", "mosquitto"),
            ("turbomqtt+turbomqtt", "turbomqtt", "turbomqtt"),
            # paho through our broker: both clients' CPU per message with the same broker
            # (mosquitto writes each packet on its own, which costs a fast client more
            # wake-ups per message than a batching broker does).
            ("paho+turbomqtt", "paho", "turbomqtt"),
            ("aiomqtt+mosquitto", "aiomqtt", "mosquitto"),
            ("aiomqtt/turbomqtt+mosquitto", "aiomqtt+turbomqtt", "mosquitto"),
            ("gmqtt+mosquitto", "gmqtt", "mosquitto"),
            ("turbomqtt.asyncio+mosquitto", "turbomqtt.asyncio", "mosquitto"),
            ("turbomqtt.asyncio+turbomqtt", "turbomqtt.asyncio", "turbomqtt")]
    if not with_broker:
        rows = [r for r in rows if r[2] == "mosquitto"]
    # A row needs every family it is made of: "aiomqtt+turbomqtt" needs both.
    return [r for r in rows if all(f.split(".")[0] in ctx.args.clients for f in r[1].split("+"))]


def usable(ctx: Ctx, scen, case, label, impl, broker_kind) -> bool:
    why = None
    if impl == "turbomqtt.asyncio":
        why = probe_turbomqtt_asyncio(ctx)
    elif "turbomqtt" in impl:
        why = probe_turbomqtt_client(ctx)
    if why is None and broker_kind == "turbomqtt":
        why = probe_turbomqtt_broker(ctx)
    if why:
        ctx.not_available(scen, case, label, why)
        return False
    return True


@scenario("e2e", "1. end to end, publisher and subscriber in separate processes")
def scenario_e2e(ctx: Ctx):
    # (payload bytes, messages, QoS). QoS 1/2 use fewer 64 B messages than QoS 0 so that a
    # full run stays near 15 minutes on 2 cores (rates are steady well before that);
    # --e2e-n N sets every 64 B case to N (100000 is issue 6's figure).
    n0, n1, n2 = (ctx.args.e2e_n,) * 3 if ctx.args.e2e_n else (100_000, 50_000, 30_000)
    cases = [(64, ctx.q(n, 20_000), qos) for qos, n in ((0, n0), (1, n1), (2, n2))]
    cases += [(65536, ctx.q(1_000, 300), qos) for qos in (0, 1, 2)]
    for run in range(1, ctx.runs + 1):
        for size, n, qos in cases:
            case = f"{size} B x {n} QoS {qos}"
            for label, impl, bk in client_impls(ctx):
                if not usable(ctx, "e2e", case, label, impl, bk):
                    continue
                try:
                    ctx.record("e2e", case, label, run, **measure_e2e(ctx, impl, bk, size, n, qos))
                except Exception as e:  # noqa: BLE001 - a failed run is reported, not hidden
                    ctx.record("e2e", case, label, run, error=_short(e))


@scenario("latency", "2. round-trip latency (publish, receive on own subscription)")
def scenario_latency(ctx: Ctx):
    n = ctx.q(2000, 500)
    scripts = {"paho": "paho_latency.py", "turbomqtt": "paho_latency.py",
               "aiomqtt": "aiomqtt_client.py", "aiomqtt+turbomqtt": "aiomqtt_client.py",
               "gmqtt": "gmqtt_client.py", "turbomqtt.asyncio": "turbomqtt_asyncio_client.py"}
    # A p99 of 2,000 round trips is their 20th-slowest: one stray wake-up on a busy VM moves
    # it, so this cheap section takes at least 5 runs (the median of each figure is kept).
    runs = ctx.runs if ctx.args.quick or ctx.args.runs_given else max(ctx.runs, 5)
    for run in range(1, runs + 1):
        for qos in (0, 1):
            case = f"64 B x {n} QoS {qos}"
            for label, impl, bk in client_impls(ctx):
                if not usable(ctx, "latency", case, label, impl, bk):
                    continue
                role = [] if scripts[impl] == "paho_latency.py" else ["--role", "latency"]
                try:
                    with brokers.start(bk, ctx.python) as b:
                        p = ClientProcess(client_cmd(ctx, impl, scripts[impl], *role, "--port", b.port,
                                                     "-n", n, "--qos", qos), env=client_env())
                        res = p.wait(ctx.args.timeout)
                    ctx.record("latency", case, label, run, p50_us=res["p50_us"],
                               p90_us=res["p90_us"], p99_us=res["p99_us"])
                except Exception as e:  # noqa: BLE001
                    ctx.record("latency", case, label, run, error=_short(e))


@scenario("publish", "3. publish-only rate from Python, 1 and 4 threads (QoS 0, 64 B)")
def scenario_publish(ctx: Ctx):
    n = ctx.q(100_000, 20_000)
    for run in range(1, ctx.runs + 1):
        for threads in (1, 4):
            case = f"64 B x {n}, {threads} thread{'s' if threads > 1 else ''}"
            for label, impl in (("paho", "paho"), ("turbomqtt", "turbomqtt")):
                if impl not in ctx.args.clients:
                    continue
                if not usable(ctx, "publish", case, label, impl, "mosquitto"):
                    continue
                try:
                    with brokers.start_mosquitto() as b:
                        p = ClientProcess(client_cmd(ctx, impl, "paho_publish_rate.py", "--port", b.port,
                                                     "-n", n, "--threads", threads), env=client_env())
                        res = p.wait(ctx.args.timeout)
                    ctx.record("publish", case, label, run, calls_per_s=res["calls_per_s"],
                               publish_call_us=res["publish_call_us"],
                               cpu_us_per_msg=res["cpu_us_per_msg"], rss_mb=res["peak_rss_mb"])
                except Exception as e:  # noqa: BLE001
                    ctx.record("publish", case, label, run, error=_short(e))


@scenario("broker", "4. brokers under the Rust load generator (deliveries/s)")
def scenario_broker(ctx: Ctx):
    if why := probe_loadgen(ctx):
        ctx.not_available("broker", "all", "loadgen", why)
        return
    # (case, publishers, subscribers, messages per publisher, qos, payload size)
    cases = [
        ("fan-in 100->1 QoS 0", 100, 1, ctx.q(3000, 1000), 0, 64),
        ("fan-in 100->1 QoS 1", 100, 1, ctx.q(2000, 500), 1, 64),
        ("fan-out 1->100 QoS 0", 1, 100, ctx.q(3000, 1000), 0, 64),
        ("fan-out 1->100 QoS 1", 1, 100, ctx.q(2000, 500), 1, 64),
        ("1->1 QoS 0 64 B", 1, 1, ctx.q(300_000, 50_000), 0, 64),
        ("1->1 QoS 1 64 B", 1, 1, ctx.q(200_000, 30_000), 1, 64),
        ("1->1 QoS 2 64 B", 1, 1, ctx.q(100_000, 20_000), 2, 64),
        ("1->1 QoS 0 64 KiB", 1, 1, ctx.q(10_000, 2_000), 0, 65536),
        ("1->1 QoS 1 64 KiB", 1, 1, ctx.q(10_000, 2_000), 1, 65536),
        ("1->1 QoS 2 64 KiB", 1, 1, ctx.q(5_000, 1_000), 2, 65536),
    ]
    for run in range(1, ctx.runs + 1):
        for case, pubs, subs, msgs, qos, size in cases:
            for kind in ctx.args.brokers:
                if kind == "turbomqtt" and (why := probe_turbomqtt_broker(ctx)):
                    ctx.not_available("broker", case, kind, why)
                    continue
                if kind == "rumqttd" and qos == 2:
                    # rumqttd 0.20 lists QoS 0 and 1 only; try it, report what happens.
                    pass
                try:
                    with brokers.start(kind, ctx.python) as b:
                        ctx.record("broker", case, kind, run,
                                   **measure_broker_flow(ctx, b, pubs, subs, msgs, qos, size))
                except Exception as e:  # noqa: BLE001
                    ctx.record("broker", case, kind, run, error=_short(e))


@scenario("idle", "4b. broker memory per idle connection (RSS delta / connections)")
def scenario_idle(ctx: Ctx):
    """N MQTT 3.1.1 connections (keepalive 600 s, clean session), every one CONNACKed,
    then the broker's RSS delta over its RSS before the first connection, divided by N.
    The same load generator and the same settling time for every broker."""
    if why := probe_loadgen(ctx):
        ctx.not_available("idle", "all", "loadgen", why)
        return
    conns = ctx.q(10_000, 2_000)
    case = f"{conns} idle connections"
    for run in range(1, ctx.runs + 1):
        for kind in ctx.args.brokers:
            if kind == "turbomqtt" and (why := probe_turbomqtt_broker(ctx)):
                ctx.not_available("idle", case, kind, why)
                continue
            try:
                with brokers.start(kind, ctx.python) as b:
                    ctx.record("idle", case, kind, run, **measure_idle(ctx, b, conns))
            except Exception as e:  # noqa: BLE001
                ctx.record("idle", case, kind, run, error=_short(e))


def measure_idle(ctx: Ctx, b: brokers.BrokerProcess, conns: int) -> dict:
    rss0 = b.rss_mb()
    p = subprocess.Popen([str(LOADGEN), "idle", "--port", str(b.port), "--conns", str(conns),
                          "--timeout", "120"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        if not line:
            raise RuntimeError("loadgen idle: " + _short(p.stderr.read()))
        res = json.loads(line)
        time.sleep(1.0)  # let the broker settle its per-connection buffers before reading RSS
        rss1 = b.rss_mb()
    finally:
        p.stdin.close()
        p.wait(30)
    return {"connected": res["connected"], "rss_before_mb": rss0, "rss_after_mb": rss1,
            "kb_per_connection": (rss1 - rss0) * 1024 / max(res["connected"], 1),
            "connect_s": res["connect_s"]}


@scenario("inproc", "5. client and broker in one process vs a separate mosquitto")
def scenario_inproc(ctx: Ctx):
    # QoS 1 with fewer messages: paho refuses QoS 1/2 publishes past 65,535 unfinished.
    ns = {0: ctx.q(100_000, 20_000), 1: ctx.q(50_000, 20_000)}
    rows = [("paho, both clients in 1 process -> mosquitto", "paho", "mosquitto"),
            ("turbomqtt, both clients in 1 process -> mosquitto", "turbomqtt", "mosquitto"),
            ("turbomqtt clients + embedded Broker, 1 process", "turbomqtt", "embedded")]
    for run in range(1, ctx.runs + 1):
        for qos in (0, 1):
            n = ns[qos]
            case = f"64 B x {n} QoS {qos}"
            for label, impl, bk in rows:
                if impl not in ctx.args.clients:
                    continue
                why = probe_turbomqtt_client(ctx) if impl == "turbomqtt" else None
                if why is None and bk == "embedded":
                    why = probe_embedded_broker(ctx)
                if why:
                    ctx.not_available("inproc", case, label, why)
                    continue
                try:
                    args = ["-n", n, "--qos", qos]
                    if bk == "embedded":
                        res = ClientProcess(client_cmd(ctx, impl, "inproc_pubsub.py", "--embedded", *args),
                                            env=client_env()).wait(ctx.args.timeout)
                    else:
                        with brokers.start_mosquitto() as b:
                            res = ClientProcess(client_cmd(ctx, impl, "inproc_pubsub.py", "--port", b.port,
                                                           *args), env=client_env()).wait(ctx.args.timeout)
                    ctx.record("inproc", case, label, run, msgs_per_s=res["msgs_per_s"],
                               cpu_us_per_msg=res["cpu_us_per_msg"], lost=res["lost"],
                               refused=res.get("refused", 0),
                               rss_mb=res["peak_rss_mb"])
                except Exception as e:  # noqa: BLE001
                    ctx.record("inproc", case, label, run, error=_short(e))


@scenario("busyhost", "6. embedded broker while the host Python thread is busy (GIL held) vs idle vs busy in C (GIL free)")
def scenario_busyhost(ctx: Ctx):
    if why := probe_loadgen(ctx):
        ctx.not_available("busyhost", "all", "loadgen", why)
        return
    cases = [("1->1 QoS 0 64 B", 1, 1, ctx.q(300_000, 50_000), 0),
             ("fan-in 100->1 QoS 1", 100, 1, ctx.q(2000, 500), 1)]
    for run in range(1, ctx.runs + 1):
        for case, pubs, subs, msgs, qos in cases:
            for host in ("idle", "busy", "native"):
                label = f"embedded Broker, host {host}"
                if why := probe_embedded_broker(ctx):
                    ctx.not_available("busyhost", case, label, why)
                    continue
                try:
                    p = subprocess.Popen([ctx.python, str(CLIENTS / "busy_host_broker.py"),
                                          f"--{host}"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                    try:
                        line = p.stdout.readline().split()
                        if not line or line[0] != "PORT":
                            raise RuntimeError("busy_host_broker.py did not start")
                        res = run_loadgen(["pubsub", "--port", line[1], "--pubs", pubs, "--subs", subs,
                                           "--msgs", msgs, "--qos", qos, "--size", 64],
                                          ctx.args.timeout)
                    finally:
                        p.stdin.close()
                        out = p.stdout.read()
                        p.wait(30)
                    loops = next((float(x.split()[1]) for x in out.splitlines()
                                  if x.startswith("LOOPS")), None)
                    ctx.record("busyhost", case, label, run,
                               deliveries_per_s=res["deliveries_per_s"],
                               lost=res["expected"] - res["delivered"], host_loops_per_s=loops)
                except Exception as e:  # noqa: BLE001
                    ctx.record("busyhost", case, label, run, error=_short(e))


# ------------------------------------------------------------------ report

MAIN_METRIC = {
    "e2e": ["msgs_per_s", "client_cpu_us_per_msg", "broker_cpu_us_per_msg", "broker_cores",
            "pub_rss_mb", "lost", "refused"],
    "latency": ["p50_us", "p99_us"],
    "publish": ["calls_per_s", "publish_call_us", "rss_mb"],
    "broker": ["deliveries_per_s", "broker_cpu_us_per_delivery", "broker_peak_rss_mb",
               "kb_per_connection", "lost"],
    "inproc": ["msgs_per_s", "cpu_us_per_msg", "lost", "refused"],
    "busyhost": ["deliveries_per_s", "host_loops_per_s", "lost"],
    "idle": ["kb_per_connection", "connected", "rss_before_mb", "rss_after_mb"],
}
BASELINE = {"e2e": "paho+mosquitto", "latency": "paho+mosquitto", "publish": "paho",
            "broker": "mosquitto", "inproc": "paho, both clients in 1 process -> mosquitto",
            "busyhost": "embedded Broker, host idle", "idle": "mosquitto"}


def summarize(records: list) -> list:
    """Medians per (scenario, case, impl), with the ratio of the first metric to the
    scenario's baseline in the same run set."""
    groups: dict = {}
    for r in records:
        groups.setdefault((r["scenario"], r["case"], r["impl"]), []).append(r)
    rows = []
    for (scen, case, impl), rs in groups.items():
        metrics = {}
        for m in MAIN_METRIC.get(scen, []):
            v = median([r.get(m) for r in rs])
            if v is not None:
                metrics[m] = v
        errors = [r["error"] for r in rs if "error" in r]
        rows.append({"scenario": scen, "case": case, "impl": impl, "runs": len(rs) - len(errors),
                     "median": metrics, "errors": errors})
    for row in rows:
        base = next((x for x in rows if x["scenario"] == row["scenario"] and x["case"] == row["case"]
                     and x["impl"] == BASELINE.get(row["scenario"])), None)
        first = MAIN_METRIC[row["scenario"]][0]
        if base and base["median"].get(first) and row["median"].get(first) is not None:
            row["ratio"] = row["median"][first] / base["median"][first]
    return rows


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, int):
        return f"{v:,}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def print_table(rows: list, missing: list) -> str:
    out = []
    for scen, (title, _) in SCENARIOS.items():
        srows = [r for r in rows if r["scenario"] == scen]
        smiss = [m for m in missing if m["scenario"] == scen]
        if not srows and not smiss:
            continue
        out.append(f"\n## {title}\n")
        cols = MAIN_METRIC[scen]
        out.append("| case | implementation | runs | " + " | ".join(cols) + " | ratio |")
        out.append("|---|---|---:|" + "---:|" * len(cols) + "---:|")
        for r in srows:
            cells = [fmt(r["median"].get(c)) for c in cols]
            ratio = f"{r['ratio']:.2f}x" if "ratio" in r else "-"
            err = f" (errors: {len(r['errors'])}: {r['errors'][0][:80]})" if r["errors"] else ""
            out.append(f"| {r['case']} | {r['impl']}{err} | {r['runs']} | " + " | ".join(cells)
                       + f" | {ratio} |")
        for m in smiss:
            out.append(f"| {m['case']} | {m['impl']} | 0 | " + " | ".join("-" for _ in cols)
                       + f" | not available yet: {m['why'][:90]} |")
    text = "\n".join(out)
    print(text)
    return text


def draw_chart(rows: list, path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no chart (benches/setup.sh installs it)")
        return False
    panels = [
        ("e2e", "msgs_per_s", "end to end, 64 B: msgs/s", lambda c: c.startswith("64 B")),
        ("e2e", "client_cpu_us_per_msg", "end to end, 64 B: client CPU µs/msg",
         lambda c: c.startswith("64 B")),
        ("latency", "p50_us", "round trip p50 (µs)", lambda c: True),
        ("broker", "deliveries_per_s", "brokers: deliveries/s", lambda c: "idle" not in c),
    ]
    panels = [p for p in panels if any(r["scenario"] == p[0] and p[1] in r["median"] for r in rows)]
    if not panels:
        return False
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.6 * len(panels)), squeeze=False)
    for ax, (scen, metric, title, keep) in zip(axes[:, 0], panels):
        srows = [r for r in rows if r["scenario"] == scen and metric in r["median"] and keep(r["case"])]
        cases = list(dict.fromkeys(r["case"] for r in srows))
        impls = list(dict.fromkeys(r["impl"] for r in srows))
        width = 0.8 / max(len(impls), 1)
        for i, impl in enumerate(impls):
            xs, ys = [], []
            for j, case in enumerate(cases):
                v = next((r["median"][metric] for r in srows if r["case"] == case and r["impl"] == impl), None)
                if v is not None:
                    xs.append(j + i * width)
                    ys.append(v)
            ax.bar(xs, ys, width, label=impl)
        ax.set_xticks([j + width * (len(impls) - 1) / 2 for j in range(len(cases))])
        ax.set_xticklabels(cases, fontsize=8, rotation=12)
        ax.set_title(title, fontsize=10)
        if scen == "broker":
            ax.set_yscale("log")
        ax.legend(fontsize=7, ncol=3)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("turbomqtt benchmarks (medians, same machine, same run)", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return True


# ------------------------------------------------------------------ main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller N and 1 run: a smoke test")
    ap.add_argument("--runs", type=int, default=None, help="runs per measurement (default 3, quick 1)")
    ap.add_argument("--only", default="", help="comma-separated scenarios (see --list)")
    ap.add_argument("--skip", default="", help="comma-separated scenarios to leave out")
    ap.add_argument("--clients", default="paho,turbomqtt,aiomqtt,gmqtt",
                    help="client implementations to include")
    ap.add_argument("--brokers", default="mosquitto,rumqttd,turbomqtt",
                    help="brokers for the broker scenario")
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter with the peers (and turbomqtt) installed")
    ap.add_argument("--loadgen-threads", type=int, default=2)
    ap.add_argument("--e2e-n", type=int, default=0, help="messages for every 64 B end-to-end case")
    ap.add_argument("--timeout", type=float, default=300, help="per measurement, seconds")
    ap.add_argument("--out", default=None, help="JSON results file (default benches/results/<time>.json)")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args(argv)
    if args.list:
        for name, (title, _) in SCENARIOS.items():
            print(f"{name:<10} {title}")
        return 0
    args.runs_given = args.runs is not None
    args.runs = args.runs or (1 if args.quick else 3)
    args.clients = [c for c in args.clients.split(",") if c]
    args.brokers = [b for b in args.brokers.split(",") if b]
    only = [s for s in args.only.split(",") if s] or list(SCENARIOS)
    skip = {s for s in args.skip.split(",") if s}
    for s in only:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s!r}; see --list")

    # 10,000 idle connections need 10k descriptors here, in the load generator and in
    # the brokers (they inherit this limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 30_000 if hard == resource.RLIM_INFINITY else min(30_000, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    ctx = Ctx(args=args, python=args.python)
    started = time.time()
    print(f"turbomqtt benchmarks: {platform.node()} {platform.machine()} cpus={os.cpu_count()} "
          f"load={os.getloadavg()[0]:.2f} python={args.python} runs={args.runs}"
          f"{' quick' if args.quick else ''}")
    for name in only:
        if name in skip:
            continue
        title, fn = SCENARIOS[name]
        print(f"\n== {title}", flush=True)
        fn(ctx)
    rows = summarize(ctx.records)
    table = print_table(rows, ctx.missing)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else RESULTS / f"{stamp}.json"
    meta = {"started": started, "seconds": time.time() - started, "host": platform.node(),
            "cpus": os.cpu_count(), "python": args.python, "argv": sys.argv[1:],
            "loadavg_end": os.getloadavg(), "available": ctx.available, "versions": versions(ctx)}
    out.write_text(json.dumps({"meta": meta, "records": ctx.records, "summary": rows,
                               "not_available": ctx.missing, "table": table}, indent=1))
    chart = RESULTS / "chart.png"
    drew = draw_chart(rows, chart)
    print(f"\nraw results: {out}" + (f"\nchart: {chart}" if drew else ""))
    print(f"took {time.time() - started:.0f} s")
    return 0


def versions(ctx: Ctx) -> dict:
    code = ("import importlib.metadata as m, json\nv = {}\n"
            "for p in ('paho-mqtt', 'aiomqtt', 'gmqtt', 'turbomqtt'):\n"
            "    try: v[p] = m.version(p)\n    except Exception: v[p] = None\nprint(json.dumps(v))")
    try:
        v = json.loads(subprocess.run([ctx.python, "-c", code], capture_output=True, text=True,
                                      timeout=30, check=False).stdout)
    except Exception:  # noqa: BLE001
        v = {}
    try:
        v["mosquitto"] = subprocess.run([brokers.mosquitto_path() or "mosquitto", "-h"],
                                        capture_output=True, text=True, check=False).stdout.split("\n")[0]
    except OSError:
        pass
    v["rumqttd"] = brokers.rumqttd_path()
    return v


if __name__ == "__main__":
    sys.exit(main())
