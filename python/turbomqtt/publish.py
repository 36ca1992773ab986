"""One-shot publishing helpers (mirrors ``paho.mqtt.publish``): connect, publish every
message, disconnect."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Union

from turbomqtt import client as paho
from turbomqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from turbomqtt.exception import MQTTException
from turbomqtt.properties import Properties  # noqa: F401 - paho exposes these names here
from turbomqtt.reasoncodes import ReasonCode  # noqa: F401

__all__ = ["multiple", "single"]

if TYPE_CHECKING:
    import ssl

    from typing_extensions import NotRequired, Required, TypedDict

    # The argument shapes of paho.mqtt.publish (the same names).
    class AuthParameter(TypedDict, total=False):
        username: Required[str]
        password: NotRequired[str]

    class TLSParameter(TypedDict, total=False):
        """``tls_set()`` keyword arguments plus ``insecure``."""

        ca_certs: Required[str]
        certfile: NotRequired[str]
        keyfile: NotRequired[str]
        tls_version: NotRequired[int]
        ciphers: NotRequired[str]
        insecure: NotRequired[bool]

    class MessageDict(TypedDict, total=False):
        topic: Required[str]
        payload: NotRequired[paho.PayloadType]
        qos: NotRequired[int]
        retain: NotRequired[bool]

    MessageTuple = tuple[str, paho.PayloadType, int, bool]
    MessagesList = Sequence[Union[MessageDict, MessageTuple]]


def _do_publish(client: paho.Client) -> None:
    message = client._userdata.popleft()
    if isinstance(message, dict):
        client.publish(**message)
    elif isinstance(message, (tuple, list)):
        client.publish(*message)
    else:
        raise TypeError("message must be a dict, tuple, or list")


def _on_connect(client: paho.Client, userdata: Any, flags: Any, reason_code: Any,
                properties: Any) -> None:
    if reason_code == 0:
        if len(userdata) > 0:
            _do_publish(client)
    else:
        raise MQTTException(paho.connack_string(reason_code))


def _on_publish(client: paho.Client, userdata: Any, mid: int, reason_codes: Any,
                properties: Any) -> None:
    # One message at a time: the next goes out when the previous one completed.
    if len(userdata) == 0:
        client.disconnect()
    else:
        _do_publish(client)



def _connect_and_loop(
    client: paho.Client,
    hostname: str,
    port: int,
    keepalive: int,
    will: MessageDict | None,
    auth: AuthParameter | None,
    tls: TLSParameter | ssl.SSLContext | None,
    proxy_args: dict[str, Any] | None,
) -> None:
    """The connection set-up shared by ``publish.*`` and ``subscribe.*`` (as in paho):
    logging, proxy, credentials, will and TLS, then connect and loop until done."""
    client.enable_logger()
    if proxy_args is not None:
        client.proxy_set(**proxy_args)
    if auth:
        username = auth.get("username")
        if username:
            client.username_pw_set(username, auth.get("password"))
        else:
            raise KeyError("The 'username' key was not found, this is required for auth")
    if will is not None:
        client.will_set(**will)
    if tls is not None:
        if isinstance(tls, dict):
            insecure = tls.pop("insecure", False)
            # "insecure" was removed just above, which the checker does not follow.
            client.tls_set(**tls)  # type: ignore[misc]
            if insecure:
                client.tls_insecure_set(insecure)
        else:
            client.tls_set_context(tls)
    client.connect(hostname, port, keepalive)
    client.loop_forever()

def multiple(
    msgs: MessagesList,
    hostname: str = "localhost",
    port: int = 1883,
    client_id: str = "",
    keepalive: int = 60,
    will: MessageDict | None = None,
    auth: AuthParameter | None = None,
    tls: TLSParameter | ssl.SSLContext | None = None,
    protocol: MQTTProtocolVersion = paho.MQTTv311,
    transport: Literal["tcp", "websockets", "unix"] = "tcp",
    proxy_args: dict[str, Any] | None = None,
) -> None:
    """Publish several messages (dicts with topic/payload/qos/retain, or tuples) and
    disconnect. ``auth`` = {'username', 'password'}; ``tls`` = tls_set() arguments plus
    'insecure', or an ssl.SSLContext."""
    if not isinstance(msgs, Iterable):
        raise TypeError("msgs must be an iterable")
    if len(msgs) == 0:
        raise ValueError("msgs is empty")
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        userdata=collections.deque(msgs),
        protocol=protocol,
        transport=transport,
    )
    client.on_publish = _on_publish
    client.on_connect = _on_connect
    _connect_and_loop(client, hostname, port, keepalive, will, auth, tls, proxy_args)


def single(
    topic: str,
    payload: paho.PayloadType = None,
    qos: int = 0,
    retain: bool = False,
    hostname: str = "localhost",
    port: int = 1883,
    client_id: str = "",
    keepalive: int = 60,
    will: MessageDict | None = None,
    auth: AuthParameter | None = None,
    tls: TLSParameter | ssl.SSLContext | None = None,
    protocol: MQTTProtocolVersion = paho.MQTTv311,
    transport: Literal["tcp", "websockets", "unix"] = "tcp",
    proxy_args: dict[str, Any] | None = None,
) -> None:
    """Publish one message and disconnect."""
    msg: MessageDict = {"topic": topic, "payload": payload, "qos": qos, "retain": retain}
    multiple([msg], hostname, port, client_id, keepalive, will, auth, tls, protocol,
             transport, proxy_args)
