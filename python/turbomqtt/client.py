"""paho-mqtt 2.2.0's client API on turbomqtt's Rust core (mirrors ``paho.mqtt.client``).

The socket, the MQTT session (QoS handshakes, inflight window, queued messages, keepalive,
resend with DUP) and the packet codec live in ``turbomqtt._core.ClientCore`` on the shared
tokio runtime. This module keeps paho's Python face: argument checks raising paho's
exceptions, callbacks dispatched only on the thread driving the loop, the loop functions,
paho's reconnect policy, and the message objects. The core reports what happened as a
queue of event tuples; the loop drains the queue in batches (one ``drain()`` per wake-up)
and dispatches each event in arrival order.

Limits (documented in the guide "Migrating from paho-mqtt"): ``tls_set_context`` can
only pass on what an ``ssl.SSLContext`` exposes (verify mode, hostname check,
minimum/maximum version, enabled ciphers, CA certificates loaded into it); client
certificates must come through ``tls_set``.
``socket()`` returns a notifier object (``fileno()``/``close()``, readable while events
wait) instead of the real socket. The core writes by itself, except that with an external
event loop (``on_socket_register_write`` set, no loop thread) it writes CONNECT and the PUBREC
of each incoming QoS 2 PUBLISH only in the host's ``loop_write()``, as paho does:
``on_socket_register_write`` is called for those turns only.
"""

from __future__ import annotations

import logging
import socket
import string
import threading
import time
import urllib.parse
import urllib.request
import uuid
import warnings
from typing import Any, Callable, Literal, NamedTuple, Union

from turbomqtt import _core, _tls
from turbomqtt.enums import (
    CallbackAPIVersion,
    ConnackCode,
    LogLevel,
    MessageState,
    MessageType,
    MQTTErrorCode,
    MQTTProtocolVersion,
    PahoClientMode,
    _ConnectionState,
)
from turbomqtt.exception import MalformedPacket
from turbomqtt.matcher import MQTTMatcher
from turbomqtt.packettypes import PacketTypes
from turbomqtt.properties import Properties
from turbomqtt.reasoncodes import _NAME_OF as _REASON_NAMES
from turbomqtt.reasoncodes import ReasonCode, ReasonCodes
from turbomqtt.subscribeoptions import SubscribeOptions

try:
    import ssl
except ImportError:  # pragma: no cover
    ssl = None  # type: ignore[assignment]

# Optional packages: whether they are installed (and typed) differs between machines, so
# these ignores may be unused.
try:
    import socks  # type: ignore[import-untyped, import-not-found, unused-ignore]
except ImportError:
    socks = None  # type: ignore[assignment, unused-ignore]

try:
    import dns.resolver  # type: ignore[import-not-found, unused-ignore]

    HAVE_DNS = True
except ImportError:
    HAVE_DNS = False

import errno as _errno
import platform as _platform

time_func = time.monotonic

if _platform.system() == "Windows":
    EAGAIN = _errno.WSAEWOULDBLOCK  # type: ignore[attr-defined]
else:
    EAGAIN = _errno.EAGAIN

_ = ReasonCodes
__all__ = [
    "CallbackAPIVersion",
    "Client",
    "ConnackCode",
    "ConnectFlags",
    "DisconnectFlags",
    "LogLevel",
    "MQTTErrorCode",
    "MQTTMatcher",
    "MQTTMessage",
    "MQTTMessageInfo",
    "MQTTProtocolVersion",
    "MalformedPacket",
    "MessageState",
    "MessageType",
    "PacketTypes",
    "PahoClientMode",
    "Properties",
    "ReasonCode",
    "ReasonCodes",
    "SubscribeOptions",
    "WebsocketConnectionError",
    "connack_string",
    "convert_connack_rc_to_reason_code",
    "convert_disconnect_error_code_to_reason_code",
    "error_string",
    "topic_matches_sub",
]

# --- module constants (paho's 1.x names for the enum members) ---------------------------

CONNECT = MessageType.CONNECT
CONNACK = MessageType.CONNACK
PUBLISH = MessageType.PUBLISH
PUBACK = MessageType.PUBACK
PUBREC = MessageType.PUBREC
PUBREL = MessageType.PUBREL
PUBCOMP = MessageType.PUBCOMP
SUBSCRIBE = MessageType.SUBSCRIBE
SUBACK = MessageType.SUBACK
UNSUBSCRIBE = MessageType.UNSUBSCRIBE
UNSUBACK = MessageType.UNSUBACK
PINGREQ = MessageType.PINGREQ
PINGRESP = MessageType.PINGRESP
DISCONNECT = MessageType.DISCONNECT
AUTH = MessageType.AUTH

MQTT_LOG_INFO = LogLevel.MQTT_LOG_INFO
MQTT_LOG_NOTICE = LogLevel.MQTT_LOG_NOTICE
MQTT_LOG_WARNING = LogLevel.MQTT_LOG_WARNING
MQTT_LOG_ERR = LogLevel.MQTT_LOG_ERR
MQTT_LOG_DEBUG = LogLevel.MQTT_LOG_DEBUG
LOGGING_LEVEL = {
    LogLevel.MQTT_LOG_DEBUG: logging.DEBUG,
    LogLevel.MQTT_LOG_INFO: logging.INFO,
    LogLevel.MQTT_LOG_NOTICE: logging.INFO,
    LogLevel.MQTT_LOG_WARNING: logging.WARNING,
    LogLevel.MQTT_LOG_ERR: logging.ERROR,
}

CONNACK_ACCEPTED = ConnackCode.CONNACK_ACCEPTED
CONNACK_REFUSED_PROTOCOL_VERSION = ConnackCode.CONNACK_REFUSED_PROTOCOL_VERSION
CONNACK_REFUSED_IDENTIFIER_REJECTED = ConnackCode.CONNACK_REFUSED_IDENTIFIER_REJECTED
CONNACK_REFUSED_SERVER_UNAVAILABLE = ConnackCode.CONNACK_REFUSED_SERVER_UNAVAILABLE
CONNACK_REFUSED_BAD_USERNAME_PASSWORD = ConnackCode.CONNACK_REFUSED_BAD_USERNAME_PASSWORD
CONNACK_REFUSED_NOT_AUTHORIZED = ConnackCode.CONNACK_REFUSED_NOT_AUTHORIZED

mqtt_ms_invalid = MessageState.MQTT_MS_INVALID
mqtt_ms_publish = MessageState.MQTT_MS_PUBLISH
mqtt_ms_wait_for_puback = MessageState.MQTT_MS_WAIT_FOR_PUBACK
mqtt_ms_wait_for_pubrec = MessageState.MQTT_MS_WAIT_FOR_PUBREC
mqtt_ms_resend_pubrel = MessageState.MQTT_MS_RESEND_PUBREL
mqtt_ms_wait_for_pubrel = MessageState.MQTT_MS_WAIT_FOR_PUBREL
mqtt_ms_resend_pubcomp = MessageState.MQTT_MS_RESEND_PUBCOMP
mqtt_ms_wait_for_pubcomp = MessageState.MQTT_MS_WAIT_FOR_PUBCOMP
mqtt_ms_send_pubrec = MessageState.MQTT_MS_SEND_PUBREC
mqtt_ms_queued = MessageState.MQTT_MS_QUEUED

MQTT_ERR_AGAIN = MQTTErrorCode.MQTT_ERR_AGAIN
MQTT_ERR_SUCCESS = MQTTErrorCode.MQTT_ERR_SUCCESS
MQTT_ERR_NOMEM = MQTTErrorCode.MQTT_ERR_NOMEM
MQTT_ERR_PROTOCOL = MQTTErrorCode.MQTT_ERR_PROTOCOL
MQTT_ERR_INVAL = MQTTErrorCode.MQTT_ERR_INVAL
MQTT_ERR_NO_CONN = MQTTErrorCode.MQTT_ERR_NO_CONN
MQTT_ERR_CONN_REFUSED = MQTTErrorCode.MQTT_ERR_CONN_REFUSED
MQTT_ERR_NOT_FOUND = MQTTErrorCode.MQTT_ERR_NOT_FOUND
MQTT_ERR_CONN_LOST = MQTTErrorCode.MQTT_ERR_CONN_LOST
MQTT_ERR_TLS = MQTTErrorCode.MQTT_ERR_TLS
MQTT_ERR_PAYLOAD_SIZE = MQTTErrorCode.MQTT_ERR_PAYLOAD_SIZE
MQTT_ERR_NOT_SUPPORTED = MQTTErrorCode.MQTT_ERR_NOT_SUPPORTED
MQTT_ERR_AUTH = MQTTErrorCode.MQTT_ERR_AUTH
MQTT_ERR_ACL_DENIED = MQTTErrorCode.MQTT_ERR_ACL_DENIED
MQTT_ERR_UNKNOWN = MQTTErrorCode.MQTT_ERR_UNKNOWN
MQTT_ERR_ERRNO = MQTTErrorCode.MQTT_ERR_ERRNO
MQTT_ERR_QUEUE_SIZE = MQTTErrorCode.MQTT_ERR_QUEUE_SIZE
MQTT_ERR_KEEPALIVE = MQTTErrorCode.MQTT_ERR_KEEPALIVE

MQTTv31 = MQTTProtocolVersion.MQTTv31
MQTTv311 = MQTTProtocolVersion.MQTTv311
MQTTv5 = MQTTProtocolVersion.MQTTv5

MQTT_CLIENT = PahoClientMode.MQTT_CLIENT
MQTT_BRIDGE = PahoClientMode.MQTT_BRIDGE

sockpair_data = b"0"

# --- type aliases ------------------------------------------------------------------------

PayloadType = Union[str, bytes, bytearray, int, float, None]
HTTPHeader = dict[str, str]
WebSocketHeaders = Union[Callable[[HTTPHeader], HTTPHeader], HTTPHeader]
CleanStartOption = Union[bool, Literal[3]]

MQTT_CLEAN_START_FIRST_ONLY: CleanStartOption = 3


class ConnectFlags(NamedTuple):
    """Extra information given to a VERSION2 ``on_connect``."""

    session_present: bool


class DisconnectFlags(NamedTuple):
    """Extra information given to a VERSION2 ``on_disconnect``."""

    is_disconnect_packet_from_server: bool


CallbackOnConnect_v1_mqtt3 = Callable[["Client", Any, dict[str, Any], MQTTErrorCode], None]
CallbackOnConnect_v1_mqtt5 = Callable[
    ["Client", Any, dict[str, Any], ReasonCode, Union[Properties, None]], None]
CallbackOnConnect_v1 = Union[CallbackOnConnect_v1_mqtt5, CallbackOnConnect_v1_mqtt3]
CallbackOnConnect_v2 = Callable[
    ["Client", Any, ConnectFlags, ReasonCode, Union[Properties, None]], None]
CallbackOnConnect = Union[CallbackOnConnect_v1, CallbackOnConnect_v2]
CallbackOnConnectFail = Callable[["Client", Any], None]
CallbackOnDisconnect_v1_mqtt3 = Callable[["Client", Any, MQTTErrorCode], None]
CallbackOnDisconnect_v1_mqtt5 = Callable[
    ["Client", Any, Union[ReasonCode, int, None], Union[Properties, None]], None]
CallbackOnDisconnect_v1 = Union[CallbackOnDisconnect_v1_mqtt3, CallbackOnDisconnect_v1_mqtt5]
CallbackOnDisconnect_v2 = Callable[
    ["Client", Any, DisconnectFlags, ReasonCode, Union[Properties, None]], None]
