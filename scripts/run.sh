#!/usr/bin/env bash
# The main job: installs turbomqtt and runs the seed scenario end to end (a Sanic HTTP
# service publishing shelf records at QoS 2, a paho subscriber printing them, both
# unmodified paho-mqtt programs run on turbomqtt through `python -m turbomqtt run`,
# against turbomqtt's embedded broker). See examples/seed/.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check --no-cache-dir . "sanic>=23"
python3 -c "import turbomqtt, turbomqtt._core; print('turbomqtt', turbomqtt.__version__, 'imported')"

python3 examples/seed/run.py
