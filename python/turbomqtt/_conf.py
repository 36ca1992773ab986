"""Broker configuration files: TOML (turbomqtt's own) and mosquitto.conf.

Both readers produce the same thing, the keyword options of `turbomqtt.Broker`, plus the
logging settings a mosquitto.conf carries. Every problem is a `ConfigError` whose message
is one line naming the file (and the line, where there is one), so the command line can
print it as it is.
"""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["ConfigError", "ConfigFile", "read_config", "validate_options"]

logger = logging.getLogger("turbomqtt.broker")


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file."""


@dataclass
class ConfigFile:
    """What a configuration file says: `Broker` options and logging settings."""

    path: str
    options: dict[str, Any]
    #: The most verbose logging level the file asks for (mosquitto's ``log_type``), if any.
    log_level: int | None = None
    #: Where log lines go (mosquitto's ``log_dest``): "stderr", "stdout" or ("file", path).
    log_dest: list[Any] = field(default_factory=list)
    #: One line per setting that was read but is not supported ("FILE:LINE: ...").
    warnings: list[str] = field(default_factory=list)


def read_config(path: str) -> ConfigFile:
    """Reads a configuration file: ``*.toml`` as TOML, anything else as mosquitto.conf."""
    path = os.fspath(path)
    if path.endswith(".toml"):
        return _read_toml(path)
    return _MosquittoConf(path).read()


# -- option checking, shared by both formats ------------------------------------------

#: Options whose type cannot be read off their default (which is None).
_NONE_DEFAULT_TYPES: dict[str, type] = {
    "listeners": list,
    "users": dict,
    "password_file": str,
    "acl_file": str,
    "max_session_expiry": int,
    "idle_park_after": float,
    "bridges": list,
}
#: Options that only Python code can give (callables).
_CODE_ONLY = {"auth_callback", "enhanced_auth", "on_message"}
_LISTENER_KEYS = {
    "host",
    "port",
    "transport",
    "path",
    "certfile",
    "keyfile",
    "cafile",
    "require_certificate",
}


def _options() -> dict[str, tuple[Any, str]]:
    from turbomqtt.broker import OPTIONS

    return OPTIONS


def _type_name(t: type) -> str:
    return {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }[t]


def _check_type(name: str, value: Any, expected: type) -> str | None:
    """None if ``value`` fits ``expected``, else what is wrong, in a few words."""
    if expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    if ok:
        return None
    return f"{name}: expected {_type_name(expected)}, got {value!r}"


def _did_you_mean(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def validate_options(options: dict[str, Any], where: str) -> None:
    """Checks option names and value types; raises `ConfigError` naming ``where``."""
    known = _options()
    for name, value in options.items():
        if name not in known or name in _CODE_ONLY:
            if name in _CODE_ONLY:
                raise ConfigError(f"{where}: {name} can only be given in Python code")
            raise ConfigError(f"{where}: unknown option {name!r}{_did_you_mean(name, known)}")
        if value is None:
            continue
        default = known[name][0]
        expected = _NONE_DEFAULT_TYPES.get(name, type(default))
        problem = _check_type(name, value, expected)
        if problem:
            raise ConfigError(f"{where}: {problem}")
    for i, listener in enumerate(options.get("listeners") or [], 1):
        if not isinstance(listener, dict):
            raise ConfigError(f"{where}: listeners[{i}]: expected a table, got {listener!r}")
        for key, value in listener.items():
            if key not in _LISTENER_KEYS:
                raise ConfigError(
                    f"{where}: listeners[{i}]: unknown key {key!r}"
                    f"{_did_you_mean(key, _LISTENER_KEYS)}"
                )
            expected = {"port": int, "require_certificate": bool}.get(key, str)
            problem = _check_type(f"listeners[{i}].{key}", value, expected)
            if problem:
                raise ConfigError(f"{where}: {problem}")
    for name, value in (options.get("users") or {}).items():
        if not isinstance(value, str):
            raise ConfigError(f"{where}: users.{name}: expected a string, got {value!r}")


# -- TOML -------------------------------------------------------------------------------


def _toml_module() -> Any:
    # Which of these ignores apply depends on the Python version and on tomli.
    try:
        import tomllib  # type: ignore[import-not-found, unused-ignore]
    except ModuleNotFoundError:  # Python < 3.11
        try:
            import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]
        except ModuleNotFoundError:
            from turbomqtt import _toml as tomllib  # type: ignore[no-redef, unused-ignore]
    return tomllib


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the configuration file: {e.strerror}") from None


def _read_toml(path: str) -> ConfigFile:
    data = _read_bytes(path)
    tomllib = _toml_module()
    try:
        config = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except ValueError as e:  # tomllib.TOMLDecodeError is a ValueError
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    validate_options(config, path)
    return ConfigFile(path, config)


# -- mosquitto.conf -----------------------------------------------------------------------

#: mosquitto keys read as they are, to a Broker option of a given type.
_DIRECT: dict[str, tuple[str, type]] = {
    "max_queued_messages": ("max_queued_messages", int),
    "max_queued_bytes": ("max_queued_bytes", int),
    "max_inflight_messages": ("max_inflight_messages", int),
    "max_keepalive": ("max_keepalive", int),
    "max_qos": ("max_qos", int),
    "retain_available": ("retain_available", bool),
    "sys_interval": ("sys_interval", float),
}

#: mosquitto keys that belong to the listener defined last (or to the default listener).
_LISTENER_TLS = {"certfile", "keyfile", "cafile"}

#: Bridge keys (inside a ``connection`` block), with their value type.
_BRIDGE_KEYS: dict[str, type] = {
    "address": list,
    "addresses": list,
    "round_robin": bool,
    "topic": list,
    "remote_username": str,
    "remote_password": str,
    "remote_clientid": str,
    "clientid": str,
    "local_clientid": str,
    "local_username": str,
    "local_password": str,
    "cleansession": bool,
    "local_cleansession": bool,
    "bridge_protocol_version": str,
    "try_private": bool,
    "notifications": bool,
    "notifications_local_only": bool,
    "notification_topic": str,
    "keepalive_interval": int,
    "restart_timeout": list,
    "start_type": str,
    "idle_timeout": int,
    "threshold": int,
    "bridge_cafile": str,
    "bridge_capath": str,
    "bridge_certfile": str,
    "bridge_keyfile": str,
    "bridge_insecure": bool,
    "bridge_max_packet_size": int,
    "bridge_outgoing_retain": bool,
    "bridge_attempt_unsubscribe": bool,
    "bridge_tls_version": str,
    "bridge_alpn": str,
    "bridge_bind_address": str,
    "bridge_identity": str,
    "bridge_psk": str,
    "bridge_require_ocsp": bool,
}

#: mosquitto 2.0 keys that turbomqtt reads but does not act on: one warning each.
_UNSUPPORTED = {
    "allow_duplicate_messages": "duplicate messages are always allowed",
    "allow_zero_length_clientid": "zero-length client ids follow the MQTT version's rules",
    "auth_plugin": "plugins are C libraries; use Broker(auth_callback=...) in Python",
    "auth_plugin_deny_special_chars": "plugins are not supported",
    "auto_id_prefix": "assigned client ids have a fixed prefix",
    "autosave_interval": "persistence is not supported yet",
    "autosave_on_changes": "persistence is not supported yet",
    "bind_interface": "bind to an address instead",
    "capath": "give the CA certificates as one cafile",
    "check_retain_source": "not supported",
    "ciphers": "the TLS cipher suites are rustls's defaults",
    "ciphers_tls1.3": "the TLS cipher suites are rustls's defaults",
    "clientid_prefixes": "not supported",
    "connection_messages": "connections are logged at -v (INFO)",
    "crlfile": "certificate revocation lists are not supported",
    "dhparamfile": "rustls needs no DH parameters",
    "http_dir": "the WebSocket listener serves no files",
    "log_facility": "syslog is not supported",
    "log_timestamp": "log lines always carry a timestamp",
    "log_timestamp_format": "log lines always carry a timestamp",
    "max_inflight_bytes": "in-flight messages are bounded by count",
    "memory_limit": "not supported",
    "message_size_limit": "deprecated in mosquitto; use max_packet_size",
    "mount_point": "not supported",
    "persistence_file": "persistence is not supported yet",
    "persistent_client_expiration": "use max_session_expiry in a TOML file",
    "pid_file": "not supported",
    "plugin": "plugins are C libraries; use Broker(auth_callback=...) in Python",
    "psk_file": "TLS-PSK is not supported",
    "psk_hint": "TLS-PSK is not supported",
    "queue_qos0_messages": "QoS 0 messages are not queued for offline clients",
    "retry_interval": "removed in mosquitto 1.5",
    "set_tcp_nodelay": "TCP_NODELAY is always set",
    "socket_domain": "give an IPv4 or IPv6 listen address instead",
    "tls_engine": "not supported",
    "tls_engine_kpass_sha1": "not supported",
    "tls_keyform": "keys are read as PEM",
    "tls_version": "TLS 1.2 and 1.3 are accepted",
    "upgrade_outgoing_qos": "not supported",
    "use_identity_as_username": "not supported",
    "use_subject_as_username": "not supported",
    "use_username_as_clientid": "not supported",
    "user": "the broker runs as the user that starts it",
    "websockets_headers_size": "not supported",
    "websockets_log_level": "WebSocket logging follows log_type",
}

#: mosquitto's log types, as the logging level that shows them.
_LOG_TYPES = {
    "debug": logging.DEBUG,
    "subscribe": logging.DEBUG,
    "unsubscribe": logging.DEBUG,
    "websockets": logging.DEBUG,
    "all": logging.DEBUG,
    "information": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

_BRIDGE_VERSIONS = {"mqttv31", "mqttv311", "mqttv50"}


class _MosquittoConf:
    """A mosquitto.conf reader with mosquitto 2.0's rules.

    One ``key value...`` per line, ``#`` comments on lines of their own. ``listener``
    starts a listener whose settings follow it; ``port`` and ``bind_address`` (and TLS
    settings before any ``listener``) configure the default listener; ``connection``
    starts a bridge whose settings follow it. With ``per_listener_settings false`` (the
    only mode supported) authentication settings apply to every listener wherever they
    stand. As in mosquitto 2.0, ``allow_anonymous`` defaults to false once a listener is
    configured, and to true when the file configures none (a local-only broker).
    """

    def __init__(self, path: str) -> None:
        self.top = path
        self.options: dict[str, Any] = {}
        self.default: dict[str, Any] = {}
        self.listeners: list[dict[str, Any]] = []
        self.current: dict[str, Any] | None = None  # the listener settings now apply to
        self.bridges: list[dict[str, Any]] = []
        self.bridge: dict[str, Any] | None = None
        self.max_connections: list[tuple[str, int]] = []
        self.log_levels: list[int] = []
        self.log_dest: list[Any] = []
        self.warnings: list[str] = []
        self.where = path
        self.persistence = False
        self.reading: list[str] = []  # the files being read, outermost first

    def read(self) -> ConfigFile:
        self._read_file(self.top)
        return self._finish()

    def _read_file(self, path: str) -> None:
        real = os.path.realpath(path)
        if real in self.reading:
            raise self._fail(f"include_dir: {path} includes itself")
        self.reading.append(real)
        try:
            self._read_lines(path)
        finally:
            self.reading.pop()

    def _read_lines(self, path: str) -> None:
        data = _read_bytes(path)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            self.where = f"{path}:{number}"
            key, *values = line.split()
            self._setting(key, values)

    # Helpers that read one value and name the place on failure.

    def _fail(self, message: str) -> ConfigError:
        return ConfigError(f"{self.where}: {message}")

    def _one(self, key: str, values: list[str]) -> str:
        if len(values) != 1:
            raise self._fail(f"{key}: expected one value, got {len(values)}")
        return values[0]

    def _int(self, key: str, values: list[str], low: int = 0, high: int = 2**31 - 1) -> int:
        text = self._one(key, values)
        try:
            value = int(text, 10)
        except ValueError:
            raise self._fail(f"{key}: expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise self._fail(f"{key}: {value} is out of range ({low} to {high})")
        return value

    def _float(self, key: str, values: list[str]) -> float:
        text = self._one(key, values)
        try:
            value = float(text)
        except ValueError:
            raise self._fail(f"{key}: expected a number, got {text!r}") from None
        if value < 0:
            raise self._fail(f"{key}: must not be negative")
        return value

    def _bool(self, key: str, values: list[str]) -> bool:
        text = self._one(key, values)
        if text not in ("true", "false"):
            raise self._fail(f"{key}: expected true or false, got {text!r}")
        return text == "true"

    def _warn(self, message: str) -> None:
        self.warnings.append(f"{self.where}: {message}")

    def _listener_target(self) -> dict[str, Any]:
        return self.current if self.current is not None else self.default

    def _setting(self, key: str, values: list[str]) -> None:
        if self.bridge is not None and key in _BRIDGE_KEYS:
            self._bridge_setting(key, values)
            return
        if key in _BRIDGE_KEYS:
            raise self._fail(f"{key}: a bridge setting outside a 'connection' block")
        if key in _DIRECT:
            name, kind = _DIRECT[key]
            if kind is bool:
                self.options[name] = self._bool(key, values)
            elif kind is float:
                self.options[name] = self._float(key, values)
            else:
                self.options[name] = self._int(key, values)
            return
        handler: Callable[[str, list[str]], None] | None = getattr(self, f"_k_{key}", None)
        if handler is not None:
            handler(key, values)
        elif key in _UNSUPPORTED:
            self._warn(f"{key} is not supported by turbomqtt and is ignored: {_UNSUPPORTED[key]}")
        else:
            known = [*_DIRECT, *_BRIDGE_KEYS, *_UNSUPPORTED, *_HANDLED]
            raise self._fail(f"unknown option {key!r}{_did_you_mean(key, known)}")

    # Listeners.

    def _k_listener(self, key: str, values: list[str]) -> None:
        if not 1 <= len(values) <= 2:
            raise self._fail("listener: expected a port and an optional address")
        port = self._int(key, values[:1], 0, 65535)
        if len(values) == 2 and (values[1].startswith("/") or port == 0 and "/" in values[1]):
            raise self._fail("listener: unix socket listeners are not supported")
        self.current = {"port": port, "host": values[1] if len(values) == 2 else "0.0.0.0"}
        self.listeners.append(self.current)
        self.bridge = None

    def _k_port(self, key: str, values: list[str]) -> None:
        self.default["port"] = self._int(key, values, 0, 65535)

    def _k_bind_address(self, key: str, values: list[str]) -> None:
        self.default["host"] = self._one(key, values)

    def _k_protocol(self, key: str, values: list[str]) -> None:
        value = self._one(key, values)
        if value == "mqtt":
            self._listener_target()["transport"] = "tcp"
        elif value == "websockets":
            self._listener_target()["transport"] = "websocket"
        else:
            raise self._fail(f"protocol: expected mqtt or websockets, got {value!r}")

    def _k_certfile(self, key: str, values: list[str]) -> None:
        self._listener_target()[key] = self._one(key, values)

    _k_keyfile = _k_certfile
    _k_cafile = _k_certfile

    def _k_require_certificate(self, key: str, values: list[str]) -> None:
        self._listener_target()[key] = self._bool(key, values)

    def _k_max_connections(self, key: str, values: list[str]) -> None:
        value = self._int(key, values, -1)
        self.max_connections.append((self.where, value))

    def _k_max_packet_size(self, key: str, values: list[str]) -> None:
        value = self._int(key, values, 0, 268435455)
        if value != 0 and value < 20:
            raise self._fail("max_packet_size: must be 0 (no limit) or at least 20")
        self.options["max_packet_size"] = value or 268435455

    def _k_max_topic_alias(self, key: str, values: list[str]) -> None:
        self.options["topic_alias_maximum"] = self._int(key, values, 0, 65535)

    # Security: global, as with per_listener_settings false.

    def _k_per_listener_settings(self, key: str, values: list[str]) -> None:
        if self._bool(key, values):
            raise self._fail(
                "per_listener_settings true is not supported: turbomqtt applies "
                "allow_anonymous, password_file and acl_file to every listener"
            )

    def _k_allow_anonymous(self, key: str, values: list[str]) -> None:
        self.options["allow_anonymous"] = self._bool(key, values)

    def _k_password_file(self, key: str, values: list[str]) -> None:
        self.options["password_file"] = self._one(key, values)

    def _k_acl_file(self, key: str, values: list[str]) -> None:
        self.options["acl_file"] = self._one(key, values)

    # Persistence: read, not yet acted on.

    def _k_persistence(self, key: str, values: list[str]) -> None:
        self.persistence = self._bool(key, values)
        if self.persistence:
            self._warn(
                "persistence true is not supported yet: sessions, queued and retained "
                "messages live in memory and do not survive a restart"
            )

    def _k_persistence_location(self, key: str, values: list[str]) -> None:
        self._one(key, values)

    # Files and logging.

    def _k_include_dir(self, key: str, values: list[str]) -> None:
        folder = self._one(key, values)
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(".conf"))
        except OSError as e:
            raise self._fail(f"include_dir: cannot read {folder!r}: {e.strerror}") from None
        where = self.where
        for name in names:
            self._read_file(os.path.join(folder, name))
        self.where = where

    def _k_log_type(self, key: str, values: list[str]) -> None:
        value = self._one(key, values)
        if value == "none":
            self.log_levels.append(logging.CRITICAL + 10)
        elif value in _LOG_TYPES:
            self.log_levels.append(_LOG_TYPES[value])
        else:
            raise self._fail(f"log_type: unknown type {value!r}")

    def _k_log_dest(self, key: str, values: list[str]) -> None:
        if not values:
            raise self._fail("log_dest: expected a destination")
        kind = values[0]
        if kind in ("stdout", "stderr"):
            self.log_dest.append(kind)
        elif kind == "file":
            if len(values) != 2:
                raise self._fail("log_dest file: expected one path")
            self.log_dest.append(("file", values[1]))
        elif kind == "none":
            self.log_dest.append("none")
        elif kind in ("syslog", "topic", "dlt"):
            self._warn(f"log_dest {kind} is not supported by turbomqtt and is ignored")
        else:
            raise self._fail(f"log_dest: unknown destination {kind!r}")

    # Bridges.

    def _k_connection(self, key: str, values: list[str]) -> None:
        name = self._one(key, values)
        if any(b["name"] == name for b in self.bridges):
            raise self._fail(f"connection: a bridge named {name!r} is defined twice")
        self.bridge = {"name": name, "_where": self.where}
        self.bridges.append(self.bridge)
        self.current = None

    def _bridge_setting(self, key: str, values: list[str]) -> None:
        assert self.bridge is not None
        bridge = self.bridge
        if key in ("address", "addresses"):
            if not values:
                raise self._fail(f"{key}: expected HOST[:PORT] ...")
            bridge["address"] = [self._address(v) for v in values]
        elif key == "topic":
            bridge.setdefault("topic", []).append(self._topic(values))
        elif key == "restart_timeout":
            if not 1 <= len(values) <= 2:
                raise self._fail("restart_timeout: expected BASE [CAP] or one value")
            bridge[key] = [self._int(key, [v], 1) for v in values]
        elif key == "bridge_protocol_version":
            value = self._one(key, values)
            if value not in _BRIDGE_VERSIONS:
                raise self._fail(f"{key}: expected mqttv31, mqttv311 or mqttv50, got {value!r}")
            bridge[key] = value
        elif key == "start_type":
            value = self._one(key, values)
            if value not in ("automatic", "lazy", "once"):
                raise self._fail(f"{key}: expected automatic, lazy or once, got {value!r}")
            bridge[key] = value
        else:
            kind = _BRIDGE_KEYS[key]
            if kind is bool:
                bridge[key] = self._bool(key, values)
            elif kind is int:
                bridge[key] = self._int(key, values)
            else:
                bridge["remote_clientid" if key == "clientid" else key] = self._one(key, values)

    def _address(self, text: str) -> str:
        _host, sep, port = text.rpartition(":")
        if not sep or "]" in port:
            return f"{text}:1883"
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise self._fail(f"address: bad port in {text!r}")
        return text

    def _topic(self, values: list[str]) -> dict[str, Any]:
        if not 1 <= len(values) <= 5 or len(values) == 4:
            raise self._fail(
                "topic: expected PATTERN [[[out|in|both] QOS] LOCAL_PREFIX REMOTE_PREFIX]"
            )

        def text(v: str) -> str:
            return "" if v == '""' else v

        topic: dict[str, Any] = {"pattern": text(values[0]), "direction": "out", "qos": 0}
        if len(values) >= 2:
            if values[1] not in ("in", "out", "both"):
                raise self._fail(f"topic: direction must be in, out or both, not {values[1]!r}")
            topic["direction"] = values[1]
        if len(values) >= 3:
            topic["qos"] = self._int("topic QOS", values[2:3], 0, 2)
        if len(values) == 5:
            topic["local_prefix"] = text(values[3])
            topic["remote_prefix"] = text(values[4])
        if not topic["pattern"] and not (topic.get("local_prefix") or topic.get("remote_prefix")):
            raise self._fail("topic: an empty pattern needs a local or remote prefix")
        return topic

    # The result.

    def _finish(self) -> ConfigFile:
        options = self.options
        self.where = self.top
        if self.listeners:
            if self.default:
                # mosquitto 2.0 opens the default listener too when `port` is set.
                if "port" in self.default:
                    self.listeners.insert(0, {"host": "0.0.0.0", **self.default})
                else:
                    self._warn("bind_address and TLS settings outside a listener need `port`")
            options["listeners"] = self.listeners
        elif self.default:
            host = self.default.pop("host", None)
            if "port" in self.default:
                options["port"] = self.default.pop("port")
            if host is not None:
                options["host"] = host
            if self.default:
                options["listeners"] = [
                    {"host": options.get("host", "127.0.0.1"), "port": options.get("port", 1883)}
                    | self.default
                ]
        configured = bool(self.listeners) or "port" in options
        options.setdefault("allow_anonymous", not configured)
        if self.max_connections:
            values = {v for _, v in self.max_connections}
            if len(values) > 1:
                self.warnings.append(
                    f"{self.max_connections[-1][0]}: max_connections differs between listeners;"
                    " turbomqtt applies one limit to the whole broker, the last one given"
                )
            last = self.max_connections[-1][1]
            options["max_connections"] = max(last, 0)
        if self.bridges:
            for bridge in self.bridges:
                where = bridge.pop("_where")
                if "address" not in bridge:
                    raise ConfigError(f"{where}: connection {bridge['name']}: no address given")
                if "topic" not in bridge:
                    raise ConfigError(f"{where}: connection {bridge['name']}: no topic given")
            options["bridges"] = self.bridges
        validate_options(options, self.top)
        visible = [lv for lv in self.log_levels if lv <= logging.CRITICAL]
        level = min(visible) if visible else (logging.CRITICAL + 10 if self.log_levels else None)
        return ConfigFile(self.top, options, level, self.log_dest, self.warnings)


#: Keys with a `_k_` handler, for "did you mean" suggestions.
_HANDLED = [name[3:] for name in dir(_MosquittoConf) if name.startswith("_k_")]
