"""Every program in examples/ runs as it stands and does what its docstring says.

Each example is started as a user would start it (``python examples/NAME.py``), in a
subprocess with a timeout, against the embedded broker: the ones that take a broker get
this test's broker through ``MQTT_HOST`` / ``MQTT_PORT``, the others start their own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TIMEOUT = 60

pytestmark = pytest.mark.timeout(120)


def run_example(*args: str, env: dict[str, str] | None = None, timeout: float = TIMEOUT) -> str:
    """Runs ``python examples/ARGS...``; returns its output (stdout and stderr)."""
    done = subprocess.run(
        [sys.executable, *args],
        cwd=EXAMPLES.parent,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stdout}"
    assert "Traceback" not in done.stdout, done.stdout
    return done.stdout


def broker_env(broker) -> dict[str, str]:
    return {"MQTT_HOST": broker.host, "MQTT_PORT": str(broker.port)}


def test_seed_runner_output_has_no_deprecation_warnings():
    """The main job's output: the seed's paho 1.x-style programs are explained once, and
    the DeprecationWarning paho 2.x (and turbomqtt) gives them does not fill the output."""
    out = run_example("examples/seed/run.py", "--records", "5")
    assert "DeprecationWarning" not in out, out
    notes = [line for line in out.splitlines() if "callback API version 1" in line]
    assert len(notes) == 1, out
    assert out.rstrip().endswith("every record arrived exactly once"), out
