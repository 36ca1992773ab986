"""pytest fixtures for turbomqtt's embedded broker (registered through ``pytest11``).

- ``mqtt_broker``: a fresh broker per test on a free 127.0.0.1 port.
- ``mqtt_broker_session``: one broker shared by the whole test session.
- ``mqtt_broker_factory``: call it with `Broker` options to start more brokers; each is
  stopped at the end of the test.

Tests connect with ``client.connect(mqtt_broker.host, mqtt_broker.port)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import pytest

from turbomqtt.broker import Broker


@pytest.fixture
def mqtt_broker_factory() -> Iterator[Callable[..., Broker]]:
    """Starts brokers with the given options (port 0 unless given); stops them after."""
    started: list[Broker] = []

    def make(**options: Any) -> Broker:
        options.setdefault("port", 0)
        broker = Broker(**options).start()
        started.append(broker)
        return broker

    yield make
    for broker in reversed(started):
        broker.stop()


@pytest.fixture
def mqtt_broker() -> Iterator[Broker]:
    """A fresh embedded broker for one test, on a free port of 127.0.0.1."""
    with Broker(port=0) as broker:
        yield broker


@pytest.fixture(scope="session")
def mqtt_broker_session() -> Iterator[Broker]:
    """One embedded broker for the whole test session, on a free port of 127.0.0.1."""
    with Broker(port=0) as broker:
        yield broker
