"""MQTT 5.0 properties (mirrors ``paho.mqtt.properties``).

A ``Properties`` object holds property values as attributes named like the spec names
without spaces (``MessageExpiryInterval``); ``pack()``/``unpack()`` use the wire format of
MQTT 5.0 section 2.2.2 (a Variable Byte Integer length, then identifier/value pairs).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, Union

from turbomqtt.exception import MalformedPacket, MQTTException
from turbomqtt.packettypes import PacketTypes

__all__ = [
    "MQTTException", "MalformedPacket", "PacketTypes", "Properties", "VariableByteIntegers",
    "readBytes", "readInt16", "readInt32", "readUTF", "writeBytes", "writeInt16", "writeInt32",
    "writeUTF",
]

# What the readers accept: a received packet's bytes, or a buffer being built.
_Buffer = Union[bytes, bytearray]


def writeInt16(length: int) -> bytearray:
    return bytearray(struct.pack("!H", length))


def readInt16(buf: _Buffer) -> int:
    value: int = struct.unpack("!H", buf[:2])[0]
    return value


def writeInt32(length: int) -> bytearray:
    return bytearray(struct.pack("!L", length))


def readInt32(buf: _Buffer) -> int:
    value: int = struct.unpack("!L", buf[:4])[0]
    return value


def writeUTF(data: str | bytes) -> bytearray:
    if not isinstance(data, bytes):
        data = bytes(data, "utf-8")
    return writeInt16(len(data)) + data


def readUTF(buffer: _Buffer, maxlen: int) -> tuple[str, int]:
    """Read a length-prefixed UTF-8 string; returns (text, bytes consumed)."""
    if maxlen < 2:
        raise MalformedPacket("Not enough data to read string length")
    length = readInt16(buffer)
    if length > maxlen - 2:
        raise MalformedPacket("Length delimited string too long")
    text = buffer[2:2 + length].decode("utf-8")
    # MQTT 5.0 section 1.5.4: no surrogates, no U+0000, no BOM inside the string.
    for ch in text:
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:
            raise MalformedPacket("[MQTT-1.5.4-1] D800-DFFF found in UTF-8 data")
        if code == 0:
            raise MalformedPacket("[MQTT-1.5.4-2] Null found in UTF-8 data")
        if code == 0xFEFF:
            raise MalformedPacket("[MQTT-1.5.4-3] U+FEFF in UTF-8 data")
    return text, length + 2


def writeBytes(buffer: _Buffer) -> bytearray:
    return writeInt16(len(buffer)) + buffer


def readBytes(buffer: _Buffer, maxlen: int) -> tuple[_Buffer, int]:
    """Read length-prefixed binary data bounded by the property section (MQTT 5.0 1.4)."""
    if maxlen < 2:
        raise MalformedPacket("Not enough data to read binary data length")
    length = readInt16(buffer)
    if length > maxlen - 2:
        raise MalformedPacket("Length delimited binary data too long")
    return buffer[2:2 + length], length + 2


class VariableByteIntegers:
    """Variable Byte Integer codec (MQTT 5.0 section 1.5.5)."""

    @staticmethod
    def encode(x: int) -> bytes:
        """Encode 0 <= x <= 268435455 in 1 to 4 bytes."""
        if not 0 <= x <= 268435455:
            raise ValueError(f"Value {x!r} must be in range 0-268435455")
        out = bytearray()
        while True:
            digit = x % 128
            x //= 128
            if x > 0:
                digit |= 0x80
            out.append(digit)
            if x == 0:
                return bytes(out)

    @staticmethod
    def decode(buffer: _Buffer) -> tuple[int, int]:
        """Decode from the start of ``buffer``; returns (value, bytes used)."""
        value = 0
        multiplier = 1
        used = 0
        while True:
            # At most four bytes; running out of data mid-integer is malformed (1.5.5, 1.4).
            if used >= 4:
                raise MalformedPacket("Variable Byte Integer is more than four bytes long")
            if len(buffer) <= used:
                raise MalformedPacket("Not enough data to decode Variable Byte Integer")
            digit = buffer[used]
            used += 1
            value += (digit & 127) * multiplier
            if digit & 128 == 0:
                return value, used
            multiplier *= 128


_BYTE, _TWO, _FOUR, _VBI, _BINARY, _UTF8, _PAIR = range(7)
_TYPES = ["Byte", "Two Byte Integer", "Four Byte Integer", "Variable Byte Integer",
          "Binary Data", "UTF-8 Encoded String", "UTF-8 String Pair"]

_NAMES = {
    "Payload Format Indicator": 1,
    "Message Expiry Interval": 2,
    "Content Type": 3,
    "Response Topic": 8,
    "Correlation Data": 9,
    "Subscription Identifier": 11,
    "Session Expiry Interval": 17,
    "Assigned Client Identifier": 18,
    "Server Keep Alive": 19,
    "Authentication Method": 21,
    "Authentication Data": 22,
    "Request Problem Information": 23,
    "Will Delay Interval": 24,
    "Request Response Information": 25,
    "Response Information": 26,
    "Server Reference": 28,
    "Reason String": 31,
    "Receive Maximum": 33,
    "Topic Alias Maximum": 34,
    "Topic Alias": 35,
    "Maximum QoS": 36,
    "Retain Available": 37,
    "User Property": 38,
    "Maximum Packet Size": 39,
    "Wildcard Subscription Available": 40,
    "Subscription Identifier Available": 41,
    "Shared Subscription Available": 42,
}

_P = PacketTypes
_PUB = [_P.PUBLISH, _P.WILLMESSAGE]
# identifier -> (value type, packets it may appear in); MQTT 5.0 section 2.2.2.2.
_PROPERTIES = {
    1: (_BYTE, _PUB),
    2: (_FOUR, _PUB),
    3: (_UTF8, _PUB),
    8: (_UTF8, _PUB),
    9: (_BINARY, _PUB),
    11: (_VBI, [_P.PUBLISH, _P.SUBSCRIBE]),
    17: (_FOUR, [_P.CONNECT, _P.CONNACK, _P.DISCONNECT]),
    18: (_UTF8, [_P.CONNACK]),
    19: (_TWO, [_P.CONNACK]),
    21: (_UTF8, [_P.CONNECT, _P.CONNACK, _P.AUTH]),
    22: (_BINARY, [_P.CONNECT, _P.CONNACK, _P.AUTH]),
    23: (_BYTE, [_P.CONNECT]),
    24: (_FOUR, [_P.WILLMESSAGE]),
    25: (_BYTE, [_P.CONNECT]),
    26: (_UTF8, [_P.CONNACK]),
    28: (_UTF8, [_P.CONNACK, _P.DISCONNECT]),
    31: (_UTF8, [_P.CONNACK, _P.PUBACK, _P.PUBREC, _P.PUBREL, _P.PUBCOMP, _P.SUBACK,
                 _P.UNSUBACK, _P.DISCONNECT, _P.AUTH]),
    33: (_TWO, [_P.CONNECT, _P.CONNACK]),
    34: (_TWO, [_P.CONNECT, _P.CONNACK]),
    35: (_TWO, [_P.PUBLISH]),
    36: (_BYTE, [_P.CONNACK]),
    37: (_BYTE, [_P.CONNACK]),
    38: (_PAIR, [_P.CONNECT, _P.CONNACK, _P.PUBLISH, _P.PUBACK, _P.PUBREC, _P.PUBREL,
                 _P.PUBCOMP, _P.SUBSCRIBE, _P.SUBACK, _P.UNSUBSCRIBE, _P.UNSUBACK,
                 _P.DISCONNECT, _P.AUTH, _P.WILLMESSAGE]),
    39: (_FOUR, [_P.CONNECT, _P.CONNACK]),
    40: (_BYTE, [_P.CONNACK]),
    41: (_BYTE, [_P.CONNACK]),
    42: (_BYTE, [_P.CONNACK]),
}

# Compressed names in spec order (the order pack(), str() and json() use).
_ORDER = [(n.replace(" ", ""), i) for n, i in _NAMES.items()]
_IDENT = dict(_ORDER)
_NAME_OF_IDENT = {i: n for n, i in _NAMES.items()}
_MULTIPLE = {11, 38}  # Subscription Identifier and User Property may repeat
_INTERNAL = ("packetType", "types", "names", "properties")


class Properties:
    """MQTT 5.0 properties of one packet type; set them as attributes.

    Example::

        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = ("a", "2")
        props.UserProperty = ("c", "3")   # User Property accumulates into a list
    """

    types = _TYPES
    names = _NAMES
    properties = _PROPERTIES
    packetType: int

    if TYPE_CHECKING:
        # Property values are attributes set at run time (``props.ReasonString``): reading
        # one that is set gives its value, one that is not raises AttributeError.
        def __getattr__(self, name: str) -> Any: ...

    def __init__(self, packetType: int) -> None:
        object.__setattr__(self, "packetType", packetType)

    def allowsMultiple(self, compressedName: str) -> bool:
        return self.getIdentFromName(compressedName) in _MULTIPLE

    def getIdentFromName(self, compressedName: str) -> int:
        return _IDENT.get(compressedName, -1)

    def __setattr__(self, name: str, value: Any) -> None:
        name = name.replace(" ", "")
        if name in _INTERNAL:
            object.__setattr__(self, name, value)
            return
        ident = _IDENT.get(name)
        if ident is None:
            raise MQTTException(f"Property name must be one of {self.names.keys()}")
        if self.packetType not in _PROPERTIES[ident][1]:
            raise MQTTException(
                f"Property {name} does not apply to packet type "
                f"{PacketTypes.Names[self.packetType]}")
        # Value ranges of MQTT 5.0 section 3.1.2.11 and 3.3.2.3.
        if not isinstance(value, list):
            if name in ("ReceiveMaximum", "TopicAlias") and (value < 1 or value > 65535):
                raise MQTTException(f"{name} property value must be in the range 1-65535")
            if name == "TopicAliasMaximum" and (value < 0 or value > 65535):
                raise MQTTException(f"{name} property value must be in the range 0-65535")
            if name in ("MaximumPacketSize", "SubscriptionIdentifier") and (
                    value < 1 or value > 268435455):
                raise MQTTException(f"{name} property value must be in the range 1-268435455")
            if name in ("RequestResponseInformation", "RequestProblemInformation",
                        "PayloadFormatIndicator") and value != 0 and value != 1:
                raise MQTTException(f"{name} property value must be 0 or 1")
        if ident in _MULTIPLE:
            if not isinstance(value, list):
                value = [value]
            previous = self.__dict__.get(name)
            if previous is not None:
                value = previous + value
        object.__setattr__(self, name, value)

    def _present(self) -> list[tuple[str, int, Any]]:
        d = self.__dict__
        return [(n, i, d[n]) for n, i in _ORDER if n in d]

    def __str__(self) -> str:
        return "[" + ", ".join(f"{n} : {v}" for n, _, v in self._present()) + "]"

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name, _, value in self._present():
            if name == "CorrelationData" and isinstance(value, bytes):
                value = value.hex()
            data[name] = value
        return data

    def isEmpty(self) -> bool:
        d = self.__dict__
        return not any(n in d for n, _ in _ORDER)

    def clear(self) -> None:
        d = self.__dict__
        for name, _ in _ORDER:
            d.pop(name, None)

    def writeProperty(self, identifier: int, type: int, value: Any) -> bytes:
        out = VariableByteIntegers.encode(identifier)
        if type == _BYTE:
            return out + bytes([value])
        if type == _TWO:
            return out + writeInt16(value)
        if type == _FOUR:
            return out + writeInt32(value)
        if type == _VBI:
            return out + VariableByteIntegers.encode(value)
        if type == _BINARY:
            return out + writeBytes(value)
        if type == _UTF8:
            return out + writeUTF(value)
        if type == _PAIR:
            return out + writeUTF(value[0]) + writeUTF(value[1])
        return out

    def pack(self) -> bytes:
        """Serialise to wire format: VBI length, then the properties."""
        body = b""
        for name, ident, value in self._present():
            ptype = _PROPERTIES[ident][0]
            if ident in _MULTIPLE:
                for item in value:
                    body += self.writeProperty(ident, ptype, item)
            else:
                body += self.writeProperty(ident, ptype, value)
        return VariableByteIntegers.encode(len(body)) + body

    def readProperty(self, buffer: _Buffer, type: int, propslen: int) -> tuple[Any, int]:
        if type == _BYTE:
            return buffer[0], 1
        if type == _TWO:
            return readInt16(buffer), 2
        if type == _FOUR:
            return readInt32(buffer), 4
        if type == _VBI:
            return VariableByteIntegers.decode(buffer)
        if type == _BINARY:
            return readBytes(buffer, propslen)
        if type == _UTF8:
            return readUTF(buffer, propslen)
        if type == _PAIR:
            key, used = readUTF(buffer, propslen)
            val, used2 = readUTF(buffer[used:], propslen - used)
            return (key, val), used + used2
        return None, 0

    def getNameFromIdent(self, identifier: int) -> str | None:
        return _NAME_OF_IDENT.get(identifier)

    def unpack(self, buffer: _Buffer) -> tuple[Properties, int]:
        """Replace the content with the properties read from ``buffer``.

        Returns (self, bytes consumed).
        """
        self.clear()
        propslen, used = VariableByteIntegers.decode(buffer)
        buffer = buffer[used:]
        left = propslen
        while left > 0:
            ident, idlen = VariableByteIntegers.decode(buffer)
            buffer = buffer[idlen:]
            left -= idlen
            ptype = _PROPERTIES[ident][0]  # KeyError for an unknown identifier, as paho
            value, vlen = self.readProperty(buffer, ptype, left)
            buffer = buffer[vlen:]
            left -= vlen
            name = _NAME_OF_IDENT[ident]
            compressed = name.replace(" ", "")
            if ident not in _MULTIPLE and compressed in self.__dict__:
                # paho's message text interpolates the builtin ``property``; kept identical.
                raise MQTTException(f"Property '{property}' must not exist more than once")
            setattr(self, name, value)
        return self, propslen + used
