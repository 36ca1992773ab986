"""Broker options are typed keyword parameters: `OPTIONS`, the documentation's option
table and a type checker all read them off ``Broker.__init__``."""

import importlib.util
import inspect
import os
import re
import site
import subprocess
import sys
from pathlib import Path

import pytest
import turbomqtt
from turbomqtt import Broker
from turbomqtt.broker import OPTIONS, _parameter_docs

pytestmark = pytest.mark.timeout(300)


def test_every_option_is_a_keyword_parameter_with_a_description():
    parameters = list(inspect.signature(Broker).parameters.values())
    assert [p.name for p in parameters] == list(OPTIONS)
    assert all(p.default is not inspect.Parameter.empty for p in parameters)
    docs = _parameter_docs(inspect.getdoc(Broker.__init__) or "")
    assert list(docs) == list(OPTIONS), "one ':param name:' line per option, in order"
    for p in parameters:
        assert OPTIONS[p.name] == (p.default, docs[p.name]), p.name
        assert docs[p.name], f"option {p.name} has an empty description"


def test_a_configuration_file_can_give_every_option_but_callables():
    """A configuration file's values are checked against the option's default's type; an
    option whose default is None names its type in the file reader's table."""
    from turbomqtt import _conf

    for name, (default, _meaning) in OPTIONS.items():
        if name in _conf._CODE_ONLY:
            continue
        expected = _conf._NONE_DEFAULT_TYPES.get(name, type(default))
        assert _conf._type_name(expected), name


def test_unknown_option_is_a_type_error_naming_the_closest_option():
    with pytest.raises(TypeError, match=r"'max_queued_mesages' \(did you mean "
                                        r"'max_queued_messages'\?\)"):
        Broker(port=0, max_queued_mesages=10)
    with pytest.raises(TypeError, match="'zzz'$"):
        Broker(port=0, zzz=1)


# -- a type checker sees the options -------------------------------------------------------

GOOD = """\
from __future__ import annotations

from turbomqtt import Broker
from turbomqtt.broker import BrokerMessage, load_config
from turbomqtt.pytest_plugin import BrokerFactory


def observe(message: BrokerMessage) -> None:
    print(message.topic, message.payload)


def allow(client_id: str, username: str | None, password: bytes | None) -> bool:
    return username == "alice"


broker: Broker = Broker(
    "127.0.0.1",
    0,
    max_queued_messages=10,
    max_queued_bytes=1 << 20,
    users={"alice": "pw"},
    listeners=[{"port": 0}, {"port": 0, "transport": "websocket"}],
    password_file=None,
    on_message=observe,
    auth_callback=allow,
    enhanced_auth={"SCRAM": lambda client_id, method, data: ("continue", b"")},
    idle_park_after=None,
    connect_timeout=2,
)
Broker(**load_config("broker.toml"))


def test_more_brokers(mqtt_broker_factory: BrokerFactory) -> None:
    started: Broker = mqtt_broker_factory(sys_interval=0, max_qos=1)
    print(started.port)
"""

TYPOS = """\
from turbomqtt import Broker
from turbomqtt.pytest_plugin import BrokerFactory

Broker(max_queued_mesages=10)
Broker(port="1883")


def test_typo(mqtt_broker_factory: BrokerFactory) -> None:
    mqtt_broker_factory(max_queued_mesages=10)
"""


@pytest.fixture(scope="module")
def mypy_errors(tmp_path_factory):
    """mypy's error lines for GOOD and TYPOS, as {file name: [(line, message)]}."""
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (scripts/test.sh installs it)")
    work = tmp_path_factory.mktemp("typecheck")
    (work / "good.py").write_text(GOOD, encoding="utf-8")
    (work / "typos.py").write_text(TYPOS, encoding="utf-8")
    env = dict(os.environ)
    # The turbomqtt under test, wherever it is imported from (mypy also searches the
    # interpreter's sys.path, site-packages included, which must not be in MYPYPATH).
    package_root = str(Path(turbomqtt.__file__).resolve().parents[1])
    if package_root not in {str(Path(p).resolve()) for p in site.getsitepackages()}:
        env["MYPYPATH"] = package_root
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(work / "cache"),
         "--no-error-summary", "good.py", "typos.py"],
        cwd=work, env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    errors: dict[str, list[tuple[int, str]]] = {"good.py": [], "typos.py": []}
    for line in done.stdout.splitlines():
        match = re.match(r"(\w+\.py):(\d+): error: (.*)", line)
        if match:
            errors.setdefault(match[1], []).append((int(match[2]), match[3]))
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return errors


def test_type_checker_accepts_correct_options(mypy_errors):
    assert mypy_errors["good.py"] == []


def test_type_checker_rejects_a_misspelt_option(mypy_errors):
    errors = dict(mypy_errors["typos.py"])
    assert 'Unexpected keyword argument "max_queued_mesages" for "Broker"' in errors.get(4, "")
    assert 'incompatible type "str"; expected "int"' in errors.get(5, "")
    assert 'Unexpected keyword argument "max_queued_mesages"' in errors.get(9, "")
    assert sorted(errors) == [4, 5, 9], mypy_errors["typos.py"]
