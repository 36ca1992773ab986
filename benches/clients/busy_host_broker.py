"""turbomqtt's embedded broker in a Python process whose main thread is idle, busy in a
CPU-bound pure-Python loop that holds the GIL (``--busy``), or busy just as much in C code
that releases it (``--native``: zlib on 1 MiB blocks). The harness drives the broker with
the load generator; the broker must not need the GIL on its data path, so ``--busy``
should deliver as much as ``--native`` (the two take the same core away from it; on a
2-core machine both are below ``--idle`` for that reason alone).

Prints ``PORT <n>`` once the broker listens, runs until stdin closes, then prints
``LOOPS <iterations per second of the busy loop>``.
"""

import argparse
import os
import sys
import threading
import time

import turbomqtt

ap = argparse.ArgumentParser()
mode = ap.add_mutually_exclusive_group(required=True)
mode.add_argument("--busy", action="store_true")
mode.add_argument("--idle", action="store_true")
mode.add_argument("--native", action="store_true")
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
elif args.native:
    import zlib

    block = os.urandom(1 << 20)
    while not stop.is_set():
        zlib.compress(block, 1)  # releases the GIL while it works
        loops += 1
else:
    stop.wait()
elapsed = time.monotonic() - t0
broker.stop()
per_loop = 1 if args.native else 10_000
print(f"LOOPS {loops * per_loop / elapsed:.0f}", flush=True)
