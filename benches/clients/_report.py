"""What every benchmark client reports: one JSON line on stdout, CPU and memory included.

Imported by the client scripts (they run as ``python benches/clients/X.py``, so this
folder is on ``sys.path``). Standard library only, so the same script runs on paho-mqtt
and, through ``python -m turbomqtt run``, on turbomqtt.
"""

import json
import resource
import sys
import time


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def now() -> float:
    """CLOCK_MONOTONIC: one clock for every process on the machine, so a publisher's
    start and a subscriber's last delivery can be subtracted."""
    return time.monotonic()


def ready(**info) -> None:
    """Tells the harness that this client is connected (and subscribed)."""
    print("READY " + json.dumps(info), flush=True)


def result(**fields) -> None:
    fields.setdefault("peak_rss_mb", round(peak_rss_mb(), 2))
    print("RESULT " + json.dumps(fields), flush=True)


def client_module_name(mod) -> str:
    """Where ``paho.mqtt.client`` really came from: 'paho' or 'turbomqtt'."""
    name = getattr(mod, "__name__", "")
    origin = getattr(mod, "__file__", "") or ""
    if name.startswith("turbomqtt") or "turbomqtt" in origin:
        return "turbomqtt"
    return "paho"


def fail(msg: str) -> None:
    print("ERROR " + msg, flush=True)
    sys.exit(1)
