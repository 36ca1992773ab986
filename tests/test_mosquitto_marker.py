"""The `requires_mosquitto` marker (tests/conftest.py): on a machine without mosquitto the
tests that need it are skipped with the reason, never silently; with
TURBOMQTT_REQUIRE_MOSQUITTO=1 (the project's test script on Linux) they fail instead."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

PROBE = textwrap.dedent("""
    import pytest

    def test_fixture(mosquitto):
        pass

    @pytest.mark.parametrize("kind", ["mosquitto", "embedded"])
    def test_param(kind):
        pass

    @pytest.mark.requires_mosquitto("mosquitto_pub")
    def test_tool():
        pass

    def test_plain():
        pass
""")


def run_probe(tmp_path: Path, **env_extra: str) -> subprocess.CompletedProcess:
    """Runs PROBE with the project's conftest and marker registration in `tmp_path`."""
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_probe.py").write_text(PROBE)
    # The marker's registration as pyproject.toml has it, under --strict-markers.
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    requires_mosquitto(*tools): see tests/conftest.py\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("TURBOMQTT_MOSQUITTO", "TURBOMQTT_REQUIRE_MOSQUITTO")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rsfE",
         "--strict-markers", "-p", "no:randomly", "test_probe.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_marker_is_registered(pytestconfig):
    assert any(line.startswith("requires_mosquitto") for line in pytestconfig.getini("markers"))


def test_missing_mosquitto_skips_every_test_that_needs_it_with_the_reason(tmp_path):
    missing = str(tmp_path / "nowhere" / "mosquitto")
    proc = run_probe(tmp_path, TURBOMQTT_MOSQUITTO=missing)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "2 passed, 3 skipped" in out, out
    skipped = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    # The fixture's and the "mosquitto" parameter's test, then the tool's (-rs groups them).
    assert len(skipped) == 2, out
    assert skipped[0].startswith("SKIPPED [2]"), out
    assert "requires_mosquitto: mosquitto not found" in skipped[0], out
    assert "install mosquitto" in skipped[0], out
    assert skipped[1].startswith("SKIPPED [1]"), out
    assert "requires_mosquitto: mosquitto_pub not found" in skipped[1], out


def test_required_mosquitto_missing_fails_instead_of_skipping(tmp_path):
    missing = str(tmp_path / "nowhere" / "mosquitto")
    proc = run_probe(tmp_path, TURBOMQTT_MOSQUITTO=missing, TURBOMQTT_REQUIRE_MOSQUITTO="1")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "2 passed, 3 errors" in out, out  # failed in setup, before the test ran
    assert "TURBOMQTT_REQUIRE_MOSQUITTO=1 forbids skipping" in out, out


def test_a_configured_mosquitto_is_used_with_the_tools_next_to_it(tmp_path):
    # A stand-in installation directory: the fixture's test would start it, so only the
    # lookup is probed here (broker and tool found in TURBOMQTT_MOSQUITTO's directory).
    bin_dir = tmp_path / "inst"
    bin_dir.mkdir()
    for name in ("mosquitto", "mosquitto_pub"):
        (bin_dir / name).write_text("#!/bin/sh\n")
    code = ("import conftest; print(conftest.mosquitto_tool(), "
            "conftest.mosquitto_tool('mosquitto_pub'), conftest.mosquitto_tool('mosquitto_sub'))")
    env = dict(os.environ, TURBOMQTT_MOSQUITTO=str(bin_dir / "mosquitto"),
               PYTHONPATH=str(TESTS))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    assert out == [str(bin_dir / "mosquitto"), str(bin_dir / "mosquitto_pub"), "None"]


@pytest.mark.skipif(sys.platform != "linux", reason="the Linux test run requires mosquitto")
def test_the_linux_test_script_requires_mosquitto():
    script = (TESTS.parent / "scripts" / "test.sh").read_text()
    assert "TURBOMQTT_REQUIRE_MOSQUITTO=1" in script
