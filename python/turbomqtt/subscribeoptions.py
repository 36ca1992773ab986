"""MQTT 5.0 subscription options (mirrors ``paho.mqtt.subscribeoptions``)."""

from __future__ import annotations

from typing import Any


class MQTTException(Exception):
    """This module's own error class (distinct from ``turbomqtt.exception.MQTTException``,
    as in paho)."""


class SubscribeOptions:
    """Subscription options byte of MQTT 5.0 section 3.8.3.1.

    qos: 0, 1 or 2; noLocal: do not receive own publications; retainAsPublished: keep the
    publisher's retain flag; retainHandling: RETAIN_SEND_ON_SUBSCRIBE, RETAIN_SEND_IF_NEW_SUB
    or RETAIN_DO_NOT_SEND.
    """

    RETAIN_SEND_ON_SUBSCRIBE, RETAIN_SEND_IF_NEW_SUB, RETAIN_DO_NOT_SEND = range(3)
    names: list[str]

    def __init__(
        self,
        qos: int = 0,
        noLocal: bool = False,
        retainAsPublished: bool = False,
        retainHandling: int = RETAIN_SEND_ON_SUBSCRIBE,
    ) -> None:
        object.__setattr__(self, "names",
                           ["QoS", "noLocal", "retainAsPublished", "retainHandling"])
        self.QoS = qos
        self.noLocal = noLocal
        self.retainAsPublished = retainAsPublished
        self.retainHandling = retainHandling
        self._check()

    def _check(self) -> None:
        if self.retainHandling not in (0, 1, 2):
            raise AssertionError(
                f"Retain handling should be 0, 1 or 2, not {self.retainHandling}")
        if self.QoS not in (0, 1, 2):
            raise AssertionError(f"QoS should be 0, 1 or 2, not {self.QoS}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self.names:
            raise MQTTException(f"{name} Attribute name must be one of {self.names}")
        object.__setattr__(self, name, value)

    def pack(self) -> bytes:
        self._check()
        return bytes([(self.retainHandling << 4) | ((1 if self.retainAsPublished else 0) << 3)
                      | ((1 if self.noLocal else 0) << 2) | self.QoS])

    def unpack(self, buffer: bytes | bytearray) -> int:
        b0 = buffer[0]
        self.retainHandling = (b0 >> 4) & 0x03
        self.retainAsPublished = ((b0 >> 3) & 0x01) == 1
        self.noLocal = ((b0 >> 2) & 0x01) == 1
        self.QoS = b0 & 0x03
        self._check()
        return 1

    def __repr__(self) -> str:
        return str(self)

    def __str__(self) -> str:
        return (f"{{QoS={self.QoS}, noLocal={self.noLocal}, "
                f"retainAsPublished={self.retainAsPublished}, "
                f"retainHandling={self.retainHandling}}}")

    def json(self) -> dict[str, Any]:
        return {
            "QoS": self.QoS,
            "noLocal": self.noLocal,
            "retainAsPublished": self.retainAsPublished,
            "retainHandling": self.retainHandling,
        }
