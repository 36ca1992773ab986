"""A real mosquitto bridge (`connection`, `topic ... both`, `try_private true`, MQTT
3.1.1 or 5) connected to the embedded broker, and the same bridge connected to a second
mosquitto, to show the two remote brokers behave alike: the bridge does not get its own
messages back (else every message crossing the bridge would come back once as a
duplicate), and retained messages keep their retain flag across it."""

from __future__ import annotations

import queue

import pytest
from broker_support import V311, Peer
from conftest import MosquittoProcess

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.requires_mosquitto,
]


@pytest.fixture(params=["turbomqtt", "mosquitto"])
def remote_port(request, tmp_path) -> int:
    """The broker the bridge connects to."""
    if request.param == "turbomqtt":
        return request.getfixturevalue("mqtt_broker_factory")(sys_interval=0).port
    (tmp_path / "remote").mkdir()
    remote = MosquittoProcess(tmp_path / "remote").start()
    request.addfinalizer(remote.stop)
    return remote.port


@pytest.fixture(params=["mqttv311", "mqttv50"])
def local_port(request, tmp_path, remote_port) -> int:
    """A mosquitto bridging br/# both ways to the remote broker: MQTT 3.1.1 with the
    bridge bit, or MQTT 5 with no local and retain as published on its subscriptions."""
    (tmp_path / "local").mkdir()
    local = MosquittoProcess(
        tmp_path / "local",
        extra_config=(
            "connection tm\n"
            f"address 127.0.0.1:{remote_port}\n"
            "remote_clientid bridge-to-remote\n"
            f"bridge_protocol_version {request.param}\n"
            "try_private true\n"
            "cleansession true\n"
            "notifications false\n"
            "topic br/# both 1\n"
        ),
    ).start()
    yield local.port
    local.stop()


@pytest.fixture
def peers():
    made: list[Peer] = []
    yield made
    for p in made:
        p.disconnect()


def received(p: Peer, last: str) -> list[tuple[str, bytes, bool]]:
    """(topic, payload, retain) of what `p` gets up to `last`, without bridge probes."""
    seen: list[tuple[str, bytes, bool]] = []
    while not seen or seen[-1][0] != last:
        m = p.get()
        if m.topic != "br/probe":
            seen.append((m.topic, m.payload, bool(m.retain)))
    return seen


def wait_for_the_bridge(local: Peer, remote: Peer) -> None:
    """Until a message from the remote side arrives locally: the bridge is connected and
    its subscription on the remote broker is in place."""
    for _ in range(100):
        remote.publish("br/probe", b"", 1)
        try:
            while local.get(timeout=0.1).topic != "br/probe":
                pass
            return
        except queue.Empty:
            continue
    raise AssertionError("the bridge did not connect")


def test_messages_cross_the_bridge_once_in_each_direction(local_port, remote_port, peers):
    local = Peer(local_port, "local-sub", V311).connect()
    remote = Peer(remote_port, "remote-sub", V311).connect()
    peers += [local, remote]
    local.subscribe("br/#", 1)
    remote.subscribe("br/#", 1)
    wait_for_the_bridge(local, remote)

    local.publish("br/from-local", b"L", 1)
    local.publish("br/end-local", b"", 1)
    assert [t for t, _, _ in received(remote, "br/end-local")] == [
        "br/from-local",
        "br/end-local",
    ]
    # Both local messages have reached the remote broker: an echo of them to the bridge
    # is queued there before anything the remote side publishes now.
    remote.publish("br/from-remote", b"R", 1)
    remote.publish("br/end-remote", b"", 1)
    assert [t for t, _, _ in received(remote, "br/end-remote")] == [
        "br/from-remote",
        "br/end-remote",
    ]
    # Without no-local for the bridge on the remote broker, the local messages would
    # come back over the bridge and reach the local subscriber twice.
    assert [t for t, _, _ in received(local, "br/end-remote")] == [
        "br/from-local",
        "br/end-local",
        "br/from-remote",
        "br/end-remote",
    ]


def test_retained_messages_keep_their_flag_across_the_bridge(local_port, remote_port, peers):
    local = Peer(local_port, "local-sub", V311).connect()
    remote = Peer(remote_port, "remote-sub", V311).connect()
    peers += [local, remote]
    local.subscribe("br/#", 1)
    remote.subscribe("br/#", 1)
    wait_for_the_bridge(local, remote)

    # Published on the remote broker, retained there and, through the bridge (retain as
    # published), on the local one too.
    remote.publish("br/kept", b"state", 1, retain=True)
    assert received(local, "br/kept") == [("br/kept", b"state", False)]
    late = Peer(local_port, "late-local", V311).connect()
    peers.append(late)
    late.subscribe("br/kept", 1)
    assert received(late, "br/kept") == [("br/kept", b"state", True)]
