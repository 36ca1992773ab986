"""Type stubs for the native module ``turbomqtt._core``."""

__version__: str

def _shutdown() -> None: ...
