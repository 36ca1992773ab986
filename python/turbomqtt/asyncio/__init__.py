"""``turbomqtt.asyncio``: a native asyncio MQTT 3.1/3.1.1/5.0 client on turbomqtt's Rust core.

::

    import turbomqtt.asyncio as mqtt

    async with mqtt.Client("localhost", reconnect=True) as client:
        async with client.subscription("sensors/+/temp", qos=1) as sub:
            await client.publish("sensors/kitchen/temp", "21.5", qos=1)
            async for message in sub:
                print(message.topic, message.payload)
"""

from turbomqtt.asyncio._client import (
    Client,
    ConnectionEventStream,
    MessageStream,
    PublishHandle,
    Subscription,
)
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
)
from turbomqtt.asyncio._properties import ReceivedProperties, decode_properties, encode_properties
from turbomqtt.asyncio._types import (
    ConnectionEvent,
    Message,
    ProtocolVersion,
    SubscribeOptions,
    TLSParameters,
    Topic,
    Will,
    topic_matches,
)

#: aiomqtt-style alias.
ConnectError = MqttConnectError

__all__ = [
    "Client",
    "ConnectError",
    "ConnectionEvent",
    "ConnectionEventStream",
    "ConnectionLostError",
    "Message",
    "MessageStream",
    "MqttCodeError",
    "MqttConnectError",
    "MqttError",
    "NotConnectedError",
    "ProtocolError",
    "ProtocolVersion",
    "PublishError",
    "PublishHandle",
    "QueueFullError",
    "ReceivedProperties",
    "RequestTimeoutError",
    "SubscribeError",
    "SubscribeOptions",
    "Subscription",
    "TLSParameters",
    "Topic",
    "UnsubscribeError",
    "Will",
    "decode_properties",
    "encode_properties",
    "topic_matches",
]
