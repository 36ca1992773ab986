"""Publish-only rate from Python, written against paho-mqtt 2.x only.

``--threads T`` threads share one client and call ``publish()`` N/T times each; reports
the calls per second until every message is acknowledged/written, and the mean time the
caller spends inside one ``publish()`` call. Nobody subscribes: the broker drops them.
"""

import argparse
import threading

import paho.mqtt.client as mqtt
from _report import client_module_name, cpu_seconds, fail, now, result

ap = argparse.ArgumentParser()
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--topic", default="bench/rate")
ap.add_argument("-n", type=int, default=100_000)
ap.add_argument("--size", type=int, default=64)
ap.add_argument("--qos", type=int, default=0)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--timeout", type=float, default=300)
args = ap.parse_args()

connected = threading.Event()


def on_connect(client, userdata, flags, reason_code, properties):
    if not reason_code.is_failure:
        connected.set()


client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-rate", protocol=mqtt.MQTTv311)
client.on_connect = on_connect
client.connect(args.host, args.port, keepalive=60)
client.loop_start()
if not connected.wait(10):
    fail("could not connect")
payload = b"x" * args.size
per_thread = args.n // args.threads
go = threading.Barrier(args.threads + 1)
call_time = [0.0] * args.threads
last_infos = [None] * args.threads


def worker(k):
    publish = client.publish
    go.wait()
    t = now()
    info = None
    for _ in range(per_thread):
        info = publish(args.topic, payload, qos=args.qos)
    call_time[k] = now() - t
    last_infos[k] = info


threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.threads)]
for th in threads:
    th.start()
cpu0 = cpu_seconds()
go.wait()
t0 = now()
for th in threads:
    th.join()
t_calls = now()
for info in last_infos:
    info.wait_for_publish(timeout=args.timeout)
t_done = now()
cpu1 = cpu_seconds()
client.disconnect()
client.loop_stop()
total = per_thread * args.threads
result(
    impl=client_module_name(mqtt),
    threads=args.threads,
    n=total,
    calls_per_s=total / (t_done - t0),
    publish_call_us=sum(call_time) / total * 1e6,
    calls_only_per_s=total / (t_calls - t0),
    cpu_us_per_msg=(cpu1 - cpu0) / total * 1e6,
)
