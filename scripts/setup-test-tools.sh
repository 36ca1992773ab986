#!/usr/bin/env bash
# Installs what the tests need on a fresh machine: Debian's mosquitto and mosquitto-clients
# and the MinGW-w64 C compiler for the Windows lint (when missing), the Rust target
# x86_64-pc-windows-gnu, and a project virtual environment `.venv` (created here, next to
# this checkout) holding the package itself with its test extras (pytest and plugins, the
# real paho-mqtt 2.2.0 as a reference peer, Sanic for the seed example, ruff).
# Nothing is installed into the system's Python.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=()
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ] || ! command -v mosquitto_pub >/dev/null 2>&1; then
    apt_packages+=(mosquitto mosquitto-clients)
fi
if ! command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1; then
    # ring's build script compiles C for the target, also under `cargo clippy`.
    apt_packages+=(gcc-mingw-w64-x86-64)
fi
if [ "${#apt_packages[@]}" -gt 0 ]; then
    echo "== installing ${apt_packages[*]} (Debian)"
    # Keep mosquitto's init script from starting a system-wide broker on port 1883:
    # tests start their own mosquitto on a free loopback port.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod +x "$policy"
        created_policy=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
    [ "$created_policy" = 1 ] && rm -f "$policy"
fi

if ! rustup target list --installed | grep -qx x86_64-pc-windows-gnu; then
    echo "== rustup target add x86_64-pc-windows-gnu (the Windows lint)"
    rustup target add x86_64-pc-windows-gnu
fi

echo "== project virtual environment .venv"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
py=.venv/bin/python
"$py" -m pip install -q --disable-pip-version-check 'maturin>=1.7,<2'

echo "== building the turbomqtt wheel (cargo's progress below; a first build takes minutes)"
# The wheel is kept in target/ci-wheels: scripts/test.sh installs the same abi3 wheel into
# CPython 3.9 too. Built by maturin directly, so cargo's progress shows.
rm -rf target/ci-wheels
"$py" -m maturin build --release --locked --interpreter "$py" --out target/ci-wheels
wheel=$(ls target/ci-wheels/turbomqtt-*.whl)

echo "== installing $(basename "$wheel") with its test extras into .venv"
"$py" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "$wheel"
"$py" -m pip install -q --disable-pip-version-check "${wheel}[test]"
