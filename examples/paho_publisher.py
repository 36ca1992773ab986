#!/usr/bin/env python3
"""A paho-style publisher: publishes readings to ``demo/readings/<sensor>`` at QoS 1 and
waits until the broker has acknowledged each one.

Plain paho-mqtt 2.x code; only the import names turbomqtt (with
``import paho.mqtt.client as mqtt`` it runs on paho-mqtt unchanged). See
paho_subscriber.py for the receiving side:

    python -m turbomqtt broker &
    python examples/paho_subscriber.py --count 5 &
    python examples/paho_publisher.py --count 5

Settings: MQTT_HOST (default 127.0.0.1), MQTT_PORT (default 1883), --count, --sensor.
"""

from __future__ import annotations

import argparse
import json
import os

import turbomqtt.client as mqtt  # or: import paho.mqtt.client as mqtt


def main() -> int:
    ap = argparse.ArgumentParser(description="publishes readings at QoS 1")
    ap.add_argument("--count", type=int, default=5, help="readings to publish (default 5)")
    ap.add_argument("--sensor", default="kitchen", help="sensor name (default kitchen)")
    args = ap.parse_args()
    host = os.environ.get("MQTT_HOST", "127.0.0.1")
    port = int(os.environ.get("MQTT_PORT", "1883"))

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"demo-{args.sensor}")
    client.connect(host, port, keepalive=60)
    client.loop_start()
    topic = f"demo/readings/{args.sensor}"
    for i in range(args.count):
        reading = json.dumps({"sensor": args.sensor, "seq": i, "celsius": 20 + i / 10})
        info = client.publish(topic, reading, qos=1)
        info.wait_for_publish(timeout=10)  # returns once the PUBACK arrived
        print(f"published {reading} to {topic} (mid {info.mid})", flush=True)
    client.disconnect()
    client.loop_stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