CallbackOnDisconnect = Union[CallbackOnDisconnect_v1, CallbackOnDisconnect_v2]
CallbackOnLog = Callable[["Client", Any, int, str], None]
CallbackOnMessage = Callable[["Client", Any, "MQTTMessage"], None]
CallbackOnPreConnect = Callable[["Client", Any], None]
CallbackOnPublish_v1 = Callable[["Client", Any, int], None]
CallbackOnPublish_v2 = Callable[["Client", Any, int, ReasonCode, Properties], None]
CallbackOnPublish = Union[CallbackOnPublish_v1, CallbackOnPublish_v2]
CallbackOnSocket = Callable[["Client", Any, Any], None]
CallbackOnSubscribe_v1_mqtt3 = Callable[["Client", Any, int, tuple[int, ...]], None]
CallbackOnSubscribe_v1_mqtt5 = Callable[["Client", Any, int, list[ReasonCode], Properties], None]
CallbackOnSubscribe_v1 = Union[CallbackOnSubscribe_v1_mqtt3, CallbackOnSubscribe_v1_mqtt5]
CallbackOnSubscribe_v2 = Callable[
    ["Client", Any, int, list[ReasonCode], Union[Properties, None]], None]
CallbackOnSubscribe = Union[CallbackOnSubscribe_v1, CallbackOnSubscribe_v2]
CallbackOnUnsubscribe_v1_mqtt3 = Callable[["Client", Any, int], None]
CallbackOnUnsubscribe_v1_mqtt5 = Callable[
    ["Client", Any, int, Properties, Union[ReasonCode, list[ReasonCode]]], None]
CallbackOnUnsubscribe_v1 = Union[CallbackOnUnsubscribe_v1_mqtt3, CallbackOnUnsubscribe_v1_mqtt5]
CallbackOnUnsubscribe_v2 = Callable[
    ["Client", Any, int, list[ReasonCode], Union[Properties, None]], None]
CallbackOnUnsubscribe = Union[CallbackOnUnsubscribe_v1, CallbackOnUnsubscribe_v2]

_socket = socket

# The core's exception for a failed WebSocket upgrade, so `except WebsocketConnectionError`
# catches what connect() raises.
WebsocketConnectionError = _core.WebsocketConnectionError


# --- functions ---------------------------------------------------------------------------

_ERROR_TEXT = {
    0: "No error.",
    1: "Out of memory.",
    2: "A network protocol error occurred when communicating with the broker.",
    3: "Invalid function arguments provided.",
    4: "The client is not currently connected.",
    5: "The connection was refused.",
    6: "Message not found (internal error).",
    7: "The connection was lost.",
    8: "A TLS error occurred.",
    9: "Payload too large.",
    10: "This feature is not supported.",
    11: "Authorisation failed.",
    12: "Access denied by ACL.",
    13: "Unknown error.",
    14: "Error defined by errno.",
    15: "Message queue full.",
    16: "Client or broker did not communicate in the keepalive interval.",
}


def error_string(mqtt_errno: MQTTErrorCode | int) -> str:
    """The English text for an MQTT error number."""
    for code, text in _ERROR_TEXT.items():
        # Compared with == (not a dict lookup) so ReasonCode and other int-likes work as
        # they do with paho.
        if mqtt_errno == code:
            return text
    return "Unknown error."


_CONNACK_TEXT = {
    0: "Connection Accepted.",
    1: "Connection Refused: unacceptable protocol version.",
    2: "Connection Refused: identifier rejected.",
    3: "Connection Refused: broker unavailable.",
    4: "Connection Refused: bad user name or password.",
    5: "Connection Refused: not authorised.",
}


def connack_string(connack_code: int | ReasonCode) -> str:
    """The text for a CONNACK result (a ReasonCode gives its name)."""
    if isinstance(connack_code, ReasonCode):
        return str(connack_code)
    for code, text in _CONNACK_TEXT.items():
        if connack_code == code:
            return text
    return "Connection Refused: unknown reason."


_CONNACK_V3_TO_V5 = {
    0: "Success",
    1: "Unsupported protocol version",
    2: "Client identifier not valid",
    3: "Server unavailable",
    4: "Bad user name or password",
    5: "Not authorized",
}


def convert_connack_rc_to_reason_code(connack_code: ConnackCode) -> ReasonCode:
    """Map an MQTT 3.x CONNACK return code to the MQTT 5 reason code of the same meaning
    (the numeric value changes: 5 becomes 135)."""
    for code, name in _CONNACK_V3_TO_V5.items():
        if connack_code == code:
            return ReasonCode(PacketTypes.CONNACK, name)
    return ReasonCode(PacketTypes.CONNACK, "Unspecified error")


def convert_disconnect_error_code_to_reason_code(rc: MQTTErrorCode) -> ReasonCode:
    """Map the error code of a locally detected disconnection to a DISCONNECT reason code."""
    if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
        return ReasonCode(PacketTypes.DISCONNECT, "Success")
    if rc == MQTTErrorCode.MQTT_ERR_KEEPALIVE:
        return ReasonCode(PacketTypes.DISCONNECT, "Keep alive timeout")
    if rc == MQTTErrorCode.MQTT_ERR_PROTOCOL:
        return ReasonCode(PacketTypes.DISCONNECT, "Protocol error")
    return ReasonCode(PacketTypes.DISCONNECT, "Unspecified error")


def _base62(num: int, base: str = string.digits + string.ascii_letters, padding: int = 1) -> str:
    if num < 0:
        raise ValueError("Number must be positive or zero")
    digits = []
    while num:
        num, rest = divmod(num, 62)
        digits.append(base[rest])
    digits.extend(base[0] for _ in range(len(digits), padding))
    return "".join(reversed(digits))


def topic_matches_sub(sub: str, topic: str) -> bool:
    """Whether ``topic`` matches the subscription filter ``sub`` (paho's rules: ``a/#``
    matches ``a``, ``+`` matches an empty level, first-level wildcards skip ``$`` topics)."""
    matcher = MQTTMatcher()
    matcher[sub] = True
    for _ in matcher.iter_match(topic):
        return True
    return False


def _force_bytes(s: str | bytes | bytearray) -> bytes | bytearray:
    if isinstance(s, str):
        return s.encode("utf-8")
    return s


def _encode_payload(payload: PayloadType) -> bytes | bytearray:
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, (int, float)):
        return str(payload).encode("ascii")
    if payload is None:
        return b""
    if not isinstance(payload, (bytes, bytearray)):
        raise TypeError("payload must be a string, bytearray, int, float or None.")
    return payload


# --- message objects ---------------------------------------------------------------------

# One condition for every MQTTMessageInfo: publishing stays a plain object creation, and
# a notification is only sent when someone actually waits.
# Returned by publish(): the message id, the result code, and whether the message has
# been published (changes only when on_publish is dispatched by the loop). In Rust: one is
# created per publish() and kept until the message is done, so it must be cheap to make
# and invisible to the cycle collector; its wait_for_publish() releases the GIL.
MQTTMessageInfo = _core.MQTTMessageInfo


class MQTTMessage:
    """An incoming message, given to ``on_message``."""

    __slots__ = ("_info", "_properties", "_raw_properties", "_topic", "dup", "mid", "payload",
                 "qos", "retain", "state", "timestamp")

    def __init__(self, mid: int = 0, topic: bytes = b""):
        self.timestamp = 0.0
        self.state = mqtt_ms_invalid
        self.dup = False
        self.mid = mid
        self._topic = topic
        self.payload: bytes | bytearray = b""
        self.qos = 0
        self.retain = False
        self._info: MQTTMessageInfo | None = None
        self._properties: Any = None
        self._raw_properties: bytes | None = None

    @property
    def properties(self) -> Properties | None:
        """In MQTT 5.0, the message's properties (decoded on first access)."""
        props: Properties | None = self._properties  # or _UNDECODED, replaced here
        if props is _UNDECODED:
            props = self._properties = _props(PacketTypes.PUBLISH, self._raw_properties)
        return props

    @properties.setter
    def properties(self, value: Properties | None) -> None:
        self._properties = value

    @property
    def info(self) -> MQTTMessageInfo:
        # Created on first use: most incoming messages never need one.
        info = self._info
        if info is None:
            info = self._info = MQTTMessageInfo(self.mid)
        return info

    @info.setter
    def info(self, value: MQTTMessageInfo) -> None:
        self._info = value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, self.__class__):
            return self.mid == other.mid
        return False

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    @property
    def topic(self) -> str:
        """The topic the message was published on (read-only)."""
        return self._topic.decode("utf-8")

    @topic.setter
    def topic(self, value: bytes) -> None:
        self._topic = value


class _Notifier:
    """What ``socket()`` returns: the core's level-triggered event fd, readable while
    events wait to be dispatched by ``loop_read()``. One per connection."""

    __slots__ = ("_core", "_fd")

    def __init__(self, core: _core.ClientCore | None):
        self._fd: int | None = None
        self._core = core

    def fileno(self) -> int:
        # Asked for lazily: the core keeps the fd readable only once someone watches it,
        # which saves two system calls per batch of events for loop_start()/loop_forever().
        fd = self._fd
        if fd is None:
            core = self._core
            fd = self._fd = -1 if core is None else core.fileno()
        return fd

    def close(self) -> None:
        """Close the connection abruptly (no DISCONNECT: the broker publishes the will), as
        closing paho's socket does. The fd itself belongs to the core and stays open."""
        self._fd = -1
        core, self._core = self._core, None
        if core is not None:
            core.close()

    def setsockopt(self, level: int, option: int, value: Any) -> None:
        """Send/receive buffer sizes are tuning hints the core's socket does without; any
        other option cannot be applied from here."""
        if level == socket.SOL_SOCKET and option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            return
        raise NotImplementedError(
            "turbomqtt: the MQTT socket lives in the Rust core; socket options cannot be set")

    def __repr__(self) -> str:
        return f"<turbomqtt notifier fd={self.fileno()}>"


_EV_CONNACK = _core.EV_CONNACK
_EV_PUBLISHED = _core.EV_PUBLISHED
_EV_WRITTEN = _core.EV_WRITTEN
# Payload bytes turned into Python objects per drain: below glibc's default trim threshold
# (128 KiB), so large messages reuse the same heap memory instead of page-faulting it in
# again after every batch; small messages still come by the thousand.
_DRAIN_BYTES = 96 * 1024
_EV_SUBACK = _core.EV_SUBACK
_EV_UNSUBACK = _core.EV_UNSUBACK
_EV_DISCONNECTED = _core.EV_DISCONNECTED
_EV_LOG = _core.EV_LOG

_ERR = {int(c): c for c in MQTTErrorCode}
_LEVEL = {int(c): c for c in LogLevel}
_CLOSED_STATES = (_ConnectionState.MQTT_CS_DISCONNECTING, _ConnectionState.MQTT_CS_DISCONNECTED)
_EMPTY_PROPS = (None, b"", b"\x00")

# PySocks' proxy type numbers, so proxy_set works with or without PySocks installed.
_PROXY_SOCKS4, _PROXY_SOCKS5, _PROXY_HTTP = 1, 2, 3
if socks is not None:
    _PROXY_SOCKS4, _PROXY_SOCKS5, _PROXY_HTTP = socks.SOCKS4, socks.SOCKS5, socks.HTTP


# Marks MQTT 5 message properties not decoded yet (most handlers never look at them).
_UNDECODED = object()


def _reason(packet_type: int, code: int) -> ReasonCode:
    # ReasonCode(packet_type, identifier=code) without the call overhead for known codes.
    if (packet_type, code) in _REASON_NAMES:
        rc = _new_reason(ReasonCode)
        rc.packetType = packet_type
        rc.value = code
        return rc
    return ReasonCode(packet_type, identifier=code)


def _props(packet_type: int, raw: bytes | None) -> Properties:
    props = Properties(packet_type)
    if raw is not None and raw not in _EMPTY_PROPS:
        props.unpack(raw)
    return props


def _new_core() -> _core.ClientCore:
    core = _core.ClientCore()
    # Incoming messages then come out of drain() as ready MQTTMessage objects.
    core.set_message_class(MQTTMessage, _UNDECODED, mqtt_ms_invalid)
    return core


def _callback_property(name: str, doc: str) -> property:
    attr = "_" + name

    def getter(self: Client) -> Any:
        return getattr(self, attr)

    def setter(self: Client, func: Any) -> None:
        with self._callback_mutex:
            setattr(self, attr, func)

    return property(getter, setter, doc=doc)


