"""The embedded MQTT 3.1 / 3.1.1 / 5.0 broker.

All network I/O runs in Rust on turbomqtt's background runtime; this module only
normalizes the configuration and runs one daemon thread that forwards the broker's log
lines to the ``turbomqtt.broker`` logger and calls the optional Python hooks
(``auth_callback``, ``on_message``), so Python is never called from a network thread.

Example::

    with turbomqtt.Broker(port=0) as broker:  # port 0: a free port
        print(broker.url)                     # mqtt://127.0.0.1:<port>
"""

from __future__ import annotations

import difflib
import functools
import inspect
import logging
import os
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Callable, TypeVar

from turbomqtt import _core
from turbomqtt._conf import ConfigError, read_config

__all__ = ["OPTIONS", "Broker", "BrokerMessage", "ConfigError", "load_config"]

logger = logging.getLogger("turbomqtt.broker")

_MIB = 1024 * 1024
_Init = TypeVar("_Init", bound=Callable[..., None])
_STOP_TIMEOUT = 5.0
_LEVELS = {10: logging.DEBUG, 20: logging.INFO, 30: logging.WARNING, 40: logging.ERROR}


class BrokerMessage:
    """A message routed by the broker, as passed to ``on_message``."""

    __slots__ = ("client_id", "payload", "qos", "retain", "topic")

    def __init__(
        self, client_id: str | None, topic: str, payload: bytes, qos: int, retain: bool
    ) -> None:
        self.client_id = client_id
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain

    def __repr__(self) -> str:
        return (
            f"BrokerMessage(client_id={self.client_id!r}, topic={self.topic!r}, "
            f"payload={self.payload!r}, qos={self.qos}, retain={self.retain})"
        )


def _options_of(init: Callable[..., None]) -> dict[str, tuple[Any, str]]:
    """``name -> (default, meaning)`` of every parameter of ``init`` but ``self``."""
    docs = _parameter_docs(init.__doc__ or "")  # no docstrings under python -OO
    parameters = list(inspect.signature(init).parameters.values())[1:]
    return {p.name: (p.default, docs.get(p.name, "")) for p in parameters}


def load_config(path: str) -> dict[str, Any]:
    """Reads a broker configuration file into `Broker` keyword arguments.

    A ``*.toml`` file holds the keyword options as top-level keys (``[users]`` a table
    of passwords, ``[[listeners]]`` an array of listener tables); any other file is read
    as a mosquitto.conf (see the broker documentation for the keys understood). Raises
    `ConfigError` (a `ValueError`) with a one-line message naming the file and line.
    Settings that are read but not supported are logged as warnings.
    """
    config = read_config(path)
    for warning in config.warnings:
        logger.warning("%s", warning)
    return config.options


def _rejects_unknown_options(init: _Init) -> _Init:
    """Checks keyword names before ``init`` runs: an unknown option is a TypeError naming
    it with the closest known name, for callers without a type checker (whose error
    Python words without a suggestion). Type checkers see ``init``'s own signature."""
    names = list(inspect.signature(init).parameters)[1:]

    @functools.wraps(init)
    def checked(self: Any, *args: Any, **options: Any) -> None:
        for name in sorted(options):
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise TypeError(f"Broker() got an unknown option {name!r}{hint}")
        init(self, *args, **options)

    return checked  # type: ignore[return-value]


def _parameter_docs(docstring: str) -> dict[str, str]:
    """``name -> text`` of every ``:param name: text`` of a docstring, continuation lines
    (indented deeper) joined with single spaces."""
    docs: dict[str, str] = {}
    name = None
    for line in inspect.cleandoc(docstring).splitlines():
        match = re.match(r":param (\w+):\s*(.*)", line)
        if match:
            name, docs[match[1]] = match[1], match[2].strip()
        elif name is not None and line[:1].isspace() and line.strip():
            docs[name] += " " + line.strip()
        else:
            name = None
    return docs


