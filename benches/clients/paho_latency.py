"""Round-trip latency, written against paho-mqtt 2.x only: publish one message, wait
until it comes back on the client's own subscription, repeat (sequential, 64 B)."""

import argparse
import threading

import paho.mqtt.client as mqtt
from _report import client_module_name, fail, now, result

ap = argparse.ArgumentParser()
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--topic", default="bench/rtt")
ap.add_argument("-n", type=int, default=2000)
ap.add_argument("--warmup", type=int, default=200)
ap.add_argument("--size", type=int, default=64)
ap.add_argument("--qos", type=int, default=0)
args = ap.parse_args()

subscribed = threading.Event()
arrived = threading.Event()


def on_connect(client, userdata, flags, reason_code, properties):
    client.subscribe(args.topic, qos=args.qos)


def on_subscribe(client, userdata, mid, reason_codes, properties):
    subscribed.set()


def on_message(client, userdata, msg):
    arrived.set()


client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-rtt", protocol=mqtt.MQTTv311)
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.connect(args.host, args.port, keepalive=60)
client.loop_start()
if not subscribed.wait(10):
    fail("could not subscribe")
payload = b"x" * args.size
samples = []
for i in range(args.warmup + args.n):
    arrived.clear()
    t0 = now()
    client.publish(args.topic, payload, qos=args.qos)
    if not arrived.wait(5):
        fail(f"message {i} did not come back within 5 s")
    if i >= args.warmup:
        samples.append((now() - t0) * 1e6)
client.disconnect()
client.loop_stop()
samples.sort()


def pct(p):
    return samples[min(len(samples) - 1, int(p / 100 * len(samples)))]


result(impl=client_module_name(mqtt), n=len(samples), p50_us=pct(50), p90_us=pct(90), p99_us=pct(99))
