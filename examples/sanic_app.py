#!/usr/bin/env python3
"""A Sanic web app that publishes an MQTT message for each HTTP request.

    python examples/sanic_app.py     # its own embedded broker, HTTP on 127.0.0.1:8000
    curl -X POST -d '{"state": "on"}' http://127.0.0.1:8000/devices/lamp

``POST /devices/<name>`` publishes the request body to ``devices/<name>/set`` at QoS 1 and
answers once the broker acknowledged it: ``{"topic": ..., "reason_code": 0}`` (an MQTT 5
broker answers 16, "no matching subscribers", while nobody subscribes to the topic).
``GET /health`` says whether the MQTT connection is up. The app keeps one
``turbomqtt.asyncio`` client for its whole life, on Sanic's own event loop, with
``reconnect=True``.

Settings: MQTT_HOST / MQTT_PORT (a broker to use; without MQTT_PORT the app starts an
embedded one on a free port), HTTP_HOST (default 127.0.0.1), HTTP_PORT (default 8000).
"""

from __future__ import annotations

import os

import turbomqtt
import turbomqtt.asyncio as mqtt
from sanic import Sanic
from sanic.response import json as json_response

app = Sanic("turbomqtt_example")


@app.before_server_start
async def connect_mqtt(app):
    if "MQTT_PORT" in os.environ:
        host, port = os.environ.get("MQTT_HOST", "127.0.0.1"), int(os.environ["MQTT_PORT"])
        app.ctx.broker = None
    else:
        app.ctx.broker = turbomqtt.Broker(port=0).start()
        host, port = app.ctx.broker.host, app.ctx.broker.port
        print(f"embedded broker on {app.ctx.broker.url}", flush=True)
    app.ctx.mqtt = mqtt.Client(host, port, identifier="sanic-example", reconnect=True)
    await app.ctx.mqtt.__aenter__()


@app.after_server_start
async def announce(app):
    print(f"HTTP ready on port {app.config.EXAMPLE_HTTP_PORT}", flush=True)


@app.after_server_stop
async def disconnect_mqtt(app):
    await app.ctx.mqtt.__aexit__(None, None, None)
    if app.ctx.broker is not None:
        app.ctx.broker.stop()


@app.post("/devices/<name:str>")
async def set_device(request, name: str):
    topic = f"devices/{name}/set"
    reason_code = await request.app.ctx.mqtt.publish(topic, request.body, qos=1)
    return json_response({"topic": topic, "reason_code": reason_code})


@app.get("/health")
async def health(request):
    return json_response({"mqtt_connected": request.app.ctx.mqtt.is_connected})


if __name__ == "__main__":
    port = int(os.environ.get("HTTP_PORT", "8000"))
    app.config.EXAMPLE_HTTP_PORT = port
    # One process: the MQTT client lives on the server's event loop.
    app.run(host=os.environ.get("HTTP_HOST", "127.0.0.1"), port=port, single_process=True,
            motd=False, access_log=False)
