# --- client: a real mosquitto on a free 127.0.0.1 port -----------------------------------
#
# Tests that need Debian's / Homebrew's mosquitto (or its command-line clients) carry the
# marker `requires_mosquitto` (registered in pyproject.toml), given explicitly or added
# below for every test that uses one of the mosquitto fixtures. Without the programs they
# are skipped with the reason; with TURBOMQTT_REQUIRE_MOSQUITTO=1 in the environment (the
# project's test script on Linux, the release workflow where the OS packages mosquitto)
# they fail instead, so a machine that should test against mosquitto never skips silently.
import os as _os
import shutil as _shutil
import socket as _socket
import subprocess as _subprocess
import time as _time

import pytest as _pytest

# Where packages put mosquitto's broker (Debian: /usr/sbin; Homebrew: its prefix's sbin),
# which is not always on PATH.
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin")


def mosquitto_tool(name="mosquitto"):
    """The path of mosquitto's broker or one of its tools (mosquitto_pub, _sub, _passwd),
    or None. TURBOMQTT_MOSQUITTO, when set, is the broker's path and its directory is the
    only place searched (the tools of one installation)."""
    configured = _os.environ.get("TURBOMQTT_MOSQUITTO")
    if configured:
        path = configured if name == "mosquitto" else _os.path.join(
            _os.path.dirname(configured), name)
        return path if _os.path.isfile(path) else None
    found = _shutil.which(name)
    if found:
        return found
    for d in _SBIN_DIRS:
        path = _os.path.join(d, name)
        if _os.path.isfile(path) and _os.access(path, _os.X_OK):
            return path
    return None


# A path even when missing (tests spell `os.path.exists(MOSQUITTO_BIN)`).
MOSQUITTO_BIN = mosquitto_tool() or "/usr/sbin/mosquitto"


def need_mosquitto(*tools):
    """Skips the running test when one of `tools` (default: the broker) is missing, or
    fails it when TURBOMQTT_REQUIRE_MOSQUITTO=1."""
    missing = [t for t in (tools or ("mosquitto",)) if mosquitto_tool(t) is None]
    if not missing:
        return
    reason = (f"requires_mosquitto: {', '.join(missing)} not found (PATH, "
              f"{', '.join(_SBIN_DIRS)}, or TURBOMQTT_MOSQUITTO=path of the broker); "
              "install mosquitto (Debian: mosquitto mosquitto-clients; Homebrew: mosquitto)")
    if _os.environ.get("TURBOMQTT_REQUIRE_MOSQUITTO") == "1":
        _pytest.fail(f"{reason}; TURBOMQTT_REQUIRE_MOSQUITTO=1 forbids skipping", pytrace=False)
    _pytest.skip(reason)


def _runs_mosquitto(item):
    """A test that uses a fixture named mosquitto* or runs with the parameter "mosquitto"
    (the broker-parametrized fixtures: mosquitto or the embedded broker)."""
    if any(n.startswith("mosquitto") for n in getattr(item, "fixturenames", ())):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "mosquitto" in callspec.params.values()


@_pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("requires_mosquitto") is None and _runs_mosquitto(item):
            item.add_marker(_pytest.mark.requires_mosquitto)


@_pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    tools = []
    for m in item.iter_markers("requires_mosquitto"):
        tools.extend(m.args or ("mosquitto",))
    if tools:
        need_mosquitto(*dict.fromkeys(tools))


def _free_port():
    with _socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MosquittoProcess:
    """mosquitto on 127.0.0.1 with a minimal config; `stop()` / `start()` keep the port."""

    def __init__(self, directory, extra_config="", allow_anonymous=True):
        self.port = _free_port()
        self.host = "127.0.0.1"
        self.conf = _os.path.join(str(directory), "mosquitto.conf")
        with open(self.conf, "w") as f:
            anonymous = "true" if allow_anonymous else "false"
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous {anonymous}\n"
                    f"{extra_config}")
        self.proc = None

    def start(self, timeout=10.0):
        self.proc = _subprocess.Popen(
            [MOSQUITTO_BIN, "-c", self.conf],
            stdout=_subprocess.DEVNULL,
            stderr=_subprocess.DEVNULL,
        )
        deadline = _time.monotonic() + timeout
        while _time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}")
            try:
                _socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                _time.sleep(0.02)
        self.stop()
        raise RuntimeError("mosquitto did not start listening")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except _subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@_pytest.fixture
def mosquitto_process(tmp_path):
    """A started `MosquittoProcess` the test may stop and restart."""
    need_mosquitto()
    m = MosquittoProcess(tmp_path).start()
    yield m
    m.stop()


@_pytest.fixture
def mosquitto(mosquitto_process):
    """(host, port) of a fresh mosquitto on 127.0.0.1."""
    return (mosquitto_process.host, mosquitto_process.port)


@_pytest.fixture
def peers(broker):
    """paho-mqtt peers on the test module's `broker` fixture: `peers(client_id, protocol,
    **connect_kw)` returns a connected `broker_support.Peer`; all are closed afterwards."""
    from broker_support import V5, Peer

    made = []

    def make(client_id: str = "", protocol: int = V5, **connect_kw):
        p = Peer(broker.port, client_id, protocol)
        made.append(p)
        return p.connect(**connect_kw)

    yield make
    for p in made:
        p.client.disconnect()
        p.client.loop_stop()
