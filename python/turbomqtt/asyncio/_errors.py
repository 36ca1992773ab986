"""The exceptions of ``turbomqtt.asyncio``.

Failures to reach the broker (refused, unresolvable host, TLS verification, timeout)
are raised as the ``OSError`` subclasses Python's ``socket`` and ``ssl`` modules use;
everything MQTT-level derives from :class:`MqttError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

__all__ = [
    "ConnectionLostError",
    "MqttCodeError",
    "MqttConnectError",
    "MqttError",
    "NotConnectedError",
    "ProtocolError",
    "PublishError",
    "QueueFullError",
    "RequestTimeoutError",
    "SubscribeError",
    "UnsubscribeError",
]

# CONNACK return codes of MQTT 3.1/3.1.1 (§3.2.2.3) and the v5 reason codes we name.
_CONNACK_V3 = {
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
_REASONS_V5 = {
    0x80: "unspecified error",
    0x81: "malformed packet",
    0x82: "protocol error",
    0x83: "implementation specific error",
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
    0x8B: "server shutting down",
    0x8C: "bad authentication method",
    0x8D: "keep alive timeout",
    0x8E: "session taken over",
    0x8F: "topic filter invalid",
    0x90: "topic name invalid",
    0x91: "packet identifier in use",
    0x93: "receive maximum exceeded",
    0x95: "packet too large",
    0x97: "quota exceeded",
    0x99: "payload format invalid",
    0x9A: "retain not supported",
    0x9B: "QoS not supported",
    0x9C: "use another server",
    0x9D: "server moved",
    0x9E: "shared subscriptions not supported",
    0x9F: "connection rate exceeded",
    0xA1: "subscription identifiers not supported",
    0xA2: "wildcard subscriptions not supported",
}


def reason_text(code: int, protocol: int = 5) -> str:
    if protocol < 5:
        return _CONNACK_V3.get(code, f"return code {code}")
    return _REASONS_V5.get(code, f"reason code 0x{code:02X}")


class MqttError(Exception):
    """Base class of every MQTT-level error of ``turbomqtt.asyncio``."""


class MqttCodeError(MqttError):
    """The broker answered with a failure code (``reason_code``)."""

    def __init__(self, reason_code: int, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code


class MqttConnectError(MqttCodeError):
    """The broker refused the connection (a CONNACK with a failure code)."""

    def __init__(self, reason_code: int, protocol: int = 5) -> None:
        super().__init__(
            reason_code,
            f"connection refused: {reason_text(reason_code, protocol)} (code {reason_code})",
        )


class PublishError(MqttCodeError):
    """A PUBACK/PUBREC/PUBCOMP carried a failure reason code (MQTT 5, >= 0x80)."""

    def __init__(self, reason_code: int, mid: int) -> None:
        super().__init__(
            reason_code,
            f"publish (mid {mid}) refused: {reason_text(reason_code)} (0x{reason_code:02X})",
        )
        self.mid = mid


class QueueFullError(MqttCodeError, asyncio.QueueFull):
    """:meth:`Client.publish_nowait` found the outgoing queue full
    (``max_queued_outgoing_messages``); ``reason_code`` is paho's
    MQTT_ERR_QUEUE_SIZE (15). Also an :class:`asyncio.QueueFull`."""

    def __init__(self, message: str = "the outgoing queue is full") -> None:
        super().__init__(15, message)


class SubscribeError(MqttCodeError):
    """At least one filter of a SUBSCRIBE was refused; ``codes`` holds all of them."""

    def __init__(self, codes: Sequence[int]) -> None:
        bad = next(c for c in codes if c >= 0x80)
        super().__init__(bad, f"subscription refused: {reason_text(bad)} (codes {list(codes)})")
        self.codes = list(codes)


class UnsubscribeError(MqttCodeError):
    """At least one filter of an UNSUBSCRIBE was refused (MQTT 5)."""

    def __init__(self, codes: Sequence[int]) -> None:
        bad = next(c for c in codes if c >= 0x80)
        super().__init__(bad, f"unsubscribe refused: {reason_text(bad)} (codes {list(codes)})")
        self.codes = list(codes)


class ConnectionLostError(MqttError):
    """The connection ended and the client will not reconnect (``reconnect=False``)."""

    def __init__(self, reason_code: int, message: str, *, from_server: bool = False) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.from_server = from_server


class ProtocolError(ConnectionLostError):
    """The broker broke the protocol (a malformed or unexpected packet), which ended
    the connection (``reason_code`` 2)."""


class NotConnectedError(MqttError):
    """The operation needs a connection and there is none (and none is coming)."""


class RequestTimeoutError(MqttError, TimeoutError):
    """No response arrived within ``timeout`` seconds of :meth:`Client.request`."""
