"""The paho switch: install_as_paho(), `python -m turbomqtt run`, TURBOMQTT_AS_PAHO=1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent("""
    import json, sys
    import paho.mqtt.client as mqtt
    import paho.mqtt
    from paho.mqtt import enums, properties, reasoncodes, subscribeoptions, packettypes
    from paho.mqtt import matcher, publish, subscribe, exception
    try:
        import paho.mqtt._packet  # noqa: F401
        private = "importable"
    except ImportError:
        private = "missing"
    print(json.dumps({
        "client": mqtt.Client.__module__,
        "version": paho.mqtt.__version__,
        "modules": sorted({m.__name__ for m in (enums, properties, reasoncodes,
                           subscribeoptions, packettypes, matcher, publish, subscribe,
                           exception)}),
        "same": mqtt.Properties is properties.Properties,
        "exc": paho.mqtt.MQTTException is exception.MQTTException,
        "private": private,
        "argv": sys.argv[1:],
        "name": __name__,
    }))
""")


def run(args, env_extra=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "TURBOMQTT_AS_PAHO"}
    env.update(env_extra or {})
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_env_var_switches_paho_imports_to_turbomqtt():
    out = run([sys.executable, "-c", PROBE], {"TURBOMQTT_AS_PAHO": "1"})
    assert out["client"] == "turbomqtt.client"
    assert out["version"] == "2.2.0"
    assert all(name.startswith("turbomqtt.") for name in out["modules"])
    assert out["same"] and out["exc"]
    assert out["private"] == "missing"  # never falls back to an installed paho-mqtt


def test_without_env_var_real_paho_is_used_and_turbomqtt_not_imported():
    code = PROBE.replace("print(json.dumps({", "print(json.dumps({'loaded': 'turbomqtt' in "
                                               "sys.modules,")
    for env in ({}, {"TURBOMQTT_AS_PAHO": "0"}, {"TURBOMQTT_AS_PAHO": ""}):
        out = run([sys.executable, "-c", code], env)
        assert out["client"] == "paho.mqtt.client"
        assert out["loaded"] is False  # the .pth line is free when the switch is off


def test_install_as_paho_replaces_an_already_imported_paho():
    code = "import paho.mqtt.client, turbomqtt; turbomqtt.install_as_paho()\n" + PROBE
    out = run([sys.executable, "-c", code])
    assert out["client"] == "turbomqtt.client"


def test_python_m_turbomqtt_run_sets_argv_and_switches_libraries(tmp_path):
    (tmp_path / "helper_lib.py").write_text(
        "import paho.mqtt.client as mqtt\nCLIENT = mqtt.Client\n")
    script = tmp_path / "script.py"
    script.write_text("import helper_lib\nassert helper_lib.CLIENT.__module__ == "
                      "'turbomqtt.client'\n" + PROBE)
    out = run([sys.executable, "-m", "turbomqtt", "run", str(script), "one", "--two"],
              cwd=str(tmp_path.parent))
    assert out["client"] == "turbomqtt.client"
    assert out["argv"] == ["one", "--two"]
    assert out["name"] == "__main__"


def test_run_without_script_prints_usage():
    proc = subprocess.run([sys.executable, "-m", "turbomqtt", "run"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "usage" in proc.stderr


def test_wheel_installs_the_pth_switch(tmp_path):
    """Build the wheel, install it into a fresh venv without paho-mqtt, and check that
    TURBOMQTT_AS_PAHO=1 makes `import paho.mqtt.client` work there (the .pth at the
    site-packages root comes from maturin's data directory)."""
    import pathlib
    import shutil

    maturin = shutil.which("maturin") or str(pathlib.Path(sys.executable).parent / "maturin")
    if not os.path.exists(maturin):
        import pytest

        pytest.skip("maturin not available")
    root = pathlib.Path(__file__).resolve().parents[1]
    wheels = tmp_path / "wheels"
    subprocess.run([maturin, "build", "--profile", "dev", "-q", "-o", str(wheels)], cwd=root,
                   check=True, capture_output=True, timeout=900)
    (wheel,) = wheels.glob("turbomqtt-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    out = run([python, "-c", PROBE], {"TURBOMQTT_AS_PAHO": "1"}, cwd=str(tmp_path))
    assert out["client"] == "turbomqtt.client"
    proc = subprocess.run([python, "-c", "import paho"], capture_output=True, text=True,
                          timeout=60, check=False, cwd=str(tmp_path))
    assert proc.returncode != 0  # without the switch there is no paho in that venv
