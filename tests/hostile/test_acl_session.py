"""A session belongs to the user name that created it: another user connecting with
the same client id and clean_session=0 does not resume it.

alice connecting with bob's client id must not receive what was queued for bob, nor
inherit his subscriptions. We start a new session for her (CONNACK session present 0;
bob's session is discarded, as a clean start by her would do anyway). mosquitto 2.0.11
resumes the session for her (session present 1, subscriptions kept) and drops the queued
messages her ACL does not allow (`connection_check_acl` in `handle_connect.c`); a client
id is not a credential, so we keep sessions apart by user name instead.
"""

from __future__ import annotations

import pytest
from broker_support import V5, V311, Peer
from turbomqtt import Broker

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def broker(tmp_path):
    acl = tmp_path / "acl"
    acl.write_text(
        "user bob\ntopic readwrite bob/#\ntopic readwrite shared/#\n"
        "user alice\ntopic readwrite alice/#\ntopic readwrite shared/#\n"
    )
    with Broker(
        port=0,
        allow_anonymous=False,
        users={"alice": "a-pw", "bob": "b-pw"},
        acl_file=acl,
        sys_interval=0,
    ) as b:
        yield b


def _first_message_is_marker(peer: Peer, topic: str) -> None:
    assert peer.subscribe(topic, 1) == [1]
    peer.publish(topic, b"marker", 1)
    m = peer.get()
    assert (m.topic, m.payload) == (topic, b"marker"), f"leaked: {m.topic} {m.payload!r}"


@pytest.mark.parametrize("protocol", [V311, V5])
def test_other_user_does_not_resume_a_session(broker, protocol):
    props = None
    if protocol == V5:
        from broker_support import connect_props

        props = connect_props(SessionExpiryInterval=3600)
    bob = Peer(broker.port, "bobs-phone", protocol).connect(
        clean=False, username="bob", password="b-pw", properties=props
    )
    assert bob.subscribe([("bob/inbox", 1), ("shared/news", 1)]) == [1, 1]
    bob.disconnect()
    broker.publish("bob/inbox", b"for bob only", qos=1)
    broker.publish("shared/news", b"queued for bob", qos=1)

    alice = Peer(broker.port, "bobs-phone", protocol).connect(
        clean=False, username="alice", password="a-pw", properties=props
    )
    assert not alice.session_present, "alice got bob's session"
    # Neither bob's queued messages nor his subscriptions (shared/news is readable by
    # both: only the subscription would bring it).
    broker.publish("shared/news", b"after alice connected", qos=1)
    _first_message_is_marker(alice, "alice/marker")
    alice.disconnect()

    # bob's session was discarded when alice started hers; his next connection with
    # clean_session=0 finds alice's, which is not his either.
    bob2 = Peer(broker.port, "bobs-phone", protocol).connect(
        clean=False, username="bob", password="b-pw", properties=props
    )
    assert not bob2.session_present
    _first_message_is_marker(bob2, "bob/marker")
    bob2.disconnect()


def test_same_user_resumes_its_session(broker):
    bob = Peer(broker.port, "bobs-laptop", V311).connect(
        clean=False, username="bob", password="b-pw"
    )
    assert bob.subscribe("bob/inbox", 1) == [1]
    bob.disconnect()
    broker.publish("bob/inbox", b"kept", qos=1)
    again = Peer(broker.port, "bobs-laptop", V311).connect(
        clean=False, username="bob", password="b-pw"
    )
    assert again.session_present
    assert again.get().payload == b"kept"
    again.disconnect()
