"""What ``python -m turbomqtt`` prints for a person at a terminal: plain-text help and a
line when the broker stops."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest


def run_cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "turbomqtt", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args", [("--help",), ("broker", "--help"), ("run", "--help")])
def test_help_is_plain_text(args):
    out = run_cli(*args)
    # reST markup (``literal``, `name`) reads as noise in a terminal.
    assert "`" not in out, out
    assert "usage: python -m turbomqtt" in out


@pytest.mark.timeout(60)
def test_top_level_help_names_both_commands_with_an_example():
    out = run_cli("--help")
    assert re.search(r"^\s+broker\s+\S", out, re.MULTILINE), out
    assert re.search(r"^\s+run\s+\S", out, re.MULTILINE), out
    assert "python -m turbomqtt broker --port 1883" in out
    assert "python -m turbomqtt run my_paho_script.py" in out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_broker_prints_a_line_when_it_stops(sig):
    proc = subprocess.Popen(
        [sys.executable, "-m", "turbomqtt", "broker", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        m = re.match(r"turbomqtt broker listening on (mqtt://127\.0\.0\.1:\d+)$", first.strip())
        assert m, first
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert rest.strip().splitlines() == [f"turbomqtt broker on {m.group(1)} stopped"], rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
