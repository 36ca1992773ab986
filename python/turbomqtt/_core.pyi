"""Type stubs for the native module ``turbomqtt._core`` (checked against the built module
by ``mypy.stubtest``)."""

from typing import Any, final

from typing_extensions import Self, disjoint_base

from turbomqtt.enums import MQTTErrorCode

__all__ = [
    "EV_CONNACK",
    "EV_CONNECT_FAILED",
    "EV_DISCONNECTED",
    "EV_LOG",
    "EV_MESSAGE",
    "EV_PUBLISHED",
    "EV_PUBREC_HELD",
    "EV_SUBACK",
    "EV_UNSUBACK",
    "EV_WRITTEN",
    "BrokerCore",
    "ClientCore",
    "MQTTMessageInfo",
    "WebsocketConnectionError",
    "__version__",
    "_codec_decode",
    "_codec_encode",
    "_runtime_workers",
    "_shutdown",
]

__version__: str

def _shutdown() -> None:
    """Stops the background runtime (registered with ``atexit``)."""

def _runtime_workers() -> int:
    """How many worker threads the background runtime has (starting it if needed)."""

# Codec access for tests (private): packets as dicts of the Rust packet model's fields.
def _codec_decode(data: bytes, version: int) -> dict[str, object]: ...
def _codec_encode(fields: dict[str, object], version: int) -> bytes: ...

# --- client core --------------------------------------------------------------------------
# Event kinds: the first item of each tuple ``ClientCore.drain()`` returns. Properties are
# in MQTT wire form, None when absent.

EV_CONNACK: int
"""(EV_CONNACK, session_present: bool, reason_code: int, properties: bytes | None)"""
EV_MESSAGE: int
"""(EV_MESSAGE, topic: bytes, payload: bytes, qos: int, retain: bool, mid: int, dup: bool,
properties: bytes | None)"""
EV_PUBLISHED: int
"""(EV_PUBLISHED, mid: int, reason_code: int, properties: bytes | None,
info: MQTTMessageInfo | None, qos: int): a message written (QoS 0) or acknowledged
(QoS 1/2); info is the one ``publish_info()`` returned, None for ``publish()`` and for
``completing`` publishes reported after ``set_report_completed(True)``."""
EV_WRITTEN: int
"""(EV_WRITTEN, infos: list[MQTTMessageInfo]): QoS 0 messages written, in order."""
EV_PUBREC_HELD: int
"""(EV_PUBREC_HELD, mid: int): never returned by ``drain()`` (see ``set_hold_pubrec``)."""
EV_SUBACK: int
"""(EV_SUBACK, mid: int, codes: list[int], properties: bytes | None)"""
EV_UNSUBACK: int
"""(EV_UNSUBACK, mid: int, codes: list[int], properties: bytes | None)"""
EV_DISCONNECTED: int
"""(EV_DISCONNECTED, code: int | None, from_server: bool, properties: bytes | None,
error: str | None); code None: a v5 DISCONNECT without reason code when
``set_report_absent_disconnect_fields(True)``."""
EV_LOG: int
"""(EV_LOG, level: int, message: str)"""
EV_CONNECT_FAILED: int
"""(EV_CONNECT_FAILED, exception: OSError) after ``connect(..., block=False)`` failed."""

class WebsocketConnectionError(ConnectionError):
    """The WebSocket upgrade of the broker connection failed."""

