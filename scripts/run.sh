#!/usr/bin/env bash
# The main job: installs turbomqtt and runs it end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check .
python3 -c "import turbomqtt, turbomqtt._core; print('turbomqtt', turbomqtt.__version__, 'imported')"
