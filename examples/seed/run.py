#!/usr/bin/env python3
"""Runs the seed scenario end to end and shows the records arriving.

    python examples/seed/run.py               # turbomqtt: embedded broker + the paho switch
    python examples/seed/run.py --reference   # the same programs on paho-mqtt + mosquitto

1. starts a broker that knows the two users of the scenario (turbomqtt.Broker inside
   this process; with --reference a mosquitto on a free port),
2. starts subscriber.py and publisher.py, unmodified paho-mqtt programs (with
   ``python -m turbomqtt run``, so they run on turbomqtt; with --reference on paho-mqtt),
3. POSTs {"cmd": "mate_in"} to the publisher's /index,
4. prints what the subscriber prints until every record has arrived,
5. stops the publisher, the subscriber and the broker.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The two accounts of the scenario: user name = client id, password = client id + "-123".
USERS = {
    "auto_sis_server_dev": "auto_sis_server_dev-123",
    "auto_sis_server_dev1": "auto_sis_server_dev1-123",
}


def turbomqtt_available() -> str | None:
    """None if turbomqtt has what the scenario needs (its broker and the paho switch);
    otherwise what is missing. The test's skip condition uses this, in one place."""
    try:
        import turbomqtt
    except ImportError as e:
        return f"turbomqtt is not installed ({e})"
    if not hasattr(turbomqtt, "Broker"):
        return "turbomqtt.Broker does not exist yet"
    for mod in ("turbomqtt.client", "turbomqtt.__main__"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} does not exist yet (needed for `python -m turbomqtt run`)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """turbomqtt's broker inside this process, with the scenario's two users."""

    def __init__(self):
        import turbomqtt

        self._broker = turbomqtt.Broker(host="127.0.0.1", port=0, users=USERS,
                                        allow_anonymous=False)
        self._broker.start()
        self.port = self._broker.port
        self.name = f"turbomqtt.Broker (in this process) on 127.0.0.1:{self.port}"

    def stop(self):
        self._broker.stop()


class Mosquitto:
    """The reference broker: mosquitto on a free port, with the two users."""

    def __init__(self):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="seed-mosquitto-"))
        pw = self._dir / "passwd"
        pw.write_text("".join(f"{u}:{p}\n" for u, p in USERS.items()))
        subprocess.run(["mosquitto_passwd", "-U", str(pw)], check=True)
        # Started as root, mosquitto drops to its own user before it reads the files.
        self._dir.chmod(0o755)
        pw.chmod(0o644)
        conf = self._dir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous false\n"
                        f"password_file {pw}\npersistence false\n")
        self._proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("mosquitto did not start") from None
                time.sleep(0.05)
        self.name = f"mosquitto on 127.0.0.1:{self.port}"

    def stop(self):
        self._proc.terminate()
        self._proc.wait(10)
        shutil.rmtree(self._dir, ignore_errors=True)


class Program:
    """A child program whose output lines are echoed and can be waited for."""

    def __init__(self, label, cmd, env, echo=True):
        self.label = label
        self.echo = echo
        self.lines: queue.Queue = queue.Queue()
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     text=True, encoding="utf-8")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if self.echo:
                print(f"[{self.label}] {line}", flush=True)
            self.lines.put(line)
        self.lines.put(None)  # EOF

    def wait_for(self, predicate, timeout):
        """The first line satisfying ``predicate``; RuntimeError on timeout or exit."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{self.label}: timed out waiting")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                raise RuntimeError(f"{self.label}: timed out waiting") from None
            if line is None:
                raise RuntimeError(f"{self.label} exited with code {self.proc.wait()}")
            if predicate(line):
                return line

    def stop(self):
        """Ctrl-C, as a user would; kill only if it does not end within 10 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def rest(self) -> list:
        """Every line printed after the ones already taken, up to the program's exit."""
        self._reader.join(10)
        out = []
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return out
            if line is not None:
                out.append(line)


def post_mate_in(http_port: int) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{http_port}/index",
                                 data=json.dumps({"cmd": "mate_in"}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


RECORD_PREFIX = "MQTT message: "

# publisher.py and subscriber.py are written in paho 1.x style (Client() without a
# callback API version): paho 2.x, and turbomqtt with it, warns once per client that
# callback API version 1 is deprecated. The programs stay as the scenario wrote them;
# the runner says so once and keeps that warning out of their output.
CALLBACK_API_NOTE = ("note: publisher.py and subscriber.py use paho's callback API version 1 "
                     "(paho 1.x style), which paho 2.x deprecates; that deprecation warning is "
                     "filtered from their output")
CALLBACK_API_FILTER = "ignore:Callback API version 1 is deprecated:DeprecationWarning"


def run_scenario(reference: bool, records: int = 28, python: str = sys.executable,
                 echo: bool = True, timeout: float = 30.0) -> list:
    """Runs the whole scenario; returns the records the subscriber printed (parsed JSON)."""
    say = print if echo else (lambda *a, **k: None)
    broker = Mosquitto() if reference else EmbeddedBroker()
    say(f"broker: {broker.name}")
    env = dict(os.environ, MQTT_HOST="127.0.0.1", MQTT_PORT=str(broker.port),
               HTTP_HOST="127.0.0.1", HTTP_PORT=str(free_port()), SEED_RECORDS=str(records),
               PYTHONUNBUFFERED="1")
    env.pop("TURBOMQTT_AS_PAHO", None)
    env["PYTHONWARNINGS"] = ",".join(
        w for w in (os.environ.get("PYTHONWARNINGS"), CALLBACK_API_FILTER) if w)
    say(CALLBACK_API_NOTE)
    launch = [python] if reference else [python, "-m", "turbomqtt", "run"]
    sub = pub = None
    try:
        sub = Program("subscriber", [*launch, str(HERE / "subscriber.py")], env, echo)
        sub.wait_for(lambda line: line.startswith("subscribed to"), timeout)
        pub = Program("publisher", [*launch, str(HERE / "publisher.py")], env, echo)
        pub.wait_for(lambda line: line.startswith("HTTP ready"), timeout)
        say(f'POST /index {{"cmd": "mate_in"}} -> {post_mate_in(int(env["HTTP_PORT"]))}')
        got = []
        while len(got) < records:
            line = sub.wait_for(lambda line: line.startswith(RECORD_PREFIX), timeout)
            got.append(json.loads(line[len(RECORD_PREFIX):]))
    finally:
        for prog in (pub, sub):
            if prog is not None:
                prog.stop()
        broker.stop()
    # Whatever the subscriber printed until it stopped counts too: a duplicate
    # delivery would show up here.
    got += [json.loads(x[len(RECORD_PREFIX):]) for x in sub.rest() if x.startswith(RECORD_PREFIX)]
    say(f"{len(got)} records received, {len({r['mate_info']['save_id'] for r in got})} distinct")
    return got


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", action="store_true",
                    help="run on the real paho-mqtt and mosquitto instead of turbomqtt")
    ap.add_argument("--records", type=int, default=28, help="records per mate_in (default 28)")
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args(argv)
    if not args.reference and (why := turbomqtt_available()):
        print(f"turbomqtt is not ready for this yet: {why}\n"
              "(examples/seed/run.py --reference runs it on paho-mqtt + mosquitto)",
              file=sys.stderr)
        return 2
    got = run_scenario(args.reference, args.records, args.python)
    ids = sorted(r["mate_info"]["save_id"] for r in got)
    want = [f"BQHZ2500016{i:06d}" for i in range(1, args.records + 1)]
    if ids != want:
        print(f"MISMATCH: expected each of {len(want)} records exactly once", file=sys.stderr)
        return 1
    print("every record arrived exactly once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
