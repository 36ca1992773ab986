"""The asyncio client on the default loop, on uvloop, with the thread wake-up (the path
of loops without add_reader), several clients per loop and loops in several threads."""

# ruff: noqa: F811, SIM117 - pytest fixtures imported from _asyncio_support shadow their names
from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import uuid

import pytest
import turbomqtt.asyncio as mqtt
from _asyncio_support import any_broker  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(60)


async def scenario(port: int, **kw) -> None:
    topic = f"loops/{uuid.uuid4().hex[:8]}"
    async with mqtt.Client("127.0.0.1", port, **kw) as c:
        async with c.subscription(f"{topic}/#", qos=2) as sub:
            codes = await asyncio.gather(
                *(c.publish(f"{topic}/{i % 3}", str(i), qos=i % 3) for i in range(300))
            )
            assert set(codes) == {0}
            got = sorted([int((await asyncio.wait_for(sub.get(), 10)).payload) for _ in range(300)])
            assert got == list(range(300))


def test_uvloop(any_broker):
    uvloop = pytest.importorskip("uvloop")
    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(scenario(any_broker.port))
    finally:
        loop.close()


async def test_thread_wakeup(any_broker):
    await scenario(any_broker.port, wakeup="thread")


async def test_thread_wakeup_with_backpressure(any_broker):
    topic = f"loops-bp/{uuid.uuid4().hex[:8]}"
    async with mqtt.Client("127.0.0.1", any_broker.port, wakeup="thread", queue_size=5) as c:
        async with c.subscription(topic, 0) as sub:
            await asyncio.gather(*(c.publish(topic, str(i)) for i in range(500)))
            got = [int((await asyncio.wait_for(sub.get(), 10)).payload) for _ in range(500)]
            assert got == list(range(500))


async def test_several_clients_on_one_loop(any_broker):
    await asyncio.gather(*(scenario(any_broker.port) for _ in range(4)))


def test_clients_on_several_loops_in_several_threads(any_broker):
    errors: list[BaseException] = []

    def run(use_uvloop: bool) -> None:
        try:
            if use_uvloop:
                import uvloop

                loop = uvloop.new_event_loop()
                try:
                    loop.run_until_complete(scenario(any_broker.port))
                finally:
                    loop.close()
            else:
                asyncio.run(scenario(any_broker.port))
                asyncio.run(scenario(any_broker.port, wakeup="thread"))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i % 2 == 1,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(50)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


@pytest.mark.parametrize("wakeup", ["reader", "thread"])
def test_interpreter_exit_with_a_connected_client_does_not_hang(any_broker, wakeup):
    code = (
        "import asyncio, turbomqtt.asyncio as m\n"
        "async def main():\n"
        f"    c = m.Client('127.0.0.1', {any_broker.port}, reconnect=True, wakeup='{wakeup}')\n"
        "    await c.connect()\n"
        "    s = c.messages()\n"
        "    await c.subscribe('exit/#', 1)\n"
        "    print(await c.publish('exit/x', 'y', qos=1), flush=True)\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.strip() in ("0", "16")
