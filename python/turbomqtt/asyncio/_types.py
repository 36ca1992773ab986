"""Value types of ``turbomqtt.asyncio``: topics, messages, wills, TLS and subscribe options."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

from turbomqtt.asyncio._properties import PropertiesArg, ReceivedProperties, decode_properties

if TYPE_CHECKING:
    from turbomqtt.asyncio._client import Client

__all__ = [
    "ConnectionEvent",
    "Message",
    "PayloadType",
    "ProtocolVersion",
    "SubscribeOptions",
    "TLSParameters",
    "Topic",
    "Will",
    "topic_matches",
]

PayloadType = Union[str, bytes, bytearray, int, float, None]


class ProtocolVersion(enum.IntEnum):
    V31 = 3
    V311 = 4
    V5 = 5


def _filter_levels(filter_: str) -> list[str]:
    """Validates a topic filter (§4.7.1) and returns its levels; `$share/<group>/` is
    stripped, since the messages of a shared subscription carry the plain topic."""
    if not filter_:
        raise ValueError("a topic filter must not be empty")
    levels = filter_.split("/")
    if levels[0] == "$share":
        if len(levels) < 3 or not levels[1] or "+" in levels[1] or "#" in levels[1]:
            raise ValueError(f"invalid shared subscription {filter_!r}")
        levels = levels[2:]
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"'#' must be a whole last level in {filter_!r}")
        if "+" in level and level != "+":
            raise ValueError(f"'+' must be a whole level in {filter_!r}")
    return levels


def _levels_match(levels: list[str], topic: str) -> bool:
    return _parts_match(levels, topic.split("/"))


def _parts_match(levels: list[str], parts: list[str]) -> bool:
    # Filters starting with a wildcard never match topics starting with '$' (§4.7.2).
    if parts[0].startswith("$") and levels[0] in ("+", "#"):
        return False
    for i, level in enumerate(levels):
        if level == "#":
            return True
        if i >= len(parts):
            return False
        if level != "+" and level != parts[i]:
            return False
    return len(parts) == len(levels)


def topic_matches(filter_: str, topic: str) -> bool:
    """Whether `topic` matches the subscription `filter_`, per MQTT's rules (§4.7):
    ``+`` one level, ``#`` the rest including the parent, ``$`` topics not matched by a
    leading wildcard, ``$share/<group>/`` ignored."""
    return _levels_match(_filter_levels(filter_), topic)


class Topic(str):
    """A topic name (a ``str``) that can test itself against filters."""

    __slots__ = ()

    def matches(self, filter_: str) -> bool:
        return topic_matches(filter_, self)


_new_object = object.__new__


class Message:
    """A received PUBLISH. Immutable by convention; ``properties`` is decoded on first use."""

    __slots__ = (
        "_acked",
        "_client",
        "_generation",
        "_holds",
        "_properties",
        "_wire_properties",
        "dup",
        "mid",
        "payload",
        "qos",
        "retain",
        "topic",
    )

    def __init__(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        mid: int,
        dup: bool = False,
        properties: bytes | None = None,
    ) -> None:
        self.topic = Topic(topic)
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.mid = mid
        self.dup = dup
        self._wire_properties = properties
        self._properties: ReceivedProperties | None = None
        self._client: Client | None = None
        self._generation = 0
        self._holds = 0
        self._acked = qos == 0

    @classmethod
    def _received(
        cls,
        topic: Topic,
        payload: bytes,
        qos: int,
        retain: bool,
        mid: int,
        dup: bool,
        properties: bytes | None,
        client: Client,
        generation: int,
    ) -> Message:
        # The receive path's constructor: the topic is already a Topic (shared by
        # consecutive messages on the same topic) and nothing is validated.
        m = _new_object(cls)
        m.topic = topic
        m.payload = payload
        m.qos = qos
        m.retain = retain
        m.mid = mid
        m.dup = dup
        m._wire_properties = properties
        m._properties = None
        m._client = client
        m._generation = generation
        m._holds = 0
        m._acked = not qos
        return m

    @property
    def properties(self) -> ReceivedProperties:
        """MQTT 5 properties as a dict (empty for 3.x or none), e.g.
        ``{"response_topic": "a/b", "correlation_data": b"..", "user_property": [("k", "v")]}``,
        also readable by paho's spec names (``message.properties.ResponseTopic``)."""
        if self._properties is None:
            self._properties = decode_properties(self._wire_properties)
        return self._properties

    # Typed views of the MQTT 5 properties (§3.3.2.3); None / empty when absent.

    @property
    def content_type(self) -> str | None:
        return self.properties.get("content_type")

    @property
    def response_topic(self) -> str | None:
        return self.properties.get("response_topic")

    @property
    def correlation_data(self) -> bytes | None:
        return self.properties.get("correlation_data")

    @property
    def user_properties(self) -> list[tuple[str, str]]:
        return list(self.properties.get("user_property", ()))

    @property
    def message_expiry_interval(self) -> int | None:
        """Seconds left until the message expires (the broker counts its time down)."""
        return self.properties.get("message_expiry_interval")

    @property
    def payload_format_indicator(self) -> int | None:
        """1: the payload is UTF-8 text; 0 or None: unspecified bytes."""
        return self.properties.get("payload_format_indicator")

    @property
    def subscription_identifiers(self) -> list[int]:
        return list(self.properties.get("subscription_identifier", ()))

    def text(self, encoding: str = "utf-8") -> str:
        return self.payload.decode(encoding)

    def ack(self) -> None:
        """Acknowledges a QoS 1/2 message when the client has ``manual_ack=True``
        (sends PUBACK, or PUBCOMP for QoS 2). Idempotent; a no-op for QoS 0."""
        if self._client is not None:
            self._client._ack_message(self)

    def __repr__(self) -> str:
        return (
            f"Message(topic={str(self.topic)!r}, payload={self.payload!r}, qos={self.qos}, "
            f"retain={self.retain}, mid={self.mid})"
        )


