"""The paho switch: make ``paho.mqtt.*`` imports resolve to turbomqtt's modules.

``install_as_paho()`` puts a finder first on ``sys.meta_path`` that answers for ``paho``,
``paho.mqtt`` and ``paho.mqtt.<module>``; the turbomqtt modules are imported lazily when
first asked for. Importing this module turns the switch on when the environment variable
``TURBOMQTT_AS_PAHO`` is set to something other than "" or "0" (the ``.pth`` file installed
with the wheel imports it at interpreter start-up only in that case).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import sys
import types
from typing import Any

PAHO_VERSION = "2.2.0"

# paho.mqtt.<name> -> the turbomqtt module that replaces it.
MODULES = {
    "client": "turbomqtt.client",
    "enums": "turbomqtt.enums",
    "exception": "turbomqtt.exception",
    "matcher": "turbomqtt.matcher",
    "packettypes": "turbomqtt.packettypes",
    "properties": "turbomqtt.properties",
    "publish": "turbomqtt.publish",
    "reasoncodes": "turbomqtt.reasoncodes",
    "subscribe": "turbomqtt.subscribe",
    "subscribeoptions": "turbomqtt.subscribeoptions",
}


class _PahoLoader(importlib.abc.Loader):
    def __init__(self, target: str | None):
        self._target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        if self._target is None:
            module = types.ModuleType(spec.name)
            module.__path__ = []  # a package, but with no files behind it
            if spec.name == "paho.mqtt":
                from turbomqtt.exception import MQTTException

                module.__version__ = PAHO_VERSION  # type: ignore[attr-defined]
                module.MQTTException = MQTTException  # type: ignore[attr-defined]
            return module
        module = importlib.import_module(self._target)
        # The import system replaces __spec__; keep the real one to restore it.
        self._spec = module.__spec__
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        if self._target is not None:
            module.__spec__ = self._spec


class PahoFinder(importlib.abc.MetaPathFinder):
    """Answers imports of ``paho``, ``paho.mqtt`` and ``paho.mqtt.*`` with turbomqtt."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname in ("paho", "paho.mqtt"):
            return importlib.machinery.ModuleSpec(fullname, _PahoLoader(None), is_package=True)
        if fullname.startswith("paho.mqtt."):
            name = fullname[len("paho.mqtt."):]
            target_module = MODULES.get(name)
            if target_module is None:
                # Private paho modules (_packet, ...) do not exist here; never fall back to
                # an installed paho-mqtt, which would mix two implementations.
                raise ModuleNotFoundError(
                    f"No module named {fullname!r} (turbomqtt replaces paho-mqtt's public"
                    " modules only)", name=fullname)
            return importlib.machinery.ModuleSpec(fullname, _PahoLoader(target_module))
        return None


def install_as_paho() -> None:
    """Make every later ``import paho.mqtt...`` in this process load turbomqtt's modules.

    Modules of a real paho-mqtt already imported are dropped from ``sys.modules`` (objects
    already holding them keep them), so import the switch before anything imports paho.
    """
    if not any(isinstance(f, PahoFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, PahoFinder())
    for name in list(sys.modules):
        if name == "paho" or name.startswith("paho."):
            module = sys.modules[name]
            if not getattr(module, "__name__", "").startswith("turbomqtt") and not (
                    isinstance(getattr(module, "__loader__", None), _PahoLoader)):
                del sys.modules[name]


def is_installed() -> bool:
    """Whether install_as_paho() is active in this process."""
    return any(isinstance(f, PahoFinder) for f in sys.meta_path)


if os.environ.get("TURBOMQTT_AS_PAHO", "") not in ("", "0"):
    install_as_paho()
