"""Every delivery passes the subscriber's per-topic read check, retained ones included.

mosquitto 2.0.11 with the same acl_file: alice's `alice/#` brings the retained
`alice/public` only, and the reader's `public/#` brings `public/a` only (it checks
read access per retained message, as it does per live message).
"""

from __future__ import annotations

import pytest
from broker_support import RawPeer, packet, publish_packet, subscribe_packet

from hostile._retained_support import receive_publishes, retain_many

pytestmark = pytest.mark.timeout(60)

ACL = """\
user alice
topic readwrite alice/#
topic deny alice/secret

user reader
topic read public/+

user writer
topic readwrite #
"""


@pytest.fixture
def broker(mqtt_broker_factory, tmp_path):
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    return mqtt_broker_factory(sys_interval=0, acl_file=str(acl))


def nothing_more(p: RawPeer) -> None:
    """A ping answered next: nothing else was sent before it."""
    p.send(packet(0xC0, b""))
    assert p.expect(13) == b""


@pytest.mark.parametrize("qos", [0, 1])
def test_retained_messages_pass_the_read_check(broker, qos):
    retain_many(
        broker,
        broker.port,
        ["alice/secret", "alice/public", "public/a", "public/a/b"],
        username="writer",
    )
    alice = RawPeer(broker.port)
    alice.connect(client_id="alice", username="alice")
    alice.send(subscribe_packet("alice/#", qos))
    assert alice.expect(9)[-1] == qos
    assert [t for t, *_ in receive_publishes(alice, 1)] == ["alice/public"]
    nothing_more(alice)
    reader = RawPeer(broker.port)
    reader.connect(client_id="reader", username="reader")
    # `read public/+` lets the filter through (it may match permitted topics); each
    # message is then checked on its own topic.
    reader.send(subscribe_packet("public/#", qos))
    assert reader.expect(9)[-1] == qos
    assert [t for t, *_ in receive_publishes(reader, 1)] == ["public/a"]
    nothing_more(reader)
    alice.close()
    reader.close()


def test_live_messages_pass_the_read_check(broker):
    alice = RawPeer(broker.port)
    alice.connect(client_id="alice", username="alice")
    alice.send(subscribe_packet("alice/#", 1))
    alice.expect(9)
    reader = RawPeer(broker.port)
    reader.connect(client_id="reader", username="reader")
    reader.send(subscribe_packet("public/#", 1))
    reader.expect(9)
    writer = RawPeer(broker.port)
    writer.connect(client_id="writer", username="writer")
    for topic in ["alice/secret", "public/a/b", "alice/public", "public/a"]:
        writer.send(publish_packet(topic, b"live", qos=1))
        writer.expect(4)
    assert [t for t, *_ in receive_publishes(alice, 1)] == ["alice/public"]
    assert [t for t, *_ in receive_publishes(reader, 1)] == ["public/a"]
    nothing_more(alice)
    nothing_more(reader)
    for p in (alice, reader, writer):
        p.close()
