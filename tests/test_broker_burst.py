"""Bursts through the broker: nothing may be lost between a fast publisher and a
subscriber whose socket keeps filling up (the broker's writes wait, messages keep
arriving, and the subscriber's connection must still notice every one of them)."""

from __future__ import annotations

import time

import pytest
from broker_support import RawPeer, publish_packet, subscribe_packet

N = 40_000


@pytest.mark.parametrize("version", [4, 5])
def test_burst_to_a_slow_reader_loses_nothing(mqtt_broker_factory, version):
    broker = mqtt_broker_factory(sys_interval=0, max_queued_messages=10 * N)
    v5 = version == 5
    sub = RawPeer(broker.port)
    sub.connect(client_id="burst-sub", version=version)
    sub.send(subscribe_packet("burst/t", 0, v5=v5))
    sub.expect(9)
    publisher = RawPeer(broker.port)
    publisher.connect(client_id="burst-pub", version=version)
    one = publish_packet("burst/t", b"x" * 64, 0, v5=v5)
    for _round in range(3):
        # Several writes with pauses in between, so the subscriber's queue runs empty
        # and fills again while the broker is still writing to it.
        for _ in range(8):
            publisher.send(one * (N // 8))
            time.sleep(0.01)
        got = 0
        while got < N:
            packet = sub.read_packet(timeout=5)
            assert packet is not None, f"closed after {got} messages"
            assert packet[0] >> 4 == 3
            got += 1
    sub.close()
    publisher.close()
