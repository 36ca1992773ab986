"""MQTT packet type numbers (mirrors ``paho.mqtt.packettypes``)."""


class PacketTypes:
    """Packet type numbers (MQTT 5.0 section 2.1.2) and their display names.

    ``WILLMESSAGE`` is not a packet: it marks properties meant for the will message.
    """

    indexes = range(1, 16)

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15

    WILLMESSAGE = 99

    Names = (
        "reserved", "Connect", "Connack", "Publish", "Puback", "Pubrec", "Pubrel",
        "Pubcomp", "Subscribe", "Suback", "Unsubscribe", "Unsuback", "Pingreq",
        "Pingresp", "Disconnect", "Auth",
    )
