"""turbomqtt's embedded broker in a Python process whose main thread is either idle or
busy in a CPU-bound pure-Python loop (``--busy``). The harness drives the broker with
the load generator; the broker must not need the GIL on its data path.

Prints ``PORT <n>`` once the broker listens, runs until stdin closes, then prints
``LOOPS <iterations per second of the busy loop>``.
"""

import argparse
import sys
import threading
import time

import turbomqtt

ap = argparse.ArgumentParser()
mode = ap.add_mutually_exclusive_group(required=True)
mode.add_argument("--busy", action="store_true")
mode.add_argument("--idle", action="store_true")
args = ap.parse_args()

# As for the separate brokers (benches/brokers.py): no backlog is dropped.
broker = turbomqtt.Broker(host="127.0.0.1", port=0, max_queued_messages=100_000_000)
broker.start()
stop = threading.Event()


def wait_stdin():
    sys.stdin.read()  # EOF when the harness is done measuring
    stop.set()


threading.Thread(target=wait_stdin, daemon=True).start()
print(f"PORT {broker.port}", flush=True)
t0 = time.monotonic()
loops = 0
if args.busy:
    # Pure Python arithmetic holds the GIL except at the interpreter's switch interval.
    x = 0
    while not stop.is_set():
        for i in range(10_000):
            x += i * i
        loops += 1
else:
    stop.wait()
elapsed = time.monotonic() - t0
broker.stop()
print(f"LOOPS {loops * 10_000 / elapsed:.0f}", flush=True)