@final
class ClientCore:
    """The Rust MQTT client core: socket, session state, QoS handshakes, keepalive.

    Every method is safe from any thread. Properties cross in MQTT wire form (the bytes
    paho's ``Properties.pack()`` writes), ``None`` meaning no properties.
    """

    def __new__(cls) -> Self: ...
    def set_max_inflight(self, n: int) -> None:
        """0 = unlimited; paho's default is 20."""
    def set_max_queued(self, n: int) -> None:
        """0 = unlimited (paho's default); QoS 0 is never counted."""
    def set_manual_ack(self, on: bool) -> None:
        """Withhold PUBACK (QoS 1) / PUBCOMP (QoS 2) until ``ack()``."""
    def set_hold_pubrec(self, on: bool) -> None:
        """On: the PUBREC of an incoming QoS 2 message waits until drain() has handed its
        PUBLISH to Python and release_pubrecs() is called (an external loop's write turn,
        as paho-mqtt answers in loop_write()). Off: answered on receipt; turning it off
        sends what is still held."""
    def pubrecs_due(self) -> int:
        """Held PUBRECs whose PUBLISH drain() handed over: what release_pubrecs() sends."""
    def release_pubrecs(self) -> None: ...
    def set_event_limit(self, n: int) -> None:
        """Stop reading the socket while more than ``n`` events wait (default 65536)."""
    def set_resolve_topic_aliases(self, on: bool) -> None:
        """False: aliased incoming v5 messages keep their empty topic, as in paho."""
    def set_accept_invalid_topics(self, on: bool) -> None:
        """True: deliver incoming messages whose topic is not UTF-8 (raw topic bytes)."""
    def set_report_absent_disconnect_fields(self, on: bool) -> None:
        """True: a v5 server DISCONNECT without reason code / properties gives None for them."""
    def set_keepalive_paused(self, paused: bool) -> None:
        """No PINGREQ while paused (paho pings only while a loop function runs)."""
    def set_log_packets(self, on: bool) -> None:
        """Post EV_LOG DEBUG lines for sent/received packets in paho's wording."""
    def connect(
        self,
        *,
        host: str,
        port: int,
        keepalive: int,
        client_id: str,
        protocol: int,
        clean_start: bool,
        username: str | None = None,
        password: bytes | None = None,
        will: tuple[str, bytes, int, bool, bytes | None] | None = None,
        properties: bytes | None = None,
        transport: str = "tcp",
        ws_path: str | None = "/mqtt",
        ws_headers: dict[str, str] | list[tuple[str, str]] | None = None,
        tls: dict[str, Any] | None = None,
        bind_address: str = "",
        bind_port: int = 0,
        proxy: dict[str, Any] | None = None,
        timeout: float = 5.0,
        block: bool = True,
        hold_output: bool = False,
        bridge: bool = False,
    ) -> None:
        """Closes any previous connection (no event), opens the transport and writes
        CONNECT; EV_CONNACK follows. With ``block=False`` it returns at once and a
        failure arrives as EV_CONNECT_FAILED carrying the exception instead of raising.

        Raises socket.gaierror, ConnectionRefusedError and other OSError subclasses,
        TimeoutError, ssl.SSLCertVerificationError / ssl.SSLError,
        WebsocketConnectionError, ConnectionError (proxy), NotImplementedError (encrypted
        key file), ValueError (bad argument). ``hold_output=True``: nothing is written
        (not even CONNECT) until ``release_output()``. ``bridge=True`` sets mosquitto's
        bridge bit (0x80) on the CONNECT protocol level (paho's enable_bridge_mode())."""
    def reconnect(self) -> None:
        """``connect()`` with the last arguments; ValueError('Invalid host.') if none."""
    def set_enforce_max_packet_size(self, on: bool) -> None:
        """Default True: a publish/subscribe/unsubscribe larger than the server's v5 Maximum
        Packet Size returns rc 9 (MQTT_ERR_PAYLOAD_SIZE) and is not sent; a queued QoS>0
        message found too large after CONNACK completes with EV_PUBLISHED code 0x80.
        False: sent anyway (paho-mqtt 2.2; the server then disconnects with 0x95)."""
    def release_output(self) -> None:
        """The connection opened with ``hold_output=True`` (nothing written, not even
        CONNECT, no PINGREQ) starts writing what it has queued."""
    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        properties: bytes | None = None,
    ) -> tuple[int, int]:
        """(rc, mid): 0 queued for the socket; 4 not connected (QoS 0 dropped, QoS>0
        kept and sent after the next CONNACK); 15 max_queued reached."""
    def publish_info(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        properties: bytes | None = None,
        completing: bool = False,
    ) -> MQTTMessageInfo:
        """publish() returning the paho MQTTMessageInfo the core keeps until done.
        ``completing``: the core marks the info published itself (written / acknowledged)
        and reports no event for it, unless ``set_report_completed(True)``."""
    def publish_fast(
        self,
        topic: object,
        payload: object,
        qos: object,
        retain: object,
        protocol: int,
        completing: bool,
    ) -> MQTTMessageInfo | None:
        """``publish_info()`` for paho's common call (a str topic, a bytes payload, an int
        QoS, no properties) with paho's argument checks and messages (ValueError); None
        when the arguments are not of that shape. ``protocol``: 3, 4 or 5 (an empty topic
        is refused before MQTT 5)."""
    def set_report_completed(self, on: bool) -> None:
        """Also report ``completing`` publishes as EV_PUBLISHED (info None, qos last)."""
    def take_infos(self, qos0_only: bool = False) -> list[MQTTMessageInfo]:
        """Remove and return the publish_info() infos still waiting for EV_PUBLISHED."""
    def take_info(self, mid: int) -> MQTTMessageInfo | None:
        """Remove and return the info waiting for the QoS 1/2 message ``mid``."""
    def pending_infos(self) -> int:
        """Infos waiting for EV_PUBLISHED plus ``completing`` ones not done yet."""
    def subscribe(
        self, filters: list[tuple[str, int]], properties: bytes | None = None
    ) -> tuple[int, int]:
        """(filter, options byte) pairs; (4, 0) when not connected (paho: (4, None))."""
    def unsubscribe(
        self, filters: list[str], properties: bytes | None = None
    ) -> tuple[int, int]: ...
    def disconnect(self, reason_code: int = 0, properties: bytes | None = None) -> int:
        """Writes DISCONNECT then closes; EV_DISCONNECTED (code 0) follows. 4 if not connected."""
    def close(self) -> None:
        """Abrupt close without DISCONNECT (the broker publishes the will); no event."""
    def ack(self, mid: int, qos: int) -> int: ...
    def drop_out_messages(self) -> list[int]:
        """Forgets every unacknowledged or queued outgoing QoS>0 message; their mids."""
    def is_connected(self) -> bool: ...
    def fileno(self) -> int:
        """Read end of a socket pair: readable while undrained events exist."""
    def pending(self) -> int: ...
    def wait(self, timeout: float | None = None) -> bool:
        """Blocks (GIL released, Ctrl-C honoured) until events are pending (True), the
        timeout passes or ``wake()`` is called (False). On plain TCP the waiting thread
        may read and handle the socket itself meanwhile."""
    def wake(self) -> None: ...
    def drain(
        self,
        max_events: int = 0,
        max_bytes: int = 0,
        messages: tuple[bool, float] | None = None,
    ) -> list[Any]:
        """Removes and returns pending events in arrival order (0 = all), stopping before
        the message payloads taken exceed max_bytes (0 = no limit; at least one).

        Each event is a tuple (see the EV_* kinds above). ``messages=(v5, now)``: messages
        come as objects of the class given to ``set_message_class`` instead of EV_MESSAGE
        tuples."""
    def set_message_class(self, cls: type, undecoded: object, invalid_state: object) -> None:
        """The paho facade's MQTTMessage class for ``drain(messages=...)``; set once."""
    def pause_reading(self, on: bool) -> None:
        """(asyncio face) While on, the connection reads nothing more from the socket;
        queued events stay drainable."""
    def set_quiet_written(self, on: bool) -> None:
        """(asyncio face) While on, completions of written QoS 0 publishes are queued
        without a notifier byte (until they fill half the event limit); off signals
        pending ones."""
    def watch_socket(self) -> int:
        """(event-loop face) A duplicate fd of the current plain-TCP socket to watch for
        readability (-1: none); the connection task then leaves reading to
        ``read_socket()``. Remove it from the loop, call ``unwatch_socket()`` (unless
        ``read_socket()`` returned False) and ``os.close()`` it when done."""
    def read_socket(self) -> bool:
        """Reads and handles what the watched socket holds, without blocking (events
        then wait for ``drain()``). False: the watch has ended (connection ending, queue
        full, reading paused); stop watching the fd and close it."""
    def unwatch_socket(self) -> None:
        """Ends the watch begun by ``watch_socket()``."""

