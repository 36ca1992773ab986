"""Typed MQTT 5 properties on the asyncio client: turbomqtt's (and paho's) Properties
objects are accepted wherever properties are, and received properties are readable as
typed Message attributes and by paho's spec names."""

# ruff: noqa: F811 - pytest fixtures imported from _asyncio_support shadow their names
from __future__ import annotations

import asyncio
import uuid

import paho.mqtt.packettypes as paho_packettypes
import paho.mqtt.properties as paho_properties
import pytest
import turbomqtt.asyncio as mqtt
from _asyncio_support import any_broker  # noqa: F401 - fixture
from turbomqtt.packettypes import PacketTypes
from turbomqtt.properties import Properties

pytestmark = pytest.mark.timeout(30)


def publish_properties(cls, packet_types) -> object:
    props = cls(packet_types.PUBLISH)
    props.ContentType = "application/json"
    props.ResponseTopic = "reply/here"
    props.CorrelationData = b"\x00\x01"
    props.UserProperty = ("a", "1")
    props.UserProperty = ("b", "2")
    props.MessageExpiryInterval = 60
    props.PayloadFormatIndicator = 1
    return props


@pytest.mark.parametrize(
    "make",
    [
        lambda: publish_properties(Properties, PacketTypes),
        lambda: publish_properties(paho_properties.Properties, paho_packettypes.PacketTypes),
    ],
    ids=["turbomqtt", "paho"],
)
async def test_properties_objects_are_sent_and_read_back_typed(any_broker, make):
    topic = f"props/{uuid.uuid4().hex[:8]}"
    async with mqtt.Client("127.0.0.1", any_broker.port) as c, c.subscription(topic, 1) as sub:
        await c.publish(topic, "{}", qos=1, properties=make())
        m = await asyncio.wait_for(sub.get(), 5)
    assert m.content_type == "application/json"
    assert m.response_topic == "reply/here"
    assert m.correlation_data == b"\x00\x01"
    assert m.user_properties == [("a", "1"), ("b", "2")]
    assert m.payload_format_indicator == 1
    expiry = m.message_expiry_interval
    assert expiry is not None and 0 < expiry <= 60
    # aiomqtt code reads paho's attribute names.
    assert m.properties.ResponseTopic == "reply/here"
    assert m.properties.UserProperty == [("a", "1"), ("b", "2")]
    with pytest.raises(AttributeError):
        _ = m.properties.ContentTypo
    # The received wire form decodes with turbomqtt's Properties too.
    back = Properties(PacketTypes.PUBLISH)
    back.unpack(m.properties.pack())
    assert back.ContentType == "application/json"


async def test_received_properties_can_be_published_again(any_broker):
    topic = f"props2/{uuid.uuid4().hex[:8]}"
    async with mqtt.Client("127.0.0.1", any_broker.port) as c, c.subscription(f"{topic}/#") as sub:
        await c.publish(f"{topic}/a", "x", properties={"user_property": [("k", "v")]})
        first = await asyncio.wait_for(sub.get(), 5)
        await c.publish(f"{topic}/b", "y", properties=first.properties)
        second = await asyncio.wait_for(sub.get(), 5)
    assert second.user_properties == [("k", "v")]


async def test_messages_without_properties_have_empty_typed_views(any_broker):
    topic = f"props3/{uuid.uuid4().hex[:8]}"
    async with (
        mqtt.Client("127.0.0.1", any_broker.port, protocol=4) as c,
        c.subscription(topic) as sub,
    ):
        await c.publish(topic, "plain")
        m = await asyncio.wait_for(sub.get(), 5)
    assert m.properties == {}
    assert (m.content_type, m.response_topic, m.correlation_data) == (None, None, None)
    assert m.user_properties == [] and m.subscription_identifiers == []
    assert m.message_expiry_interval is None and m.payload_format_indicator is None
