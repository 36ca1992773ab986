"""The seed scenario, for real: Sanic publisher + paho subscriber, QoS 2, user/password.

Runs examples/seed/run.py's scenario in subprocesses (real sockets on 127.0.0.1, Sanic
from PyPI) and checks that every shelf record arrives exactly once.
"""

import importlib.util
from pathlib import Path

import pytest

_RUN = Path(__file__).resolve().parents[1] / "examples" / "seed" / "run.py"
_spec = importlib.util.spec_from_file_location("seed_run", _RUN)
seed = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(seed)

RECORDS = 28  # one shelf board
EXPECTED = [f"BQHZ2500016{i:06d}" for i in range(1, RECORDS + 1)]


def _assert_each_record_once(got):
    ids = [r["mate_info"]["save_id"] for r in got]
    assert sorted(ids) == EXPECTED, f"records missing or duplicated: {ids}"
    for r in got:
        assert r["mate_info"]["part_num"] == "11219936-00"
        assert r["mate_info"]["lot_code"] == "888888"


@pytest.mark.timeout(90)
def test_seed_scenario_on_turbomqtt_embedded_broker_and_paho_switch():
    got = seed.run_scenario(reference=False, records=RECORDS, echo=False)
    _assert_each_record_once(got)


@pytest.mark.timeout(90)
@pytest.mark.requires_mosquitto("mosquitto", "mosquitto_passwd")
def test_seed_scenario_reference_paho_and_mosquitto():
    """The example programs themselves, on the real paho-mqtt and mosquitto."""
    pytest.importorskip("paho.mqtt.client")
    got = seed.run_scenario(reference=True, records=RECORDS, echo=False)
    _assert_each_record_once(got)
