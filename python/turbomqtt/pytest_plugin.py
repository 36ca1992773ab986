"""pytest fixtures for turbomqtt's embedded broker (registered through ``pytest11``).

- ``mqtt_broker``: a fresh broker per test on a free 127.0.0.1 port.
- ``mqtt_broker_session``: one broker shared by the whole test session.
- ``mqtt_broker_factory``: call it with `Broker` options to start more brokers; each is
  stopped at the end of the test. Annotate it as `BrokerFactory` to have its keyword
  options type-checked like `Broker`'s.

Tests connect with ``client.connect(mqtt_broker.host, mqtt_broker.port)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable

import pytest

from turbomqtt.broker import Broker

__all__ = ["BrokerFactory", "mqtt_broker", "mqtt_broker_factory", "mqtt_broker_session"]

if TYPE_CHECKING:
    from typing_extensions import Concatenate, ParamSpec

    _P = ParamSpec("_P")

    def _parameters_of(
        cls: Callable[_P, Broker],
    ) -> Callable[[Callable[..., Broker]], Callable[Concatenate[Any, _P], Broker]]:
        """Gives the decorated method ``cls``'s parameters, for type checkers only."""
        ...

else:

    def _parameters_of(cls):
        return lambda method: method


class BrokerFactory:
    """What ``mqtt_broker_factory`` is: calling it starts a `Broker` with the same
    parameters (port 0 unless given) and returns it; it is stopped after the test."""

    def __init__(self) -> None:
        self._started: list[Broker] = []

    @_parameters_of(Broker)
    def __call__(self, *args: Any, **options: Any) -> Broker:
        if len(args) < 2:
            options.setdefault("port", 0)
        broker = Broker(*args, **options).start()
        self._started.append(broker)
        return broker

    def _stop_all(self) -> None:
        while self._started:
            self._started.pop().stop()


@pytest.fixture
def mqtt_broker_factory() -> Iterator[BrokerFactory]:
    """Starts brokers with the given options (port 0 unless given); stops them after."""
    factory = BrokerFactory()
    yield factory
    factory._stop_all()


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
