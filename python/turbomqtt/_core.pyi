"""Type stubs for the native module ``turbomqtt._core``."""

__version__: str

def _shutdown() -> None: ...
def _runtime_workers() -> int: ...

# Codec access for tests (private): packets as dicts of the Rust packet model's fields.
def _codec_decode(data: bytes, version: int) -> dict[str, object]: ...
def _codec_encode(fields: dict[str, object], version: int) -> bytes: ...
# --- client core (branch `client`; contract: CLIENT_CORE.md) ------------------------------


EV_CONNACK: int  # (1, session_present: bool, reason_code: int, properties: bytes | None)
EV_MESSAGE: int  # (2, topic: bytes, payload: bytes, qos: int, retain: bool, mid: int,
#                   dup: bool, properties: bytes | None)
EV_PUBLISHED: int  # (3, mid: int, reason_code: int, properties: bytes | None, info: object | None, qos: int)
EV_WRITTEN: int  # (9, infos: list): QoS 0 messages written, their publish_info() infos
EV_PUBREC_HELD: int  # (10, mid): never returned by drain() (see set_hold_pubrec)
EV_SUBACK: int  # (4, mid: int, codes: list[int], properties: bytes | None)
EV_UNSUBACK: int  # (5, mid: int, codes: list[int], properties: bytes | None)
EV_DISCONNECTED: int  # (6, code: int, from_server: bool, properties: bytes | None,
#                        error: str | None)
EV_LOG: int  # (7, level: int, message: str)
EV_CONNECT_FAILED: int  # (8, exception: OSError) after connect(..., block=False) failed

class WebsocketConnectionError(ConnectionError):
    """The WebSocket upgrade of the broker connection failed."""

class ClientCore:
    """The Rust MQTT client core: socket, session state, QoS handshakes, keepalive.

    Every method is safe from any thread. Properties cross in MQTT wire form (the bytes
    paho's ``Properties.pack()`` writes), ``None`` meaning no properties.
    """

    def __init__(self) -> None: ...
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
        tls: dict[str, object] | None = None,
        bind_address: str = "",
        bind_port: int = 0,
        proxy: dict[str, str | int | None] | None = None,
        timeout: float = 5.0,
        block: bool = True,
        hold_output: bool = False,
        bridge: bool = False,
    ) -> None:
        """Closes any previous connection (no event), opens the transport and writes
        CONNECT; EV_CONNACK follows. With ``block=False`` it returns at once and a
        failure arrives as EV_CONNECT_FAILED carrying the exception instead of raising. Raises socket.gaierror, ConnectionRefusedError and
        other OSError subclasses, TimeoutError, ssl.SSLCertVerificationError /
        ssl.SSLError, WebsocketConnectionError, ConnectionError (proxy),
        NotImplementedError (encrypted key file), ValueError (bad argument).
        ``bridge=True`` sets mosquitto's bridge bit (0x80) on the CONNECT protocol level
        (paho's enable_bridge_mode())."""
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
    def set_report_completed(self, on: bool) -> None:
        """Also report ``completing`` publishes as EV_PUBLISHED (info None, qos last)."""
    def take_infos(self, qos0_only: bool = False) -> list[object]:
        """Remove and return the publish_info() infos still waiting for EV_PUBLISHED."""
    def take_info(self, mid: int) -> object | None: ...
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
        ``messages=(v5, now)``: messages come as MQTTMessage objects of the class given to
        ``set_message_class`` instead of EV_MESSAGE tuples."""
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
# -- broker (src/bindings/broker.rs) ---------------------------------------------------
from typing import Any

class BrokerCore:
    @staticmethod
    def start(config: dict[str, Any]) -> BrokerCore: ...
    def listeners(self) -> list[tuple[str, int, str, bool]]: ...
    def stop(self, timeout: float) -> bool: ...
    def is_running(self) -> bool: ...
    def wait_events(self, timeout: float) -> list[tuple[Any, ...]] | None: ...
    def auth_reply(self, request_id: int, accept: bool) -> None: ...
    def enhanced_auth_reply(
        self, request_id: int, step: str, data: bytes | None = None, code: int = 0x87
    ) -> None: ...
    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> int: ...
    def stats(self) -> dict[str, int]: ...
    def clients(self) -> list[dict[str, Any]]: ...


class MQTTMessageInfo:
    """paho's MQTTMessageInfo (turbomqtt.client.MQTTMessageInfo is this class)."""

    mid: int
    rc: Any
    _qos: int
    _published: bool
    def __init__(self, mid: int) -> None: ...
    def __iter__(self) -> MQTTMessageInfo: ...
    def __next__(self) -> Any: ...
    def next(self) -> Any: ...
    def __getitem__(self, index: int) -> Any: ...
    def _set_as_published(self) -> None: ...
    def _check_rc(self) -> None: ...
    def is_published(self) -> bool: ...
    def wait_for_publish(self, timeout: float | None = None) -> None: ...

