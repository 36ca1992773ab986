"""The installed package: the native module loads and the runtime shuts down cleanly."""

import subprocess
import sys

import turbomqtt
import turbomqtt._core


def test_native_module_version_matches_package():
    assert turbomqtt.__version__ == turbomqtt._core.__version__
    assert turbomqtt.__version__.count(".") == 2


def test_interpreter_exit_after_shutdown_does_not_hang():
    code = "import turbomqtt, turbomqtt._core; turbomqtt._core._shutdown(); print('ok')"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.strip() == "ok"
