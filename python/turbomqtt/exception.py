"""Exceptions shared by the paho-compatible modules (mirrors ``paho.mqtt.exception``)."""


class MQTTException(Exception):
    """Base error of the MQTT modules (same class as ``properties.MQTTException``)."""


class MalformedPacket(MQTTException):
    """Received data cannot be parsed as the MQTT packet it claims to be."""
