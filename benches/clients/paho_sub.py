"""Subscriber for the end-to-end scenario, written against paho-mqtt 2.x only.

Counts messages until N arrived, or until nothing arrived for ``--idle`` seconds
(QoS 0 may lose messages; the harness reports losses, it never hides them).
"""

import argparse
import threading

import paho.mqtt.client as mqtt
from _report import client_module_name, cpu_seconds, fail, now, ready, result

ap = argparse.ArgumentParser()
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--topic", default="bench/e2e")
ap.add_argument("-n", type=int, default=100_000)
ap.add_argument("--qos", type=int, default=0)
ap.add_argument("--idle", type=float, default=5.0)
ap.add_argument("--timeout", type=float, default=300)
args = ap.parse_args()

subscribed = threading.Event()
done = threading.Event()
state = {"count": 0, "first": 0.0, "last": 0.0}


def on_connect(client, userdata, flags, reason_code, properties):
    client.subscribe(args.topic, qos=args.qos)


def on_subscribe(client, userdata, mid, reason_codes, properties):
    subscribed.set()


def on_message(client, userdata, msg):
    t = now()
    c = state["count"] + 1
    state["count"] = c
    if c == 1:
        state["first"] = t
    state["last"] = t
    if c >= args.n:
        done.set()


client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-sub", protocol=mqtt.MQTTv311)
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.connect(args.host, args.port, keepalive=60)
client.loop_start()
if not subscribed.wait(10):
    fail("subscriber could not subscribe")
cpu0 = cpu_seconds()
ready(impl=client_module_name(mqtt))
deadline = now() + args.timeout
seen = -1
while not done.wait(args.idle) and now() < deadline:
    if state["count"] == seen and seen > 0:
        break  # nothing new for --idle seconds
    seen = state["count"]
cpu1 = cpu_seconds()
client.disconnect()
client.loop_stop()
result(
    impl=client_module_name(mqtt),
    received=state["count"],
    t_first=state["first"],
    t_last=state["last"],
    cpu_s=cpu1 - cpu0,
)