@dataclass(frozen=True)
class Will:
    """The last will, published by the broker when the connection ends abnormally."""

    topic: str
    payload: PayloadType = None
    qos: int = 0
    retain: bool = False
    properties: PropertiesArg = None


@dataclass(frozen=True)
class TLSParameters:
    """TLS settings for the Rust TLS stack (rustls). ``ca_certs=None`` uses the system roots.

    ``ciphers`` is an OpenSSL cipher string (as ``ssl.SSLContext.set_ciphers`` takes):
    OpenSSL resolves it when the client is made (``ssl.SSLError`` if it selects
    nothing), then the suites rustls has are used; connecting raises
    ``ssl.SSLError('No cipher can be selected.')`` when none is left for the allowed
    TLS versions. It restricts TLS 1.2; TLS 1.3 suites are left alone unless named.
    """

    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    keyfile_password: str | None = None
    verify: bool = True
    check_hostname: bool = True
    min_version: str | None = None
    max_version: str | None = None
    alpn: tuple[str, ...] = ()
    server_hostname: str | None = None
    ciphers: str | None = None


@dataclass(frozen=True)
class SubscribeOptions:
    """MQTT 5 subscription options (§3.8.3.1); on 3.x only ``qos`` is sent."""

    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0

    def to_byte(self) -> int:
        if self.qos not in (0, 1, 2):
            raise ValueError(f"invalid QoS {self.qos}")
        if self.retain_handling not in (0, 1, 2):
            raise ValueError(f"invalid retain handling {self.retain_handling}")
        return (
            self.qos
            | (4 if self.no_local else 0)
            | (8 if self.retain_as_published else 0)
            | (self.retain_handling << 4)
        )


@dataclass(frozen=True)
class ConnectionEvent:
    """One change of the connection: ``kind`` is "connected" or "disconnected".

    For "connected": ``session_present``. For "disconnected": ``reason_code`` (0 after
    our own disconnect, the server's v5 code when ``from_server``, else 7 lost / 16
    keepalive / 2 protocol error), ``error`` text and ``will_reconnect``."""

    kind: str
    reason_code: int = 0
    session_present: bool = False
    from_server: bool = False
    error: str | None = None
    will_reconnect: bool = False
    properties: dict[str, Any] = field(default_factory=dict)
