"""Publisher and subscriber in ONE process (the pytest use case), written against
paho-mqtt 2.x only; with ``--embedded`` the broker runs in the same process too
(``turbomqtt.Broker``), otherwise the clients talk to the broker at ``--port``.

CPU per message is the whole process: both clients, and the broker when embedded.
"""

import argparse
import threading

import paho.mqtt.client as mqtt
from _report import client_module_name, cpu_seconds, fail, now, result

ap = argparse.ArgumentParser()
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--port", type=int, default=0)
ap.add_argument("--embedded", action="store_true")
ap.add_argument("--topic", default="bench/inproc")
ap.add_argument("-n", type=int, default=100_000)
ap.add_argument("--size", type=int, default=64)
ap.add_argument("--qos", type=int, default=0)
ap.add_argument("--idle", type=float, default=5.0)
args = ap.parse_args()

broker = None
port = args.port
if args.embedded:
    import turbomqtt

    # As for the separate brokers (benches/brokers.py): no backlog is dropped.
    broker = turbomqtt.Broker(host="127.0.0.1", port=0, max_queued_messages=100_000_000)
    broker.start()
    port = broker.port

subscribed = threading.Event()
connected = threading.Event()
done = threading.Event()
state = {"count": 0, "last": 0.0}


def on_message(client, userdata, msg):
    state["count"] += 1
    state["last"] = now()
    if state["count"] >= args.n:
        done.set()


sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-inproc-sub", protocol=mqtt.MQTTv311)
sub.on_connect = lambda c, u, f, rc, p: c.subscribe(args.topic, qos=args.qos)
sub.on_subscribe = lambda *a: subscribed.set()
sub.on_message = on_message
sub.connect(args.host, port, keepalive=60)
sub.loop_start()
pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-inproc-pub", protocol=mqtt.MQTTv311)
pub.on_connect = lambda *a: connected.set()
pub.connect(args.host, port, keepalive=60)
pub.loop_start()
if not (subscribed.wait(10) and connected.wait(10)):
    fail("clients could not connect")
payload = b"x" * args.size
cpu0 = cpu_seconds()
t0 = now()
refused = 0
for _ in range(args.n):
    # paho refuses QoS 1/2 publishes once 65,535 are unfinished (MQTT_ERR_QUEUE_SIZE).
    if pub.publish(args.topic, payload, qos=args.qos).rc != mqtt.MQTT_ERR_SUCCESS:
        refused += 1
seen = -1
while not done.wait(args.idle):
    if state["count"] == seen:
        break
    seen = state["count"]
cpu1 = cpu_seconds()
for c in (pub, sub):
    c.disconnect()
    c.loop_stop()
if broker is not None:
    broker.stop()
received = state["count"]
result(
    impl=client_module_name(mqtt),
    msgs_per_s=received / max(state["last"] - t0, 1e-9) if received else 0.0,
    cpu_us_per_msg=(cpu1 - cpu0) / args.n * 1e6,
    lost=args.n - refused - received,
    refused=refused,
)
