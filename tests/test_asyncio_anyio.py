"""turbomqtt.asyncio inside a user's test suite driven by anyio's pytest plugin (the
asyncio backend; trio is not supported by an asyncio client)."""

# ruff: noqa: F811 - pytest fixtures imported from _asyncio_support shadow their names
from __future__ import annotations

import uuid

import pytest
import turbomqtt.asyncio as mqtt
from _asyncio_support import any_broker  # noqa: F401 - fixture

anyio = pytest.importorskip("anyio")

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def test_round_trip_under_anyio(any_broker):
    topic = f"anyio/{uuid.uuid4().hex[:8]}"
    async with mqtt.Client("127.0.0.1", any_broker.port) as c, c.subscription(topic, 1) as sub:
        with anyio.fail_after(5):
            assert await c.publish(topic, "hello", qos=1) == 0
            m = await sub.get()
    assert m.payload == b"hello"


async def test_cancel_scope_cancels_iteration_cleanly(any_broker):
    topic = f"anyio-cancel/{uuid.uuid4().hex[:8]}"
    async with mqtt.Client("127.0.0.1", any_broker.port) as c, c.subscription(topic, 1) as sub:
        with anyio.move_on_after(0.05) as scope:
            await sub.get()
        assert scope.cancelled_caught
        await c.publish(topic, "after", qos=1)
        with anyio.fail_after(5):
            assert (await sub.get()).payload == b"after"