class Client:
    """MQTT 3.1/3.1.1/5.0 client with paho-mqtt 2.2.0's API.

    Network I/O runs in turbomqtt's Rust core; callbacks run on the thread that drives the
    loop (``loop_start()``'s thread, or the caller of ``loop_forever()``/``loop()``/
    ``loop_read()``), in the order the packets arrived.
    """

    def __init__(
        self,
        callback_api_version: CallbackAPIVersion = CallbackAPIVersion.VERSION1,
        client_id: str | None = "",
        clean_session: bool | None = None,
        userdata: Any = None,
        protocol: MQTTProtocolVersion = MQTTv311,
        transport: Literal["tcp", "websockets", "unix"] = "tcp",
        reconnect_on_failure: bool = True,
        manual_ack: bool = False,
    ) -> None:
        transport = transport.lower()  # type: ignore[assignment]
        if transport == "unix" and not hasattr(socket, "AF_UNIX"):
            raise ValueError('"unix" transport not supported')
        if transport not in ("websockets", "tcp", "unix"):
            raise ValueError(
                f'transport must be "websockets", "tcp" or "unix", not {transport}')

        self._manual_ack = manual_ack
        self._transport = transport
        self._protocol = protocol
        self._userdata = userdata
        self._sock: _Notifier | None = None
        self._sockpairR: Any = None
        self._sockpairW: Any = None
        self._keepalive = 60
        self._connect_timeout = 5.0
        self._client_mode = MQTT_CLIENT
        self._callback_api_version = callback_api_version

        if callback_api_version == CallbackAPIVersion.VERSION1:
            warnings.warn(
                "Callback API version 1 is deprecated, update to latest version",
                category=DeprecationWarning,
                stacklevel=2,
            )
        if isinstance(callback_api_version, str):
            # Most likely a client id given as first argument, as in paho-mqtt 1.x.
            raise TypeError(
                "Unsupported callback API version: version 2.0 added a callback_api_version,"
                " see docs/migrations.rst for details"
            )
        if callback_api_version not in CallbackAPIVersion:
            raise ValueError("Unsupported callback API version")

        self._clean_start: CleanStartOption = MQTT_CLEAN_START_FIRST_ONLY
        if protocol == MQTTv5:
            if clean_session is not None:
                raise ValueError("Clean session is not used for MQTT 5.0")
        else:
            if clean_session is None:
                clean_session = True
            if not clean_session and (client_id == "" or client_id is None):
                raise ValueError("A client id must be provided if clean session is False.")
            self._clean_session = clean_session

        # [MQTT-3.1.3-4] the client id is a UTF-8 string; MQTT 3.1 brokers need one.
        self._client_id: bytes | bytearray
        if client_id == "" or client_id is None:
            if protocol == MQTTv31:
                self._client_id = _base62(uuid.uuid4().int, padding=22).encode("utf8")
            else:
                self._client_id = b""
        else:
            self._client_id = _force_bytes(client_id)

        self._username: bytes | None = None
        self._password: bytes | None = None
        self._reconnect_min_delay = 1
        self._reconnect_max_delay = 120
        self._reconnect_delay: int | None = None
        self._reconnect_on_failure = reconnect_on_failure
        self._state = _ConnectionState.MQTT_CS_NEW
        self._max_inflight_messages = 20
        self._max_queued_messages = 0
        self._connect_properties: Properties | None = None
        self._will_properties: Properties | None = None
        self._will = False
        self._will_topic = b""
        self._will_payload: bytes | bytearray = b""
        self._will_qos = 0
        self._will_retain = False
        self._on_message_filtered = MQTTMatcher()
        self._filtered_count = 0
        self._host = ""
        self._port = 1883
        self._bind_address = ""
        self._bind_port = 0
        self._proxy: Any = {}
        self._in_callback_mutex = threading.Lock()
        self._callback_mutex = threading.RLock()
        self._msgtime_mutex = threading.Lock()
        self._out_message_mutex = threading.RLock()
        self._in_message_mutex = threading.Lock()
        self._reconnect_delay_mutex = threading.Lock()
        self._mid_generate_mutex = threading.Lock()
        self._thread: threading.Thread | None = None
        self._thread_terminate = False
        self._ssl = False
        self._ssl_context: Any = None
        self._tls_insecure = False
        self._tls_files: _tls.Files | None = None
        self._logger: logging.Logger | None = None
        self._registered_write = False
        self._on_log: CallbackOnLog | None = None
        self._on_pre_connect: CallbackOnPreConnect | None = None
        self._on_connect: CallbackOnConnect | None = None
        self._on_connect_fail: CallbackOnConnectFail | None = None
        self._on_subscribe: CallbackOnSubscribe | None = None
        self._on_message: CallbackOnMessage | None = None
        self._on_publish: CallbackOnPublish | None = None
        self._on_unsubscribe: CallbackOnUnsubscribe | None = None
        self._on_disconnect: CallbackOnDisconnect | None = None
        self._on_socket_open: CallbackOnSocket | None = None
        self._on_socket_close: CallbackOnSocket | None = None
        self._on_socket_register_write: CallbackOnSocket | None = None
        self._on_socket_unregister_write: CallbackOnSocket | None = None
        self._websocket_path = "/mqtt"
        self._websocket_extra_headers: WebSocketHeaders | None = None
        self._mqttv5_first_connect = True
        self.suppress_exceptions = False

        # The MQTTMessageInfo of each publish waiting for its EV_PUBLISHED is kept by the
        # core (publish_info()) and comes back in that event: no lock on the hot path.
        # _backlog: events drained but not dispatched yet (tuples and MQTTMessages).
        self._backlog: list[Any] | None = None
        self._write_gate = False
        # External-loop mode (see reconnect()): the core holds the PUBREC of incoming QoS 2
        # messages; _pubrec_write: some were handed over by loop_read() and wait for the
        # host's loop_write().
        self._hold_pubrec = False
        self._pubrec_write = False
        self._pubrec_turn_waited = False
        # False while reconnect() runs: see loop_write().
        self._connect_returned = True
        # True while core.connect() runs in some thread: the connection exists in the core
        # (CONNACK may even be in) before that thread gets the GIL back to set _sock.
        self._core_connecting = False
        self._keepalive_paused = False
        # Set while on_connect runs for a refused CONNACK: the connection is about to be
        # closed, and paho's disconnect() there only queues a DISCONNECT that is never sent.
        self._refused = False
        self._loop_used = False
        self._log_packets = False
        # paho's "double connection": while the loop thread sleeps in its reconnect wait, a
        # connect() from another thread only queues CONNECT (the thread is the writer) and
        # the thread then opens its own connection. _waiting_thread: that sleeping thread;
        # _held: the current connection was opened that way and has written nothing yet.
        self._waiting_thread: threading.Thread | None = None
        self._held = False
        self._core = _new_core()
        self._core.set_max_inflight(self._max_inflight_messages)
        self._core.set_max_queued(self._max_queued_messages)
        self._core.set_manual_ack(bool(manual_ack))
        # paho leaves incoming topic aliases to the application: an aliased PUBLISH
        # arrives with topic "" and the TopicAlias property.
        self._core.set_resolve_topic_aliases(False)
        # paho delivers a message whose topic is not UTF-8 (msg.topic then raises).
        self._core.set_accept_invalid_topics(True)
        # paho's on_disconnect gets None for a missing reason code / properties.
        self._core.set_report_absent_disconnect_fields(True)
        # paho 2.2 sends a packet above the server's v5 Maximum Packet Size and the
        # server disconnects with 0x95 (its test_maximum_packet_size expects that).
        self._core.set_enforce_max_packet_size(False)

    def __del__(self) -> None:
        core = getattr(self, "_core", None)
        if core is not None:
            try:
                core.close()
            except Exception:  # noqa: BLE001, S110 - never raise from a finalizer
                pass

    # --- properties --------------------------------------------------------------------

    def _connection_closed(self) -> bool:
        return self._state == _ConnectionState.MQTT_CS_NEW or (
            self._state in _CLOSED_STATES and self._sock is None)

    def _check_closed(self, what: str) -> None:
        if not self._connection_closed():
            raise RuntimeError(f"updating {what} on established connection is not supported")

    @property
    def host(self) -> str:
        """Host to connect to (a socket path with the "unix" transport)."""
        return self._host

    @host.setter
    def host(self, value: str) -> None:
        self._check_closed("host")
        if not value:
            raise ValueError("Invalid host.")
        self._host = value

    @property
    def port(self) -> int:
        """Broker port."""
        return self._port

    @port.setter
    def port(self, value: int) -> None:
        self._check_closed("port")
        if value <= 0:
            raise ValueError("Invalid port number.")
        self._port = value

    @property
    def keepalive(self) -> int:
        """Keepalive interval in seconds (0 disables pings)."""
        return self._keepalive

    @keepalive.setter
    def keepalive(self, value: int) -> None:
        self._check_closed("keepalive")
        if value < 0:
            raise ValueError("Keepalive must be >=0.")
        self._keepalive = value

    @property
    def transport(self) -> Literal["tcp", "websockets", "unix"]:
        """Transport: "tcp", "websockets" or "unix"."""
        return self._transport

    @transport.setter
    def transport(self, value: Literal["tcp", "websockets"]) -> None:
        self._check_closed("transport")
        self._transport = value

    @property
    def protocol(self) -> MQTTProtocolVersion:
        """MQTT protocol version (may fall back to 3.1 after a CONNACK 1)."""
        return self._protocol

    @property
    def connect_timeout(self) -> float:
        """Timeout for opening the connection (TCP, TLS and WebSocket handshakes)."""
        return self._connect_timeout

    @connect_timeout.setter
    def connect_timeout(self, value: float) -> None:
        self._check_closed("connect_timeout")
        if value <= 0.0:
            raise ValueError("timeout must be a positive number")
        self._connect_timeout = value

    @property
    def username(self) -> str | None:
        """User name sent in CONNECT, or None."""
        if self._username is None:
            return None
        return self._username.decode("utf-8")

    @username.setter
    def username(self, value: str | None) -> None:
        self._check_closed("username")
        self._username = None if value is None else value.encode("utf-8")

    @property
    def password(self) -> str | None:
        """Password sent in CONNECT, or None."""
        if self._password is None:
            return None
        return self._password.decode("utf-8")

    @password.setter
    def password(self, value: str | None) -> None:
        self._check_closed("password")
        self._password = None if value is None else value.encode("utf-8")

    @property
    def max_inflight_messages(self) -> int:
        """Maximum QoS 1/2 messages in flight at once (0: unlimited)."""
        return self._max_inflight_messages

    @max_inflight_messages.setter
    def max_inflight_messages(self, value: int) -> None:
        self._check_closed("max_inflight_messages")
        if value < 0:
            raise ValueError("Invalid inflight.")
        self._max_inflight_messages = value
        self._core.set_max_inflight(value)

    @property
    def max_queued_messages(self) -> int:
        """Maximum QoS 1/2 messages kept waiting (0: unlimited)."""
        return self._max_queued_messages

    @max_queued_messages.setter
    def max_queued_messages(self, value: int) -> None:
        self._check_closed("max_queued_messages")
        if value < 0:
            raise ValueError("Invalid queue size.")
        self._max_queued_messages = value
        self._core.set_max_queued(value)

    @property
    def will_topic(self) -> str | None:
        """Topic of the will message ("" when none is set)."""
        if self._will_topic is None:
            return None
        return self._will_topic.decode("utf-8")

    @property
    def will_payload(self) -> bytes | bytearray | None:
        """Payload of the will message (b"" when none is set)."""
        return self._will_payload

    @property
    def logger(self) -> logging.Logger | None:
        return self._logger

    @logger.setter
    def logger(self, value: logging.Logger | None) -> None:
        self._logger = value
        self._update_log_packets()

    @property
    def callback_api_version(self) -> CallbackAPIVersion:
        """The callback API version given to the constructor."""
        return self._callback_api_version

    # --- configuration -----------------------------------------------------------------

    def reinitialise(
        self, client_id: str = "", clean_session: bool = True, userdata: Any = None
    ) -> None:
        """Reset the client to its just-constructed state (same callback API version)."""
        self._reset_sockets()
        self._core.close()
        self.__init__(self.callback_api_version, client_id, clean_session, userdata)  # type: ignore[misc]

    def ws_set_options(self, path: str = "/mqtt", headers: WebSocketHeaders | None = None) -> None:
        """WebSocket path and extra headers (a dict, or a callable returning the headers)."""
        self._websocket_path = path
        if headers is not None:
            if isinstance(headers, dict) or callable(headers):
                self._websocket_extra_headers = headers
            else:
                raise ValueError(
                    "'headers' option to ws_set_options has to be either a dictionary or"
                    " callable")

    def tls_set_context(self, context: Any = None) -> None:
        """Use TLS configured from an ``ssl.SSLContext`` (default: create_default_context()).

        The core speaks TLS through rustls, so only what the context exposes is honoured:
        verify_mode, check_hostname, minimum/maximum_version (TLS 1.2 and 1.3 only), the
        cipher suites it enables (``get_ciphers()``; rustls has only the AES-GCM and
        ChaCha20 suites: TLS 1.3, and TLS 1.2 with ECDHE, other names are ignored), ALPN
        given to tls_set(), and the CA certificates loaded into it (otherwise the system
        roots). A context cannot reveal its client certificate, CA paths loaded lazily
        (``capath``), CRLs, options flags or a custom ``sni_callback``: client
        certificates need tls_set().
        """
        if self._ssl_context is not None:
            raise ValueError("SSL/TLS has already been configured.")
        if context is None:
            context = ssl.create_default_context()
        self._ssl = True
        self._ssl_context = context
        if hasattr(context, "check_hostname"):
            self._tls_insecure = not context.check_hostname

    def tls_set(
        self,
        ca_certs: str | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        cert_reqs: Any = None,
        tls_version: int | None = None,
        ciphers: str | None = None,
        keyfile_password: str | None = None,
        alpn_protocols: list[str] | None = None,
    ) -> None:
        """Configure TLS from files, as paho does.

        An ``ssl.SSLContext`` is built at once (so missing or bad files raise here, as with
        paho); the file names are also handed to the core, which loads them into rustls.
        ``ciphers`` is resolved by OpenSSL, then the suites rustls has are used (see
        tls_set_context); connect() raises ``ssl.SSLError('No cipher can be selected.')``
        when none is left for the allowed TLS versions.
        """
        if ssl is None:
            raise ValueError("This platform has no SSL/TLS.")
        if tls_version is None:
            tls_version = ssl.PROTOCOL_TLS_CLIENT
        context = ssl.SSLContext(tls_version)
        if ciphers is not None:
            context.set_ciphers(ciphers)
        password: Any = keyfile_password
        if certfile is not None:
            if callable(keyfile_password):
                # OpenSSL asks the callable only for an encrypted key; the core gets the
                # value it returned (str or bytes), so it is asked once, as with paho.
                given: list[Any] = []

                def ask() -> Any:
                    given.append(keyfile_password())
                    return given[-1]

                context.load_cert_chain(certfile, keyfile, ask)
                password = given[-1] if given else None
            else:
                context.load_cert_chain(certfile, keyfile, keyfile_password)
        if isinstance(password, bytearray):
            password = bytes(password)
        if cert_reqs == ssl.CERT_NONE and hasattr(context, "check_hostname"):
            context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED if cert_reqs is None else cert_reqs
        if ca_certs is not None:
            context.load_verify_locations(ca_certs)
        else:
            context.load_default_certs()
        if alpn_protocols is not None:
            if not getattr(ssl, "HAS_ALPN", None):
                raise ValueError("SSL library has no support for ALPN")
            context.set_alpn_protocols(alpn_protocols)
        self.tls_set_context(context)
        self._tls_files = {
            "ca_certs": ca_certs,
            "certfile": certfile,
            "keyfile": keyfile,
            "keyfile_password": password,
            "alpn": list(alpn_protocols) if alpn_protocols is not None else None,
        }
        self.tls_insecure_set(cert_reqs == ssl.CERT_NONE)

    def tls_insecure_set(self, value: bool) -> None:
        """Skip (True) or do (False) the server hostname check."""
        if self._ssl_context is None:
            raise ValueError("Must configure SSL context before using tls_insecure_set.")
        self._tls_insecure = value
        if hasattr(self._ssl_context, "check_hostname"):
            self._ssl_context.check_hostname = not value

    def _tls_dict(self) -> dict[str, Any]:
        return _tls.from_context(
            self._ssl_context,
            insecure=self._tls_insecure,
            files=self._tls_files,
            server_hostname=self._host,
        )

    def proxy_set(self, **proxy_args: Any) -> None:
        """Connect through a proxy: ``proxy_type`` (socks.HTTP, socks.SOCKS4 or
        socks.SOCKS5: 3, 1, 2), ``proxy_addr``, and optionally ``proxy_port``,
        ``proxy_rdns``, ``proxy_username``, ``proxy_password``. The core implements the
        proxy protocols itself, so PySocks is not needed."""
        if not self._proxy_is_valid(proxy_args):
            raise ValueError("proxy_type and/or proxy_addr are invalid.")
        self._proxy = proxy_args

    @staticmethod
    def _proxy_is_valid(p: Any) -> bool:
        def check(kind: Any, addr: Any) -> bool:
            return kind in (_PROXY_HTTP, _PROXY_SOCKS4, _PROXY_SOCKS5) and bool(addr)

        if isinstance(p, dict):
            return check(p.get("proxy_type"), p.get("proxy_addr"))
        if isinstance(p, (list, tuple)):
            return len(p) == 6 and check(p[0], p[1])
        return False

    def _get_proxy(self) -> dict[str, Any] | None:
        proxy = None
        if self._proxy_is_valid(self._proxy):
            proxy = self._proxy
        elif not (hasattr(urllib.request, "proxy_bypass")
                  and urllib.request.proxy_bypass(self._host)):
            # The mqtt_proxy environment variable, as paho honours it.
            env = urllib.request.getproxies()
            if "mqtt" in env:
                parts = urllib.parse.urlparse(env["mqtt"])
                kind = {"http": _PROXY_HTTP, "socks": _PROXY_SOCKS5}.get(parts.scheme)
                if kind is not None:
                    proxy = {"proxy_type": kind, "proxy_addr": parts.hostname,
                             "proxy_port": parts.port}
        if proxy is None and socks is not None:
            default = socks.get_default_proxy()
            if self._proxy_is_valid(default):
                keys = ("proxy_type", "proxy_addr", "proxy_port", "proxy_rdns",
                        "proxy_username", "proxy_password")
                proxy = dict(zip(keys, default))
        if proxy is None:
            return None
        kind = proxy.get("proxy_type")
        name = {_PROXY_HTTP: "http", _PROXY_SOCKS4: "socks4", _PROXY_SOCKS5: "socks5"}[kind]
        port = proxy.get("proxy_port") or (8080 if kind == _PROXY_HTTP else 1080)
        return {"type": name, "host": proxy["proxy_addr"], "port": int(port),
                "username": proxy.get("proxy_username"),
                "password": proxy.get("proxy_password")}

    def enable_logger(self, logger: logging.Logger | None = None) -> None:
        """Send log messages to a ``logging.Logger`` (default: this module's logger)."""
        if logger is None:
            if self._logger is not None:
                return
            logger = logging.getLogger(__name__)
        self.logger = logger

    def disable_logger(self) -> None:
        """Stop sending log messages to the logger (on_log is unaffected)."""
        self._logger = None
        self._update_log_packets()

    def _update_log_packets(self) -> None:
        # Packet trace lines cost work in the core, so they are only produced when
        # someone listens.
        want = self.on_log is not None or self._logger is not None
        if want != self._log_packets:
            self._core.set_log_packets(want)
            self._log_packets = want

    def username_pw_set(self, username: str | None, password: str | None = None) -> None:
        """Credentials for CONNECT; a None username turns authentication off."""
        self._username = None if username is None else username.encode("utf-8")
        if isinstance(password, str):
            self._password = password.encode("utf-8")
        else:
            self._password = password

    def enable_bridge_mode(self) -> None:
        """Identify as a bridge (before connect()): CONNECT carries the protocol level with
        bit 0x80 set, as paho does for every version. mosquitto then does not send the
        bridge's own messages back and keeps their retain flag (MQTT 3.1/3.1.1)."""
        self._client_mode = MQTT_BRIDGE

    def max_inflight_messages_set(self, inflight: int) -> None:
        """Set max_inflight_messages."""
        self.max_inflight_messages = inflight

    def max_queued_messages_set(self, queue_size: int) -> Client:
        """Set max_queued_messages; returns the client."""
        if not isinstance(queue_size, int):
            raise TypeError("queue_size should be an int")
        self.max_queued_messages = queue_size
        return self

    def user_data_set(self, userdata: Any) -> None:
        self._userdata = userdata

    def user_data_get(self) -> Any:
        return self._userdata

    def will_set(
        self,
        topic: str,
        payload: PayloadType = None,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> None:
        """Set the will message the broker publishes if the connection is lost."""
        if topic is None or len(topic) == 0:
            raise ValueError("Invalid topic.")
        if qos < 0 or qos > 2:
            raise ValueError("Invalid QoS level.")
        if properties and not isinstance(properties, Properties):
            raise ValueError(
                "The properties argument must be an instance of the Properties class.")
        self._will_payload = _encode_payload(payload)
        self._will = True
        self._will_topic = topic.encode("utf-8")
        self._will_qos = qos
        self._will_retain = retain
        self._will_properties = properties

    def will_clear(self) -> None:
        """Remove the will message."""
        self._will = False
        self._will_topic = b""
        self._will_payload = b""
        self._will_qos = 0
        self._will_retain = False

    def reconnect_delay_set(self, min_delay: int = 1, max_delay: int = 120) -> None:
        """Backoff of automatic reconnects: doubles from min_delay up to max_delay."""
        with self._reconnect_delay_mutex:
            self._reconnect_min_delay = min_delay
            self._reconnect_max_delay = max_delay
            self._reconnect_delay = None

    def manual_ack_set(self, on: bool) -> None:
        """Withhold PUBACK/PUBCOMP of received messages until ack() is called."""
        self._manual_ack = on
        self._core.set_manual_ack(bool(on))

    def ack(self, mid: int, qos: int) -> MQTTErrorCode:
        """Acknowledge a received message (only with manual_ack)."""
        if self._manual_ack and qos in (1, 2):
            return _ERR.get(self._core.ack(mid, qos), MQTT_ERR_UNKNOWN)
        return MQTT_ERR_SUCCESS

    def message_callback_add(self, sub: str, callback: CallbackOnMessage) -> None:
        """Call ``callback`` instead of on_message for messages matching ``sub``."""
        if callback is None or sub is None:
            raise ValueError("sub and callback must both be defined.")
        with self._callback_mutex:
            try:
                self._on_message_filtered[sub]
            except KeyError:
                self._filtered_count += 1
            self._on_message_filtered[sub] = callback

    def topic_callback(self, sub: str) -> Callable[[CallbackOnMessage], CallbackOnMessage]:
        def decorator(func: CallbackOnMessage) -> CallbackOnMessage:
            self.message_callback_add(sub, func)
            return func

        return decorator

    def message_callback_remove(self, sub: str) -> None:
        """Remove a callback added with message_callback_add (unknown filters are ignored)."""
        if sub is None:
            raise ValueError("sub must defined.")
        with self._callback_mutex:
            try:
                del self._on_message_filtered[sub]
                self._filtered_count -= 1
            except KeyError:
                pass

    # --- connection ----------------------------------------------------------------------

    def connect(
        self,
        host: str,
        port: int = 1883,
        keepalive: int = 60,
        bind_address: str = "",
        bind_port: int = 0,
        clean_start: CleanStartOption = MQTT_CLEAN_START_FIRST_ONLY,
        properties: Properties | None = None,
    ) -> MQTTErrorCode:
        """Connect to a broker (blocking until CONNECT is sent; on_connect comes later
        through the loop). Raises OSError subclasses as paho does."""
        if self._protocol == MQTTv5:
            self._mqttv5_first_connect = True
        else:
            if clean_start != MQTT_CLEAN_START_FIRST_ONLY:
                raise ValueError("Clean start only applies to MQTT V5")
            if properties:
                raise ValueError("Properties only apply to MQTT V5")
        self.connect_async(host, port, keepalive, bind_address, bind_port, clean_start,
                           properties)
        return self.reconnect()

    def connect_srv(
        self,
        domain: str | None = None,
        keepalive: int = 60,
        bind_address: str = "",
        bind_port: int = 0,
        clean_start: CleanStartOption = MQTT_CLEAN_START_FIRST_ONLY,
        properties: Properties | None = None,
    ) -> MQTTErrorCode:
        """Connect to a broker found through DNS SRV records (needs dnspython)."""
        if HAVE_DNS is False:
            raise ValueError('No DNS resolver library found, try "pip install dnspython".')
        if domain is None:
            domain = socket.getfqdn()
            domain = domain[domain.find(".") + 1:]
        try:
            record = f"_secure-mqtt._tcp.{domain}" if self._ssl else f"_mqtt._tcp.{domain}"
            resolve = getattr(dns.resolver, "resolve", None) or dns.resolver.query
            answers = [(a.target.to_text()[:-1], a.port, a.priority, a.weight)
                       for a in resolve(record, "SRV")]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers) as err:
            raise ValueError(f"No answer/NXDOMAIN for SRV in {domain}") from err
        for host, port, _prio, _weight in answers:
            try:
                return self.connect(host, port, keepalive, bind_address, bind_port,
                                    clean_start, properties)
            except Exception:  # noqa: BLE001, S112 - try the next record, as paho does
                continue
        raise ValueError("No SRV hosts responded")

    def connect_async(
        self,
        host: str,
        port: int = 1883,
        keepalive: int = 60,
        bind_address: str = "",
        bind_port: int = 0,
        clean_start: CleanStartOption = MQTT_CLEAN_START_FIRST_ONLY,
        properties: Properties | None = None,
    ) -> None:
        """Record the connection parameters; the loop (loop_start/loop_forever) connects."""
        if bind_port < 0:
            raise ValueError("Invalid bind port number.")
        self._sock_close()
        self._state = _ConnectionState.MQTT_CS_NEW
        self.host = host
        self.port = port
        self.keepalive = keepalive
        self._bind_address = bind_address
        self._bind_port = bind_port
        self._clean_start = clean_start
        self._connect_properties = properties
        self._state = _ConnectionState.MQTT_CS_CONNECT_ASYNC

    def _check_clean_session(self) -> bool:
        if self._protocol == MQTTv5:
            if self._clean_start == MQTT_CLEAN_START_FIRST_ONLY:
                return self._mqttv5_first_connect
            return bool(self._clean_start)
        return bool(self._clean_session)

    def _ws_headers(self) -> list[tuple[str, str]] | None:
        extra = self._websocket_extra_headers
        if extra is None:
            return None
        if callable(extra):
            # paho hands the callable its default handshake headers; the core adds the
            # Sec-WebSocket-Key itself.
            defaults = {
                "Host": self._host,
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Origin": f"https://{self._host}:{self._port}",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Protocol": "mqtt",
            }
            extra = extra(defaults)
        return [(str(k), str(v)) for k, v in dict(extra).items()]

    def reconnect(self) -> MQTTErrorCode:
        """Connect again with the last parameters (blocking, as connect())."""
        if len(self._host) == 0:
            raise ValueError("Invalid host.")
        if self._port <= 0:
            raise ValueError("Invalid port number.")
        core = self._core
        self._state = _ConnectionState.MQTT_CS_CONNECTING
        self._sock_close()

        # QoS 0 messages not yet written are lost with the old connection (paho marks them
        # CONN_LOST and published, so waiters wake up and raise).
        for info in core.take_infos(True):
            info.rc = MQTT_ERR_CONN_LOST
            info._set_as_published()

        on_pre_connect = self.on_pre_connect
        if on_pre_connect:
            try:
                on_pre_connect(self, self._userdata)
            except Exception as err:
                self._easy_log(MQTT_LOG_ERR, "Caught exception in on_pre_connect: %s", err)
                if not self.suppress_exceptions:
                    raise

        self._update_log_packets()
        v5 = self._protocol == MQTTv5
        will = None
        if self._will:
            will_props = None
            if v5:
                will_props = (self._will_properties.pack() if self._will_properties is not None
                              else None)
            will = (self._will_topic.decode("utf-8"), bytes(self._will_payload),
                    int(self._will_qos), bool(self._will_retain), will_props)
        properties = None
        if v5 and self._connect_properties is not None:
            properties = self._connect_properties.pack()
        kwargs: dict[str, Any] = {
            "host": self._host,
            "port": int(self._port),
            "keepalive": int(self._keepalive),
            "client_id": self._client_id.decode("utf-8"),
            "protocol": int(self._protocol),
            "clean_start": self._check_clean_session(),
            "username": None if self._username is None else self._username.decode("utf-8"),
            "password": None if self._password is None else bytes(self._password),
            "will": will,
            "properties": properties,
            "transport": self._transport,
            "ws_path": self._websocket_path,
            "ws_headers": self._ws_headers(),
            "tls": self._tls_dict() if self._ssl else None,
            "bind_address": self._bind_address or "",
            "bind_port": int(self._bind_port),
            "proxy": self._get_proxy() if self._transport != "unix" else None,
            "timeout": float(self._connect_timeout),
        }
        if self._client_mode == MQTT_BRIDGE:
            kwargs["bridge"] = True
        waiting = self._waiting_thread
        hold = waiting is not None and waiting is not threading.current_thread()
        # An external event loop (a host that registers for writes, as aiomqtt does): paho
        # writes only in the host's loop_write(), CONNECT first and then the PUBREC of each
        # QoS 2 PUBLISH that loop_read() read. The core does the same here, so what arrives
        # reaches the host in paho's order: CONNACK only after the host's first write turn,
        # a QoS 2 message (on PUBREL) only after the host dispatched what came with it.
        external = self._thread is None and self.on_socket_register_write is not None
        if hold or external:
            kwargs["hold_output"] = True
        self._held = hold or external
        self._connect_returned = False
        self._hold_pubrec = external
        self._pubrec_write = False
        self._pubrec_turn_waited = False
        core.set_hold_pubrec(external)
        self._core_connecting = True
        try:
            core.connect(**kwargs)
        except BaseException:
            self._held = False
            self._connect_returned = True
            raise
        finally:
            self._core_connecting = False
        try:
            self._registered_write = False
            self._sock = _Notifier(core)
            self._call_socket_open(self._sock)
            if external:
                # An external event loop: paho queues CONNECT and asks the host loop to write
                # it, so nothing can arrive before the host's first loop_write(). The core
                # holds CONNECT (and the events) until that loop_write(), which gives the
                # host the same order of events as with paho (one write turn per connection).
                self._write_gate = True
                self._call_socket_register_write()
        finally:
            self._connect_returned = True
        return MQTT_ERR_SUCCESS

    def is_connected(self) -> bool:
        """True after a successful CONNACK, until the connection is handled as closed."""
        return self._state == _ConnectionState.MQTT_CS_CONNECTED

    def disconnect(
        self, reasoncode: ReasonCode | None = None, properties: Properties | None = None
    ) -> MQTTErrorCode:
        """Send DISCONNECT and close; on_disconnect follows through the loop."""
        if self._sock is None and not self._core_connecting:
            self._state = _ConnectionState.MQTT_CS_DISCONNECTED
            return MQTT_ERR_NO_CONN
        self._state = _ConnectionState.MQTT_CS_DISCONNECTING
        if self._refused:
            return MQTT_ERR_SUCCESS
        code = 0
        packed = None
        if self._protocol == MQTTv5:
            if reasoncode is not None:
                code = int(reasoncode.value)
            if properties is not None:
                packed = properties.pack()
        rc = self._core.disconnect(code, packed)
        if (self._thread is None and not self._loop_used and self._on_socket_open is None
                and self._on_socket_register_write is None):
            # No loop drives this client: like paho's inline write, finish the disconnect
            # (and its on_disconnect) in this call.
            self._finish_inline()
        return _ERR.get(rc, MQTT_ERR_SUCCESS)

    def _finish_inline(self) -> None:
        deadline = time_func() + self._connect_timeout
        while self._sock is not None:
            remaining = deadline - time_func()
            if remaining <= 0:
                return
            if self._backlog is None:
                self._core.wait(min(remaining, 0.1))
            self._handle_events()

    def _sock_close(self) -> None:
        """Close the connection without DISCONNECT (the broker publishes the will)."""
        sock = self._sock
        if not sock:
            return
        self._sock = None
        try:
            self._call_socket_unregister_write(sock)
            self._call_socket_close(sock)
        finally:
            sock.close()
            self._core.close()

    def _reset_sockets(self, sockpair_only: bool = False) -> None:
        if not sockpair_only:
            self._sock_close()

    def socket(self) -> Any:
        """The notifier of the current connection (``fileno()``, ``close()``), or None."""
        return self._sock

    def want_write(self) -> bool:
        """True until the host loop's first loop_write() after a connect, and while the
        answers to incoming QoS 2 messages wait for it (see reconnect()); the core writes
        everything else by itself."""
        return self._write_gate or self._pubrec_write

    # --- publish / subscribe ---------------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: PayloadType = None,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> MQTTMessageInfo:
        """Publish a message; returns an MQTTMessageInfo (never blocks on the network)."""
        core = self._core
        if core is not None and properties is None:
            # The common call, checked as below but in the core (None: not that call).
            info = core.publish_fast(topic, payload, qos, retain, self._protocol,
                                     self._on_publish is None)
            if info is not None:
                return info
        v5 = self._protocol == MQTTv5
        if not v5 and (topic is None or len(topic) == 0):
            raise ValueError("Invalid topic.")
        # paho encodes first: bytes/None raise its AttributeError, and only a topic this
        # long can exceed 65535 UTF-8 bytes.
        if (type(topic) is not str or len(topic) > 16383) and len(topic.encode("utf-8")) > 65535:
            if "+" in topic or "#" in topic:
                raise ValueError("Publish topic cannot contain wildcards.")
            raise ValueError("Publish topic is too long.")
        if "+" in topic or "#" in topic:
            raise ValueError("Publish topic cannot contain wildcards.")
        if qos < 0 or qos > 2:
            raise ValueError("Invalid QoS level.")
        data: bytes | bytearray
        if isinstance(payload, bytes):
            data = payload
        else:
            data = _encode_payload(payload)
            if isinstance(data, bytearray):
                data = bytes(data)
        if len(data) > 268435455:
            raise ValueError("Payload too large.")
        packed = properties.pack() if (v5 and properties is not None) else None
        core = self._core
        # The core keeps the info until this message's EV_PUBLISHED / EV_WRITTEN (QoS>0
        # without a connection is delivered after the next CONNACK, as with paho). With
        # no on_publish to call, the core marks the info published itself and the loop
        # thread is not woken for the acknowledgement at all.
        return core.publish_info(topic, data, qos, retain, packed, self._on_publish is None)

    @staticmethod
    def _filter_wildcard_len_check(sub: bytes) -> MQTTErrorCode:
        if (len(sub) == 0 or len(sub) > 65535
                or any(b"+" in p or b"#" in p for p in sub.split(b"/") if len(p) > 1)
                or b"#/" in sub):
            return MQTT_ERR_INVAL
        return MQTT_ERR_SUCCESS

    @staticmethod
    def _raise_for_invalid_topic(topic: bytes) -> None:
        if b"+" in topic or b"#" in topic:
            raise ValueError("Publish topic cannot contain wildcards.")
        if len(topic) > 65535:
            raise ValueError("Publish topic is too long.")

    def subscribe(
        self,
        topic: str | tuple[str, int] | tuple[str, SubscribeOptions] | list[tuple[str, int]]
        | list[tuple[str, SubscribeOptions]],
        qos: int = 0,
        options: SubscribeOptions | None = None,
        properties: Properties | None = None,
    ) -> tuple[MQTTErrorCode, int | None]:
        """Subscribe to one filter (str, (str, qos|SubscribeOptions)) or a list of them.

        Returns (rc, mid); (MQTT_ERR_NO_CONN, None) without a connection.
        """
        v5 = self._protocol == MQTTv5
        topic_qos_list: list[tuple[bytes, SubscribeOptions | int]] | None = None
        if isinstance(topic, tuple):
            if v5:
                topic, given = topic
                if not isinstance(given, SubscribeOptions):
                    raise ValueError(
                        "Subscribe options must be instance of SubscribeOptions class.")
                options = given
            else:
                # A SubscribeOptions here fails the QoS check below (TypeError, as in paho).
                topic, qos = topic  # type: ignore[assignment]
        if isinstance(topic, (bytes, str)):
            if qos < 0 or qos > 2:
                raise ValueError("Invalid QoS level.")
            if v5:
                if options is None:
                    options = SubscribeOptions(qos=qos)
                elif qos != 0:
                    raise ValueError("Subscribe options and qos parameters cannot be combined.")
                if not isinstance(options, SubscribeOptions):
                    raise ValueError(
                        "Subscribe options must be instance of SubscribeOptions class.")
                topic_qos_list = [(topic.encode("utf-8"), options)]
            else:
                if topic is None or len(topic) == 0:
                    raise ValueError("Invalid topic.")
                topic_qos_list = [(topic.encode("utf-8"), qos)]
        elif isinstance(topic, list):
            if len(topic) == 0:
                raise ValueError("Empty topic list")
            topic_qos_list = []
            if v5:
                for t, o in topic:
                    if not isinstance(o, SubscribeOptions):
                        if o < 0 or o > 2:
                            raise ValueError("Invalid QoS level.")
                        o = SubscribeOptions(qos=o)
                    topic_qos_list.append((t.encode("utf-8"), o))
            else:
                for t, q in topic:
                    if isinstance(q, SubscribeOptions) or q < 0 or q > 2:
                        raise ValueError("Invalid QoS level.")
                    if t is None or len(t) == 0 or not isinstance(t, (bytes, str)):
                        raise ValueError("Invalid topic.")
                    topic_qos_list.append((t.encode("utf-8"), q))
        if topic_qos_list is None:
            raise ValueError("No topic specified, or incorrect topic type.")
        if any(self._filter_wildcard_len_check(t) != MQTT_ERR_SUCCESS for t, _ in topic_qos_list):
            raise ValueError("Invalid subscription filter.")
        if self._sock is None and not self._core_connecting:
            return (MQTT_ERR_NO_CONN, None)
        filters = [
            (t.decode("utf-8"), o.pack()[0] if isinstance(o, SubscribeOptions) else int(o))
            for t, o in topic_qos_list
        ]
        packed = properties.pack() if (v5 and properties is not None) else None
        rc, mid = self._core.subscribe(filters, packed)
        # mid 0: not sent (too large for the server's Maximum Packet Size).
        return (_ERR.get(rc, MQTT_ERR_UNKNOWN), mid or None)

    def unsubscribe(
        self, topic: str | list[str], properties: Properties | None = None
    ) -> tuple[MQTTErrorCode, int | None]:
        """Unsubscribe from one filter or a list; returns (rc, mid)."""
        topic_list = None
        if topic is None:
            raise ValueError("Invalid topic.")
        if isinstance(topic, (bytes, str)):
            if len(topic) == 0:
                raise ValueError("Invalid topic.")
            topic_list = [topic.encode("utf-8")]
        elif isinstance(topic, list):
            topic_list = []
            for t in topic:
                if len(t) == 0 or not isinstance(t, (bytes, str)):
                    raise ValueError("Invalid topic.")
                topic_list.append(t.encode("utf-8"))
        if topic_list is None:
            raise ValueError("No topic specified, or incorrect topic type.")
        if self._sock is None and not self._core_connecting:
            return (MQTT_ERR_NO_CONN, None)
        packed = properties.pack() if (self._protocol == MQTTv5 and properties is not None) \
            else None
        rc, mid = self._core.unsubscribe([t.decode("utf-8") for t in topic_list], packed)
        return (_ERR.get(rc, MQTT_ERR_UNKNOWN), mid or None)

    def drop_out_messages(self) -> list[MQTTMessage]:
        """Remove unacknowledged outgoing QoS>0 messages (for use in on_connect)."""
        core = self._core
        dropped = []
        for mid in core.drop_out_messages():
            info = core.take_info(mid)
            msg = MQTTMessage(mid)
            if info is not None:
                msg.qos = info._qos
                msg.info = info
            dropped.append(msg)
        return dropped

    # --- loops -----------------------------------------------------------------------------

    def loop(self, timeout: float = 1.0) -> MQTTErrorCode:
        """Wait up to ``timeout`` seconds for network events and dispatch them."""
        return self._loop(timeout)

    def _loop(self, timeout: float = 1.0) -> MQTTErrorCode:
        if timeout < 0.0:
            raise ValueError("Invalid timeout.")
        self._loop_used = True
        if self._keepalive_paused:
            self._pause_keepalive(False)
        if self._sock is None:
            self._easy_log(
                MQTT_LOG_ERR,
                f"Client is not connected. Socket: {self._sock!r}). "
                f"Last known Connection State: {self._state.name}")
            return MQTT_ERR_NO_CONN
        self._write_gate = False  # this loop does the host's writing itself
        if self._held:
            self._release_held()
        if self._backlog is None and not self._core.pending():
            self._wait(timeout)
        return self._handle_events()

    def _release_held(self) -> None:
        # A loop function other than the sleeping thread's reconnect writes what the held
        # connection queued (paho writes its queued CONNECT on the next loop call).
        self._held = False
        self._core.release_output()

    def _wait(self, timeout: float) -> None:
        self._core.wait(timeout)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Dispatch the events waiting in the core (for external event loops)."""
        self._loop_used = True
        if self._keepalive_paused:
            self._pause_keepalive(False)
        if self._sock is None:
            return MQTT_ERR_NO_CONN
        if self._write_gate:
            return MQTT_ERR_SUCCESS
        return self._handle_events(write_turn=True)

    def loop_write(self) -> MQTTErrorCode:
        """The core writes by itself; for external event loops this ends the write turn
        requested after connecting (CONNECT goes out now, and the events held until then
        are released) or after loop_read() handed over incoming QoS 2 messages (their
        PUBRECs go out now)."""
        if self._sock is None:
            return MQTT_ERR_NO_CONN
        if self._write_gate and not self._connect_returned:
            # The host's loop runs while connect() has not yet returned in the thread that
            # called it (aiomqtt runs connect() in an executor): CONNECT waits for the next
            # turn (the registration stays), so its CONNACK cannot reach the host before the
            # host has learnt that connect() returned.
            return MQTT_ERR_SUCCESS
        if self._held:
            self._release_held()
        self._write_gate = False
        if self._pubrec_write:
            if not self._pubrec_turn_waited:
                # One turn later than paho: the core reads the socket on its own thread, so
                # packets paho reads in one loop_read() (a PUBLISH and the PUBCOMP sent
                # with it) can reach the host in two; the extra turn (the registration
                # stays) lets the host dispatch both before the PUBREL can come back.
                self._pubrec_turn_waited = True
                return MQTT_ERR_SUCCESS
            self._pubrec_write = False
            self._pubrec_turn_waited = False
            self._core.release_pubrecs()
        self._call_socket_unregister_write()
        return MQTT_ERR_SUCCESS

    def loop_misc(self) -> MQTTErrorCode:
        """Keepalive is handled by the core; reports whether a connection exists."""
        if self._sock is None:
            return MQTT_ERR_NO_CONN
        return MQTT_ERR_SUCCESS

    def loop_forever(self, timeout: float = 1.0, retry_first_connection: bool = False) -> MQTTErrorCode:
        """Run the network loop until disconnect() (reconnecting with backoff)."""
        self._loop_used = True
        run = True
        while run:
            if self._thread_terminate is True:
                break
            if self._state == _ConnectionState.MQTT_CS_CONNECT_ASYNC:
                try:
                    self.reconnect()
                except OSError:
                    self._handle_on_connect_fail()
                    if not retry_first_connection:
                        raise
                    self._easy_log(MQTT_LOG_DEBUG, "Connection failed, retrying")
                    self._reconnect_wait()
            else:
                break

        rc = MQTT_ERR_SUCCESS
        if (run and self._sock is None and not self._core_connecting
                and self._state == _ConnectionState.MQTT_CS_NEW
                and threading.current_thread() is self._thread):
            # loop_start() before connect(): paho's loop finds no socket (NO_CONN, logged),
            # sleeps its reconnect delay, then reconnects (connect_async() made meanwhile
            # is served the same way). A connect() made meanwhile has
            # only queued CONNECT, so the broker sees a first connection closed without
            # data and then this thread's own (paho-mqtt's test_publish_before_connect).
            self._loop(timeout)
            self._sleeping_reconnect_wait()
            self._await_held_connect()
            if (not (self._state in _CLOSED_STATES or self._thread_terminate)
                    and (self._held or (self._sock is None and self._host))):
                try:
                    self.reconnect()
                except OSError:
                    self._handle_on_connect_fail()
                    self._easy_log(MQTT_LOG_DEBUG, "Connection failed, retrying")
            # No connect() yet: paho's thread would now die on ValueError('Invalid host.');
            # this one keeps waiting for it (below) and adopts that connection.
        while run:
            rc = MQTT_ERR_SUCCESS
            while rc == MQTT_ERR_SUCCESS:
                self._await_other_connect()
                rc = self._loop(timeout)
                # loop_stop(): leave once nothing waits for an acknowledgement and a
                # disconnect() in progress has completed (paho waits for its queues).
                if (self._thread_terminate is True
                        and not self._core.pending_infos()
                        and not (self._state == _ConnectionState.MQTT_CS_DISCONNECTING
                                 and self._sock is not None)):
                    rc = MQTT_ERR_NOMEM
                    run = False

            def should_exit() -> bool:
                return (self._state in _CLOSED_STATES or run is False  # noqa: B023
                        or self._thread_terminate is True)

            if should_exit() or not self._reconnect_on_failure:
                run = False
            else:
                self._sleeping_reconnect_wait()
                if should_exit():
                    run = False
                else:
                    self._await_held_connect()
                    if self._sock is not None and not self._held:
                        continue  # another thread connected meanwhile
                    try:
                        self.reconnect()
                    except OSError:
                        self._handle_on_connect_fail()
                        self._easy_log(MQTT_LOG_DEBUG, "Connection failed, retrying")
        return rc

    def _sleeping_reconnect_wait(self) -> None:
        self._waiting_thread = threading.current_thread()
        try:
            self._reconnect_wait()
        finally:
            self._waiting_thread = None

    def _await_held_connect(self) -> None:
        # A connect() from another thread during the sleep: let it finish (and set _sock)
        # before this thread replaces its connection.
        deadline = time_func() + self._connect_timeout + 1.0
        while ((self._core_connecting or (self._held and self._sock is None))
               and time_func() < deadline):
            time.sleep(0.01)

    def _await_other_connect(self) -> None:
        # loop_start() before connect(): another thread is opening the connection. Wait for
        # it instead of opening a second one (paho opens two, issues #549/#550).
        deadline = time_func() + self._connect_timeout + 1.0
        while (self._sock is None and not self._thread_terminate
               and self._state in (_ConnectionState.MQTT_CS_NEW,
                                   _ConnectionState.MQTT_CS_CONNECTING)
               and time_func() < deadline):
            time.sleep(0.01)

    def loop_start(self) -> MQTTErrorCode:
        """Run loop_forever() in a daemon thread; MQTT_ERR_INVAL if one already runs."""
        if self._thread is not None:
            return MQTT_ERR_INVAL
        self._thread_terminate = False
        self._thread = threading.Thread(
            target=self._thread_main, name=f"paho-mqtt-client-{self._client_id.decode()}")
        self._thread.daemon = True
        self._thread.start()
        return MQTT_ERR_SUCCESS

    def loop_stop(self) -> MQTTErrorCode:
        """Stop the loop_start() thread (does not disconnect)."""
        thread = self._thread
        if thread is None:
            return MQTT_ERR_INVAL
        self._thread_terminate = True
        self._core.wake()
        if threading.current_thread() != thread:
            thread.join()
            self._pause_keepalive(True)
        return MQTT_ERR_SUCCESS

    def _pause_keepalive(self, paused: bool) -> None:
        # With paho, PINGREQs are sent by the loop: no loop, no pings, and the broker drops
        # the client after 1.5 x keepalive (paho's tests rely on it to get a will). The core
        # pings by itself, so it is told when no loop runs.
        if paused == self._keepalive_paused:
            return
        self._core.set_keepalive_paused(paused)
        self._keepalive_paused = paused

    def _thread_main(self) -> None:
        try:
            self.loop_forever(retry_first_connection=True)
        finally:
            self._thread = None

    def _reconnect_wait(self) -> None:
        now = time_func()
        with self._reconnect_delay_mutex:
            if self._reconnect_delay is None:
                self._reconnect_delay = self._reconnect_min_delay
            else:
                self._reconnect_delay = min(self._reconnect_delay * 2, self._reconnect_max_delay)
            target = now + self._reconnect_delay
        remaining = target - now
        while (self._state not in _CLOSED_STATES and not self._thread_terminate
               and remaining > 0):
            time.sleep(min(remaining, 0.1))
            remaining = target - time_func()

    # --- event dispatch ----------------------------------------------------------------------

    def _handle_events(self, write_turn: bool = False) -> MQTTErrorCode:
        """Dispatch queued core events in order; returns what paho's loop_read would.
        `write_turn`: answers held for the host's loop_write() (see reconnect()) are
        left to it; otherwise they go out now."""
        events = self._backlog
        if events is None:
            events = self._core.drain(0, _DRAIN_BYTES, (self._protocol == MQTTv5, time_func()))
            if self._hold_pubrec and self._core.pubrecs_due():
                if write_turn and self.on_socket_register_write is not None:
                    self._pubrec_write = True
                    self._call_socket_register_write()
                else:
                    self._core.release_pubrecs()
            if not events:
                return MQTT_ERR_SUCCESS
        else:
            self._backlog = None
        rc = MQTT_ERR_SUCCESS
        count = len(events)
        i = 0
        # Per-message work is kept to building the MQTTMessage and one call (the perf goal);
        # subclasses that override on_message as a method are looked up the slow way.
        plain = type(self).on_message is _ON_MESSAGE
        try:
            while i < count:
                ev = events[i]
                i += 1
                if ev.__class__ is MQTTMessage:
                    # Built by the core (drain's messages=...), ready for the callback.
                    if self._filtered_count:
                        self._handle_on_message(ev)
                        continue
                    on_message = self._on_message if plain else self.on_message
                    if on_message is not None:
                        try:
                            on_message(self, self._userdata, ev)
                        except Exception as err:
                            self._easy_log(MQTT_LOG_ERR, "Caught exception in on_message: %s",
                                           err)
                            if not self.suppress_exceptions:
                                raise
                    continue
                kind = ev[0]
                if kind == _EV_WRITTEN:
                    self._ev_written(ev[1])
                elif kind == _EV_PUBLISHED:
                    self._ev_published(ev)
                elif kind == _EV_CONNACK:
                    rc = self._ev_connack(ev) or rc
                elif kind == _EV_SUBACK:
                    self._ev_suback(ev)
                elif kind == _EV_UNSUBACK:
                    self._ev_unsuback(ev)
                elif kind == _EV_DISCONNECTED:
                    rc = self._ev_disconnected(ev) or rc
                elif kind == _EV_LOG:
                    self._easy_log(_LEVEL.get(ev[1], MQTT_LOG_DEBUG), "%s", ev[2])
        except BaseException:
            # Events after the failing one are kept for the next loop call (a callback
            # exception ends the loop as in paho; nothing that arrived is dropped).
            prev = events[i - 1] if i > 0 else None
            if isinstance(prev, tuple) and prev[0] == _EV_WRITTEN and prev[1]:
                i -= 1  # a callback failed part-way through a batch: keep the rest of it
            if i < count:
                self._backlog = events[i:]
            raise
        return rc

    def _handle_on_message(self, message: MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = None
        callbacks = []
        with self._callback_mutex:
            if topic is not None:
                callbacks = list(self._on_message_filtered.iter_match(topic))
            on_message = self.on_message if not callbacks else None
        for callback in callbacks:
            try:
                callback(self, self._userdata, message)
            except Exception as err:
                self._easy_log(
                    MQTT_LOG_ERR,
                    "Caught exception in user defined callback function %s: %s",
                    callback.__name__, err)
                if not self.suppress_exceptions:
                    raise
        if on_message:
            try:
                on_message(self, self._userdata, message)
            except Exception as err:
                self._easy_log(MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                if not self.suppress_exceptions:
                    raise

    def _ev_written(self, infos: list[MQTTMessageInfo]) -> None:
        if self.on_publish is None:
            # The common case, kept to one store per message.
            for info in infos:
                info._published = True  # wakes wait_for_publish() callers, if any
            return
        for k, info in enumerate(infos):
            try:
                self._ev_published((_EV_PUBLISHED, info.mid, 0, None, info))
            except BaseException:
                # The rest stay in this event, which _handle_events keeps for the next
                # loop call (as it keeps the events after a failing one).
                del infos[:k + 1]
                raise

    def _ev_published(self, ev: tuple[Any, ...]) -> None:
        info = ev[4]
        on_publish = self.on_publish
        if info is None:
            if on_publish is not None and len(ev) > 5:
                # Published while on_publish was unset and already completed by the
                # core: only the callback is left to call.
                self._call_on_publish(on_publish, ev, ev[5])
            return
        if on_publish is None:
            info._set_as_published()
            return
        try:
            self._call_on_publish(on_publish, ev, info._qos)
        except BaseException:
            info._set_as_published()
            raise
        info._set_as_published()

    def _call_on_publish(
        self, on_publish: Callable[..., None], ev: tuple[Any, ...], qos: int
    ) -> None:
        mid = ev[1]
        try:
            if self._callback_api_version == CallbackAPIVersion.VERSION1:
                on_publish(self, self._userdata, mid)
            else:
                ptype = PacketTypes.PUBCOMP if qos == 2 else PacketTypes.PUBACK
                code = ev[2] if (qos and self._protocol == MQTTv5) else 0
                try:
                    reason = _reason(ptype, code)
                except (KeyError, ValueError):
                    reason = _reason(PacketTypes.PUBACK, code)
                raw = ev[3] if self._protocol == MQTTv5 else None
                on_publish(self, self._userdata, mid, reason, _props(ptype, raw))
        except Exception as err:
            self._easy_log(MQTT_LOG_ERR, "Caught exception in on_publish: %s", err)
            if not self.suppress_exceptions:
                raise

    def _ev_connack(self, ev: tuple[Any, ...]) -> MQTTErrorCode:
        _, session_present, code, raw_props = ev
        flags = 1 if session_present else 0
        v5 = self._protocol == MQTTv5
        if v5:
            if code == 1:
                # A pre-5.0 broker answering with its "unacceptable protocol" code.
                reason = ReasonCode(PacketTypes.CONNACK, aName="Unsupported protocol version")
                properties = None
            else:
                try:
                    reason = ReasonCode(PacketTypes.CONNACK, identifier=code)
                except (KeyError, ValueError) as err:
                    raise MalformedPacket(str(err)) from err
                properties = _props(PacketTypes.CONNACK, raw_props)
                if hasattr(properties, "ServerKeepAlive"):
                    self._keepalive = properties.ServerKeepAlive
        else:
            reason = convert_connack_rc_to_reason_code(code)
            properties = None

        if self._protocol == MQTTv311:
            if code == CONNACK_REFUSED_PROTOCOL_VERSION:
                if not self._reconnect_on_failure:
                    return self._close_after_connack(MQTT_ERR_PROTOCOL)
                self._easy_log(MQTT_LOG_DEBUG,
                               "Received CONNACK (%s, %s), attempting downgrade to MQTT v3.1.",
                               flags, code)
                self._protocol = MQTTv31
                return self.reconnect()
            if code == CONNACK_REFUSED_IDENTIFIER_REJECTED and self._client_id == b"":
                if not self._reconnect_on_failure:
                    return self._close_after_connack(MQTT_ERR_PROTOCOL)
                self._easy_log(MQTT_LOG_DEBUG,
                               "Received CONNACK (%s, %s), attempting to use non-empty CID",
                               flags, code)
                self._client_id = _base62(uuid.uuid4().int, padding=22).encode("utf8")
                return self.reconnect()

        if code == 0:
            if self._state not in _CLOSED_STATES:  # disconnect() may have come first
                self._state = _ConnectionState.MQTT_CS_CONNECTED
            self._reconnect_delay = None
        self._mqttv5_first_connect = False

        on_connect = self.on_connect
        if on_connect:
            flags_dict = {"session present": flags}
            self._refused = code != 0
            try:
                if self._callback_api_version == CallbackAPIVersion.VERSION1:
                    if v5:
                        on_connect(self, self._userdata, flags_dict, reason, properties)
                    else:
                        on_connect(self, self._userdata, flags_dict, code)
                else:
                    if properties is None:
                        properties = Properties(PacketTypes.CONNACK)
                    on_connect(self, self._userdata, ConnectFlags(session_present=flags > 0),
                               reason, properties)
            except Exception as err:
                self._easy_log(MQTT_LOG_ERR, "Caught exception in on_connect: %s", err)
                if not self.suppress_exceptions:
                    raise
            finally:
                self._refused = False
        if code == 0:
            return MQTT_ERR_SUCCESS
        if 0 < code < 6:
            return self._close_after_connack(MQTT_ERR_CONN_REFUSED)
        return self._close_after_connack(MQTT_ERR_PROTOCOL)

    def _close_after_connack(self, rc: MQTTErrorCode) -> MQTTErrorCode:
        # A refused CONNACK ends the connection from our side, as paho's loop does.
        self._sock_close()
        if self._state in _CLOSED_STATES:
            self._state = _ConnectionState.MQTT_CS_DISCONNECTED
            rc = MQTT_ERR_SUCCESS
        self._do_on_disconnect(packet_from_broker=False, v1_rc=rc)
        return rc

    def _ev_suback(self, ev: tuple[Any, ...]) -> None:
        _, mid, codes, raw_props = ev
        reasoncodes = [ReasonCode(PacketTypes.SUBACK, identifier=c) for c in codes]
        if self._protocol == MQTTv5:
            granted_qos: tuple[int, ...] = ()
            properties = _props(PacketTypes.SUBACK, raw_props)
        else:
            granted_qos = tuple(codes)
            properties = Properties(PacketTypes.SUBACK)
        on_subscribe = self.on_subscribe
        if on_subscribe:
            try:
                if (self._callback_api_version == CallbackAPIVersion.VERSION1
                        and self._protocol != MQTTv5):
                    on_subscribe(self, self._userdata, mid, granted_qos)
                else:
                    on_subscribe(self, self._userdata, mid, reasoncodes, properties)
            except Exception as err:
                self._easy_log(MQTT_LOG_ERR, "Caught exception in on_subscribe: %s", err)
                if not self.suppress_exceptions:
                    raise

    def _ev_unsuback(self, ev: tuple[Any, ...]) -> None:
        _, mid, codes, raw_props = ev
        v5 = self._protocol == MQTTv5
        if v5:
            reasoncodes_list = [ReasonCode(PacketTypes.UNSUBACK, identifier=c) for c in codes]
            properties = _props(PacketTypes.UNSUBACK, raw_props)
        else:
            reasoncodes_list = []
            properties = Properties(PacketTypes.UNSUBACK)
        on_unsubscribe = self.on_unsubscribe
        if on_unsubscribe:
            try:
                if self._callback_api_version == CallbackAPIVersion.VERSION1:
                    if v5:
                        reasoncodes: Any = reasoncodes_list
                        if len(reasoncodes_list) == 1:
                            reasoncodes = reasoncodes_list[0]
                        on_unsubscribe(self, self._userdata, mid, properties, reasoncodes)
                    else:
                        on_unsubscribe(self, self._userdata, mid)
                else:
                    on_unsubscribe(self, self._userdata, mid, reasoncodes_list, properties)
            except Exception as err:
                self._easy_log(MQTT_LOG_ERR, "Caught exception in on_unsubscribe: %s", err)
                if not self.suppress_exceptions:
                    raise

    def _ev_disconnected(self, ev: tuple[Any, ...]) -> MQTTErrorCode:
        _, code, from_server, raw_props, _error = ev
        if self._sock is None:
            # Already handled (refused CONNACK, _sock_close(), or a replaced connection).
            return MQTT_ERR_SUCCESS
        if from_server and self._protocol == MQTTv5:
            # A DISCONNECT without reason code (remaining length 0) gives None, one without
            # properties gives None, as paho's VERSION1 callbacks see them.
            reason = None if code is None else ReasonCode(PacketTypes.DISCONNECT, identifier=code)
            properties = None if raw_props is None else _props(PacketTypes.DISCONNECT, raw_props)
            self._sock_close()
            closing = self._state in _CLOSED_STATES
            try:
                # As for a lost connection, is_connected() is still True in on_disconnect.
                self._do_on_disconnect(packet_from_broker=True, v1_rc=MQTT_ERR_SUCCESS,
                                       reason=reason, properties=properties)
            finally:
                self._state = (_ConnectionState.MQTT_CS_DISCONNECTED if closing
                               else _ConnectionState.MQTT_CS_CONNECTION_LOST)
            return MQTT_ERR_SUCCESS if closing else MQTT_ERR_CONN_LOST
        if self._state == _ConnectionState.MQTT_CS_DISCONNECTING and not code:
            # Our DISCONNECT was written: paho calls on_disconnect, then closes.
            try:
                self._do_on_disconnect(packet_from_broker=False, v1_rc=MQTT_ERR_SUCCESS)
            finally:
                self._sock_close()
                if self._state == _ConnectionState.MQTT_CS_DISCONNECTING:
                    self._state = _ConnectionState.MQTT_CS_DISCONNECTED
            return MQTT_ERR_SUCCESS
        rc = _ERR.get(code, MQTT_ERR_CONN_LOST) if code else MQTT_ERR_CONN_LOST
        if from_server:
            rc = MQTT_ERR_CONN_LOST  # an MQTT 3 broker closing on us
        self._sock_close()
        if self._state in _CLOSED_STATES:
            self._state = _ConnectionState.MQTT_CS_DISCONNECTED
            rc = MQTT_ERR_SUCCESS
        try:
            self._do_on_disconnect(packet_from_broker=False, v1_rc=rc)
        finally:
            if rc != MQTT_ERR_SUCCESS:
                self._state = _ConnectionState.MQTT_CS_CONNECTION_LOST
        return rc

    def _do_on_disconnect(self, packet_from_broker: bool, v1_rc: MQTTErrorCode,
                          reason: ReasonCode | None = None,
                          properties: Properties | None = None) -> None:
        on_disconnect = self.on_disconnect
        if not on_disconnect:
            return
        try:
            if self._callback_api_version == CallbackAPIVersion.VERSION1:
                if self._protocol == MQTTv5:
                    if packet_from_broker:
                        on_disconnect(self, self._userdata, reason, properties)
                    else:
                        on_disconnect(self, self._userdata, v1_rc, None)
                else:
                    on_disconnect(self, self._userdata, v1_rc)
            else:
                if reason is None:
                    reason = convert_disconnect_error_code_to_reason_code(v1_rc)
                if properties is None:
                    properties = Properties(PacketTypes.DISCONNECT)
                on_disconnect(self, self._userdata,
                              DisconnectFlags(is_disconnect_packet_from_server=packet_from_broker),
                              reason, properties)
        except Exception as err:
            self._easy_log(MQTT_LOG_ERR, "Caught exception in on_disconnect: %s", err)
            if not self.suppress_exceptions:
                raise

    def _handle_on_connect_fail(self) -> None:
        on_connect_fail = self.on_connect_fail
        if on_connect_fail:
            try:
                on_connect_fail(self, self._userdata)
            except Exception as err:  # noqa: BLE001 - paho always swallows these
                self._easy_log(MQTT_LOG_ERR, "Caught exception in on_connect_fail: %s", err)

    def _easy_log(self, level: LogLevel, fmt: str, *args: Any) -> None:
        on_log = self.on_log
        if on_log is not None:
            buf = fmt % args
            try:
                on_log(self, self._userdata, level, buf)
            except Exception:  # noqa: BLE001, S110 - paho swallows on_log errors (the logger still gets it)
                pass
        if self._logger is not None:
            self._logger.log(LOGGING_LEVEL[level], fmt, *args)

    def _call_socket_open(self, sock: Any) -> None:
        on_socket_open = self.on_socket_open
        if on_socket_open:
            try:
                on_socket_open(self, self._userdata, sock)
            except Exception as err:
                self._easy_log(MQTT_LOG_ERR, "Caught exception in on_socket_open: %s", err)
                if not self.suppress_exceptions:
                    raise

    def _call_socket_close(self, sock: Any) -> None:
        on_socket_close = self.on_socket_close
        if on_socket_close:
            try:
                on_socket_close(self, self._userdata, sock)
            except Exception as err:
                self._easy_log(MQTT_LOG_ERR, "Caught exception in on_socket_close: %s", err)
                if not self.suppress_exceptions:
                    raise

    def _call_socket_register_write(self) -> None:
        # Only in external-loop mode (see reconnect()): after connecting, and when loop_read()
        # handed over incoming QoS 2 messages; never for ordinary writes, which the core does
        # by itself.
        if not self._sock or self._registered_write:
            return
        self._registered_write = True
        callback = self.on_socket_register_write
        if callback:
            try:
                callback(self, self._userdata, self._sock)
            except Exception as err:
                self._easy_log(MQTT_LOG_ERR,
                               "Caught exception in on_socket_register_write: %s", err)
                if not self.suppress_exceptions:
                    raise

    def _call_socket_unregister_write(self, sock: Any = None) -> None:
        sock = sock or self._sock
        if not sock or not self._registered_write:
            return
        self._registered_write = False
        callback = self.on_socket_unregister_write
        if callback:
            try:
                callback(self, self._userdata, sock)
            except Exception as err:
                self._easy_log(MQTT_LOG_ERR,
                               "Caught exception in on_socket_unregister_write: %s", err)
                if not self.suppress_exceptions:
                    raise

    # --- callbacks -------------------------------------------------------------------------

    on_pre_connect = _callback_property(
        "on_pre_connect", "Called as on_pre_connect(client, userdata) before each connection.")
    on_connect = _callback_property(
        "on_connect",
        "Called when the broker answers CONNECT. VERSION2: (client, userdata, flags:"
        " ConnectFlags, reason_code: ReasonCode, properties: Properties).")
    on_connect_fail = _callback_property(
        "on_connect_fail",
        "Called as on_connect_fail(client, userdata) when a (re)connect in the loop fails.")
    on_subscribe = _callback_property(
        "on_subscribe",
        "Called on SUBACK. VERSION2: (client, userdata, mid, reason_codes, properties).")
    on_message = _callback_property(
        "on_message", "Called as on_message(client, userdata, message) for each message.")
    @property
    def on_publish(self) -> CallbackOnPublish | None:
        """Called when a publish completes. VERSION2: (client, userdata, mid, reason_code,
        properties)."""
        return self._on_publish

    @on_publish.setter
    def on_publish(self, func: CallbackOnPublish | None) -> None:
        with self._callback_mutex:
            self._on_publish = func
            # Messages published while it was unset complete in the core without an
            # event; from now on those still pending are reported too (paho calls the
            # callback set at the time the acknowledgement is handled).
            self._core.set_report_completed(func is not None)
    on_unsubscribe = _callback_property(
        "on_unsubscribe",
        "Called on UNSUBACK. VERSION2: (client, userdata, mid, reason_codes, properties).")
    on_disconnect = _callback_property(
        "on_disconnect",
        "Called when the connection ends. VERSION2: (client, userdata, flags:"
        " DisconnectFlags, reason_code, properties).")
    on_socket_open = _callback_property(
        "on_socket_open", "Called as on_socket_open(client, userdata, sock) after connecting.")
    on_socket_close = _callback_property(
        "on_socket_close", "Called as on_socket_close(client, userdata, sock) before closing.")
    on_socket_register_write = _callback_property(
        "on_socket_register_write",
        "External loops: called once after connecting; the host then calls loop_write().")
    on_socket_unregister_write = _callback_property(
        "on_socket_unregister_write", "External loops: called by that first loop_write().")

    @property
    def on_log(self) -> CallbackOnLog | None:
        """Called as on_log(client, userdata, level, buf) for each log message."""
        return self._on_log

    @on_log.setter
    def on_log(self, func: CallbackOnLog | None) -> None:
        self._on_log = func
        self._update_log_packets()

    def log_callback(self) -> Callable[[CallbackOnLog], CallbackOnLog]:
        def decorator(func: CallbackOnLog) -> CallbackOnLog:
            self.on_log = func
            return func
        return decorator

    def pre_connect_callback(self) -> Callable[[CallbackOnPreConnect], CallbackOnPreConnect]:
        def decorator(func: CallbackOnPreConnect) -> CallbackOnPreConnect:
            self.on_pre_connect = func
            return func
        return decorator

    def connect_callback(self) -> Callable[[CallbackOnConnect], CallbackOnConnect]:
        def decorator(func: CallbackOnConnect) -> CallbackOnConnect:
            self.on_connect = func
            return func
        return decorator

    def connect_fail_callback(self) -> Callable[[CallbackOnConnectFail], CallbackOnConnectFail]:
        def decorator(func: CallbackOnConnectFail) -> CallbackOnConnectFail:
            self.on_connect_fail = func
            return func
        return decorator

    def subscribe_callback(self) -> Callable[[CallbackOnSubscribe], CallbackOnSubscribe]:
        def decorator(func: CallbackOnSubscribe) -> CallbackOnSubscribe:
            self.on_subscribe = func
            return func
        return decorator

    def message_callback(self) -> Callable[[CallbackOnMessage], CallbackOnMessage]:
        def decorator(func: CallbackOnMessage) -> CallbackOnMessage:
            self.on_message = func
            return func
        return decorator

    def publish_callback(self) -> Callable[[CallbackOnPublish], CallbackOnPublish]:
        def decorator(func: CallbackOnPublish) -> CallbackOnPublish:
            self.on_publish = func
            return func
        return decorator

    def unsubscribe_callback(self) -> Callable[[CallbackOnUnsubscribe], CallbackOnUnsubscribe]:
        def decorator(func: CallbackOnUnsubscribe) -> CallbackOnUnsubscribe:
            self.on_unsubscribe = func
            return func
        return decorator

    def disconnect_callback(self) -> Callable[[CallbackOnDisconnect], CallbackOnDisconnect]:
        def decorator(func: CallbackOnDisconnect) -> CallbackOnDisconnect:
            self.on_disconnect = func
            return func
        return decorator

    def socket_open_callback(self) -> Callable[[CallbackOnSocket], CallbackOnSocket]:
        def decorator(func: CallbackOnSocket) -> CallbackOnSocket:
            self.on_socket_open = func
            return func
        return decorator

    def socket_close_callback(self) -> Callable[[CallbackOnSocket], CallbackOnSocket]:
        def decorator(func: CallbackOnSocket) -> CallbackOnSocket:
            self.on_socket_close = func
            return func
        return decorator

    def socket_register_write_callback(self) -> Callable[[CallbackOnSocket], CallbackOnSocket]:
        def decorator(func: CallbackOnSocket) -> CallbackOnSocket:
            self._on_socket_register_write = func
            return func
        return decorator

    def socket_unregister_write_callback(self) -> Callable[[CallbackOnSocket], CallbackOnSocket]:
        def decorator(func: CallbackOnSocket) -> CallbackOnSocket:
            self._on_socket_unregister_write = func
            return func
        return decorator


_ON_MESSAGE = Client.on_message
_new_reason = ReasonCode.__new__
