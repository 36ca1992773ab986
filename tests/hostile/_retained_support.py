"""Raw-socket helpers shared by the retained-message probes."""

from __future__ import annotations

import struct

from broker_support import RawPeer, ack_packet, mqtt_str, packet, publish_packet, varint, wait_until


def parse_publish(first: int, body: bytes, v5: bool = True) -> tuple[str, bytes, int, int, bool]:
    """(topic, payload, qos, packet id, retain) of a PUBLISH body."""
    (n,) = struct.unpack("!H", body[:2])
    topic = body[2 : 2 + n].decode()
    i = 2 + n
    qos = (first >> 1) & 3
    pkid = 0
    if qos:
        (pkid,) = struct.unpack("!H", body[i : i + 2])
        i += 2
    if v5:
        length, shift = 0, 0
        while True:
            b = body[i]
            i += 1
            length |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        i += length
    return topic, body[i:], qos, pkid, bool(first & 1)


def receive_publishes(peer: RawPeer, count: int, v5: bool = True, timeout: float = 30.0) -> list[
    tuple[str, bytes, int, int, bool]
]:
    """The next `count` PUBLISHes (acknowledging QoS 1 ones); fails on anything else."""
    out = []
    while len(out) < count:
        got = peer.read_packet(timeout)
        assert got is not None, f"closed after {len(out)} of {count} PUBLISHes"
        first, body = got
        assert first >> 4 == 3, f"expected PUBLISH, got {first:#x} after {len(out)}"
        p = parse_publish(first, body, v5)
        if p[2] == 1:
            peer.send(ack_packet(4, p[3]))
        out.append(p)
    return out


def retain_many(
    broker,
    port: int,
    topics: list[str],
    payload: bytes = b"r",
    username: str | None = None,
    qos: int = 0,
) -> None:
    """Stores a retained message on each topic (one raw publisher, one write; QoS 1
    acknowledgements are left unread)."""
    pub = RawPeer(port)
    pub.connect(client_id="retainer", username=username)
    before = broker.stats()["retained_messages"]
    pub.send(
        b"".join(
            publish_packet(t, payload, qos=qos, pkid=i % 65535 + 1, retain=True)
            for i, t in enumerate(topics)
        )
    )
    wait_until(lambda: broker.stats()["retained_messages"] >= before + len(topics), timeout=60)
    pub.close()


def subscribe_many(filters: list[str], qos: int = 0, pkid: int = 1, v5: bool = True) -> bytes:
    body = struct.pack("!H", pkid) + (varint(0) if v5 else b"")
    body += b"".join(mqtt_str(f) + bytes([qos]) for f in filters)
    return packet(0x82, body)


def level_order(topics: list[str]) -> list[str]:
    """Topic order: level by level, each level compared as bytes."""
    return sorted(topics, key=lambda t: [lv.encode() for lv in t.split("/")])
