"""Brokers the benchmarks start: mosquitto, rumqttd and turbomqtt's embedded broker.

Each one runs as its own process on a free 127.0.0.1 port with a throw-away
configuration, so its CPU time and memory can be read from /proc while it works.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mqtt_ping(port: int, host: str = "127.0.0.1", timeout: float = 1.0,
              username: str | None = None, password: str | None = None) -> bool:
    """True if an MQTT 3.1.1 CONNECT on ``port`` is answered by a CONNACK with code 0."""
    def s16(b: bytes) -> bytes:
        return len(b).to_bytes(2, "big") + b

    flags = 0x02 | (0x80 if username else 0) | (0x40 if password else 0)
    body = s16(b"MQTT") + bytes([4, flags]) + (10).to_bytes(2, "big") + s16(b"bench-ping")
    if username:
        body += s16(username.encode())
    if password:
        body += s16(password.encode())
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(bytes([0x10, len(body)]) + body)
            ack = b""
            while len(ack) < 4:
                chunk = s.recv(4 - len(ack))
                if not chunk:
                    return False
                ack += chunk
            s.sendall(b"\xe0\x00")
            return ack[0] == 0x20 and ack[3] == 0
    except OSError:
        return False


class BrokerProcess:
    """A running broker: ``port``, ``pid``, CPU and memory readings, ``stop()``."""

    def __init__(self, kind: str, cmd: list[str], port: int, workdir: Path, env=None):
        self.kind = kind
        self.port = port
        self.workdir = workdir
        self.log = open(workdir / "broker.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=workdir)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 20
        while not mqtt_ping(port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (workdir / "broker.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{kind} did not start on port {port}: {tail}")
            time.sleep(0.05)

    def cpu_s(self) -> float:
        """User + system CPU time of the broker process so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def _status(self, key: str) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
        return 0.0

    def rss_mb(self) -> float:
        return self._status("VmRSS")

    def peak_rss_mb(self) -> float:
        return self._status("VmHWM")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None)


def rumqttd_path() -> str | None:
    env = os.environ.get("RUMQTTD")
    candidates = [env] if env else []
    candidates += [shutil.which("rumqttd"), str(Path(sys.executable).parent / "rumqttd"),
                   str(Path(__file__).resolve().parent.parent / ".venv-bench" / "bin" / "rumqttd"),
                   os.path.expanduser("~/.cargo/bin/rumqttd")]
    return next((p for p in candidates if p and os.path.exists(p)), None)


def start_mosquitto(users: dict[str, str] | None = None) -> BrokerProcess:
    exe = mosquitto_path()
    if not exe:
        raise RuntimeError("mosquitto is not installed (benches/setup.sh installs it)")
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="bench-mosquitto-"))
    # As in the performance anchors: persistence off, no limit on queued messages,
    # everything else at mosquitto 2.0's defaults (20 messages in flight per client).
    conf = [f"listener {port} 127.0.0.1", "persistence false", "max_queued_messages 0",
            "log_dest stderr", "log_type error", "log_type warning"]
    if users:
        pw = work / "passwd"
        pw.write_text("".join(f"{u}:{p}\n" for u, p in users.items()))
        subprocess.run(["mosquitto_passwd", "-U", str(pw)], check=True)
        # Started as root, mosquitto drops to its own user before it reads the file.
        work.chmod(0o755)
        pw.chmod(0o644)
        conf += ["allow_anonymous false", f"password_file {pw}"]
    else:
        conf.append("allow_anonymous true")
    (work / "mosquitto.conf").write_text("\n".join(conf) + "\n")
    return BrokerProcess("mosquitto", [exe, "-c", str(work / "mosquitto.conf")], port, work)


def start_rumqttd() -> BrokerProcess:
    exe = rumqttd_path()
    if not exe:
        raise RuntimeError("rumqttd is not installed (benches/setup.sh installs it)")
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="bench-rumqttd-"))
    # rumqttd 0.20's shipped rumqttd.toml router defaults (100 MB x 10 commit-log
    # segments, as in the anchors), one MQTT 3.1.1 listener, payloads up to 1 MiB.
    (work / "rumqttd.toml").write_text(f"""id = 0

[router]
id = 0
max_connections = 20010
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 0
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 1048576
    max_inflight_count = 100
    dynamic_filters = true
""")
    return BrokerProcess("rumqttd", [exe, "-c", str(work / "rumqttd.toml")], port, work)


def start_turbomqtt(python: str = sys.executable) -> BrokerProcess:
    """turbomqtt's broker in its own Python process: ``python -m turbomqtt broker``."""
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="bench-turbomqtt-"))
    # Like mosquitto above (max_queued_messages 0 = no limit): a queue bound large enough
    # that a subscriber's backlog is never dropped, so both brokers do the same work.
    # The default (1000 per session, newest dropped) loses messages in fan-in and 1->1.
    # QoS 0 backlogs are bounded by bytes (max_queued_bytes, 64 MiB by default): 0 lifts it.
    (work / "broker.toml").write_text("max_queued_messages = 100000000\nmax_queued_bytes = 0\n")
    cmd = [python, "-m", "turbomqtt", "broker", "--host", "127.0.0.1", "--port", str(port),
           "--config", str(work / "broker.toml")]
    return BrokerProcess("turbomqtt", cmd, port, work)


STARTERS = {"mosquitto": start_mosquitto, "rumqttd": start_rumqttd, "turbomqtt": start_turbomqtt}


def start(kind: str, python: str = sys.executable) -> BrokerProcess:
    if kind == "turbomqtt":
        return start_turbomqtt(python)
    return STARTERS[kind]()
