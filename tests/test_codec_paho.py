"""Differential test of the codec against the real paho-mqtt 2.2.0.

paho is driven through its public API against a raw loopback socket server that records
every byte it sends. Each recorded packet must decode in our codec to the fields we gave
paho, and our encoder must reproduce it byte for byte. The server's own replies
(CONNACK, SUBACK, PUBACK, ...) are produced by our encoder, so paho also checks the other
direction: it must accept them and report the fields we put in.
"""

from __future__ import annotations

import socket
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from turbomqtt import _core

TIMEOUT = 10.0

LEVELS = {mqtt.MQTTv31: 3, mqtt.MQTTv311: 4, mqtt.MQTTv5: 5}
NAMES = {
    1: "CONNECT",
    3: "PUBLISH",
    6: "PUBREL",
    8: "SUBSCRIBE",
    10: "UNSUBSCRIBE",
    12: "PINGREQ",
    14: "DISCONNECT",
}


def read_frame(conn: socket.socket) -> bytes | None:
    """One MQTT frame, framed by its remaining length; None at end of stream."""

    def exactly(n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    first = exactly(1)
    if first is None:
        return None
    header = first
    length, shift = 0, 0
    while True:
        b = exactly(1)
        if b is None:
            return None
        header += b
        length |= (b[0] & 0x7F) << shift
        shift += 7
        if not b[0] & 0x80:
            break
    body = exactly(length) if length else b""
    return None if body is None else header + body


def count_filters(frame: bytes, level: int, unsubscribe: bool) -> int:
    """How many filters a SUBSCRIBE/UNSUBSCRIBE carries, parsed independently of the codec."""
    i = 1
    while frame[i] & 0x80:
        i += 1
    i += 1 + 2  # end of remaining length, packet identifier
    if level == 5:
        plen, shift = 0, 0
        while True:
            b = frame[i]
            i += 1
            plen |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        i += plen
    n = 0
    while i < len(frame):
        i += 2 + int.from_bytes(frame[i : i + 2], "big") + (0 if unsubscribe else 1)
        n += 1
    return n


class RecordingServer:
    """Accepts one connection, records every frame, answers with our encoder."""

    def __init__(self, level: int, connack: dict | None = None) -> None:
        self.level = level
        self.connack = connack or {"type": "CONNACK", "code": 0}
        self.frames: list[bytes] = []
        self.cond = threading.Condition()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _reply(self, conn: socket.socket, fields: dict) -> None:
        conn.sendall(_core._codec_encode(fields, self.level))

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(TIMEOUT)
            while True:
                try:
                    frame = read_frame(conn)
                except OSError:
                    frame = None
                if frame is None:
                    break
                with self.cond:
                    self.frames.append(frame)
                    self.cond.notify_all()
                kind = frame[0] >> 4
                pkid = int.from_bytes(frame[2:4], "big") if len(frame) >= 4 else 0
                if kind == 1:
                    self._reply(conn, self.connack)
                elif kind == 3:
                    qos = (frame[0] >> 1) & 3
                    n = 1
                    while frame[n] & 0x80:
                        n += 1
                    topic_len = int.from_bytes(frame[n + 1 : n + 3], "big")
                    pkid_at = n + 3 + topic_len
                    pkid = int.from_bytes(frame[pkid_at : pkid_at + 2], "big")
                    if qos == 1:
                        self._reply(conn, {"type": "PUBACK", "pkid": pkid})
                    elif qos == 2:
                        self._reply(conn, {"type": "PUBREC", "pkid": pkid})
                elif kind == 6:
                    self._reply(conn, {"type": "PUBCOMP", "pkid": pkid})
                elif kind == 8:
                    n = count_filters(frame, self.level, unsubscribe=False)
                    codes = [min(i, 2) for i in range(n)]
                    self._reply(conn, {"type": "SUBACK", "pkid": pkid, "codes": codes})
                elif kind == 10:
                    n = count_filters(frame, self.level, unsubscribe=True)
                    self._reply(conn, {"type": "UNSUBACK", "pkid": pkid, "codes": [0] * n})
                elif kind == 12:
                    self._reply(conn, {"type": "PINGRESP"})
                elif kind == 14:
                    break

    def wait_for(self, kind: int, count: int = 1) -> list[bytes]:
        """The first `count` frames of packet type `kind`, waiting for them to arrive."""
        with self.cond:
            ok = self.cond.wait_for(
                lambda: sum(1 for f in self.frames if f[0] >> 4 == kind) >= count, TIMEOUT
            )
            assert ok, f"no {NAMES.get(kind, kind)} from paho; got {self.frames!r}"
            return [f for f in self.frames if f[0] >> 4 == kind][:count]

    def close(self) -> None:
        self.listener.close()
        self.thread.join(TIMEOUT)


def check(frame: bytes, level: int) -> dict:
    """Decodes paho's frame and re-encodes it: the bytes must be identical."""
    fields = _core._codec_decode(frame, 0 if frame[0] >> 4 == 1 else level)
    again = _core._codec_encode(fields, level)
    assert again == frame, f"{fields}\n paho: {frame.hex(' ')}\n ours: {again.hex(' ')}"
    return fields


class Session:
    """A paho client connected to a RecordingServer, its network loop running."""

    def __init__(self, protocol: int, connack: dict | None = None, keepalive: int = 62, **kw):
        self.level = LEVELS[protocol]
        self.server = RecordingServer(self.level, connack)
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="paho-diff", protocol=protocol
        )
        self.connected = threading.Event()
        self.connect_result: tuple = ()
        self.subscribed = threading.Event()
        self.suback: list = []
        self.unsubscribed = threading.Event()

        def on_connect(client, userdata, flags, reason_code, properties):
            self.connect_result = (flags, reason_code, properties)
            self.connected.set()

        def on_subscribe(client, userdata, mid, reason_codes, properties):
            self.suback = reason_codes
            self.subscribed.set()

        def on_unsubscribe(client, userdata, mid, reason_codes, properties):
            self.unsubscribed.set()

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_unsubscribe = on_unsubscribe
        self.keepalive = keepalive
        self.connect_kw = kw

    def __enter__(self):
        self.client.connect("127.0.0.1", self.server.port, keepalive=self.keepalive,
                            **self.connect_kw)
        self.client.loop_start()
        assert self.connected.wait(TIMEOUT), "paho did not accept our CONNACK"
        return self

    def __exit__(self, *exc) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.server.close()


