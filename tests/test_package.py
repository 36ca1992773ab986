"""The installed package: the native module loads and the runtime shuts down cleanly."""

import os
import subprocess
import sys

import pytest
import turbomqtt
import turbomqtt._core


def test_native_module_version_matches_package():
    assert turbomqtt.__version__ == turbomqtt._core.__version__
    assert turbomqtt.__version__.count(".") == 2


def test_interpreter_exit_after_shutdown_does_not_hang():
    code = "import turbomqtt, turbomqtt._core; turbomqtt._core._shutdown(); print('ok')"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.strip() == "ok"


FORK_SCRIPT = r"""
import os, socket, turbomqtt

parent_broker = turbomqtt.Broker(port=0)
parent_broker.start()  # the runtime now runs in the parent
pid = os.fork()
if pid == 0:
    code = 4
    try:
        child_broker = turbomqtt.Broker(port=0)
        child_broker.start()
        s = socket.create_connection(("127.0.0.1", child_broker.port), timeout=10)
        # MQTT 3.1.1 CONNECT, clean session, keepalive 60, client id "x".
        s.sendall(bytes([0x10, 13, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 1]) + b"x")
        connack = s.recv(4)
        s.close()
        child_broker.stop()
        code = 0 if connack == bytes([0x20, 2, 0, 0]) else 3
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
parent_broker.stop()
print("child exit", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX-only")
def test_runtime_is_recreated_in_a_forked_child():
    # The parent's tokio worker threads do not exist in a child: the child must get a
    # runtime of its own instead of hanging on the inherited one.
    out = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("child exit 0"), out.stdout + out.stderr


NO_DEPS_SCRIPT = r"""
import sys
# What the interpreter's start-up already imported (site hooks of other packages) is not ours.
before = set(sys.modules)
import turbomqtt, turbomqtt.asyncio, turbomqtt.client, turbomqtt.publish, turbomqtt.subscribe
import turbomqtt.broker, turbomqtt.enums, turbomqtt.properties, turbomqtt.reasoncodes
import turbomqtt.subscribeoptions, turbomqtt.packettypes, turbomqtt.matcher
third_party = sorted(
    name for name in {m.split(".")[0] for m in set(sys.modules) - before}
    if name not in sys.stdlib_module_names and name != "turbomqtt" and not name.startswith("_")
)
print(",".join(third_party))
"""


@pytest.mark.skipif(sys.version_info < (3, 10), reason="sys.stdlib_module_names is 3.10+")
def test_importing_every_module_needs_no_third_party_package():
    # turbomqtt declares no run-time dependencies: importing it must not pull one in.
    out = subprocess.run(
        [sys.executable, "-c", NO_DEPS_SCRIPT],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("threads", ["1", "3"])
def test_turbomqtt_threads_sets_the_runtime_worker_count(threads):
    code = "import turbomqtt._core as c; print(c._runtime_workers())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True, env=dict(os.environ, TURBOMQTT_THREADS=threads))
    assert out.stdout.strip() == threads
