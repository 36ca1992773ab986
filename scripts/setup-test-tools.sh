#!/usr/bin/env bash
# Installs what the tests need on a fresh machine: Debian's mosquitto and mosquitto-clients
# (when missing), the package itself with its test extras (pytest and plugins, the real
# paho-mqtt 2.2.0 as a reference peer, Sanic for the seed example, ruff).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ] || ! command -v mosquitto_pub >/dev/null 2>&1; then
    echo "== installing mosquitto and mosquitto-clients (Debian)"
    # Keep the package's init script from starting a system-wide broker on port 1883:
    # tests start their own mosquitto on a free loopback port.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod +x "$policy"
        created_policy=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >/dev/null
    [ "$created_policy" = 1 ] && rm -f "$policy"
fi

echo "== installing turbomqtt with its test extras"
# --no-cache-dir: pip caches wheels built from a local folder by its path, which would
# install a stale build when the same checkout path is tested again.
# The wheel is kept in target/ci-wheels: scripts/test.sh installs the same abi3 wheel
# into CPython 3.9 too.
rm -rf target/ci-wheels
python3 -m pip wheel -q --disable-pip-version-check --no-cache-dir --no-deps -w target/ci-wheels .
wheel=$(ls target/ci-wheels/turbomqtt-*.whl)
python3 -m pip install -q --disable-pip-version-check --no-cache-dir --no-deps --force-reinstall "$wheel"
python3 -m pip install -q --disable-pip-version-check --no-cache-dir "${wheel}[test]"