PROTOCOLS = [mqtt.MQTTv31, mqtt.MQTTv311, mqtt.MQTTv5]
PROTO_IDS = ["3.1", "3.1.1", "5.0"]


def v5_props(packet_type: int, **values) -> Properties:
    props = Properties(packet_type)
    for name, value in values.items():
        setattr(props, name, value)
    return props


# ---------------------------------------------------------------- CONNECT


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=PROTO_IDS)
def test_connect_with_will_username_password(protocol):
    level = LEVELS[protocol]
    kw = {}
    s = Session(protocol, keepalive=62, **kw)
    if level == 5:
        will_props = v5_props(
            PacketTypes.WILLMESSAGE,
            WillDelayInterval=30,
            MessageExpiryInterval=600,
            ContentType="text/plain",
            UserProperty=[("who", "paho")],
        )
        s.client.will_set("status/paho", b"offline", qos=1, retain=True, properties=will_props)
        s.connect_kw["properties"] = v5_props(
            PacketTypes.CONNECT,
            SessionExpiryInterval=3600,
            ReceiveMaximum=50,
            MaximumPacketSize=1 << 20,
            TopicAliasMaximum=8,
            RequestResponseInformation=1,
            UserProperty=[("a", "1"), ("b", "2")],
        )
    else:
        s.client.will_set("status/paho", b"offline", qos=1, retain=True)
    s.client.username_pw_set("alice", "s3cret")
    with s:
        (frame,) = s.server.wait_for(1)
    d = check(frame, level)
    assert d["type"] == "CONNECT"
    assert d["protocol"] == level
    assert d["client_id"] == "paho-diff"
    assert d["keep_alive"] == 62
    assert d["clean_start"] is True
    assert d["username"] == "alice"
    assert d["password"] == b"s3cret"
    will = d["will"]
    assert (will["topic"], will["payload"], will["qos"], will["retain"]) == (
        "status/paho", b"offline", 1, True,
    )
    if level == 5:
        assert will["properties"] == {
            "will_delay_interval": 30,
            "message_expiry_interval": 600,
            "content_type": "text/plain",
            "user_properties": [("who", "paho")],
        }
        assert d["properties"] == {
            "session_expiry_interval": 3600,
            "receive_maximum": 50,
            "maximum_packet_size": 1 << 20,
            "topic_alias_maximum": 8,
            "request_response_information": 1,
            "user_properties": [("a", "1"), ("b", "2")],
        }
    else:
        assert d["properties"] == {} and will["properties"] == {}


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=PROTO_IDS)
def test_connect_minimal(protocol):
    level = LEVELS[protocol]
    with Session(protocol, keepalive=5) as s:
        (frame,) = s.server.wait_for(1)
    d = check(frame, level)
    assert d["will"] is None and d["username"] is None and d["password"] is None
    assert d["keep_alive"] == 5
    if level == 5:
        # paho writes an empty property length in every v5 CONNECT.
        assert d["properties"] == {}
        assert frame.endswith(b"\x00\x00\x09paho-diff")


