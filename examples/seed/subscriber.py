"""The seed scenario's subscriber: prints every shelf record published to ``zhen/test/``.

Plain paho-mqtt code (username and password, keepalive 62, reconnect delays 1..2000 s,
``loop_start()``): runs on paho-mqtt as is, and on turbomqtt unchanged with
``python -m turbomqtt run examples/seed/subscriber.py``.

Settings: --mqtt-host / MQTT_HOST (default 127.0.0.1), --mqtt-port / MQTT_PORT (1883).
"""

import argparse
import os
import signal
import sys
import time

import paho.mqtt.client as mqtt

MQTT_CLIENT_ID = "auto_sis_server_dev1"
TOPIC = "zhen/test/"


class MQTTClient:
    """One MQTT connection for the process (a singleton, as in the seed)."""

    _instance = None
    _initialized = False

    def __new__(cls, *args, **kwargs):
        if cls._instance is None:
            cls._instance = object.__new__(cls)
        return cls._instance

    def __init__(self, client_id, clean_session, mqtt_address, mqtt_port):
        if self._initialized:
            return
        try:
            self._client = mqtt.Client(client_id=client_id, clean_session=clean_session)
            self._client.username_pw_set(client_id, client_id + "-123")
            self._client.connect(mqtt_address, mqtt_port, 62)
            self._client.reconnect_delay_set(min_delay=1, max_delay=2000)
            self._initialized = True
        except Exception as e:
            raise ConnectionError(f"MQTT connect to {mqtt_address}:{mqtt_port} failed: {e}") from e

    def get_client(self):
        return self._client


def on_message(client, userdata, msg):
    """Every received record, one line each."""
    print("MQTT message: {}".format(msg.payload.decode("utf-8")), flush=True)


def on_connect(client, userdata, flags, rc):
    """(Re)subscribes on every connect: with a clean session the broker forgets it."""
    print("MQTT connected with result code " + str(rc), flush=True)
    client.subscribe(TOPIC, qos=2)


def on_subscribe(client, userdata, mid, granted_qos):
    # Not in the seed: run.py and the test wait for this line before publishing, since a
    # clean-session subscriber misses whatever is published before its SUBACK.
    print(f"subscribed to {TOPIC} with QoS {granted_qos[0]}", flush=True)


def main(argv=None):
    env = os.environ.get
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mqtt-host", default=env("MQTT_HOST", "127.0.0.1"))
    ap.add_argument("--mqtt-port", type=int, default=int(env("MQTT_PORT", "1883")))
    cfg = ap.parse_args(argv)
    # SIGTERM ends the program like Ctrl-C does, through the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    client = MQTTClient(MQTT_CLIENT_ID, clean_session=True, mqtt_address=cfg.mqtt_host,
                        mqtt_port=cfg.mqtt_port).get_client()
    try:
        # The seed's main loop is `while True: set callbacks; client.loop_start()`.
        # The first loop_start() starts the network thread; every later call finds it
        # running, returns MQTT_ERR_INVAL and starts nothing, so the loop only keeps the
        # main thread alive. Kept as in the seed, but with a pause per turn: without it
        # the loop would spin one CPU core at 100% doing nothing.
        while True:
            client.on_connect = on_connect
            client.on_subscribe = on_subscribe
            client.on_message = on_message
            client.loop_start()
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        client.loop_stop()


if __name__ == "__main__":
    main()
