#!/usr/bin/env bash
# The main job: installs turbomqtt and runs the seed scenario end to end (a Sanic HTTP
# service publishing shelf records at QoS 2, a paho subscriber printing them, both
# unmodified paho-mqtt programs run on turbomqtt through `python -m turbomqtt run`,
# against turbomqtt's embedded broker). See examples/seed/.
# Everything is installed into the project virtual environment .venv (created here, next
# to this checkout), never into the system's Python.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    echo "== creating the project virtual environment .venv"
    python3 -m venv .venv
fi
py=.venv/bin/python
"$py" -m pip install -q --disable-pip-version-check 'maturin>=1.7,<2' "sanic>=23"

echo "== building turbomqtt from source (cargo's progress below; a first build takes minutes)"
rm -rf target/run-wheels
"$py" -m maturin build --release --locked --interpreter "$py" --out target/run-wheels
"$py" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall \
    target/run-wheels/turbomqtt-*.whl
"$py" -c "import turbomqtt, turbomqtt._core; print('turbomqtt', turbomqtt.__version__, 'imported')"

"$py" examples/seed/run.py