def test_connect_username_without_password_v5():
    s = Session(mqtt.MQTTv5)
    s.client.username_pw_set("bob")
    with s:
        (frame,) = s.server.wait_for(1)
    d = check(frame, 5)
    assert d["username"] == "bob" and d["password"] is None


# ---------------------------------------------- CONNACK (ours) as paho reads it


def test_paho_reads_our_v5_connack_properties():
    connack = {
        "type": "CONNACK",
        "session_present": False,
        "code": 0,
        "properties": {
            "assigned_client_identifier": "auto-1",
            "topic_alias_maximum": 5,
            "receive_maximum": 20,
            "maximum_qos": 1,
            "retain_available": 1,
            "server_keep_alive": 30,
            "user_properties": [("server", "turbomqtt")],
        },
    }
    with Session(mqtt.MQTTv5, connack=connack) as s:
        flags, reason_code, props = s.connect_result
    assert reason_code == 0
    assert flags.session_present is False
    assert props.AssignedClientIdentifier == "auto-1"
    assert props.TopicAliasMaximum == 5
    assert props.ReceiveMaximum == 20
    assert props.MaximumQoS == 1
    assert props.ServerKeepAlive == 30
    assert props.UserProperty == [("server", "turbomqtt")]


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["3.1.1", "5.0"])
def test_paho_reads_our_connack_refusal(protocol):
    # v5 "Not authorized" 0x87 maps to the 3.x return code 5.
    s = Session(protocol, connack={"type": "CONNACK", "code": 0x87})
    refused = threading.Event()
    result = {}

    def on_connect(client, userdata, flags, reason_code, properties):
        result["rc"] = reason_code
        refused.set()

    s.client.on_connect = on_connect
    s.client.connect("127.0.0.1", s.server.port)
    s.client.loop_start()
    try:
        assert refused.wait(TIMEOUT)
    finally:
        s.client.loop_stop()
        s.server.close()
    assert result["rc"] == ReasonCode(PacketTypes.CONNACK, "Not authorized")
    assert result["rc"].value == 0x87


# ---------------------------------------------------------------- PUBLISH


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["3.1.1", "5.0"])
@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("retain", [False, True])
def test_publish(protocol, qos, retain):
    level = LEVELS[protocol]
    with Session(protocol) as s:
        info = s.client.publish("sensors/temp", b"21.5", qos=qos, retain=retain)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published()
        (frame,) = s.server.wait_for(3)
        pubrel = s.server.wait_for(6)[0] if qos == 2 else None
    d = check(frame, level)
    assert d["type"] == "PUBLISH"
    assert (d["topic"], d["payload"], d["qos"], d["retain"], d["dup"]) == (
        "sensors/temp", b"21.5", qos, retain, False,
    )
    assert d["pkid"] == (info.mid if qos else 0)
    assert d["properties"] == {}
    if pubrel is not None:
        r = check(pubrel, level)
        assert r["type"] == "PUBREL" and r["pkid"] == info.mid and r["code"] == 0
        assert len(pubrel) == 4


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_v5_properties(qos):
    props = v5_props(
        PacketTypes.PUBLISH,
        PayloadFormatIndicator=1,
        MessageExpiryInterval=120,
        ContentType="application/json",
        ResponseTopic="replies/1",
        CorrelationData=b"\x00\x01corr",
        UserProperty=[("k", "v"), ("k", "w")],
    )
    with Session(mqtt.MQTTv5) as s:
        info = s.client.publish("data/json", b'{"t": 1}', qos=qos, properties=props)
        info.wait_for_publish(TIMEOUT)
        (frame,) = s.server.wait_for(3)
    d = check(frame, 5)
    assert d["payload"] == b'{"t": 1}'
    assert d["properties"] == {
        "payload_format_indicator": 1,
        "message_expiry_interval": 120,
        "content_type": "application/json",
        "response_topic": "replies/1",
        "correlation_data": b"\x00\x01corr",
        "user_properties": [("k", "v"), ("k", "w")],
    }


def test_publish_empty_payload_and_unicode_topic():
    with Session(mqtt.MQTTv311) as s:
        s.client.publish("häuser/ü/€", b"", qos=1).wait_for_publish(TIMEOUT)
        (frame,) = s.server.wait_for(3)
    d = check(frame, 4)
    assert d["topic"] == "häuser/ü/€" and d["payload"] == b""


# ------------------------------------------------------ SUBSCRIBE / UNSUBSCRIBE


