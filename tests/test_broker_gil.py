"""The embedded broker never needs the GIL to serve clients: a host program busy in
Python (or blocked in a C call that keeps the GIL) must not stall the clients it serves."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest
from turbomqtt import Broker

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses libc's waitpid")

# A separate process (its own GIL) with paho-mqtt: connects, subscribes, publishes N
# QoS 1 messages to its own subscription and exits 0 once every one came back and was
# acknowledged; exits 2 after its own timeout, so the test never hangs.
CLIENT = r"""
import sys, threading
import paho.mqtt.client as mqtt

port, n, clients = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
done = threading.Barrier(clients + 1)

def run(k):
    got = threading.Event()
    count = [0]
    def on_message(c, u, msg):
        count[0] += 1
        if count[0] == n:
            got.set()
    def on_subscribe(c, u, mid, codes, props):
        for _ in range(n):
            c.publish(f"gil/{k}", b"x" * 64, qos=1)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"gil-{k}")
    c.on_message = on_message
    c.on_subscribe = on_subscribe
    c.on_connect = lambda c, u, f, rc, p: c.subscribe(f"gil/{k}", qos=1)
    c.max_inflight_messages_set(100)
    c.connect("127.0.0.1", port)
    c.loop_start()
    ok = got.wait(30)
    c.disconnect()
    c.loop_stop()
    if ok:
        done.wait(30)

threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
for t in threads:
    t.start()
try:
    done.wait(35)
except threading.BrokenBarrierError:
    sys.exit(2)
sys.exit(0)
"""


def wait_holding_the_gil(pid: int) -> int:
    """waitpid() through ctypes.PyDLL, which keeps the GIL for the whole call: nothing
    else in this interpreter runs until the child exits. Returns its exit code."""
    status = ctypes.c_int(0)
    libc = ctypes.PyDLL(None)
    libc.waitpid.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    assert libc.waitpid(pid, ctypes.byref(status), 0) == pid
    return os.waitstatus_to_exitcode(status.value)


def test_clients_connect_and_exchange_qos1_while_the_host_holds_the_gil():
    with Broker(port=0) as b:
        # Connections, subscriptions, 3 x 2,000 QoS 1 round trips and disconnections all
        # happen while this thread holds the GIL (broker log events queue up meanwhile).
        proc = subprocess.Popen([sys.executable, "-c", CLIENT, str(b.port), "2000", "3"])
        code = wait_holding_the_gil(proc.pid)
        proc.returncode = code  # reaped above; tell Popen so it does not wait again
        assert code == 0, "the clients timed out: the broker waited for the GIL"
        # The broker is still healthy once the host runs again.
        assert b.running
