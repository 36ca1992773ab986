"""The asyncio client: a Python face over the Rust client core (``_core.ClientCore``).

Rust owns the socket, the QoS handshakes, keepalive and resends; this module owns the
asyncio side. Wake-ups: on selector loops (default asyncio on Unix, uvloop) the core's
notifier fd is registered with ``loop.add_reader``; on loops without ``add_reader``
(Windows Proactor) one daemon thread per client blocks in ``core.wait()`` (GIL
released in Rust) and schedules one drain per batch with ``call_soon_threadsafe``.
Either way the loop drains *all* pending events in one call, resolves the futures of
awaited operations (keyed by message id) and feeds the message streams. On a plain TCP
connection with a selector loop, the loop also watches (a duplicate of) the socket and
has the core read it right there (``read_socket``): an incoming message then wakes only
the loop, not a Rust runtime thread that would wake the loop in turn.

Flow control (never drop a message the broker considers delivered):

- QoS 1/2 messages are acknowledged (PUBACK / PUBCOMP) only once every stream they
  were routed to has handed them to its consumer (or by ``Message.ack()`` with
  ``manual_ack=True``). A slow consumer therefore holds back acknowledgements, and the
  broker's inflight window (v5: our ``receive_maximum``) stops the flow. While an
  acknowledgement is withheld, the core still acknowledges the TCP segments at once
  (TCP_QUICKACK): a broker without TCP_NODELAY (mosquitto's default) would otherwise
  hold its next small write, such as the PUBACK of our own publish, behind Nagle's
  algorithm until our delayed ACK, up to 40 ms later.
- When a stream's queue reaches ``queue_size`` with QoS 0 messages (or exceeds it by
  65535 unacknowledged ones: a broker without a window), the core stops reading the
  socket (``pause_reading``), so TCP pushes back on the broker. Events already read
  are still drained (a stream may exceed its size by what was already read: at most
  ``event_limit`` events plus one socket read), so the completions of our own QoS 0
  publishes still arrive. Reading resumes when every stream is below ``queue_size``.
  While paused no PUBACK/PUBCOMP is read either: a consumer should not await a QoS 1/2
  publish while its own QoS 0 stream is full.
- If the loop itself falls behind, the core's event queue stops the reading at
  ``event_limit`` undrained events.

Messages no open stream takes (see :meth:`Client.messages`): they wait in the client,
unacknowledged and bounded by ``queue_size`` exactly as a stream's queue is, for the
next stream that matches them: ``messages()`` takes them all, a ``subscription()`` the
ones its filter matches. A message that matches only filters the client unsubscribed
from (closing a ``subscription()`` stream unsubscribes) goes to the open ``messages()``
streams like any other; with none open it is acknowledged and dropped, like what a
closed stream still held.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import random
import ssl
import threading
import time
import uuid
import weakref
from collections.abc import Generator, Mapping, Sequence
from typing import (
    TYPE_CHECKING,
    Any,
    Union,
)

if TYPE_CHECKING:
    # Only for type checkers (annotations are strings here): turbomqtt has no run-time
    # dependencies, and typing.Self needs Python 3.11.
    from typing_extensions import Self

from turbomqtt import _core, _tls
from turbomqtt.asyncio._errors import (
    ConnectionLostError,
    MqttCodeError,
    MqttConnectError,
    MqttError,
    NotConnectedError,
    ProtocolError,
    PublishError,
    QueueFullError,
    RequestTimeoutError,
    SubscribeError,
    UnsubscribeError,
    reason_text,
)
from turbomqtt.asyncio._properties import PropertiesArg, encode_properties
from turbomqtt.asyncio._types import (
    ConnectionEvent,
    Message,
    PayloadType,
    ProtocolVersion,
    SubscribeOptions,
    TLSParameters,
    Topic,
    Will,
    _filter_levels,
    _levels_match,
    _parts_match,
)

__all__ = ["Client", "ConnectionEventStream", "MessageStream", "PublishHandle", "Subscription"]

_log = logging.getLogger("turbomqtt.asyncio")

EV_CONNACK = _core.EV_CONNACK
EV_MESSAGE = _core.EV_MESSAGE
EV_PUBLISHED = _core.EV_PUBLISHED
EV_SUBACK = _core.EV_SUBACK
EV_UNSUBACK = _core.EV_UNSUBACK
EV_DISCONNECTED = _core.EV_DISCONNECTED
EV_LOG = _core.EV_LOG
EV_CONNECT_FAILED = _core.EV_CONNECT_FAILED

_RC_NO_CONN = 4
_RC_QUEUE_SIZE = 15
_DRAIN_BATCH = 1024
# A stream consumer drains at most this many batches itself before it suspends once.
_EAGER_BATCHES = 4
# Reading the socket in the loop (see _watch_socket) pays off while messages are few and
# far between (each then wakes only the loop). A stream is read better by the core's own
# task, in parallel and in batches: after this many socket reads in a row less than
# _STREAM_GAP seconds apart the loop stops watching, and it watches again once the core
# has woken it through the notifier after more than _QUIET_GAP seconds of quiet.
_STREAM_READS = 8
_STREAM_GAP = 100e-6
_QUIET_GAP = 1e-3
# A stream may exceed its size by this many unacknowledged QoS 1/2 messages (the
# largest receive maximum, §3.1.2.11.3) before reading pauses anyway.
_HARD_EXTRA = 65535
# Filters the client unsubscribed from, remembered to recognise the messages the broker
# still sends for them (§3.10.4); the oldest are forgotten beyond this many.
_UNSUBSCRIBED_KEPT = 1024
_LOG_LEVELS = {
    1: logging.INFO,
    2: logging.INFO,
    4: logging.WARNING,
    8: logging.ERROR,
    16: logging.DEBUG,
}

SubscribeArg = Union[
    str,
    tuple[str, Union[int, SubscribeOptions, Any]],
    Sequence[tuple[str, Union[int, SubscribeOptions, Any]]],
]
TLSArg = Union[None, bool, ssl.SSLContext, TLSParameters, Mapping[str, Any]]


# Bumped in a forked child: a client made before fork() must not be used there (its
# Rust runtime and socket belong to the parent). Cheaper than os.getpid() per call.
_forks = 0


def _after_fork_in_child() -> None:
    global _forks
    _forks += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _payload_bytes(payload: PayloadType) -> bytes:
    # The conversions paho-mqtt applies (`Client.publish`).
    if payload is None:
        return b""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, (bytearray, memoryview)):
        return bytes(payload)
    if isinstance(payload, (int, float)) and not isinstance(payload, bool):
        return str(payload).encode("ascii")
    raise TypeError("payload must be a string, bytearray, int, float or None.")


def _options_byte(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("invalid QoS: a bool")
    if isinstance(value, int):
        if value not in (0, 1, 2):
            raise ValueError(f"invalid QoS {value}")
        return value
    if isinstance(value, SubscribeOptions):
        return value.to_byte()
    # paho's SubscribeOptions (camelCase attributes).
    if hasattr(value, "QoS") and hasattr(value, "retainHandling"):
        return SubscribeOptions(
            int(value.QoS),
            bool(value.noLocal),
            bool(value.retainAsPublished),
            int(value.retainHandling),
        ).to_byte()
    raise TypeError(f"invalid subscribe options {value!r}")


def _tls_dict(tls: TLSArg) -> dict[str, Any] | None:
    if tls is None or tls is False:
        return None
    if tls is True:
        return {}
    if isinstance(tls, TLSParameters):
        return _tls.from_settings(
            ca_certs=tls.ca_certs,
            certfile=tls.certfile,
            keyfile=tls.keyfile,
            keyfile_password=tls.keyfile_password,
            verify=tls.verify,
            check_hostname=tls.check_hostname,
            min_version=tls.min_version,
            max_version=tls.max_version,
            ciphers=tls.ciphers,
            alpn=tls.alpn,
            server_hostname=tls.server_hostname,
        )
    if isinstance(tls, ssl.SSLContext):
        # Client certificates loaded into a context cannot be read back: use
        # TLSParameters(certfile=..., keyfile=...) for mutual TLS.
        return _tls.from_context(tls)
    if isinstance(tls, Mapping):
        return dict(tls)
    raise TypeError(f"tls must be an ssl.SSLContext, TLSParameters, dict or bool, not {tls!r}")


class MessageStream:
    """A bounded queue of messages for one consumer, iterated with ``async for``.

    Created by :meth:`Client.messages` (every message) or :meth:`Client.subscription`
    (one filter). A message matching several streams reaches each of them; one that
    matches none waits in the client for the next stream that matches it (see
    :meth:`Client.messages`). Ending the
    iteration (``break``, cancellation) keeps the stream and its queue; ``aclose()``
    (or leaving ``async with``, or dropping the last reference) unregisters it and
    acknowledges what it still held.
    """

    def __init__(self, client: Client, filter_: str | None, maxsize: int) -> None:
        self._client = client
        self.filter = filter_
        self._levels = _filter_levels(filter_) if filter_ is not None else None
        self._queue: collections.deque[Message] = collections.deque()
        self.maxsize = maxsize
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._error: BaseException | None = None
        # Batches drained by this consumer since it last suspended.
        self._eager = 0

    def _matches(self, topic: str) -> bool:
        return self._levels is None or _levels_match(self._levels, topic)

    def _put(self, message: Message) -> bool:
        """Queues `message`; True when reading must pause.

        QoS 1/2 messages stay unacknowledged while queued, so the broker's inflight
        window (our v5 receive maximum) bounds them: they never pause reading, which
        would also hold back the acknowledgements of our own publishes. QoS 0 messages
        pause reading at `maxsize`; the hard cap covers brokers without a window."""
        queue = self._queue
        queue.append(message)
        if message.qos:
            message._holds += 1
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)
        n = len(queue)
        return (n >= self.maxsize and not message.qos) or n >= self.maxsize + _HARD_EXTRA

    def _end(self, error: BaseException | None) -> None:
        self._closed = True
        self._error = error
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def qsize(self) -> int:
        return len(self._queue)

    def __aiter__(self) -> MessageStream:
        return self

    async def __anext__(self) -> Message:
        # The fast path: a queued message is returned without suspending.
        if not self._queue:
            await self._refill()
        message = self._queue.popleft()
        if message.qos or self._client._paused:
            self._client._taken(self, message)
        return message

    async def _refill(self) -> None:
        """Until a message is queued; raises at the end of the stream."""
        client = self._client
        while not self._queue:
            if self._error is not None:
                raise self._error
            if self._closed:
                raise StopAsyncIteration
            # Take what the core already holds (one Rust call per batch) instead of a
            # trip through the event loop; after a few batches in a row, let the other
            # tasks run (the core may be filling faster than we consume).
            if self._eager < _EAGER_BATCHES and client._drain_now():
                self._eager += 1
                continue
            self._eager = 0
            waiter = client._loop_checked().create_future()
            self._waiter = waiter
            try:
                # Cancellation only drops this waiter: messages are popped only in
                # __anext__, synchronously, so none is lost.
                await waiter
            finally:
                self._waiter = None

    async def get(self) -> Message:
        """The next message (raises like iteration does at the end)."""
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise MqttError("the message stream is closed") from None

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        if self._closed and not self._queue:
            return
        self._client._remove_stream(self)
        self._end(None)
        self._release_all()

    def _release_all(self) -> None:
        queued, self._queue = self._queue, collections.deque()
        for message in queued:
            self._client._release(message)
        self._client._maybe_resume()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if self._queue:
                self._release_all()
        except Exception:  # noqa: BLE001, S110 - never raise from a finalizer
            pass


class Subscription:
    """``async with client.subscription(filter, qos) as sub: async for m in sub``.

    Entering registers the stream *before* sending SUBSCRIBE (so nothing the broker
    sends right after SUBACK is missed) and awaits SUBACK; leaving unsubscribes (unless
    another open subscription uses the same filter) and closes the stream."""

    def __init__(
        self,
        client: Client,
        filter_: str,
        options: int,
        properties: bytes | None,
        maxsize: int,
    ) -> None:
        self._client = client
        self._filter = filter_
        self._options = options
        self._properties = properties
        self._maxsize = maxsize
        self._stream: MessageStream | None = None
        self.granted: list[int] | None = None

    async def __aenter__(self) -> MessageStream:
        client = self._client
        stream = client._add_stream(self._filter, self._maxsize)
        self._stream = stream
        client._subscription_refs[self._filter] = client._subscription_refs.get(self._filter, 0) + 1
        try:
            self.granted = await client._subscribe(
                [(self._filter, self._options)], self._properties
            )
        except BaseException:
            await self._leave(unsubscribe=False)
            raise
        return stream

    async def __aexit__(self, *exc: object) -> None:
        await self._leave(unsubscribe=True)

    async def _leave(self, unsubscribe: bool) -> None:
        client = self._client
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        left = client._subscription_refs.get(self._filter, 1) - 1
        if left > 0:
            client._subscription_refs[self._filter] = left
            return
        client._subscription_refs.pop(self._filter, None)
        if not unsubscribe:
            client._forget_filters([self._filter])
            return
        if client.is_connected:
            try:
                await client.unsubscribe(self._filter)
            except (MqttError, OSError):
                client._forget_filters([self._filter])
        else:
            client._forget_filters([self._filter])


class ConnectionEventStream:
    """Connection changes as :class:`ConnectionEvent` objects, starting with those that
    happened while no such stream was open (see :meth:`Client.connection_events`).
    Bounded: beyond ``maxsize`` undelivered events the oldest is dropped (they are
    state changes, the latest matter)."""

    def __init__(self, client: Client, maxsize: int = 256) -> None:
        self._client = client
        self._queue: collections.deque[ConnectionEvent] = collections.deque(maxlen=maxsize)
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def _put(self, event: ConnectionEvent) -> None:
        self._queue.append(event)
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _end(self) -> None:
        self._closed = True
        self._wake()

    def __aiter__(self) -> ConnectionEventStream:
        return self

    async def __anext__(self) -> ConnectionEvent:
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._closed:
                raise StopAsyncIteration
            waiter = self._client._loop_checked().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None

    def close(self) -> None:
        self._client._event_streams.discard(self)
        self._end()


class PublishHandle:
    """What :meth:`Client.publish_nowait` returns. ``await handle`` gives the reason
    code when the message is done -- at once for QoS 0 (it is in the outgoing queue),
    on PUBACK for QoS 1, on PUBCOMP for QoS 2 -- or raises what ``await publish()``
    would raise. ``mid`` is the message id."""

    __slots__ = ("_future", "mid", "qos")

    def __init__(self, mid: int, qos: int, future: asyncio.Future[int] | None) -> None:
        self.mid = mid
        self.qos = qos
        self._future = future

    def done(self) -> bool:
        return self._future is None or self._future.done()

    def result(self) -> int:
        """The reason code; raises the failure, or asyncio.InvalidStateError while the
        acknowledgement is still outstanding."""
        return 0 if self._future is None else self._future.result()

    def __await__(self) -> Generator[Any, None, int]:
        fut = self._future
        if fut is None:
            return 0
        return (yield from fut.__await__())

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<PublishHandle mid={self.mid} qos={self.qos} {state}>"


class Client:
    """An MQTT 3.1/3.1.1/5.0 client for asyncio, on turbomqtt's Rust core.

    ::

        async with Client("localhost") as client:
            async with client.subscription("sensors/+/temp", qos=1) as sub:
                await client.publish("sensors/a/temp", "21.5", qos=1)
                async for message in sub:
                    print(message.topic, message.payload)

    Connecting (DNS, TCP, TLS, WebSocket) happens in Rust; nothing blocks the event
    loop and no thread pool is used. One client belongs to the loop that entered it.
    """

    def __init__(
        self,
        hostname: str,
        port: int = 1883,
        *,
        identifier: str | None = None,
        protocol: int | ProtocolVersion = ProtocolVersion.V5,
        username: str | None = None,
        password: str | bytes | None = None,
        will: Will | None = None,
        tls: TLSArg = None,
        transport: str = "tcp",
        websocket_path: str = "/mqtt",
        websocket_headers: Mapping[str, str] | None = None,
        keepalive: int = 60,
        clean_start: bool = True,
        properties: PropertiesArg = None,
        reconnect: bool = False,
        reconnect_delay: float = 0.1,
        reconnect_max_delay: float = 30.0,
        timeout: float = 10.0,
        queue_size: int = 1024,
        manual_ack: bool = False,
        max_inflight: int = 0,
        max_queued_outgoing_messages: int = 10_000,
        event_limit: int = 4096,
        bind_address: str = "",
        bind_port: int = 0,
        proxy: Mapping[str, Any] | None = None,
        logger: logging.Logger | None = None,
        wakeup: str = "auto",
    ) -> None:
        protocol = int(protocol)
        if protocol not in (3, 4, 5):
            raise ValueError(f"protocol must be 3, 4 or 5, not {protocol}")
        if transport not in ("tcp", "websockets", "unix"):
            raise ValueError(f"transport must be 'tcp', 'websockets' or 'unix', not {transport!r}")
        if not 0 <= keepalive <= 65535:
            raise ValueError("keepalive must be within 0..65535")
        if queue_size < 1 or event_limit < 1:
            raise ValueError("queue_size and event_limit must be positive")
        if not 1 <= max_queued_outgoing_messages <= 30_000:
            # QoS 0 completions are matched by message id, a 16-bit counter that must
            # not wrap around while they wait to be taken in.
            raise ValueError("max_queued_outgoing_messages must be within 1..30000")
        if wakeup not in ("auto", "reader", "thread"):
            raise ValueError("wakeup must be 'auto', 'reader' or 'thread'")
        if properties is not None and protocol < 5:
            raise ValueError("CONNECT properties need MQTT 5")
        self.hostname = hostname
        self.port = port
        self.protocol = ProtocolVersion(protocol)
        self.identifier = identifier if identifier else f"turbomqtt-{uuid.uuid4().hex[:16]}"
        self._reconnect = bool(reconnect)
        self._reconnect_delay = reconnect_delay
        self._reconnect_max_delay = reconnect_max_delay
        self._timeout = timeout
        self._queue_size = queue_size
        self._manual_ack = manual_ack
        self._max_inflight = max_inflight
        self._event_limit = event_limit
        # Bound of the outgoing queue: QoS 0 messages handed to the core and
        # not yet reported written, and (in the core) QoS 1/2 messages not yet done.
        self._max_outgoing = max_queued_outgoing_messages
        self._qos0_backlog = 0
        self._room_waiters: list[asyncio.Future[None]] = []
        # Whether the core queues QoS 0 completions without waking us (see _room_for_qos0).
        self._quiet = False
        # The last topic received, as bytes and as a Topic: consecutive messages on
        # one topic share the decoded str.
        self._last_raw_topic = b""
        self._last_topic = Topic("")
        self._wakeup = wakeup
        self._logger = logger or _log

        connect_props = properties
        if protocol == 5 and (properties is None or isinstance(properties, Mapping)):
            # The receive maximum bounds the unacknowledged QoS 1/2 messages the broker
            # sends us (§3.3.4): our flow control for slow consumers.
            merged = dict(properties or {})
            merged.setdefault("receive_maximum", min(queue_size, 65535))
            connect_props = merged
        will_tuple = None
        if will is not None:
            if will.properties is not None and protocol < 5:
                raise ValueError("will properties need MQTT 5")
            will_tuple = (
                will.topic,
                _payload_bytes(will.payload),
                will.qos,
                will.retain,
                encode_properties(will.properties),
            )
        if isinstance(password, str):
            password = password.encode("utf-8")
        self._connect_kwargs: dict[str, Any] = {
            "host": hostname,
            "port": port,
            "keepalive": keepalive,
            "client_id": self.identifier,
            "protocol": protocol,
            "clean_start": clean_start,
            "username": username,
            "password": password,
            "will": will_tuple,
            "properties": encode_properties(connect_props),
            "transport": transport,
            "ws_path": websocket_path,
            "ws_headers": list(websocket_headers.items()) if websocket_headers else None,
            "tls": _tls_dict(tls),
            "bind_address": bind_address,
            "bind_port": bind_port,
            "proxy": dict(proxy) if proxy else None,
            "timeout": timeout,
        }

        self._core: _core.ClientCore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = -1
        self._reader_installed = False
        # A duplicate of the connection's socket that the loop watches and reads from
        # itself (plain TCP on selector loops, see _watch_socket); -1 when none.
        self._sock_fd = -1
        self._sock_wanted = False
        self._sock_streak = 0  # socket reads in a row that came close together
        self._sock_last = 0.0  # time of the last socket read / notifier wake-up
        self._thread: threading.Thread | None = None
        self._thread_stop = threading.Event()
        self._drained = threading.Event()
        self._paused = False
        self._connect_waiter: asyncio.Future[None] | None = None
        self._connected_flag = False
        # True once connected *and* resubscribed: what `connected()` waits for.
        self._announced = False
        self._connected_waiters: list[asyncio.Future[None]] = []
        self._generation = 0
        self._final_error: BaseException | None = None
        self._closing = False
        self._closed_waiter: asyncio.Future[None] | None = None
        self._reconnect_handle: asyncio.TimerHandle | None = None
        self._backoff = reconnect_delay
        # mid -> (kind, future, extra); kind "pub" (extra: qos), "sub"/"unsub"
        # (extra: the request, re-sent after a reconnect).
        self._pending: dict[int, tuple[str, asyncio.Future[Any], Any]] = {}
        # Requests made while disconnected with reconnect on: sent after CONNACK.
        self._deferred: list[tuple[str, asyncio.Future[Any], Any]] = []
        self._streams: weakref.WeakSet[MessageStream] = weakref.WeakSet()
        # Messages no open stream matched, in arrival order, waiting for one that does
        # (bounded by queue_size like a stream, see _unmatched).
        self._unclaimed: collections.deque[Message] = collections.deque()
        self._unclaimed_warned = False
        # Filters unsubscribed from (filter -> levels), see _unmatched.
        self._unsubscribed: dict[str, list[str]] = {}
        # The generation whose CONNACK began the current session (session_present 0):
        # a QoS 2 message of this session can still be completed (PUBCOMP) on a later
        # connection, since the broker resends its PUBREL and waits for it (§4.4).
        self._session_start = 0
        self._event_streams: weakref.WeakSet[ConnectionEventStream] = weakref.WeakSet()
        # Connection events emitted while no ConnectionEventStream was open, for the next.
        self._event_backlog: collections.deque[ConnectionEvent] = collections.deque(maxlen=256)
        # Active subscriptions (filter -> (options byte, properties)), re-sent after a
        # reconnect that did not resume the session.
        self._subscriptions: dict[str, tuple[int, bytes | None]] = {}
        self._subscription_refs: dict[str, int] = {}
        self._response_topic: str | None = None
        self._responses: dict[bytes, asyncio.Future[Message]] = {}
        self._response_lock: asyncio.Lock | None = None
        self._forks = _forks

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    async def connect(self) -> None:
        """Connects and waits for a successful CONNACK (at most ``timeout`` seconds).
        Raises OSError subclasses for transport failures (ConnectionRefusedError,
        socket.gaierror, TimeoutError, ssl.SSLError) and MqttConnectError for a
        refused CONNACK."""
        if self._core is not None:
            raise MqttError("the client is already connected or connecting")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._final_error = None
        self._closing = False
        core = _core.ClientCore()
        core.set_event_limit(self._event_limit)
        core.set_manual_ack(True)
        core.set_max_inflight(self._max_inflight)
        core.set_max_queued(self._max_outgoing)
        # QoS 0 completions only feed the outgoing queue's count: take them in with the
        # next batch rather than waking the loop once per message.
        core.set_quiet_written(True)
        self._quiet = True
        self._core = core
        self._paused = False
        if len(self._unclaimed) >= self._queue_size:
            self._pause()
        self._install_wakeup()
        waiter: asyncio.Future[None] = loop.create_future()
        self._connect_waiter = waiter
        try:
            # Returns at once: EV_CONNACK or EV_CONNECT_FAILED follows.
            core.connect(**self._connect_kwargs, block=False)
            try:
                await asyncio.wait_for(asyncio.shield(waiter), self._timeout + 1.0)
            except asyncio.TimeoutError:
                raise TimeoutError("timed out waiting for CONNACK") from None
        except BaseException:
            self._connect_waiter = None
            self._teardown(MqttError("the connect attempt failed"))
            raise
        self._connect_waiter = None

    async def disconnect(self, reason_code: int = 0, properties: PropertiesArg = None) -> None:
        """Sends DISCONNECT, waits (bounded) until it is flushed, and ends the client's
        Rust tasks. Streams end (``StopAsyncIteration``); pending operations raise
        MqttError. Idempotent."""
        core = self._core
        if core is None:
            return
        self._closing = True
        if self._reconnect_handle is not None:
            self._reconnect_handle.cancel()
            self._reconnect_handle = None
        if self._connected_flag:
            loop = self._loop_checked()
            self._closed_waiter = loop.create_future()
            props = encode_properties(properties) if self.protocol == 5 else None
            if core.disconnect(reason_code, props) == 0:
                try:
                    await asyncio.wait_for(asyncio.shield(self._closed_waiter), 5.0)
                except asyncio.TimeoutError:
                    pass
                except asyncio.CancelledError:
                    # Still end the client (the DISCONNECT is queued), then let the
                    # cancellation go on.
                    self._teardown(None)
                    raise
        self._teardown(None)

    def _teardown(self, error: BaseException | None) -> None:
        core = self._core
        if core is None:
            return
        self._remove_wakeup()
        core.close()
        self._core = None
        self._connected_flag = False
        self._announced = False
        if self._reconnect_handle is not None:
            self._reconnect_handle.cancel()
            self._reconnect_handle = None
        self._fail_all(error or MqttError("the client is disconnected"))
        for stream in list(self._streams):
            stream._end(error)
        for events in list(self._event_streams):
            events._end()

    def _fail_all(self, error: BaseException) -> None:
        pending, self._pending = self._pending, {}
        room, self._room_waiters = self._room_waiters, []
        for fut in room:
            if not fut.done():
                fut.set_exception(error)
        deferred, self._deferred = self._deferred, []
        for _kind, fut, _extra in list(pending.values()) + deferred:
            if not fut.done():
                fut.set_exception(error)
        for fut in self._connected_waiters:
            if not fut.done():
                fut.set_exception(error)
        self._connected_waiters = []
        for rfut in self._responses.values():
            if not rfut.done():
                rfut.set_exception(error)
        self._responses = {}
        w = self._connect_waiter
        if w is not None and not w.done():
            w.set_exception(error)

    # ------------------------------------------------------------------ wake-up

    def _loop_checked(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise NotConnectedError("the client is not connected (use 'async with Client(...)')")
        return self._loop

    def _install_wakeup(self) -> None:
        loop = self._loop_checked()
        core = self._core
        assert core is not None
        self._fd = core.fileno()
        if self._wakeup != "thread":
            try:
                loop.add_reader(self._fd, self._on_readable)
                self._reader_installed = True
                return
            except NotImplementedError:
                if self._wakeup == "reader":
                    raise
        self._thread_stop = threading.Event()
        self._drained = threading.Event()
        thread = threading.Thread(
            target=self._wait_thread,
            args=(core, loop, self._thread_stop, self._drained),
            name=f"turbomqtt-asyncio-{self.identifier}",
            daemon=True,
        )
        self._thread = thread
        thread.start()

    def _watch_socket(self) -> None:
        """Has the loop read the connection's socket itself (see the module docstring);
        the core's connection task reads whenever the loop does not watch it."""
        core = self._core
        if (self._sock_fd >= 0 or not self._reader_installed or self._paused
                or core is None or not self._connected_flag or self._loop is None):
            return
        fd = core.watch_socket()
        if fd < 0:
            self._sock_wanted = False  # not plain TCP, or the connection is ending
            return
        try:
            self._loop.add_reader(fd, self._on_socket_readable)
        except (NotImplementedError, RuntimeError, ValueError, OSError):
            core.unwatch_socket()
            os.close(fd)
            self._sock_wanted = False
            return
        self._sock_fd = fd
        self._sock_wanted = True

    def _unwatch_socket(self, tell_core: bool = True) -> None:
        fd = self._sock_fd
        if fd < 0:
            return
        self._sock_fd = -1
        if self._loop is not None:
            try:
                self._loop.remove_reader(fd)
            except (RuntimeError, ValueError, OSError):
                pass
        if tell_core and self._core is not None:
            self._core.unwatch_socket()
        os.close(fd)

    def _on_socket_readable(self) -> None:
        core = self._core
        if core is None:
            self._unwatch_socket(tell_core=False)
            return
        now = time.monotonic()
        if now - self._sock_last < _STREAM_GAP:
            self._sock_streak += 1
        else:
            self._sock_streak = 0
        self._sock_last = now
        if self._sock_streak >= _STREAM_READS:
            # A stream: the core's task reads it from now on (see _STREAM_READS); what
            # the socket holds is read by unwatch_socket() or by that task.
            self._unwatch_socket()
        elif not core.read_socket():
            # Connection ending, or the queue is full / reading paused: the core's task
            # reads meanwhile (watching again after the next drain, see _on_readable).
            self._unwatch_socket(tell_core=False)
        events = core.drain(_DRAIN_BATCH)
        if events:
            self._dispatch(events)

    def _remove_wakeup(self) -> None:
        self._unwatch_socket()
        self._sock_wanted = False
        if self._reader_installed and self._loop is not None:
            try:
                self._loop.remove_reader(self._fd)
            except (RuntimeError, ValueError, OSError):
                pass
            self._reader_installed = False
        if self._thread is not None:
            self._thread_stop.set()
            self._drained.set()
            if self._core is not None:
                self._core.wake()  # the waiting thread returns at once
            self._thread = None

    def _wait_thread(
        self,
        core: _core.ClientCore,
        loop: asyncio.AbstractEventLoop,
        stop: threading.Event,
        drained: threading.Event,
    ) -> None:
        # The fallback for loops without add_reader: block in Rust (GIL released),
        # then one call_soon_threadsafe per batch; wait until the loop drained it.
        while not stop.is_set():
            if not core.wait(0.25):
                continue
            drained.clear()
            try:
                loop.call_soon_threadsafe(self._on_readable)
            except RuntimeError:  # the loop is closed
                return
            while not drained.wait(0.25):
                if stop.is_set():
                    return

    def _pause(self) -> None:
        if self._paused or self._core is None:
            return
        self._paused = True
        self._unwatch_socket()
        self._core.pause_reading(True)

    def _maybe_resume(self) -> None:
        if not self._paused:
            return
        if len(self._unclaimed) >= self._queue_size:
            return
        for stream in self._streams:
            if len(stream._queue) >= stream.maxsize:
                return
        self._paused = False
        if self._core is not None:
            self._core.pause_reading(False)
            if self._sock_wanted:
                self._watch_socket()

    # ------------------------------------------------------------------ events

    def _drain_now(self) -> bool:
        """Dispatches one batch of pending events; False if there were none."""
        core = self._core
        if core is None:
            return False
        if self._sock_fd >= 0 and not core.read_socket():
            # Bytes that arrived meanwhile are taken now, not after a trip through the
            # loop's selector.
            self._unwatch_socket(tell_core=False)
        events = core.drain(_DRAIN_BATCH)
        if not events:
            return False
        self._dispatch(events)
        return True

    def _on_readable(self) -> None:
        core = self._core
        if core is None:
            return
        try:
            events = core.drain(_DRAIN_BATCH)
            if events:
                self._dispatch(events)
            if self._sock_wanted and self._sock_fd < 0:
                now = time.monotonic()
                if now - self._sock_last > _QUIET_GAP:
                    self._sock_streak = 0
                    self._watch_socket()
                self._sock_last = now
        finally:
            self._drained.set()

    def _dispatch(self, events: list[tuple[Any, ...]]) -> None:
        streams: tuple[MessageStream, ...] | None = None
        completed = False
        for ev in events:
            kind = ev[0]
            if kind == EV_MESSAGE:
                if streams is None:
                    streams = tuple(self._streams)
                self._on_message(ev, streams)
            elif kind == EV_PUBLISHED:
                completed = True
                entry = self._pending.pop(ev[1], None)
                if entry is None:
                    # A QoS 0 message was written to the socket.
                    if self._qos0_backlog:
                        self._qos0_backlog -= 1
                else:
                    fut = entry[1]
                    if not fut.done():
                        code = ev[2]
                        if code >= 0x80:
                            fut.set_exception(PublishError(code, ev[1]))
                        else:
                            fut.set_result(code)
            elif kind == EV_SUBACK or kind == EV_UNSUBACK:
                self._on_ack(ev)
            elif kind == EV_CONNACK:
                self._on_connack(ev)
                if self._connected_flag and self._sock_fd < 0:
                    self._on_connack_done()
            elif kind == EV_DISCONNECTED:
                self._on_disconnected(ev)
                streams = None
            elif kind == EV_CONNECT_FAILED:
                self._on_connect_failed(ev[1])
            elif kind == EV_LOG:
                self._logger.log(_LOG_LEVELS.get(ev[1], logging.DEBUG), "%s", ev[2])
        if completed and self._room_waiters:
            self._wake_room()

    def _on_message(self, ev: tuple[Any, ...], streams: tuple[MessageStream, ...]) -> None:
        _, raw_topic, payload, qos, retain, mid, dup, props = ev
        if raw_topic == self._last_raw_topic:
            topic = self._last_topic
        else:
            topic = Topic(raw_topic.decode("utf-8"))
            self._last_raw_topic = raw_topic
            self._last_topic = topic
        message = Message._received(
            topic, payload, qos, retain, mid, dup, props, self, self._generation
        )
        if self._response_topic is not None and topic == self._response_topic:
            corr = message.properties.get("correlation_data")
            fut = self._responses.pop(corr, None) if corr is not None else None
            if fut is not None and not fut.done():
                fut.set_result(message)
            self._release(message)
            return
        full = False
        matched = False
        parts = None  # the topic's levels, split once for all filtered streams
        for stream in streams:
            levels = stream._levels
            if levels is not None:
                if parts is None:
                    parts = topic.split("/")
                if not _parts_match(levels, parts):
                    continue
            matched = True
            if stream._put(message):
                full = True
        if not matched:
            full = self._unmatched(message)
        if full:
            self._pause()

    def _unmatched(self, message: Message) -> bool:
        """A message no open stream matched waits for one (True when reading must
        pause, by the rule of MessageStream._put), unless it is a leftover of a filter
        the client unsubscribed from."""
        if self._unsubscribed and self._is_leftover(message.topic):
            if message.qos and not message._acked:
                self._send_ack(message)
            return False
        queue = self._unclaimed
        queue.append(message)
        if message.qos:
            message._holds += 1
        n = len(queue)
        size = self._queue_size
        full = (n >= size and not message.qos) or n >= size + _HARD_EXTRA
        if n >= size and not self._unclaimed_warned:
            self._unclaimed_warned = True
            self._logger.warning(
                "%d received messages wait for a stream (queue_size reached, reading "
                "is held back): open messages() or a subscription() matching them",
                n,
            )
        return full

    def _is_leftover(self, topic: str) -> bool:
        parts = topic.split("/")
        for f in self._subscriptions:
            try:
                if _parts_match(_filter_levels(f), parts):
                    return False
            except ValueError:
                continue
        return any(_parts_match(levels, parts) for levels in self._unsubscribed.values())

    def _forget_filters(self, filters: Sequence[str]) -> None:
        """`filters` are no longer subscribed: remember them for _is_leftover."""
        for f in filters:
            self._subscriptions.pop(f, None)
            self._unsubscribed.pop(f, None)
            self._unsubscribed[f] = _filter_levels(f)
        while len(self._unsubscribed) > _UNSUBSCRIBED_KEPT:
            del self._unsubscribed[next(iter(self._unsubscribed))]

    def _hand_over(self, stream: MessageStream) -> None:
        """Moves the waiting messages `stream` matches into it, in order (a QoS 1/2
        message's hold on its acknowledgement moves with it)."""
        keep: collections.deque[Message] = collections.deque()
        queue = stream._queue
        qos0 = False
        for message in self._unclaimed:
            if stream._matches(message.topic):
                queue.append(message)
                qos0 = qos0 or not message.qos
            else:
                keep.append(message)
        self._unclaimed = keep
        if len(keep) < self._queue_size:
            self._unclaimed_warned = False
        n = len(queue)
        if (n >= stream.maxsize and qos0) or n >= stream.maxsize + _HARD_EXTRA:
            self._pause()
        else:
            self._maybe_resume()

    def _taken(self, stream: MessageStream, message: Message) -> None:
        if message.qos:
            self._release(message)
        if self._paused and len(stream._queue) < stream.maxsize:
            self._maybe_resume()

    def _release(self, message: Message) -> None:
        """One holder of `message` is done; the last one acknowledges it (QoS 1/2)."""
        if message._acked:
            return
        if message._holds > 0:
            message._holds -= 1
            if message._holds:
                return
        if self._manual_ack:
            return
        self._send_ack(message)

    def _ack_message(self, message: Message) -> None:
        if not message._acked:
            self._send_ack(message)

    def _send_ack(self, message: Message) -> None:
        message._acked = True
        core = self._core
        # An acknowledgement belongs to the connection that delivered the message: on a
        # resumed session the broker sends an unacknowledged QoS 1 message again (that
        # copy is acknowledged), but only the PUBREL of a QoS 2 one, whose PUBCOMP is
        # then still ours to send (§4.4).
        generation = message._generation
        if (
            core is not None
            and self._connected_flag
            and (
                generation == self._generation
                or (message.qos == 2 and generation >= self._session_start)
            )
        ):
            core.ack(message.mid, message.qos)

    def _on_ack(self, ev: tuple[Any, ...]) -> None:
        kind, mid, codes, _props = ev
        entry = self._pending.pop(mid, None)
        if entry is None:
            return
        _k, fut, request = entry
        failed = [c for c in codes if c >= 0x80]
        if kind == EV_SUBACK:
            filters = request[0]
            if failed:
                for (f, _o), code in zip(filters, codes):
                    if code >= 0x80 and f in self._subscriptions:
                        del self._subscriptions[f]
            if not fut.done():
                if failed:
                    fut.set_exception(SubscribeError(codes))
                else:
                    fut.set_result(list(codes))
        else:
            if not fut.done():
                if failed:
                    fut.set_exception(UnsubscribeError(codes))
                else:
                    fut.set_result(list(codes))

    def _on_connect_failed(self, error: BaseException) -> None:
        # The exception blocking connect() would raise (ConnectionRefusedError,
        # socket.gaierror, TimeoutError, ssl.SSLError, ...).
        w = self._connect_waiter
        if w is not None and not w.done():
            w.set_exception(error)
            return
        self._logger.info("reconnect failed: %s", error)
        if self._reconnect and not self._closing:
            self._schedule_reconnect()

    def _on_connack(self, ev: tuple[Any, ...]) -> None:
        _, session_present, code, _props = ev
        if code != 0:
            error = MqttConnectError(code, int(self.protocol))
            w = self._connect_waiter
            if w is not None and not w.done():
                w.set_exception(error)
            else:
                self._logger.warning("reconnect refused: %s", error)
            # The core closes the connection and posts EV_DISCONNECTED next.
            return
        self._generation += 1
        self._connected_flag = True
        self._backoff = self._reconnect_delay
        if not session_present:
            self._session_start = self._generation
        elif self._unclaimed:
            # The broker sends the unacknowledged QoS 1 messages of the session again
            # (§4.4): the copies waiting here would be duplicates.
            self._unclaimed = collections.deque(
                m for m in self._unclaimed if m.qos != 1 or m._acked
            )
            self._maybe_resume()
        w = self._connect_waiter
        if w is not None and not w.done():
            w.set_result(None)
        core = self._core
        assert core is not None
        resubscribing: list[asyncio.Future[Any]] = []
        if not session_present and self._subscriptions:
            # The broker forgot our subscriptions (§4.1): subscribe again, and announce
            # the connection only once they are in place, so a publish that follows
            # `await client.connected()` is not missed.
            by_props: dict[bytes | None, list[tuple[str, int]]] = {}
            for f, (opts, p) in self._subscriptions.items():
                by_props.setdefault(p, []).append((f, opts))
            loop = self._loop_checked()
            for p, filters in by_props.items():
                fut: asyncio.Future[Any] = loop.create_future()
                self._send_request("resub", fut, (filters, p))
                resubscribing.append(fut)
        deferred, self._deferred = self._deferred, []
        for kind, dfut, request in deferred:
            if not dfut.done():
                self._send_request(kind, dfut, request)
        event = ConnectionEvent("connected", session_present=bool(session_present))
        if not resubscribing:
            self._announce_connected(event)
            return
        generation = self._generation
        left = [len(resubscribing)]

        def done(f: asyncio.Future[Any]) -> None:
            if not f.cancelled() and f.exception() is not None:
                self._logger.warning("resubscribe failed: %s", f.exception())
            left[0] -= 1
            if left[0] == 0 and generation == self._generation and self._connected_flag:
                self._announce_connected(event)

        for rfut in resubscribing:
            rfut.add_done_callback(done)

    def _on_connack_done(self) -> None:
        """After a successful CONNACK was dispatched: the loop reads the socket itself."""
        self._sock_wanted = True
        self._watch_socket()

    def _announce_connected(self, event: ConnectionEvent) -> None:
        self._announced = True
        for fut in self._connected_waiters:
            if not fut.done():
                fut.set_result(None)
        self._connected_waiters = []
        self._emit(event)

    def _on_disconnected(self, ev: tuple[Any, ...]) -> None:
        _, code, from_server, _props, error = ev
        self._unwatch_socket()
        self._sock_wanted = False
        was_connected = self._connected_flag
        self._connected_flag = False
        self._announced = False
        # QoS 0 messages not yet written are dropped with the connection; whoever waits
        # for room tries again (and learns that it is not connected).
        self._qos0_backlog = 0
        self._wake_room()
        if self._closing:
            w = self._closed_waiter
            if w is not None and not w.done():
                w.set_result(None)
            self._emit(
                ConnectionEvent(
                    "disconnected", reason_code=code, from_server=from_server, error=error
                )
            )
            return
        # QoS 0 publishes not yet written are gone; SUBSCRIBE/UNSUBSCRIBE in flight are
        # re-sent after a reconnect, or fail.
        will_reconnect = self._reconnect and self._connect_waiter is None
        if error is None:
            error = (
                f"the broker disconnected: {reason_text(code)} (0x{code:02X})"
                if from_server
                else f"disconnected with code {code}"
            )
        error_class = ProtocolError if code == 2 and not from_server else ConnectionLostError
        lost = error_class(code, f"connection lost: {error}", from_server=from_server)
        for mid, entry in list(self._pending.items()):
            kind, fut, extra = entry
            if kind == "pub" and extra > 0 and will_reconnect:
                continue  # the core resends it after the reconnect
            del self._pending[mid]
            if fut.done():
                continue
            if kind == "resub":
                fut.cancel()  # the next CONNACK subscribes again anyway
                continue
            if kind in ("sub", "unsub") and will_reconnect:
                self._deferred.append(entry)
            else:
                fut.set_exception(lost)
        self._emit(
            ConnectionEvent(
                "disconnected",
                reason_code=code,
                from_server=from_server,
                error=error,
                will_reconnect=will_reconnect,
            )
        )
        w = self._connect_waiter
        if w is not None and not w.done():
            w.set_exception(lost)
            return
        if will_reconnect:
            self._logger.info("connection lost (%s); reconnecting", error)
            self._schedule_reconnect()
        elif was_connected or self._final_error is None:
            self._final_error = lost
            self._teardown(lost)

    def _emit(self, event: ConnectionEvent) -> None:
        streams = list(self._event_streams)
        if not streams:
            self._event_backlog.append(event)
        for s in streams:
            s._put(event)

    def _schedule_reconnect(self) -> None:
        if self._reconnect_handle is not None or self._core is None:
            return
        delay = self._backoff * (0.5 + random.random() / 2)
        self._backoff = min(self._backoff * 2, self._reconnect_max_delay)
        self._reconnect_handle = self._loop_checked().call_later(delay, self._reconnect_now)

    def _reconnect_now(self) -> None:
        self._reconnect_handle = None
        core = self._core
        if core is None or self._closing:
            return
        try:
            core.connect(**self._connect_kwargs, block=False)
        except Exception as e:  # noqa: BLE001 - arguments were valid once; keep trying
            self._logger.warning("reconnect failed: %s", e)
            self._schedule_reconnect()

    # ------------------------------------------------------------------ streams

    def _add_stream(self, filter_: str | None, maxsize: int | None) -> MessageStream:
        if self._final_error is not None:
            raise self._final_error
        stream = MessageStream(self, filter_, maxsize or self._queue_size)
        self._streams.add(stream)
        if self._unclaimed:
            self._hand_over(stream)
        return stream

    def _remove_stream(self, stream: MessageStream) -> None:
        self._streams.discard(stream)

    def messages(self, *, queue_size: int | None = None) -> MessageStream:
        """A new stream of every message this client receives (whatever the
        subscription), starting with those that arrived while no stream could take
        them: ``await client.subscribe(...)`` then ``client.messages()`` misses
        nothing, as with aiomqtt.

        A message that matches no open stream waits in the client for the next stream
        that matches it (this one, or a :meth:`subscription` whose filter does), in
        arrival order. Those waiting messages are bounded and flow-controlled like a
        stream's queue: at most ``queue_size`` (the client's) QoS 0 messages, beyond
        which the client stops reading the socket; QoS 1/2 messages stay
        unacknowledged until a stream hands them to its consumer, so the broker's
        window (our v5 receive maximum, ``queue_size``) bounds them. Exception: a
        message matching only filters the client unsubscribed from (closing a
        ``subscription()`` stream unsubscribes; the broker may still send what it had
        buffered, §3.10.4) goes to the open ``messages()`` streams, or is acknowledged
        and dropped when none is open. :meth:`pending_messages` counts the waiting
        ones."""
        return self._add_stream(None, queue_size)

    def pending_messages(self) -> int:
        """Received messages waiting for a stream that matches them (see
        :meth:`messages`)."""
        return len(self._unclaimed)

    def subscription(
        self,
        topic: str,
        qos: int = 0,
        *,
        options: SubscribeOptions | None = None,
        properties: PropertiesArg = None,
        queue_size: int | None = None,
    ) -> Subscription:
        """``async with client.subscription("a/+/b", qos=1) as sub: async for m in sub``:
        subscribes on entry, yields only messages matching `topic` (first those already
        waiting in the client, see :meth:`messages`), unsubscribes on exit."""
        _filter_levels(topic)
        opts = _options_byte(options if options is not None else qos)
        return Subscription(
            self, topic, opts, self._props(properties), queue_size or self._queue_size
        )

    def connection_events(self, *, maxsize: int = 256) -> ConnectionEventStream:
        """A stream of connect/disconnect events (see ConnectionEvent). Like
        :meth:`messages`, it starts with the events no open stream took: opened after
        ``async with Client(...)``, it still reports that connect. At most the last 256
        such events are kept."""
        stream = ConnectionEventStream(self, maxsize)
        self._event_streams.add(stream)
        backlog, self._event_backlog = self._event_backlog, collections.deque(maxlen=256)
        for event in backlog:
            stream._put(event)
        return stream

    # ------------------------------------------------------------------ operations

    @property
    def is_connected(self) -> bool:
        return self._connected_flag

    async def connected(self) -> None:
        """Returns once the client is connected and, after a reconnect, resubscribed
        (at once if it is); raises the final error if the client ended."""
        if self._final_error is not None:
            raise self._final_error
        if self._announced:
            return
        fut = self._loop_checked().create_future()
        self._connected_waiters.append(fut)
        await fut

    def _require_core(self) -> Any:
        if self._final_error is not None:
            raise self._final_error
        if self._core is None:
            raise NotConnectedError("the client is not connected (use 'async with Client(...)')")
        if _forks != self._forks:
            raise MqttError("the client was created before fork(); create a new one")
        return self._core

    def _props(self, properties: PropertiesArg) -> bytes | None:
        if properties is None:
            return None
        if self.protocol < 5:
            raise ValueError("properties need MQTT 5")
        return encode_properties(properties)

    def _publish_args(
        self, topic: str, payload: PayloadType, qos: int, properties: PropertiesArg
    ) -> tuple[bytes, bytes | None]:
        if not isinstance(topic, str) or not topic:
            raise ValueError("Invalid topic.")
        if "+" in topic or "#" in topic:
            raise ValueError("Publish topic cannot contain wildcards.")
        if qos not in (0, 1, 2) or isinstance(qos, bool):
            raise ValueError("Invalid QoS level.")
        data = payload if type(payload) is bytes else _payload_bytes(payload)
        return data, (None if properties is None else self._props(properties))

    def _publish_rc(self, rc: int, qos: int) -> None:
        if rc == _RC_NO_CONN and (qos == 0 or not self._reconnect):
            raise NotConnectedError("not connected: the message was not sent")
        if rc not in (0, _RC_NO_CONN):
            raise MqttCodeError(rc, f"publish failed (rc {rc})")

    async def publish(
        self,
        topic: str,
        payload: PayloadType = None,
        qos: int = 0,
        retain: bool = False,
        properties: PropertiesArg = None,
    ) -> int:
        """Publishes and returns the reason code (0 on 3.x) when done: QoS 0 once the
        message is in the connection's outgoing queue (from where the Rust connection
        task writes it, coalesced with whatever else is queued), QoS 1 on PUBACK, QoS 2
        on PUBCOMP. Like ``StreamWriter.drain()``, a QoS 0 publish returns without
        suspending while the queue has room (``max_queued_outgoing_messages``) and waits
        for room when it is full; a QoS 1/2 one also waits for room before it is sent.
        A v5 reason code >= 0x80 raises PublishError. Cancelling the await only drops
        the waiter: the message still goes out. With ``reconnect=True`` a QoS 1/2
        publish made while disconnected waits for the reconnect; a QoS 0 one raises
        NotConnectedError."""
        core = self._require_core()
        data, props = self._publish_args(topic, payload, qos, properties)
        if qos == 0:
            if self._qos0_backlog >= self._max_outgoing:
                await self._room_for_qos0()
                core = self._require_core()
            rc, _mid = core.publish(topic, data, 0, retain, props)
            if rc:
                self._publish_rc(rc, 0)
            self._qos0_backlog += 1
            return 0
        while True:
            rc, mid = core.publish(topic, data, qos, retain, props)
            if rc != _RC_QUEUE_SIZE:
                break
            await self._wait_room()
            core = self._require_core()
        if rc:
            self._publish_rc(rc, qos)
        fut: asyncio.Future[int] = self._loop_checked().create_future()
        self._pending[mid] = ("pub", fut, qos)
        return await fut

    def publish_nowait(
        self,
        topic: str,
        payload: PayloadType = None,
        qos: int = 0,
        retain: bool = False,
        properties: PropertiesArg = None,
    ) -> PublishHandle:
        """Queues the message for sending and returns at once (no ``await``), like
        ``asyncio.Queue.put_nowait()`` and paho's ``publish()``. Raises QueueFullError
        (an ``asyncio.QueueFull``) when ``max_queued_outgoing_messages`` are already
        waiting, NotConnectedError as :meth:`publish` does, ValueError for bad
        arguments. The returned :class:`PublishHandle` has the message id and can be
        awaited for the outcome :meth:`publish` would return (a QoS 0 handle is done at
        once). A failure nobody awaits is only logged at DEBUG level."""
        core = self._require_core()
        data, props = self._publish_args(topic, payload, qos, properties)
        if qos == 0:
            if self._qos0_backlog >= self._max_outgoing and not self._take_completions():
                raise QueueFullError()
            rc, mid = core.publish(topic, data, 0, retain, props)
            if rc:
                self._publish_rc(rc, 0)
            self._qos0_backlog += 1
            return PublishHandle(mid, 0, None)
        rc, mid = core.publish(topic, data, qos, retain, props)
        if rc == _RC_QUEUE_SIZE:
            raise QueueFullError()
        if rc:
            self._publish_rc(rc, qos)
        fut: asyncio.Future[int] = self._loop_checked().create_future()
        fut.add_done_callback(self._log_unretrieved)
        self._pending[mid] = ("pub", fut, qos)
        return PublishHandle(mid, qos, fut)

    def _log_unretrieved(self, fut: asyncio.Future[Any]) -> None:
        # Marks the exception retrieved (no "never retrieved" warning for a
        # fire-and-forget publish) and says what happened.
        if not fut.cancelled() and fut.exception() is not None:
            self._logger.debug("publish_nowait: %s", fut.exception())

    def _take_completions(self) -> bool:
        """Takes in the pending events (the core queues QoS 0 completions without waking
        us); True once the QoS 0 backlog is below its bound."""
        while self._qos0_backlog >= self._max_outgoing:
            if not self._drain_now():
                return False
        return True

    def _set_quiet(self, on: bool) -> None:
        if on != self._quiet and self._core is not None:
            self._quiet = on
            self._core.set_quiet_written(on)

    async def _room_for_qos0(self) -> None:
        """Waits until the QoS 0 backlog is below its bound; meanwhile the core wakes us
        for every completion."""
        if self._take_completions():
            return
        self._set_quiet(False)
        try:
            while self._qos0_backlog >= self._max_outgoing:
                await self._wait_room()
                self._require_core()
        finally:
            self._set_quiet(True)

    async def _wait_room(self) -> None:
        """Until the next batch of completions (or the connection's end)."""
        fut: asyncio.Future[None] = self._loop_checked().create_future()
        self._room_waiters.append(fut)
        await fut

    def _wake_room(self) -> None:
        waiters, self._room_waiters = self._room_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def subscribe(
        self,
        topic: SubscribeArg,
        qos: int = 0,
        options: SubscribeOptions | None = None,
        properties: PropertiesArg = None,
    ) -> list[int]:
        """Subscribes (paho's argument forms: a filter and a QoS, a (filter, qos) or
        (filter, SubscribeOptions) tuple, or a list of tuples) and returns the granted
        QoS / reason codes from SUBACK. A refusal (code >= 0x80) raises SubscribeError."""
        filters: list[tuple[str, int]]
        if isinstance(topic, str):
            filters = [(topic, _options_byte(options if options is not None else qos))]
        elif isinstance(topic, tuple):
            filters = [(topic[0], _options_byte(topic[1]))]
        elif isinstance(topic, (list, tuple)):
            filters = [(t, _options_byte(o)) for t, o in topic]
        else:
            raise TypeError(f"invalid subscribe argument {topic!r}")
        if not filters:
            raise ValueError("no topic filter to subscribe to")
        for f, _ in filters:
            if not isinstance(f, str):
                raise TypeError(f"a topic filter must be a str, not {f!r}")
            _filter_levels(f)
        return await self._subscribe(filters, self._props(properties))

    async def _subscribe(self, filters: list[tuple[str, int]], props: bytes | None) -> list[int]:
        self._require_core()
        for f, o in filters:
            self._subscriptions[f] = (o, props)
            self._unsubscribed.pop(f, None)
        fut: asyncio.Future[list[int]] = self._loop_checked().create_future()
        self._send_request("sub", fut, (filters, props))
        return await fut

    async def unsubscribe(
        self, topic: str | Sequence[str], properties: PropertiesArg = None
    ) -> list[int]:
        """Unsubscribes; returns the UNSUBACK reason codes (empty on 3.x). A refusal
        (v5 code >= 0x80) raises UnsubscribeError."""
        filters = [topic] if isinstance(topic, str) else list(topic)
        if not filters:
            raise ValueError("no topic filter to unsubscribe from")
        for f in filters:
            _filter_levels(f)
        props = self._props(properties)
        self._require_core()
        self._forget_filters(filters)
        fut: asyncio.Future[list[int]] = self._loop_checked().create_future()
        self._send_request("unsub", fut, (filters, props))
        return await fut

    def _send_request(self, kind: str, fut: asyncio.Future[Any], request: Any) -> None:
        core = self._core
        if core is None:
            fut.set_exception(NotConnectedError("the client is disconnected"))
            return
        filters, props = request
        if kind in ("sub", "resub"):
            rc, mid = core.subscribe(filters, props)
        else:
            rc, mid = core.unsubscribe(filters, props)
        if rc == _RC_NO_CONN:
            if kind == "resub":
                fut.cancel()
            elif self._reconnect and self._final_error is None and not self._closing:
                self._deferred.append((kind, fut, request))
            else:
                fut.set_exception(NotConnectedError("not connected"))
            return
        if rc != 0:
            fut.set_exception(MqttCodeError(rc, f"{kind}scribe failed (rc {rc})"))
            return
        self._pending[mid] = (kind, fut, request)

    async def request(
        self,
        topic: str,
        payload: PayloadType = None,
        *,
        qos: int = 0,
        timeout: float = 10.0,
        properties: Mapping[str, Any] | None = None,
    ) -> Message:
        """MQTT 5 request/response (§4.10): publishes with a response topic (this
        client's own, subscribed on first use) and fresh correlation data, and returns
        the first message carrying that correlation data back. Raises
        RequestTimeoutError after `timeout` seconds."""
        if self.protocol < 5:
            raise NotImplementedError(
                "request() needs MQTT 5 (response topic and correlation data)"
            )
        self._require_core()
        if self._response_lock is None:
            self._response_lock = asyncio.Lock()
        async with self._response_lock:
            if self._response_topic is None:
                rtopic = f"turbomqtt/response/{self.identifier}/{uuid.uuid4().hex[:8]}"
                await self._subscribe([(rtopic, 1)], None)
                self._response_topic = rtopic
        correlation = uuid.uuid4().bytes
        props = dict(properties or {})
        props["response_topic"] = self._response_topic
        props["correlation_data"] = correlation
        fut: asyncio.Future[Message] = self._loop_checked().create_future()
        self._responses[correlation] = fut
        try:
            await self.publish(topic, payload, qos=qos, properties=props)
            try:
                return await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                raise RequestTimeoutError(f"no response within {timeout} s") from None
        finally:
            self._responses.pop(correlation, None)

    def pending_operations(self) -> int:
        """Operations awaiting an acknowledgement (diagnostics)."""
        return len(self._pending) + len(self._deferred)
