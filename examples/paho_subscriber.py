#!/usr/bin/env python3
"""A paho-style subscriber: prints the readings published to ``demo/readings/#``.

Plain paho-mqtt 2.x code; only the import names turbomqtt (with
``import paho.mqtt.client as mqtt`` it runs on paho-mqtt unchanged). Start a broker and
the publisher next to it:

    python -m turbomqtt broker &
    python examples/paho_subscriber.py --count 5 &
    python examples/paho_publisher.py --count 5

Settings: MQTT_HOST (default 127.0.0.1), MQTT_PORT (default 1883), --count (messages to
wait for before leaving; 0: until Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import threading

import turbomqtt.client as mqtt  # or: import paho.mqtt.client as mqtt

TOPIC = "demo/readings/#"


def main() -> int:
    ap = argparse.ArgumentParser(description="prints the readings published to " + TOPIC)
    ap.add_argument("--count", type=int, default=0, help="leave after this many (0: never)")
    args = ap.parse_args()
    host = os.environ.get("MQTT_HOST", "127.0.0.1")
    port = int(os.environ.get("MQTT_PORT", "1883"))

    received = 0
    done = threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties):
        print(f"connected to {host}:{port}: {reason_code}", flush=True)
        # Subscribing in on_connect restores the subscription after a reconnect.
        client.subscribe(TOPIC, qos=1)

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        print(f"subscribed to {TOPIC}: {[str(rc) for rc in reason_codes]}", flush=True)

    def on_message(client, userdata, message):
        nonlocal received
        received += 1
        print(f"{message.topic} {message.payload.decode()} (QoS {message.qos})", flush=True)
        if received == args.count:
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="demo-subscriber")
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.connect(host, port, keepalive=60)
    client.loop_start()
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    client.disconnect()
    client.loop_stop()
    print(f"received {received} readings", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
