#!/usr/bin/env bash
# Installs the benchmark's peers:
#   - paho-mqtt 2.2.0, aiomqtt 2.5.1, gmqtt, matplotlib (chart) and psutil into a venv
#     (default .venv-bench in the checkout; or --python PATH to use an existing interpreter),
#     plus turbomqtt itself from this checkout (release build) unless --no-turbomqtt;
#   - mosquitto from Debian if missing (its service kept from starting);
#   - rumqttd 0.20 with cargo install into the venv's bin/ (compiles a few minutes);
#   - the Rust load generator benches/loadgen (cargo build --release).
# Then: <venv>/bin/python benches/run.py [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-bench
PY=""
TURBO=1
JOBS=${CARGO_BUILD_JOBS:-2}
while [ $# -gt 0 ]; do
    case "$1" in
        --python) PY=$2; shift 2 ;;
        --venv) VENV=$2; shift 2 ;;
        --no-turbomqtt) TURBO=0; shift ;;
        -j) JOBS=$2; shift 2 ;;
        *) echo "usage: benches/setup.sh [--python PY | --venv DIR] [--no-turbomqtt] [-j N]" >&2; exit 2 ;;
    esac
done
if [ -z "$PY" ]; then
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    PY="$VENV/bin/python"
fi
BIN=$(dirname "$PY")
ROOT=$(dirname "$BIN")

echo "== python peers into $PY"
"$PY" -m pip install -q --disable-pip-version-check "paho-mqtt==2.2.0" "aiomqtt==2.5.1" gmqtt matplotlib psutil
if [ "$TURBO" = 1 ]; then
    echo "== turbomqtt (release build) into $PY"
    "$PY" -m pip install -q --disable-pip-version-check .
fi

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    echo "== mosquitto (Debian)"
    policy=/usr/sbin/policy-rc.d
    created=0
    if [ ! -e "$policy" ]; then
        # Keep the package from starting a system-wide broker on port 1883.
        printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >/dev/null
    [ "$created" = 1 ] && rm -f "$policy"
fi

if [ ! -x "$BIN/rumqttd" ]; then
    echo "== rumqttd 0.20 (cargo install, a few minutes)"
    # --locked first; its pinned metrics 0.22.1 no longer compiles on recent rustc, so fall
    # back to the newest semver-compatible dependencies.
    cargo install rumqttd --version '~0.20' --no-default-features --locked -j "$JOBS" --root "$ROOT" \
        || cargo install rumqttd --version '~0.20' --no-default-features -j "$JOBS" --root "$ROOT"
fi

echo "== load generator (benches/loadgen)"
(cd benches/loadgen && cargo build --release -q -j "$JOBS")
echo "== installed"
"$PY" - <<'PYEOF'
from importlib.metadata import PackageNotFoundError, version
import sys
print(f"  python       {sys.version.split()[0]} ({sys.executable})")
for name in ("turbomqtt", "paho-mqtt", "aiomqtt", "gmqtt", "matplotlib", "psutil"):
    try:
        print(f"  {name:<12} {version(name)}")
    except PackageNotFoundError:
        print(f"  {name:<12} (not installed)")
PYEOF
mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
echo "  mosquitto    $("$mosq" -h 2>/dev/null | head -1 | sed 's/^mosquitto version //' || true) ($mosq)"
echo "  rumqttd      $("$BIN/rumqttd" --version 2>/dev/null || echo "0.20 ($BIN/rumqttd)")"
echo "  loadgen      benches/loadgen/target/release/loadgen"
echo "ready: $PY benches/run.py --quick   (full run: $PY benches/run.py)"
