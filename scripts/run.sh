#!/usr/bin/env bash
# The main job: installs turbomqtt and runs the seed scenario end to end (a Sanic HTTP
# service publishing shelf records at QoS 2, a paho subscriber printing them, both
# unmodified paho-mqtt programs run on turbomqtt through `python -m turbomqtt run`,
# against turbomqtt's embedded broker). See examples/seed/.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check --no-cache-dir . "sanic>=23"
python3 -c "import turbomqtt, turbomqtt._core; print('turbomqtt', turbomqtt.__version__, 'imported')"

rc=0
python3 examples/seed/run.py || rc=$?
if [ "$rc" -eq 2 ]; then
    # turbomqtt's broker or paho switch is not there yet (run.py says which): show the
    # same example programs on the real paho-mqtt and mosquitto instead, when present.
    if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
        echo "== the seed scenario on paho-mqtt + mosquitto (reference run)"
        python3 -m pip install -q --disable-pip-version-check "paho-mqtt==2.2.0"
        python3 examples/seed/run.py --reference
    else
        echo "(skipping the reference run: it needs mosquitto)"
    fi
    rc=0
fi
exit "$rc"