def test_subscribe_v311_several_filters():
    with Session(mqtt.MQTTv311) as s:
        _, mid = s.client.subscribe([("a/+/c", 0), ("b/#", 1), ("$SYS/x", 2)])
        assert s.subscribed.wait(TIMEOUT)
        (frame,) = s.server.wait_for(8)
    d = check(frame, 4)
    assert d["pkid"] == mid
    assert [(f, o["qos"]) for f, o in d["filters"]] == [("a/+/c", 0), ("b/#", 1), ("$SYS/x", 2)]
    # Our SUBACK granted 0, 1, 2 and paho read them.
    assert [int(c.value) for c in s.suback] == [0, 1, 2]


def test_subscribe_v5_options_and_properties():
    props = v5_props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=77, UserProperty=[("u", "1")])
    topics = [
        ("a/+", SubscribeOptions(qos=1, noLocal=True, retainAsPublished=True, retainHandling=2)),
        ("$share/grp/b/#", SubscribeOptions(qos=2, retainHandling=1)),
        ("c", SubscribeOptions(qos=0)),
    ]
    with Session(mqtt.MQTTv5) as s:
        _, mid = s.client.subscribe(topics, properties=props)
        assert s.subscribed.wait(TIMEOUT)
        (frame,) = s.server.wait_for(8)
    d = check(frame, 5)
    assert d["pkid"] == mid
    assert d["properties"] == {"subscription_identifiers": [77], "user_properties": [("u", "1")]}
    assert d["filters"] == [
        ("a/+", {"qos": 1, "no_local": True, "retain_as_published": True, "retain_handling": 2}),
        ("$share/grp/b/#",
         {"qos": 2, "no_local": False, "retain_as_published": False, "retain_handling": 1}),
        ("c", {"qos": 0, "no_local": False, "retain_as_published": False, "retain_handling": 0}),
    ]
    assert [c.value for c in s.suback] == [0, 1, 2]


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["3.1.1", "5.0"])
def test_unsubscribe(protocol):
    level = LEVELS[protocol]
    kw = {}
    if level == 5:
        kw["properties"] = v5_props(PacketTypes.UNSUBSCRIBE, UserProperty=[("why", "done")])
    with Session(protocol) as s:
        _, mid = s.client.unsubscribe(["a/+", "b/#"], **kw)
        assert s.unsubscribed.wait(TIMEOUT)
        (frame,) = s.server.wait_for(10)
    d = check(frame, level)
    assert d["type"] == "UNSUBSCRIBE" and d["pkid"] == mid
    assert d["filters"] == ["a/+", "b/#"]
    if level == 5:
        assert d["properties"] == {"user_properties": [("why", "done")]}


# ------------------------------------------------------- PINGREQ / DISCONNECT


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["3.1.1", "5.0"])
def test_pingreq(protocol):
    level = LEVELS[protocol]
    # paho pings after a keep-alive interval without traffic: 1 s is its shortest.
    with Session(protocol, keepalive=1) as s:
        (frame,) = s.server.wait_for(12)
    assert frame == b"\xc0\x00"
    assert check(frame, level) == {"type": "PINGREQ"}


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["3.1.1", "5.0"])
def test_disconnect_default(protocol):
    level = LEVELS[protocol]
    with Session(protocol) as s:
        pass
    (frame,) = s.server.wait_for(14)
    assert frame == b"\xe0\x00"
    d = check(frame, level)
    assert d["type"] == "DISCONNECT" and d["code"] == 0


def test_disconnect_v5_reason_and_properties():
    s = Session(mqtt.MQTTv5)
    with s:
        s.client.disconnect(
            reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message"),
            properties=v5_props(
                PacketTypes.DISCONNECT, SessionExpiryInterval=0, ReasonString="bye"
            ),
        )
        (frame,) = s.server.wait_for(14)
    d = check(frame, 5)
    assert d["code"] == 0x04
    assert d["properties"] == {"session_expiry_interval": 0, "reason_string": "bye"}


def test_disconnect_v5_reason_only():
    s = Session(mqtt.MQTTv5)
    with s:
        s.client.disconnect(
            reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
        )
        (frame,) = s.server.wait_for(14)
    assert frame == b"\xe0\x01\x04"
    assert check(frame, 5)["code"] == 0x04


# ----------------------------------------------------- errors reach Python


def test_decode_errors_raise_value_error():
    with pytest.raises(ValueError, match="first packet is not CONNECT"):
        _core._codec_decode(b"\xc0\x00", 0)
    with pytest.raises(ValueError, match="wildcard in topic name"):
        _core._codec_decode(b"\x30\x03\x00\x01#", 4)
    with pytest.raises(ValueError, match="incomplete"):
        _core._codec_decode(b"\x30\x05\x00", 4)
    with pytest.raises(ValueError, match="unsupported protocol version 6"):
        _core._codec_decode(b"\x10\x0c\x00\x04MQTT\x06\x02\x00\x3c\x00\x00", 0)
