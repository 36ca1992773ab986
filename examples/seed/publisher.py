"""The seed scenario's publisher: a Sanic HTTP service that publishes shelf records.

``POST /index`` with the JSON body ``{"cmd": "mate_in"}`` publishes one JSON record per
shelf position to ``zhen/test/`` at QoS 2, through a paho-style client (username and
password, keepalive 62, reconnect delays 1..2000 s, ``loop_start()``).

Plain paho-mqtt code: it runs on paho-mqtt as is, and on turbomqtt unchanged with
``python -m turbomqtt run examples/seed/publisher.py``.

Settings (arguments win over environment variables):
    --mqtt-host / MQTT_HOST     broker address            (default 127.0.0.1)
    --mqtt-port / MQTT_PORT     broker port               (default 1883)
    --http-host / HTTP_HOST     address Sanic listens on  (default 127.0.0.1)
    --http-port / HTTP_PORT     port Sanic listens on     (default 8088)
    --records   / SEED_RECORDS  records per mate_in call  (default 28, one shelf board)
"""

import argparse
import json
import os

import paho.mqtt.client as mqtt
from sanic import Sanic
from sanic.response import json as json_response

MQTT_CLIENT_ID = "auto_sis_server_dev"
TOPIC = "zhen/test/"
FIRST_POSITION = 1
# Shelf board hole positions (the seed's board_position_num).
BOARD_POSITIONS = 28


def settings(argv=None):
    env = os.environ.get
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mqtt-host", default=env("MQTT_HOST", "127.0.0.1"))
    ap.add_argument("--mqtt-port", type=int, default=int(env("MQTT_PORT", "1883")))
    ap.add_argument("--http-host", default=env("HTTP_HOST", "127.0.0.1"))
    ap.add_argument("--http-port", type=int, default=int(env("HTTP_PORT", "8088")))
    ap.add_argument("--records", type=int, default=int(env("SEED_RECORDS", str(BOARD_POSITIONS))))
    return ap.parse_args(argv)


class MQTTClient:
    """One MQTT connection for the whole service (a singleton, as in the seed)."""

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
            # paho 1.x style, as in the seed: paho 2.x still accepts it (callback API
            # version 1, with a DeprecationWarning).
            self._client = mqtt.Client(client_id=client_id, clean_session=clean_session)
            self._client.username_pw_set(client_id, client_id + "-123")
            self._client.connect(mqtt_address, mqtt_port, 62)
            self._client.reconnect_delay_set(min_delay=1, max_delay=2000)
            self._initialized = True
        except Exception as e:
            raise ConnectionError(f"MQTT connect to {mqtt_address}:{mqtt_port} failed: {e}") from e

    def get_client(self):
        return self._client


client = None  # the connected paho client, set at start-up
records_per_call = BOARD_POSITIONS


class Shelf:
    @staticmethod
    def mate_in(total_positions):
        """Publishes one record per shelf position, at QoS 2 (exactly once)."""
        for position in range(FIRST_POSITION, FIRST_POSITION + total_positions):
            record = {
                "save_id": f"BQHZ2500016{position:06d}",
                "part_num": "11219936-00",
                "lot_code": "888888",
            }
            client.publish(TOPIC, json.dumps({"mate_info": record}, ensure_ascii=False), qos=2)
        return total_positions


app = Sanic("seed_publisher")


@app.route("/index", methods=["POST", "GET"])
async def index(request):
    """POST {"cmd": "mate_in"} publishes the shelf records; anything else is an error."""
    data = request.json if request.body else None
    if not isinstance(data, dict) or data.get("cmd") != "mate_in":
        return json_response({"status": 0, "msg": "error"})
    published = Shelf.mate_in(records_per_call)
    return json_response({"status": 1, "msg": "Success", "published": published})


@app.after_server_start
async def announce(app):
    # run.py and the test wait for this line before they POST.
    print(f"HTTP ready on port {app.config.SEED_HTTP_PORT}", flush=True)


def main(argv=None):
    global client, records_per_call
    cfg = settings(argv)
    records_per_call = cfg.records
    client = MQTTClient(MQTT_CLIENT_ID, clean_session=True, mqtt_address=cfg.mqtt_host,
                        mqtt_port=cfg.mqtt_port).get_client()
    client.loop_start()
    app.config.SEED_HTTP_PORT = cfg.http_port
    try:
        # single_process: the seed creates the MQTT client in the main process and
        # publishes from the handler; Sanic's default worker subprocess would not have it.
        app.run(host=cfg.http_host, port=cfg.http_port, single_process=True, motd=False,
                access_log=False)
    finally:
        client.disconnect()
        client.loop_stop()


if __name__ == "__main__":
    main()
