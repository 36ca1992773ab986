"""Retained messages on subscribe: one SUBSCRIBE of many filters over a large store.

    python benches/retained_scan.py [--retained 100000] [--filters 1000 3000]
        [--brokers turbomqtt mosquitto] [--python PYTHON]

Stores N retained messages (`ret/0` .. `ret/N-1`, one raw publisher), then one client
sends a single SUBSCRIBE with F literal filters (`ret/0`, `ret/k`, `ret/2k`, ..., each
matching one stored topic), and another subscribes to `ret/#` (all N). Meanwhile a third
client pings the broker in a loop. Printed per broker: time to the SUBACK, time until
the F retained messages arrived, the longest ping round trip during that, and the time
for all N messages of `ret/#` with how many arrived. `--python` picks the interpreter
whose turbomqtt runs (to compare two builds).
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from brokers import start


def s16(b: bytes) -> bytes:
    return struct.pack("!H", len(b)) + b


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pkt(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


class Raw:
    """An MQTT 3.1.1 client on a plain socket."""

    def __init__(self, port: int, client_id: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        body = s16(b"MQTT") + bytes([4, 2]) + struct.pack("!H", 0) + s16(client_id.encode())
        self.sock.sendall(pkt(0x10, body))
        assert self.read()[0] >> 4 == 2

    def read(self) -> tuple[int, bytes]:
        while True:
            if len(self.buf) >= 2:
                length, mult, i = 0, 1, 1
                while i < len(self.buf):
                    b = self.buf[i]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        break
                else:
                    i = -1
                if i > 0 and len(self.buf) >= i + length:
                    first, body = self.buf[0], bytes(self.buf[i : i + length])
                    del self.buf[: i + length]
                    return first, body
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk

    def ping(self) -> None:
        self.sock.sendall(b"\xc0\x00")
        while self.read()[0] >> 4 != 13:
            pass

    def close(self) -> None:
        self.sock.close()


def subscribe(filters: list[str], pkid: int) -> bytes:
    return pkt(0x82, struct.pack("!H", pkid) + b"".join(s16(f.encode()) + b"\x00" for f in filters))


def run(kind: str, python: str, n: int, filter_counts: list[int]) -> None:
    with start(kind, python) as broker:
        pub = Raw(broker.port, "retainer")
        t0 = time.monotonic()
        batch = bytearray()
        for i in range(n):
            batch += pkt(0x31, s16(f"ret/{i}".encode()) + b"retained payload")
            if len(batch) > 1 << 20:
                pub.sock.sendall(batch)
                batch.clear()
        pub.sock.sendall(batch)
        pub.ping()  # handled after every PUBLISH before it
        print(f"{kind}: {n} retained stored in {time.monotonic() - t0:.2f} s, "
              f"RSS {broker.rss_mb():.0f} MB")
        pub.close()
        for count in filter_counts:
            step = max(1, n // count)
            filters = [f"ret/{i * step}" for i in range(count)]
            pinger = Raw(broker.port, f"pinger-{count}")
            sub = Raw(broker.port, f"filters-{count}")
            worst = [0.0]
            stop = threading.Event()

            def pings(pinger: Raw = pinger, worst: list[float] = worst,
                      stop: threading.Event = stop) -> None:
                while not stop.is_set():
                    t = time.monotonic()
                    pinger.ping()
                    worst[0] = max(worst[0], time.monotonic() - t)

            thread = threading.Thread(target=pings)
            thread.start()
            t0 = time.monotonic()
            sub.sock.sendall(subscribe(filters, 1))
            got = 0
            suback = None
            while got < count:
                first, _ = sub.read()
                if first >> 4 == 9:
                    suback = time.monotonic() - t0
                elif first >> 4 == 3:
                    got += 1
            done = time.monotonic() - t0
            stop.set()
            thread.join()
            print(f"{kind}: SUBSCRIBE of {count} filters: SUBACK after {suback * 1000:.1f} ms, "
                  f"{count} retained after {done * 1000:.1f} ms, longest ping meanwhile "
                  f"{worst[0] * 1000:.1f} ms")
            sub.close()
            pinger.close()
        sub = Raw(broker.port, "everything")
        t0 = time.monotonic()
        sub.sock.sendall(subscribe(["ret/#"], 1))
        got = 0
        sub.sock.settimeout(5)
        try:
            while got < n:
                first, _ = sub.read()
                if first >> 4 == 3:
                    got += 1
        except TimeoutError:
            pass
        took = time.monotonic() - t0 - (5 if got < n else 0)
        print(f"{kind}: ret/# delivered {got} of {n} retained in {took:.2f} s")
        sub.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--retained", type=int, default=100_000)
    ap.add_argument("--filters", type=int, nargs="+", default=[1000, 3000])
    ap.add_argument("--brokers", nargs="+", default=["turbomqtt", "mosquitto"])
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()
    for kind in args.brokers:
        run(kind, args.python, args.retained, args.filters)


if __name__ == "__main__":
    main()
