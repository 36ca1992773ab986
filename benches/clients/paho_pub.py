"""Publisher for the end-to-end scenario, written against paho-mqtt 2.x only.

Run as is for paho-mqtt, and unchanged through ``python -m turbomqtt run`` for turbomqtt:
the same code measures both. Publishes N messages as fast as ``publish()`` accepts them,
then waits until the last one is acknowledged (QoS 1/2) or written (QoS 0).
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
ap.add_argument("--size", type=int, default=64)
ap.add_argument("--qos", type=int, default=0)
ap.add_argument("--timeout", type=float, default=300)
args = ap.parse_args()

connected = threading.Event()


def on_connect(client, userdata, flags, reason_code, properties):
    if not reason_code.is_failure:
        connected.set()


client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv311)
client.on_connect = on_connect
client.connect(args.host, args.port, keepalive=60)
client.loop_start()
if not connected.wait(10):
    fail("publisher could not connect")
ready(impl=client_module_name(mqtt))
# The harness starts us once the subscriber is ready; go at once.
payload = b"x" * args.size
cpu0 = cpu_seconds()
t0 = now()
publish = client.publish
infos = [publish(args.topic, payload, qos=args.qos) for _ in range(args.n)]
t_calls = now()
last = infos[-1]
last.wait_for_publish(timeout=args.timeout)
t_done = now()
cpu1 = cpu_seconds()
unpublished = sum(1 for i in infos if not i.is_published())
rcs = sum(1 for i in infos if i.rc != mqtt.MQTT_ERR_SUCCESS)
client.disconnect()
client.loop_stop()
result(
    impl=client_module_name(mqtt),
    t_start=t0,
    t_calls_done=t_calls,
    t_acked=t_done,
    n=args.n,
    publish_call_us=(t_calls - t0) / args.n * 1e6,
    cpu_s=cpu1 - cpu0,
    unpublished=unpublished,
    errors=rcs,
)