@disjoint_base
class MQTTMessageInfo:
    """paho's MQTTMessageInfo (``turbomqtt.client.MQTTMessageInfo`` is this class): the
    message id and result code of a publish, and whether it has been published."""

    # At run time extra arguments are accepted and ignored, so that a subclass may give
    # its __init__ a signature of its own.
    def __new__(cls, mid: int) -> Self: ...
    mid: int
    rc: MQTTErrorCode
    _qos: int
    _published: bool
    def __iter__(self) -> Self: ...
    def __next__(self) -> MQTTErrorCode | int: ...
    def next(self) -> MQTTErrorCode | int: ...
    def __getitem__(self, index: int, /) -> MQTTErrorCode | int: ...
    def _set_as_published(self) -> None: ...
    def _check_rc(self) -> None: ...
    def is_published(self) -> bool:
        """True once the message has been published (see wait_for_publish for errors)."""
    def wait_for_publish(self, timeout: float | None = None) -> None:
        """Block until the message is published or ``timeout`` seconds pass (None: no
        limit). Raises ValueError if the message was not queued (queue full),
        RuntimeError if it was not published for another reason."""

# --- broker core --------------------------------------------------------------------------

@final
class BrokerCore:
    """The embedded broker's Rust core; ``turbomqtt.Broker`` is its Python face.

    Methods other than ``stop``, ``is_running`` and ``wait_events`` raise RuntimeError
    once the broker has stopped."""

    @staticmethod
    def start(config: dict[str, Any]) -> BrokerCore:
        """Binds every listener and starts serving; raises OSError (port in use, missing
        file), ValueError (bad option) or NotImplementedError."""
    def listeners(self) -> list[tuple[str, int, str, bool]]:
        """(host, port, transport "tcp" or "websocket", tls) of the bound listeners."""
    def stop(self, timeout: float) -> bool:
        """Stops every task and closes every socket; waits up to ``timeout`` seconds."""
    def is_running(self) -> bool: ...
    def wait_events(self, timeout: float) -> list[tuple[Any, ...]] | None:
        """Waits up to ``timeout`` seconds for events; None once the broker has stopped.
        Tuples: ("log", level, text), ("message", client_id, topic, payload, qos, retain),
        ("auth", request_id, client_id, username, password),
        ("enhanced_auth", request_id, client_id, method, data)."""
    def auth_reply(self, request_id: int, accept: bool) -> None:
        """Answers an ("auth", id, ...) event."""
    def enhanced_auth_reply(
        self, request_id: int, step: str, data: bytes | None = None, code: int = 0x87
    ) -> None:
        """Answers an ("enhanced_auth", id, ...) event: step is "continue", "success" or
        "failure" (with ``code``, a reason code of 0x80 or above)."""
    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> int:
        """Publishes as the broker itself; returns the number of sessions it was
        offered to."""
    def stats(self) -> dict[str, int]: ...
    def clients(self) -> list[dict[str, Any]]: ...
