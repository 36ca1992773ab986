"""MQTT 5 re-authentication (§4.12.1) does not stop the connection: while the hook
weighs an AUTH 0x19, the client's other packets and its deliveries keep flowing "using
the previous authentication". The client speaks through a raw socket (paho-mqtt cannot
send AUTH); the hook blocks on an Event the test releases only after it has seen the
connection work meanwhile."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from broker_support import (
    TIMEOUT,
    V5,
    Peer,
    RawPeer,
    ack_packet,
    disconnect_reason,
    offline,
    publish_packet,
    subscribe_packet,
)
from test_broker_enhanced_auth import METHOD, auth_packet, connack, parse_props, raw_connect

pytestmark = pytest.mark.timeout(60)

PINGREQ = b"\xc0\x00"


class BlockingHook:
    """Accepts the CONNECT at once; answers every later AUTH with the next of `answers`,
    but only once the test calls `release()`."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[bytes | None] = []
        self.entered = threading.Event()
        self._release = threading.Event()

    def __call__(self, client_id: str, method: str, data: bytes | None) -> Any:
        self.calls.append(data)
        if len(self.calls) == 1:
            return True
        self.entered.set()
        # Bounded: a failing test must not keep the broker's event thread forever.
        self._release.wait(TIMEOUT * 2)
        return self.answers.pop(0)

    def release(self) -> None:
        self._release.set()


@pytest.fixture
def reauth(mqtt_broker_factory):
    """(broker, hook factory, connect): connect() returns a raw v5 client authenticated
    with METHOD; every hook is released at teardown."""
    hooks: list[BlockingHook] = []
    state: dict[str, Any] = {}

    def start(*answers: Any) -> BlockingHook:
        hook = BlockingHook(*answers)
        hooks.append(hook)
        state["broker"] = mqtt_broker_factory(sys_interval=0, enhanced_auth={METHOD: hook})
        return hook

    def connect(client_id: str = "ra") -> RawPeer:
        raw, (_first, body) = raw_connect(state["broker"].port, client_id=client_id)
        assert connack(body)[0] == 0x00
        return raw

    yield state, start, connect
    for h in hooks:
        h.release()


def read_types(raw: RawPeer, n: int) -> dict[int, bytes]:
    """The next n packets, by packet type (for packets whose relative order the broker
    does not promise)."""
    got: dict[int, bytes] = {}
    for _ in range(n):
        p = raw.read_packet()
        assert p is not None, f"closed after {sorted(got)}"
        got[p[0] >> 4] = p[1]
    return got


def start_reauth(raw: RawPeer, hook: BlockingHook, data: bytes = b"re") -> None:
    raw.send(auth_packet(0x19, data=data))
    assert hook.entered.wait(TIMEOUT), "the hook was not asked"


def test_publish_subscribe_and_ping_flow_while_the_hook_decides(reauth):
    state, start, connect = reauth
    hook = start(("success", b"renewed"))
    raw = connect()
    other = Peer(state["broker"].port, "other", V5).connect()
    try:
        start_reauth(raw, hook)
        # SUBSCRIBE, then a QoS 1 PUBLISH round trip through the broker back to us.
        raw.send(subscribe_packet("ra/#", 1, pkid=1))
        assert raw.expect(9)[2:] == b"\x00\x01"
        raw.send(publish_packet("ra/self", b"mine", 1, pkid=2))
        got = read_types(raw, 2)
        assert got[4][:2] == b"\x00\x02", "PUBACK for our PUBLISH"
        assert got[3].endswith(b"mine")
        raw.send(ack_packet(4, int.from_bytes(got[3][9:11], "big")))
        # A delivery from another client, and a PINGREQ.
        other.publish("ra/other", b"theirs", 1)
        body = raw.expect(3)
        assert body.endswith(b"theirs")
        raw.send(ack_packet(4, int.from_bytes(body[10:12], "big")))
        raw.send(PINGREQ)
        raw.expect(13)
        assert hook.answers, "the hook has not answered yet"
        hook.release()
        body = raw.expect(15)
        assert body[0] == 0x00
        assert parse_props(body[1:]) == {0x15: METHOD, 0x16: b"renewed"}
        assert hook.calls == [b"hello", b"re"]
        # Still served after the re-authentication.
        raw.send(PINGREQ)
        raw.expect(13)
    finally:
        hook.release()
        other.disconnect()
        raw.close()


def test_a_continue_step_keeps_the_flow_too(reauth):
    _state, start, connect = reauth
    hook = start(("continue", b"prove it"), ("success", None))
    raw = connect()
    start_reauth(raw, hook)
    raw.send(PINGREQ)
    raw.expect(13)
    hook.release()
    body = raw.expect(15)
    assert body[0] == 0x18 and parse_props(body[1:])[0x16] == b"prove it"
    # The hook is asked again at once (already released) for the client's answer.
    raw.send(auth_packet(0x18, data=b"proof") + PINGREQ)
    assert read_types(raw, 2)[15][0] == 0x00
    assert hook.calls == [b"hello", b"re", b"proof"]
    raw.close()


@pytest.mark.parametrize("code", [0x19, 0x18], ids=["re-authenticate", "continue"])
def test_a_second_auth_before_the_answer_is_a_protocol_error(reauth, code):
    state, start, connect = reauth
    hook = start(True)
    raw = connect()
    other = Peer(state["broker"].port, "other", V5).connect()
    try:
        other.subscribe("o/#", 1)
        start_reauth(raw, hook)
        raw.send(auth_packet(code, data=b"again"))
        # §4.12.1: the client answers the server's AUTH; one sent before it is out
        # of sequence: DISCONNECT 0x82 (Protocol Error), then the socket closes.
        assert disconnect_reason(raw.expect_closed()) == 0x82
        hook.release()
        offline(state["broker"], "ra")
        # The late answer goes nowhere; the broker and other clients are unaffected.
        other.publish("o/t", b"fine", 1)
        assert other.get().payload == b"fine"
        assert [c["client_id"] for c in state["broker"].clients()] == ["other"]
    finally:
        hook.release()
        other.disconnect()


def test_a_failed_reauthentication_closes_with_the_hooks_code(reauth):
    _state, start, connect = reauth
    hook = start(("failure", 0x8C))
    raw = connect()
    start_reauth(raw, hook)
    raw.send(PINGREQ)
    raw.expect(13)
    hook.release()
    assert disconnect_reason(raw.expect_closed()) == 0x8C


def test_a_client_that_leaves_during_reauthentication_is_cleaned_up(reauth):
    state, start, connect = reauth
    hook = start(True, True)
    raw = connect()
    start_reauth(raw, hook)
    raw.close()
    offline(state["broker"], "ra")
    hook.release()
    # The broker still serves (the late answer is dropped).
    again = connect("ra2")
    again.send(PINGREQ)
    again.expect(13)
    again.close()
