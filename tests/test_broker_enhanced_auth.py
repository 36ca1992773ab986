"""MQTT 5 enhanced authentication (§4.12) through `Broker(enhanced_auth=...)`.

paho-mqtt cannot drive AUTH exchanges, so these tests speak MQTT through a raw socket.
"""

from __future__ import annotations

import struct
import threading
from typing import Any

import pytest
from broker_support import (
    V5,
    Peer,
    RawPeer,
    disconnect_reason,
    mqtt_str,
    packet,
    publish_packet,
    subscribe_packet,
    varint,
)

METHOD = "TEST-CHALLENGE"


def auth_props(method: str | None = METHOD, data: bytes | None = None) -> bytes:
    out = b""
    if method is not None:
        out += bytes([0x15]) + mqtt_str(method)
    if data is not None:
        out += bytes([0x16]) + mqtt_str(data)
    return out


def auth_packet(code: int, method: str | None = METHOD, data: bytes | None = None) -> bytes:
    props = auth_props(method, data)
    return packet(0xF0, bytes([code]) + varint(len(props)) + props)


def parse_props(body: bytes) -> dict[int, Any]:
    """Authentication method (0x15) and data (0x16) of a property block at the front of
    `body`; other properties are skipped by their known widths."""
    mult, length, i = 1, 0, 0
    while True:
        b = body[i]
        length += (b & 0x7F) * mult
        mult *= 128
        i += 1
        if not b & 0x80:
            break
    end = i + length
    out: dict[int, Any] = {}
    widths = {
        0x11: 4,
        0x21: 2,
        0x22: 2,
        0x24: 1,
        0x25: 1,
        0x27: 4,
        0x28: 1,
        0x29: 1,
        0x2A: 1,
        0x13: 2,
    }
    while i < end:
        pid = body[i]
        i += 1
        if pid in (0x15, 0x16, 0x12, 0x1A, 0x1C, 0x1F):
            (n,) = struct.unpack("!H", body[i : i + 2])
            value = body[i + 2 : i + 2 + n]
            out[pid] = value.decode() if pid != 0x16 else value
            i += 2 + n
        elif pid == 0x26:  # user property: two strings
            for _ in range(2):
                (n,) = struct.unpack("!H", body[i : i + 2])
                i += 2 + n
        else:
            i += widths[pid]
    return out


def connack(body: bytes) -> tuple[int, dict[int, Any]]:
    return body[1], parse_props(body[2:])


