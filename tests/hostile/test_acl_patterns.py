"""A client id or user name with MQTT wildcards must not widen `%c` / `%u` ACL patterns.

Under `pattern readwrite devices/%c/#`, a client that calls itself `#` or `+` would get
the filter `devices/#/#` or `devices/+/#` and, with a naive substitution, the topics of
every device (the CVE-2017-7650 class). mosquitto 2.0.11 denies every pattern grant to a
client whose id or user name contains `+` or `#` (`security_default.c`); so do we. The
same probes against mosquitto 2.0.11 give the same verdicts.
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
        "pattern readwrite devices/%c/#\n"
        "pattern readwrite homes/%u/#\n"
        "user mallory\n"
        "topic readwrite mallory/#\n"
    )
    with Broker(port=0, acl_file=acl, sys_interval=0) as b:
        yield b


def _marker_first(victim: Peer, topic: str) -> None:
    """The victim's own marker is the first message it gets: nothing the attacker
    published before it (and acknowledged) was routed to the victim."""
    victim.publish(topic, b"marker", 1)
    m = victim.get()
    assert (m.topic, m.payload) == (topic, b"marker"), f"leaked: {m.topic} {m.payload!r}"


@pytest.mark.parametrize("protocol", [V311, V5])
@pytest.mark.parametrize("wild_id", ["#", "+", "a+b", "x#"])
def test_wildcard_client_id_gets_no_pattern_access(broker, protocol, wild_id):
    victim = Peer(broker.port, "d1", V5).connect()
    assert victim.subscribe("devices/d1/#", 1) == [1]
    attacker = Peer(broker.port, wild_id, protocol).connect()
    own = wild_id.replace("#", "x").replace("+", "x")
    failure = 0x87 if protocol == V5 else 0x80
    # Reading: neither the widened filter nor the victim's literal topics.
    assert attacker.subscribe([("devices/#", 1), ("devices/d1/cmd", 1)]) == [failure, failure]
    # Writing: the attacker's PUBLISH into the victim's tree is not routed.
    attacker.publish("devices/d1/cmd", b"open the door", 1)
    attacker.publish(f"devices/{own}/x", b"widened", 1)
    _marker_first(victim, "devices/d1/marker")
    victim.publish("devices/d1/cmd", b"private", 1)
    assert victim.get().payload == b"private"
    attacker.get_none(0.2)
    attacker.disconnect()
    victim.disconnect()


@pytest.mark.parametrize("wild_user", ["#", "+", "al+ce"])
def test_wildcard_username_gets_no_pattern_access(broker, wild_user):
    victim = Peer(broker.port, "home-owner", V5).connect(username="alice")
    assert victim.subscribe("homes/alice/#", 1) == [1]
    attacker = Peer(broker.port, "intruder", V311).connect(username=wild_user)
    assert attacker.subscribe("homes/alice/door", 1) == [0x80]
    attacker.publish("homes/alice/door", b"unlock", 1)
    _marker_first(victim, "homes/alice/marker")
    attacker.disconnect()
    victim.disconnect()


def test_literal_ids_keep_their_pattern_access(broker):
    """The refusal is for wildcards only: ordinary ids and user names keep their own
    subtree (and only it)."""
    dev = Peer(broker.port, "d-7", V311).connect(username="bob")
    assert dev.subscribe([("devices/d-7/#", 1), ("homes/bob/#", 1), ("devices/d1/#", 1)]) == [
        1,
        1,
        0x80,
    ]
    dev.publish("devices/d-7/t", b"own", 1)
    assert dev.get().payload == b"own"
    dev.publish("homes/bob/t", b"home", 1)
    assert dev.get().payload == b"home"
    dev.disconnect()


def test_wildcard_id_keeps_its_user_rules(broker):
    """mosquitto checks a user's own `topic` rules before the patterns: a wildcard id
    loses the pattern grants, not what its user was given by name."""
    m = Peer(broker.port, "#", V5).connect(username="mallory")
    assert m.subscribe([("mallory/in", 1), ("devices/#", 1)]) == [1, 0x87]
    m.publish("mallory/in", b"mine", 1)
    assert m.get().payload == b"mine"
    m.disconnect()
