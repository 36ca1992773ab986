"""Blocking subscription helpers (mirrors ``paho.mqtt.subscribe``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from turbomqtt import client as paho
from turbomqtt.exception import MQTTException
from turbomqtt.publish import _connect_and_loop

if TYPE_CHECKING:
    import ssl

    from turbomqtt.publish import AuthParameter, MessageDict, TLSParameter

__all__ = ["callback", "simple"]


def _on_connect(client: paho.Client, userdata: Any, flags: Any, reason_code: Any,
                properties: Any) -> None:
    if reason_code != 0:
        raise MQTTException(paho.connack_string(reason_code))
    if isinstance(userdata["topics"], list):
        for topic in userdata["topics"]:
            client.subscribe(topic, userdata["qos"])
    else:
        client.subscribe(userdata["topics"], userdata["qos"])


def _on_message_callback(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
    userdata["callback"](client, userdata["userdata"], message)


def _on_message_simple(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
    if userdata["msg_count"] == 0:
        return
    if message.retain and not userdata["retained"]:
        return
    userdata["msg_count"] = userdata["msg_count"] - 1
    if userdata["messages"] is None and userdata["msg_count"] == 0:
        userdata["messages"] = message
        client.disconnect()
        return
    userdata["messages"].append(message)
    if userdata["msg_count"] == 0:
        client.disconnect()


def callback(
    callback: paho.CallbackOnMessage,
    topics: str | list[str],
    qos: int = 0,
    userdata: Any = None,
    hostname: str = "localhost",
    port: int = 1883,
    client_id: str = "",
    keepalive: int = 60,
    will: MessageDict | None = None,
    auth: AuthParameter | None = None,
    tls: TLSParameter | ssl.SSLContext | None = None,
    protocol: paho.MQTTProtocolVersion = paho.MQTTv311,
    transport: Literal["tcp", "websockets", "unix"] = "tcp",
    clean_session: bool | None = True,
    proxy_args: dict[str, Any] | None = None,
) -> None:
    """Subscribe to ``topics`` and call ``callback(client, userdata, message)`` for each
    message, forever (blocking)."""
    if qos < 0 or qos > 2:
        raise ValueError("qos must be in the range 0-2")
    callback_userdata = {"callback": callback, "topics": topics, "qos": qos,
                         "userdata": userdata}
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        userdata=callback_userdata,
        protocol=protocol,
        transport=transport,
        clean_session=clean_session,
    )
    client.on_message = _on_message_callback
    client.on_connect = _on_connect
    _connect_and_loop(client, hostname, port, keepalive, will, auth, tls, proxy_args)


def simple(
    topics: str | list[str],
    qos: int = 0,
    msg_count: int = 1,
    retained: bool = True,
    hostname: str = "localhost",
    port: int = 1883,
    client_id: str = "",
    keepalive: int = 60,
    will: MessageDict | None = None,
    auth: AuthParameter | None = None,
    tls: TLSParameter | ssl.SSLContext | None = None,
    protocol: paho.MQTTProtocolVersion = paho.MQTTv311,
    transport: Literal["tcp", "websockets", "unix"] = "tcp",
    clean_session: bool | None = True,
    proxy_args: dict[str, Any] | None = None,
) -> paho.MQTTMessage | list[paho.MQTTMessage]:
    """Subscribe, wait for ``msg_count`` messages and return them (one MQTTMessage when
    msg_count is 1, else a list)."""
    if msg_count < 1:
        raise ValueError("msg_count must be > 0")
    messages: list[paho.MQTTMessage] | None = None if msg_count == 1 else []
    if protocol == paho.MQTTv5:
        clean_session = None
    userdata: dict[str, Any] = {"retained": retained, "msg_count": msg_count,
                                "messages": messages}
    callback(_on_message_simple, topics, qos, userdata, hostname, port, client_id, keepalive,
             will, auth, tls, protocol, transport, clean_session, proxy_args)
    received: paho.MQTTMessage | list[paho.MQTTMessage] = userdata["messages"]
    return received