class Hook:
    """A scripted enhanced authentication hook that records its calls."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str, bytes | None]] = []
        self.thread_names: list[str] = []

    def __call__(self, client_id: str, method: str, data: bytes | None) -> Any:
        self.calls.append((client_id, method, data))
        self.thread_names.append(threading.current_thread().name)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def make(factory, hook: Hook, **kw: Any):
    return factory(sys_interval=0, enhanced_auth={METHOD: hook}, **kw)


def raw_connect(
    port: int, data: bytes | None = b"hello", method: str = METHOD, client_id: str = "ea"
) -> tuple[RawPeer, tuple[int, bytes]]:
    raw = RawPeer(port)
    raw.send(connect_packet_v5(client_id, auth_props(method, data)))
    got = raw.read_packet()
    assert got is not None, "closed without an answer"
    return raw, got


def connect_packet_v5(client_id: str, props: bytes) -> bytes:
    var = mqtt_str("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 60)
    var += varint(len(props)) + props
    return packet(0x10, var + mqtt_str(client_id))


def test_single_step_success_echoes_the_method(mqtt_broker_factory):
    hook = Hook(True)
    broker = make(mqtt_broker_factory, hook)
    raw, (first, body) = raw_connect(broker.port, b"token")
    assert first >> 4 == 2
    code, props = connack(body)
    assert code == 0x00
    assert props[0x15] == METHOD
    assert 0x16 not in props
    assert hook.calls == [("ea", METHOD, b"token")]
    # The hook ran on the broker's event thread, not on a network thread.
    assert hook.thread_names[0].startswith("turbomqtt-broker-events")
    raw.send(subscribe_packet("ea/t", 0))
    raw.expect(9)
    raw.send(publish_packet("ea/t", b"in", 0))
    assert raw.expect(3).endswith(b"in")
    raw.close()


def test_challenge_response_then_success_with_data(mqtt_broker_factory):
    hook = Hook(("continue", b"server-first"), ("success", b"server-final"))
    broker = make(mqtt_broker_factory, hook)
    raw, (first, body) = raw_connect(broker.port, b"client-first")
    assert first == 0xF0, f"expected AUTH, got {first:#x}"
    assert body[0] == 0x18
    props = parse_props(body[1:])
    assert props == {0x15: METHOD, 0x16: b"server-first"}
    raw.send(auth_packet(0x18, data=b"client-final"))
    code, props = connack(raw.expect(2))
    assert code == 0x00
    assert props[0x15] == METHOD and props[0x16] == b"server-final"
    assert [c[2] for c in hook.calls] == [b"client-first", b"client-final"]
    assert [c["client_id"] for c in broker.clients()] == ["ea"]
    raw.close()


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (False, 0x87),
        (None, 0x87),
        (("failure", 0x8C), 0x8C),
        (("failure", None), 0x87),
        (RuntimeError("boom"), 0x87),
        ("not an answer", 0x87),
    ],
)
def test_failure_refuses_with_reason_code(mqtt_broker_factory, answer, code):
    broker = make(mqtt_broker_factory, Hook(answer))
    raw, (first, body) = raw_connect(broker.port)
    assert first >> 4 == 2
    assert connack(body)[0] == code
    assert raw.read_packet() is None, "a refused connection is closed"
    assert broker.clients() == []


def test_failure_after_a_challenge(mqtt_broker_factory):
    broker = make(mqtt_broker_factory, Hook(("continue", b"c"), ("failure", 0x87)))
    raw, (first, _) = raw_connect(broker.port)
    assert first == 0xF0
    raw.send(auth_packet(0x18, data=b"wrong"))
    assert connack(raw.expect(2))[0] == 0x87
    assert raw.read_packet() is None


def test_unknown_method_is_refused_with_0x8c(mqtt_broker_factory):
    hook = Hook()
    broker = make(mqtt_broker_factory, hook)
    _raw, (first, body) = raw_connect(broker.port, method="OTHER")
    assert first >> 4 == 2 and connack(body)[0] == 0x8C
    assert hook.calls == []


def test_enhanced_auth_bypasses_the_user_list(mqtt_broker_factory):
    broker = make(mqtt_broker_factory, Hook(True), allow_anonymous=False, users={"u": "p"})
    _raw, (_first, body) = raw_connect(broker.port)
    assert connack(body)[0] == 0x00
    # Without the method, the user list still applies.
    plain = Peer(broker.port, "plain", V5).connect(expect_success=False)
    assert plain.reason_code == 0x87
    plain.client.loop_stop()


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (publish_packet("t", b"x", 0), 0x82),
        (auth_packet(0x18, method="OTHER", data=b"x"), 0x82),
        (auth_packet(0x19, data=b"x"), 0x82),
        (packet(0xF0, b"\x18\x05\x15\x00"), 0x81),  # property runs past the packet
    ],
    ids=["publish", "other method", "reauth code", "malformed"],
)
def test_bad_reply_during_the_exchange_is_refused(mqtt_broker_factory, reply, code):
    broker = make(mqtt_broker_factory, Hook(("continue", b"c")))
    raw, (first, _) = raw_connect(broker.port)
    assert first == 0xF0
    raw.send(reply)
    got = raw.expect_closed()
    assert [p[0] >> 4 for p in got] == [2]
    assert got[0][1][1] == code


def connected(mqtt_broker_factory, *answers: Any) -> tuple[Any, Hook, RawPeer]:
    hook = Hook(True, *answers)
    broker = make(mqtt_broker_factory, hook)
    raw, (_first, body) = raw_connect(broker.port)
    assert connack(body)[0] == 0x00
    return broker, hook, raw


def test_reauthentication_challenge_and_success(mqtt_broker_factory):
    broker, hook, raw = connected(mqtt_broker_factory, ("continue", b"again?"), ("success", None))
    raw.send(auth_packet(0x19, data=b"re-1"))
    body = raw.expect(15)
    assert body[0] == 0x18 and parse_props(body[1:]) == {0x15: METHOD, 0x16: b"again?"}
    raw.send(auth_packet(0x18, data=b"re-2"))
    body = raw.expect(15)
    assert body[0] == 0x00 and parse_props(body[1:]) == {0x15: METHOD}
    assert [c[2] for c in hook.calls] == [b"hello", b"re-1", b"re-2"]
    # Still connected and served.
    raw.send(b"\xc0\x00")
    raw.expect(13)
    assert [c["client_id"] for c in broker.clients()] == ["ea"]


def test_packets_after_a_reauthentication_are_still_handled(mqtt_broker_factory):
    _broker, _hook, raw = connected(mqtt_broker_factory, True)
    # AUTH and PINGREQ in one write: the PINGREQ is answered at once, without waiting
    # for the hook (§4.12.1), and the hook's answer follows.
    raw.send(auth_packet(0x19, data=b"x") + b"\xc0\x00")
    raw.expect(13)
    assert raw.expect(15)[0] == 0x00


def test_failed_reauthentication_disconnects_only_that_client(mqtt_broker_factory):
    broker, _hook, raw = connected(mqtt_broker_factory, ("failure", 0x87))
    other = Peer(broker.port, "other", V5).connect()
    other.subscribe("o/#", 1)
    raw.send(auth_packet(0x19, data=b"bad"))
    assert disconnect_reason(raw.expect_closed()) == 0x87
    other.publish("o/t", b"fine", 1)
    assert other.get().payload == b"fine"
    other.disconnect()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (auth_packet(0x18, data=b"x"), 0x82),  # continue without our challenge
        (auth_packet(0x19, method="OTHER"), 0x82),
        (auth_packet(0x19, method=None), 0x82),
        (packet(0xF0, b"\x19\x09\x15\x00\x07ab"), 0x81),  # truncated method string
        (packet(0xF0, b"\x77\x00"), 0x82),  # not an AUTH reason code (the codec: 0x82)
    ],
    ids=["continue unasked", "other method", "no method", "truncated", "bad reason"],
)
def test_bad_auth_after_connect_closes_only_that_connection(mqtt_broker_factory, data, code):
    broker, _hook, raw = connected(mqtt_broker_factory)
    other = Peer(broker.port, "other", V5).connect()
    other.subscribe("o/#", 1)
    raw.send(data)
    assert disconnect_reason(raw.expect_closed()) == code
    other.publish("o/t", b"fine", 1)
    assert other.get().payload == b"fine"
    other.disconnect()


def test_hook_must_be_callable():
    import turbomqtt

    with pytest.raises(TypeError):
        turbomqtt.Broker(port=0, enhanced_auth={METHOD: "nope"})
    with pytest.raises(TypeError):
        turbomqtt.Broker(port=0, enhanced_auth=[METHOD])
