"""MQTT 5 properties as a plain dict, and their wire form (§2.2.2).

The core takes and gives properties exactly as on the wire (variable byte integer
length, then identifier/value pairs). Users pass a ``dict`` with snake_case names
(``{"user_property": [("k", "v")], "message_expiry_interval": 60}``), the wire
``bytes``, or anything with a ``pack()`` method (paho's ``Properties``).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, Union

__all__ = ["PropertiesArg", "ReceivedProperties", "decode_properties", "encode_properties"]

# name: (identifier, kind); kinds: b byte, h two-byte int, i four-byte int,
# v variable byte integer, s UTF-8 string, d binary data, p UTF-8 string pair.
_SPEC: dict[str, tuple[int, str]] = {
    "payload_format_indicator": (0x01, "b"),
    "message_expiry_interval": (0x02, "i"),
    "content_type": (0x03, "s"),
    "response_topic": (0x08, "s"),
    "correlation_data": (0x09, "d"),
    "subscription_identifier": (0x0B, "v"),
    "session_expiry_interval": (0x11, "i"),
    "assigned_client_identifier": (0x12, "s"),
    "server_keep_alive": (0x13, "h"),
    "authentication_method": (0x15, "s"),
    "authentication_data": (0x16, "d"),
    "request_problem_information": (0x17, "b"),
    "will_delay_interval": (0x18, "i"),
    "request_response_information": (0x19, "b"),
    "response_information": (0x1A, "s"),
    "server_reference": (0x1C, "s"),
    "reason_string": (0x1F, "s"),
    "receive_maximum": (0x21, "h"),
    "topic_alias_maximum": (0x22, "h"),
    "topic_alias": (0x23, "h"),
    "maximum_qos": (0x24, "b"),
    "retain_available": (0x25, "b"),
    "user_property": (0x26, "p"),
    "maximum_packet_size": (0x27, "i"),
    "wildcard_subscription_available": (0x28, "b"),
    "subscription_identifier_available": (0x29, "b"),
    "shared_subscription_available": (0x2A, "b"),
}
_BY_ID = {ident: (name, kind) for name, (ident, kind) in _SPEC.items()}
# Properties that may appear more than once are always lists.
_MULTI = {"user_property", "subscription_identifier"}

PropertiesArg = Union[Mapping[str, Any], bytes, bytearray, None, Any]

# Spec names as paho-mqtt's Properties spells them ("ResponseTopic") -> our keys.
_BY_SPEC_NAME = {"".join(w.capitalize() for w in name.split("_")): name for name in _SPEC}


class ReceivedProperties(dict):  # type: ignore[type-arg]
    """Received MQTT 5 properties: a ``dict`` keyed by snake_case names
    (``props["response_topic"]``), also readable by the spec names paho-mqtt's
    ``Properties`` uses (``props.ResponseTopic``, ``props.UserProperty``), so code
    written for aiomqtt's ``message.properties`` keeps working. ``pack()`` gives the
    wire form, so the object can be passed back wherever properties are accepted."""

    __slots__ = ("_wire",)
    _wire: bytes | None  # the received wire form; unset for a dict built by hand

    def __getattr__(self, name: str) -> Any:
        key = _BY_SPEC_NAME.get(name)
        if key is None or key not in self:
            raise AttributeError(name)
        return self[key]

    def pack(self) -> bytes:
        wire: bytes | None = getattr(self, "_wire", None)
        if wire is not None:
            return wire
        return encode_properties(dict(self)) or b"\x00"


def _varint(n: int) -> bytes:
    if not 0 <= n <= 268_435_455:
        raise ValueError(f"variable byte integer out of range: {n}")
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    for _ in range(4):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ValueError("malformed variable byte integer")


def _utf8(value: Any) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return struct.pack("!H", len(raw)) + raw


def _encode_one(ident: int, kind: str, value: Any) -> bytes:
    head = _varint(ident)
    if kind == "b":
        return head + struct.pack("!B", int(value))
    if kind == "h":
        return head + struct.pack("!H", int(value))
    if kind == "i":
        return head + struct.pack("!I", int(value))
    if kind == "v":
        return head + _varint(int(value))
    if kind == "s":
        return head + _utf8(value)
    if kind == "d":
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        return head + struct.pack("!H", len(raw)) + raw
    key, val = value
    return head + _utf8(key) + _utf8(val)


def encode_properties(props: PropertiesArg) -> bytes | None:
    """The wire form of ``props`` (None stays None)."""
    if props is None:
        return None
    if isinstance(props, (bytes, bytearray, memoryview)):
        return bytes(props)
    if hasattr(props, "pack") and not isinstance(props, Mapping):
        return bytes(props.pack())
    body = bytearray()
    for name, value in props.items():
        try:
            ident, kind = _SPEC[name]
        except KeyError:
            raise ValueError(f"unknown MQTT 5 property {name!r}") from None
        if (
            name in _MULTI
            and isinstance(value, (list, tuple))
            and not (name == "user_property" and len(value) == 2 and isinstance(value[0], str))
        ):
            for item in value:
                body += _encode_one(ident, kind, item)
        else:
            body += _encode_one(ident, kind, value)
    return _varint(len(body)) + bytes(body)


def decode_properties(wire: bytes | None) -> ReceivedProperties:
    """The dict form of a wire properties section (empty for None)."""
    out = ReceivedProperties()
    out._wire = wire
    if not wire:
        return out
    length, pos = _read_varint(wire, 0)
    end = pos + length
    while pos < end:
        ident, pos = _read_varint(wire, pos)
        name, kind = _BY_ID[ident]
        value: Any
        if kind == "b":
            value = wire[pos]
            pos += 1
        elif kind == "h":
            (value,) = struct.unpack_from("!H", wire, pos)
            pos += 2
        elif kind == "i":
            (value,) = struct.unpack_from("!I", wire, pos)
            pos += 4
        elif kind == "v":
            value, pos = _read_varint(wire, pos)
        elif kind in "sd":
            (n,) = struct.unpack_from("!H", wire, pos)
            raw = wire[pos + 2 : pos + 2 + n]
            pos += 2 + n
            value = raw.decode("utf-8") if kind == "s" else bytes(raw)
        else:
            (n,) = struct.unpack_from("!H", wire, pos)
            key = wire[pos + 2 : pos + 2 + n].decode("utf-8")
            pos += 2 + n
            (m,) = struct.unpack_from("!H", wire, pos)
            val = wire[pos + 2 : pos + 2 + m].decode("utf-8")
            pos += 2 + m
            value = (key, val)
        if name in _MULTI:
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    return out