class Broker:
    """An MQTT broker running inside this process.

    ``Broker(host="127.0.0.1", port=1883, *, option=value, ...)``: every option is a
    keyword parameter of ``__init__``, listed with its default in `OPTIONS`.
    ``start()`` binds the listeners (raising ``OSError`` if a port is in use) and returns
    at once; ``stop()`` closes every socket and ends every task. Usable as a context
    manager and an async context manager.

    Flow control: a publisher is slowed to the pace of a subscriber that falls behind
    while that subscriber keeps reading. A subscriber that stops reading is not waited
    for: its queue fills to ``max_queued_messages`` (default 1000 QoS 1/2 messages
    beyond the inflight window, as in mosquitto) and ``max_queued_bytes`` (default
    64 MiB, every QoS), then its newest messages are dropped (mosquitto's policy),
    counted in ``messages_dropped`` with one warning each time a client starts
    dropping. Offline sessions queue QoS 1/2 messages under the same limits.

    Enhanced authentication (MQTT 5 §4.12): ``enhanced_auth={"METHOD": hook}``.
    A CONNECT with authentication method ``METHOD`` calls ``hook(client_id, method,
    data)`` (data: the packet's authentication data, bytes or None) on the broker's
    event thread, never on a network thread, and again for every AUTH the client
    sends, including re-authentication (AUTH 0x19) after it connected. The hook
    answers with one of:

    - ``("continue", data)``: AUTH 0x18 with ``data`` goes to the client, whose next
      AUTH calls the hook again (keep per-client state yourself, by client id);
    - ``True`` or ``("success", data)``: CONNACK 0x00 (AUTH 0x00 after
      re-authentication), with ``data`` as authentication data if not None;
    - ``False``, ``None`` or ``("failure", code)``: CONNACK with reason ``code``
      (default 0x87 Not authorized; 0x8C Bad authentication method fits too), or
      DISCONNECT with it after re-authentication. An exception counts as a failure.

    A client authenticated this way is not checked against ``users`` or
    ``auth_callback``. A method with no hook is refused with 0x8C. While the hook
    weighs a re-authentication the connection keeps working (MQTT 5 §4.12.1); an AUTH
    sent before the hook answered the previous one is a protocol error (DISCONNECT 0x82).
    """

    @_rejects_unknown_options
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        listeners: Sequence[Mapping[str, Any]] | None = None,
        allow_anonymous: bool = True,
        users: Mapping[str, str] | None = None,
        password_file: str | os.PathLike[str] | None = None,
        acl_file: str | os.PathLike[str] | None = None,
        auth_callback: Callable[[str, str | None, bytes | None], object] | None = None,
        enhanced_auth: Mapping[str, Callable[[str, str, bytes | None], object]] | None = None,
        on_message: Callable[[BrokerMessage], object] | None = None,
        max_packet_size: int = 268435455,
        max_queued_messages: int = 1000,
        max_queued_bytes: int = 64 * _MIB,
        max_inflight_messages: int = 100,
        receive_maximum: int = 100,
        max_connections: int = 0,
        max_keepalive: int = 65535,
        topic_alias_maximum: int = 10,
        max_topic_levels: int = 200,
        outgoing_topic_aliases: bool = False,
        max_qos: int = 2,
        retain_available: bool = True,
        max_session_expiry: int | None = None,
        connect_timeout: float = 10.0,
        sys_interval: float = 10.0,
        bridges: Sequence[Mapping[str, Any]] | None = None,
        idle_park_after: float | None = 5.0,
    ) -> None:
        """Configures the broker; `start` binds the listeners. Every option, one line each
        (`OPTIONS` and the documentation's option table are made from this list):

        :param host: address of the default TCP listener
        :param port: port of the default TCP listener; 0 picks a free port
        :param listeners: list of listener dicts {host, port, transport='tcp'|'websocket',
            path, certfile, keyfile, cafile, require_certificate}; replaces host/port
        :param allow_anonymous: accept clients without a username
        :param users: dict username -> password
        :param password_file: mosquitto_passwd file ($7$ PBKDF2-SHA512 or $6$ entries)
        :param acl_file: mosquitto acl_file (topic/user/pattern lines, %c and %u)
        :param auth_callback: callable(client_id, username, password) -> bool, asked after
            the user list accepts
        :param enhanced_auth: MQTT 5 enhanced authentication: dict method ->
            callable(client_id, method, data) answering True / ('success', data),
            ('continue', data) or False / ('failure', reason_code); see Broker
        :param on_message: callable(BrokerMessage) called for every routed message
        :param max_packet_size: largest packet accepted from a client, in bytes
        :param max_queued_messages: per-session bound on QoS 1/2 messages waiting beyond
            the inflight window, online or offline (mosquitto's meaning); when full, the
            newest are dropped, counted and logged once per client until it catches up
        :param max_queued_bytes: per-session bound on queued messages of every QoS in bytes
            (topic + payload + 64 each); bounds an online client's QoS 0 backlog; when
            full, the newest are dropped like above; 0: no bound
        :param max_inflight_messages: unacknowledged QoS 1/2 messages sent per client
        :param receive_maximum: unreleased QoS 2 messages a client may send at once
        :param max_connections: simultaneous connections; 0 is unlimited
        :param max_keepalive: v5: larger keep alives are lowered by server keep alive
        :param topic_alias_maximum: v5 topic aliases accepted per client
        :param max_topic_levels: most levels in a topic name or filter; deeper: PUBLISH
            closes the connection (v5 DISCONNECT 0x90), SUBSCRIBE is refused (v5 0x8F,
            v3 0x80); 0: no limit
        :param outgoing_topic_aliases: v5: send topic aliases to clients that accept them
            (paho 2.2 cannot resolve them)
        :param max_qos: highest QoS accepted and granted
        :param retain_available: whether retained messages are supported
        :param max_session_expiry: cap on session expiry in seconds (None: no cap)
        :param connect_timeout: seconds a new connection has to send CONNECT
        :param sys_interval: seconds between $SYS/broker/... updates; 0 disables them
        :param bridges: outgoing bridges to other brokers (mosquitto's connection blocks);
            not implemented yet: a non-empty list raises NotImplementedError
        :param idle_park_after: seconds a plain-TCP connection stays quiet before it is
            parked (its task ends, its socket waits on one shared poller: less memory per
            idle client); None: never park
        """
        # Every parameter by name (nothing else is bound yet): the options as given.
        options: dict[str, Any] = dict(locals())
        del options["self"]
        if bridges:
            raise NotImplementedError(
                "outgoing bridges (mosquitto's `connection` blocks) are not implemented yet"
            )
        for name in ("auth_callback", "on_message"):
            value = options[name]
            if value is not None and not callable(value):
                raise TypeError(f"{name} must be callable")
        enhanced = enhanced_auth or {}
        if not isinstance(enhanced, Mapping) or not all(
            isinstance(k, str) and callable(v) for k, v in enhanced.items()
        ):
            raise TypeError("enhanced_auth must be a mapping of method name -> callable")
        self._options = options
        self._auth_callback = auth_callback
        self._on_message = on_message
        self._enhanced_auth: dict[str, Callable[[str, str, bytes | None], object]] = dict(
            enhanced
        )
        self._core: _core.BrokerCore | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------

    def _native_config(self) -> dict[str, Any]:
        o = self._options
        listeners = o.get("listeners")
        if listeners is None:
            listeners = [{"host": o["host"], "port": o["port"]}]
        else:
            listeners = [dict(x) for x in listeners]
            for x in listeners:
                x.setdefault("host", o["host"])
                for key in ("certfile", "keyfile", "cafile"):
                    if x.get(key) is not None:
                        x[key] = str(x[key])
        config: dict[str, Any] = {"listeners": listeners}
        for key in o:
            if key in (
                "host",
                "port",
                "listeners",
                "auth_callback",
                "on_message",
                "enhanced_auth",
                "bridges",
            ):
                continue
            if o[key] is not None:
                value = o[key]
                if key in ("password_file", "acl_file"):
                    value = str(value)
                if key == "users":
                    value = {str(k): str(v) for k, v in dict(value).items()}
                config[key] = value
        if o["idle_park_after"] is None:
            config["idle_park_after"] = -1.0  # never park
        config["auth_callback"] = self._auth_callback is not None
        config["enhanced_auth_methods"] = list(self._enhanced_auth)
        config["message_observer"] = self._on_message is not None
        config["log_debug"] = logger.isEnabledFor(logging.DEBUG)
        return config

    def start(self) -> Broker:
        """Binds every listener and starts serving; returns at once."""
        with self._lock:
            if self._core is not None:
                raise RuntimeError("the broker is already running")
            core = _core.BrokerCore.start(self._native_config())
            self._core = core
            self._thread = threading.Thread(
                target=self._drain,
                args=(core,),
                name=f"turbomqtt-broker-events-{core.listeners()[0][1]}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Closes every listener and connection and ends every task. Idempotent."""
        with self._lock:
            core, self._core = self._core, None
            thread, self._thread = self._thread, None
        if core is None:
            return
        core.stop(_STOP_TIMEOUT)
        if thread is not None and thread is not threading.current_thread():
            thread.join(_STOP_TIMEOUT)

    @property
    def running(self) -> bool:
        core = self._core
        return core is not None and core.is_running()

    def __enter__(self) -> Broker:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Broker:  # noqa: PYI034
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.stop)

    def __del__(self) -> None:
        core = getattr(self, "_core", None)
        if core is not None:
            core.stop(0.0)

    def __repr__(self) -> str:
        state = f"url={self.url!r}" if self._core is not None else "stopped"
        return f"<turbomqtt.Broker {state}>"

    # -- introspection -------------------------------------------------------------

    def _running_core(self) -> _core.BrokerCore:
        core = self._core
        if core is None:
            raise RuntimeError("the broker is not running; call start() first")
        return core

    @property
    def listeners(self) -> list[dict[str, Any]]:
        """The bound listeners: dicts with host, port, transport and tls."""
        return [
            {"host": h, "port": p, "transport": t, "tls": tls}
            for (h, p, t, tls) in self._running_core().listeners()
        ]

    @property
    def ports(self) -> list[int]:
        """The real port of every listener, in configuration order."""
        return [p for (_h, p, _t, _tls) in self._running_core().listeners()]

    @property
    def port(self) -> int:
        """The real port of the first listener."""
        return self.ports[0]

    @property
    def host(self) -> str:
        return str(self._running_core().listeners()[0][0])

    @property
    def url(self) -> str:
        """``mqtt://host:port`` (``mqtts``, ``ws``, ``wss``) of the first listener."""
        h, p, transport, tls = self._running_core().listeners()[0]
        scheme = {("tcp", False): "mqtt", ("tcp", True): "mqtts"}.get(
            (transport, tls), "wss" if tls else "ws"
        )
        host = f"[{h}]" if ":" in h else h
        return f"{scheme}://{host}:{p}"

    def stats(self) -> dict[str, int]:
        """Counters: clients, sessions, subscriptions, messages and bytes in and out."""
        return dict(self._running_core().stats())

    def clients(self) -> list[dict[str, Any]]:
        """One dict per connected client: client_id, username, address, protocol, ..."""
        return list(self._running_core().clients())

    def publish(
        self,
        topic: str,
        payload: bytes | bytearray | memoryview | str | float | None = None,
        qos: int = 0,
        retain: bool = False,
    ) -> int:
        """Publishes a message as the broker; returns the number of sessions it went to."""
        if payload is None:
            data = b""
        elif isinstance(payload, str):
            data = payload.encode("utf-8")
        elif isinstance(payload, (bytes, bytearray, memoryview)):
            data = bytes(payload)
        elif isinstance(payload, (int, float)) and not isinstance(payload, bool):
            data = str(payload).encode("ascii")
        else:
            raise TypeError("payload must be str, bytes, bytearray, int, float or None")
        if qos not in (0, 1, 2):
            raise ValueError("qos must be 0, 1 or 2")
        return int(self._running_core().publish(topic, data, qos, bool(retain)))

    # -- the event thread ----------------------------------------------------------

    def _drain(self, core: _core.BrokerCore) -> None:
        while True:
            events = core.wait_events(0.25)
            if events is None:
                return
            for event in events:
                try:
                    self._dispatch(core, event)
                except Exception:
                    logger.exception("turbomqtt broker: error in a Python hook")

    def _dispatch(self, core: _core.BrokerCore, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "log":
            logger.log(_LEVELS.get(event[1], logging.INFO), "%s", event[2])
        elif kind == "message":
            if self._on_message is not None:
                self._on_message(BrokerMessage(*event[1:]))
        elif kind == "auth":
            _, request_id, client_id, username, password = event
            ok = False
            try:
                if self._auth_callback is not None:
                    ok = bool(self._auth_callback(client_id, username, password))
            finally:
                core.auth_reply(request_id, ok)
        elif kind == "enhanced_auth":
            _, request_id, client_id, method, data = event
            answer: tuple[str, bytes | None, int] = ("failure", None, 0x87)
            try:
                hook = self._enhanced_auth.get(method)
                if hook is not None:
                    answer = _auth_answer(hook(client_id, method, data))
            finally:
                core.enhanced_auth_reply(request_id, *answer)


OPTIONS: dict[str, tuple[Any, str]] = _options_of(Broker.__init__)
"""Every keyword option of `Broker`: ``name -> (default, meaning)``, read off the
parameters of ``Broker.__init__`` and their ``:param:`` lines, so that an option is
added in one place."""


def _auth_answer(result: Any) -> tuple[str, bytes | None, int]:
    """An enhanced authentication hook's result as (step, data, failure code)."""
    if result is True:
        return ("success", None, 0)
    if result is False or result is None:
        return ("failure", None, 0x87)
    if isinstance(result, tuple) and len(result) == 2:
        step, value = result
        if step in ("continue", "success"):
            if value is not None and not isinstance(value, (bytes, bytearray, memoryview)):
                raise TypeError(f"authentication data must be bytes, not {type(value).__name__}")
            return (step, None if value is None else bytes(value), 0)
        if step == "failure":
            code = 0x87 if value is None else int(value)
            if not 0x80 <= code <= 0xFF:
                raise ValueError(f"failure reason code must be 0x80..0xFF, not {code:#x}")
            return ("failure", None, code)
    raise TypeError(
        "an enhanced_auth hook returns True, False, None or a tuple "
        "('continue'|'success', data) / ('failure', code)"
    )
