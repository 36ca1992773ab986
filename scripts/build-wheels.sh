#!/usr/bin/env bash
# Builds what a release publishes, as far as this Linux x86_64 machine can: the wheel for
# this machine, the manylinux_2_17 (manylinux2014) aarch64 wheel (cross-compiled with
# zig), and the sdist, into dist/; checks their tags and contents (scripts/check_dist.py).
# Then, unless --no-emulate, runs the aarch64 wheel under qemu user emulation with an
# arm64 CPython from Debian: scripts/smoke.py (embedded broker, paho-style and asyncio
# clients, QoS 1 round trips) and the broker and client tests that need no mosquitto.
# The other platforms (macOS, Windows, musllinux, armv7) are built by
# .github/workflows/release.yml.
#
# Usage: scripts/build-wheels.sh [--no-emulate | --emulate-only]
#   --emulate-only  skips the builds and emulates the aarch64 wheel already in dist/
# Environment: ARM64_ROOT  the arm64 Debian root for emulation (default target/arm64-root;
#                          created with debootstrap when missing: about 40 MB download)
#              EMULATED_TESTS  pytest arguments run under emulation
set -euo pipefail
cd "$(dirname "$0")/.."

emulate=1
build=1
for arg in "$@"; do
    case "$arg" in
        --no-emulate) emulate=0 ;;
        --emulate-only) build=0 ;;
        *) echo "usage: $0 [--no-emulate | --emulate-only]" >&2; exit 2 ;;
    esac
done

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
py=.venv/bin/python
# maturin runs zig as `python -m ziglang` with the python first on PATH: this venv's.
export PATH="$PWD/.venv/bin:$PATH"
# ziglang: the C compiler and linker for the aarch64 cross build (glibc 2.17 symbols).
"$py" -m pip install -q --disable-pip-version-check 'maturin>=1.7,<2' ziglang
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    rustup target add aarch64-unknown-linux-gnu
fi

if [ "$build" = 1 ]; then
    rm -rf dist
    mkdir -p dist
    echo "== wheel for this machine"
    "$py" -m maturin build --release --locked --interpreter "$py" --out dist
    native=$(ls dist/turbomqtt-*.whl)
    echo "== manylinux_2_17 aarch64 wheel (zig)"
    "$py" -m maturin build --release --locked --zig --target aarch64-unknown-linux-gnu \
        --compatibility manylinux2014 --interpreter "$py" --out dist
    aarch64=$(ls dist/turbomqtt-*aarch64*.whl)
    echo "== sdist"
    "$py" -m maturin sdist --out dist
    sdist=$(ls dist/turbomqtt-*.tar.gz)

    echo "== checking tags and contents"
    "$py" scripts/check_dist.py wheel "$native"
    "$py" scripts/check_dist.py wheel "$aarch64" --platform manylinux_2_17_aarch64 \
        --platform manylinux2014_aarch64
    "$py" scripts/check_dist.py sdist "$sdist"
fi

if [ "$emulate" = 0 ]; then
    exit 0
fi
aarch64=$(ls dist/turbomqtt-*aarch64*.whl)

echo "== aarch64 wheel under qemu user emulation"
qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64 || true)
if [ -z "$qemu" ] || ! command -v debootstrap >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static debootstrap >/dev/null
        qemu=$(command -v qemu-aarch64-static)
    else
        echo "qemu-user-static and debootstrap are needed (Debian packages); or pass --no-emulate" >&2
        exit 1
    fi
fi
root="${ARM64_ROOT:-$PWD/target/arm64-root}"
if [ ! -x "$root/usr/bin/python3" ]; then
    echo "-- arm64 Debian root with python3 in $root (debootstrap, download only)"
    rm -rf "$root"
    # --foreign: download and unpack only, nothing runs inside the root; the packages
    # python3 needs are then unpacked too (no maintainer scripts are needed to run it).
    debootstrap --foreign --arch=arm64 --variant=minbase \
        --include=python3-minimal,libpython3.11-stdlib bookworm "$root" \
        http://deb.debian.org/debian >/dev/null
    for deb in "$root"/var/cache/apt/archives/*.deb; do
        dpkg-deb -x "$deb" "$root"
    done
fi
# The emulated interpreter behind a host script, which is also its sys.executable (qemu's
# -0 sets argv[0]): the tests' subprocesses start it again (no binfmt_misc needed).
arm_python="$PWD/target/arm64-python"
# shellcheck disable=SC2016  # $0 and $@ are the generated script's own
printf '#!/bin/sh\nexec "%s" -L "%s" -0 "$0" "%s" "$@"\n' "$qemu" "$root" "$root/usr/bin/python3" \
    > "$arm_python"
chmod +x "$arm_python"
arm_py() { "$arm_python" "$@"; }
arm_version=$(arm_py -c 'import sys; print("%d.%d" % sys.version_info[:2])')
echo "-- $(arm_py -c 'import platform; print(platform.machine(), "CPython", platform.python_version())')"

# The aarch64 wheel and the pure-Python test tools, installed for the emulated
# interpreter (pip resolves them for its platform and version).
site=target/arm64-site
rm -rf "$site"
"$py" -m pip install -q --disable-pip-version-check --no-cache-dir --target "$site" \
    --platform manylinux_2_17_aarch64 --implementation cp --python-version "$arm_version" \
    --only-binary=:all: "$aarch64" 'pytest>=8' 'pytest-timeout>=2.3' 'pytest-asyncio>=0.23' \
    paho-mqtt==2.2.0

export PYTHONPATH="$PWD/$site"
arm_py -c 'import turbomqtt._core as c, pathlib; print("--", pathlib.Path(c.__file__).name)'
arm_py scripts/smoke.py
# The broker and clients on the embedded broker (mosquitto is this machine's x86_64
# program; the tests that need it are deselected). Timeouts are generous: emulation is
# 10-50 times slower.
# shellcheck disable=SC2086
arm_py -m pytest -q -p no:cacheprovider -o timeout=600 -m "not requires_mosquitto" \
    ${EMULATED_TESTS:-tests/test_broker_core.py tests/test_paho_client_live.py tests/test_package.py}
