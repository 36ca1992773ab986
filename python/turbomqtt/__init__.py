"""turbomqtt: MQTT for Python on a Rust core.

- ``turbomqtt.client``: a drop-in for paho-mqtt 2.x.
- ``turbomqtt.asyncio``: a native asyncio client.
- ``turbomqtt.Broker``: an embedded MQTT 3.1/3.1.1/5.0 broker.
"""

import atexit as _atexit

from turbomqtt import _core

__version__: str = _core.__version__

# Stop the background runtime before the interpreter tears down, with the GIL released,
# so exit never hangs on a connection task.
_atexit.register(_core._shutdown)

from turbomqtt.broker import Broker


def install_as_paho() -> None:
    """Make every later ``import paho.mqtt...`` in this process use turbomqtt's modules
    (``paho.mqtt.client``, ``.enums``, ``.properties``, ...), also inside libraries."""
    from turbomqtt._paho_switch import install_as_paho as _install

    _install()


__all__ = ["Broker", "__version__", "install_as_paho"]
