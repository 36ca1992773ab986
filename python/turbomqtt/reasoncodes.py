"""MQTT 5.0 reason codes (mirrors ``paho.mqtt.reasoncodes``)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from turbomqtt.packettypes import PacketTypes

_P = PacketTypes

# Reason code -> {name: packet types that use that name}; MQTT 5.0 section 2.4 and the
# per-packet tables (3.2.2.2, 3.4.2.1, ..., 3.15.2.1).
_NAMES: dict[int, dict[str, list[int]]] = {
    0: {
        "Success": [_P.CONNACK, _P.PUBACK, _P.PUBREC, _P.PUBREL, _P.PUBCOMP, _P.UNSUBACK,
                    _P.AUTH],
        "Normal disconnection": [_P.DISCONNECT],
        "Granted QoS 0": [_P.SUBACK],
    },
    1: {"Granted QoS 1": [_P.SUBACK]},
    2: {"Granted QoS 2": [_P.SUBACK]},
    4: {"Disconnect with will message": [_P.DISCONNECT]},
    16: {"No matching subscribers": [_P.PUBACK, _P.PUBREC]},
    17: {"No subscription found": [_P.UNSUBACK]},
    24: {"Continue authentication": [_P.AUTH]},
    25: {"Re-authenticate": [_P.AUTH]},
    128: {"Unspecified error": [_P.CONNACK, _P.PUBACK, _P.PUBREC, _P.SUBACK, _P.UNSUBACK,
                                _P.DISCONNECT]},
    129: {"Malformed packet": [_P.CONNACK, _P.DISCONNECT]},
    130: {"Protocol error": [_P.CONNACK, _P.DISCONNECT]},
    131: {"Implementation specific error": [_P.CONNACK, _P.PUBACK, _P.PUBREC, _P.SUBACK,
                                            _P.UNSUBACK, _P.DISCONNECT]},
    132: {"Unsupported protocol version": [_P.CONNACK]},
    133: {"Client identifier not valid": [_P.CONNACK]},
    134: {"Bad user name or password": [_P.CONNACK]},
    135: {"Not authorized": [_P.CONNACK, _P.PUBACK, _P.PUBREC, _P.SUBACK, _P.UNSUBACK,
                             _P.DISCONNECT]},
    136: {"Server unavailable": [_P.CONNACK]},
    137: {"Server busy": [_P.CONNACK, _P.DISCONNECT]},
    138: {"Banned": [_P.CONNACK]},
    139: {"Server shutting down": [_P.DISCONNECT]},
    140: {"Bad authentication method": [_P.CONNACK, _P.DISCONNECT]},
    141: {"Keep alive timeout": [_P.DISCONNECT]},
    142: {"Session taken over": [_P.DISCONNECT]},
    143: {"Topic filter invalid": [_P.SUBACK, _P.UNSUBACK, _P.DISCONNECT]},
    144: {"Topic name invalid": [_P.CONNACK, _P.PUBACK, _P.PUBREC, _P.DISCONNECT]},
    145: {"Packet identifier in use": [_P.PUBACK, _P.PUBREC, _P.SUBACK, _P.UNSUBACK]},
    146: {"Packet identifier not found": [_P.PUBREL, _P.PUBCOMP]},
    147: {"Receive maximum exceeded": [_P.DISCONNECT]},
    148: {"Topic alias invalid": [_P.DISCONNECT]},
    149: {"Packet too large": [_P.CONNACK, _P.DISCONNECT]},
    150: {"Message rate too high": [_P.DISCONNECT]},
    151: {"Quota exceeded": [_P.CONNACK, _P.PUBACK, _P.PUBREC, _P.SUBACK, _P.DISCONNECT]},
    152: {"Administrative action": [_P.DISCONNECT]},
    153: {"Payload format invalid": [_P.PUBACK, _P.PUBREC, _P.DISCONNECT]},
    154: {"Retain not supported": [_P.CONNACK, _P.DISCONNECT]},
    155: {"QoS not supported": [_P.CONNACK, _P.DISCONNECT]},
    156: {"Use another server": [_P.CONNACK, _P.DISCONNECT]},
    157: {"Server moved": [_P.CONNACK, _P.DISCONNECT]},
    158: {"Shared subscription not supported": [_P.SUBACK, _P.DISCONNECT]},
    159: {"Connection rate exceeded": [_P.CONNACK, _P.DISCONNECT]},
    160: {"Maximum connect time": [_P.DISCONNECT]},
    161: {"Subscription identifiers not supported": [_P.SUBACK, _P.DISCONNECT]},
    162: {"Wildcard subscription not supported": [_P.SUBACK, _P.DISCONNECT]},
}

# (packet type, code) -> name, so creating a ReasonCode per acknowledgement stays cheap.
_NAME_OF: dict[tuple[int, int], str] = {
    (ptype, code): name
    for code, names in _NAMES.items()
    for name, ptypes in names.items()
    for ptype in ptypes
}
_CODE_OF: dict[tuple[int, str], int] = {(p, n): c for (p, c), n in _NAME_OF.items()}


@functools.total_ordering
class ReasonCode:
    """An MQTT 5.0 reason code: its value, and its name for a given packet type.

    Compares equal to its int value and to its name; orders against ints.
    """

    names: Mapping[int, dict[str, list[int]]] = MappingProxyType(_NAMES)

    def __init__(self, packetType: int, aName: str = "Success", identifier: int = -1):
        self.packetType = packetType
        if identifier == -1:
            if packetType == PacketTypes.DISCONNECT and aName == "Success":
                aName = "Normal disconnection"
            self.set(aName)
        else:
            self.value = identifier
            self.getName()  # validates the value for this packet type

    def __getName__(self, packetType: int, identifier: int) -> str:
        name = _NAME_OF.get((packetType, identifier)) if self.names is ReasonCode.names else None
        if name is not None:
            return name
        if identifier not in self.names:
            raise KeyError(identifier)
        entries = self.names[identifier]
        found = [n for n in entries if packetType in entries[n]]
        if len(found) != 1:
            raise ValueError(f"Expected exactly one name, found {found!r}")
        return found[0]

    def getId(self, name: str) -> int:
        """The numeric value of ``name`` for this packet type (KeyError when unknown)."""
        code = _CODE_OF.get((self.packetType, name)) if self.names is ReasonCode.names else None
        if code is not None:
            return code
        for code, entries in self.names.items():
            if name in entries and self.packetType in entries[name]:
                return code
        raise KeyError(f"Reason code name not found: {name}")

    def set(self, name: str) -> None:
        self.value = self.getId(name)

    def unpack(self, buffer: bytes | bytearray) -> int:
        self.value = self.getId(self.__getName__(self.packetType, buffer[0]))
        return 1

    def getName(self) -> str:
        """The name of the current value for this packet type."""
        return self.__getName__(self.packetType, self.value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, int):
            return self.value == other
        if isinstance(other, str):
            return other == str(self)
        if isinstance(other, ReasonCode):
            return self.value == other.value
        return False

    def __lt__(self, other: Any) -> bool:
        if isinstance(other, int):
            return self.value < other
        if isinstance(other, ReasonCode):
            return self.value < other.value
        return NotImplemented

    def __repr__(self) -> str:
        try:
            packet_name = PacketTypes.Names[self.packetType]
        except IndexError:
            packet_name = "Unknown"
        return f"ReasonCode({packet_name}, {self.getName()!r})"

    def __str__(self) -> str:
        return self.getName()

    def json(self) -> str:
        return self.getName()

    def pack(self) -> bytearray:
        return bytearray([self.value])

    @property
    def is_failure(self) -> bool:
        return self.value >= 0x80


class _CompatibilityIsInstance(type):
    # Any ReasonCode passes isinstance(x, ReasonCodes), as with paho's deprecated alias.
    def __instancecheck__(self, other: Any) -> bool:
        return isinstance(other, ReasonCode)


class ReasonCodes(ReasonCode, metaclass=_CompatibilityIsInstance):
    """Deprecated alias of ``ReasonCode``."""

    def __init__(self, *args: Any, **kwargs: Any):
        warnings.warn(
            "ReasonCodes is deprecated, use ReasonCode (singular) instead",
            category=DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(*args, **kwargs)
