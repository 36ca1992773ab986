"""Many clients connecting at once are all accepted without dropped handshakes: the
listening socket has a deep backlog (std's 128 made the kernel drop the excess
handshakes of a burst, which the clients retry only after a second or more)."""

from __future__ import annotations

import asyncio
import resource
import shutil
import subprocess
import sys

import pytest
from broker_support import connect_packet

N = 2000


def _listen_backlog(port: int) -> int:
    """The backlog of the listening socket on `port`, as `ss` reports it (its Send-Q)."""
    out = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return int(out.split()[2])


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or shutil.which("ss") is None, reason="needs Linux ss"
)
def test_the_listener_has_a_deep_backlog(mqtt_broker_factory):
    """mosquitto 2.0.11 listens with a backlog of 100 and drops handshakes in such a burst
    too (benches/RESULTS.md, 2026-12-08); the kernel clamps ours to somaxconn."""
    broker = mqtt_broker_factory(sys_interval=0)
    with open("/proc/sys/net/core/somaxconn") as f:
        somaxconn = int(f.read())
    assert _listen_backlog(broker.port) >= min(1024, somaxconn)


@pytest.mark.timeout(60)
async def test_a_burst_of_clients_all_get_connack(mqtt_broker_factory):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < N + 200:
        if hard != resource.RLIM_INFINITY and hard < N + 200:
            pytest.skip(f"needs {N + 200} file descriptors")
        resource.setrlimit(resource.RLIMIT_NOFILE, (N + 200, hard))
    broker = mqtt_broker_factory(sys_interval=0)

    async def one(i: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
        writer.write(connect_packet(client_id=f"burst-{i}", version=4))
        ack = await reader.readexactly(4)
        writer.close()
        return ack

    acks = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(N))), 45)
    assert all(a == b"\x20\x02\x00\x00" for a in acks)
    assert broker.stats()["clients_total"] >= N
