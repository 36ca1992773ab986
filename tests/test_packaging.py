"""The installed distribution's metadata: turbomqtt installs alone (never pulls paho-mqtt
in) and says which Pythons and systems it is for. (Side by side with a real paho-mqtt,
the paho switch alone decides which one `import paho.mqtt.client` gives: see
test_paho_switch.py.)"""

from __future__ import annotations

import importlib.metadata
import re


def test_no_runtime_dependency_only_extras():
    requires = importlib.metadata.requires("turbomqtt") or []
    runtime = [r for r in requires if not re.search(r";.*\bextra\s*==", r)]
    assert runtime == [], "turbomqtt must install without pulling anything in"
    # paho-mqtt appears only as a test extra (the reference peer of the test suite).
    paho = [r for r in requires if r.lower().startswith(("paho-mqtt", "paho_mqtt"))]
    assert paho and all(re.search(r"extra\s*==\s*['\"]test['\"]", r) for r in paho)


def test_metadata_names_the_pythons_and_systems_it_is_for():
    meta = importlib.metadata.metadata("turbomqtt")
    assert meta["Requires-Python"] == ">=3.9"
    classifiers = set(meta.get_all("Classifier") or [])
    for minor in range(9, 15):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    for system in ("POSIX :: Linux", "MacOS", "Microsoft :: Windows"):
        assert f"Operating System :: {system}" in classifiers
    licence = meta.get("License-Expression") or meta.get("License")
    assert licence == "MIT OR Apache-2.0"
    assert meta.get("Description-Content-Type", "").startswith("text/markdown")
