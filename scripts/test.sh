#!/usr/bin/env bash
# The one test command: installs everything the tests need (into the project virtual
# environment .venv, see setup-test-tools.sh), checks formatting and lints (also the
# Windows build), then runs every test (cargo test and pytest), and builds, installs and
# smoke-tests the sdist in a fresh virtual environment. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-test-tools.sh
py="$PWD/.venv/bin/python"

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --all-targets --all-features --locked -- -D warnings
echo "== cargo clippy for Windows (x86_64-pc-windows-gnu)"
cargo clippy --target x86_64-pc-windows-gnu --all-targets --features python --locked -- -D warnings
echo "== ruff"
"$py" -m ruff check .
echo "== mypy --strict and stubtest"
# Both check the installed package: run from tests/, where python/ is not importable.
# mypy 1.18 is the first to know @disjoint_base, which _core.pyi uses (pip does nothing
# when a recent enough mypy is installed).
"$py" -m pip install -q --disable-pip-version-check "mypy>=1.18"
(
    cd tests
    "$py" -m mypy --strict -p turbomqtt
    "$py" -m mypy.stubtest turbomqtt._core --allowlist stubtest-allowlist.txt
)
echo "== cargo test"
cargo test --locked
echo "== documentation site: mkdocs build --strict (pytest opens it in headless Chromium)"
bash scripts/docs.sh
if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
# The site and the browser are there: tests/test_docs_site.py must run, not skip.
export TURBOMQTT_DOCS_SITE=1
echo "== pytest"
# On Linux the tests that need mosquitto must run: a missing mosquitto fails them
# instead of skipping them (tests/conftest.py, marker requires_mosquitto).
if [ "$(uname -s)" = Linux ]; then
    export TURBOMQTT_REQUIRE_MOSQUITTO=1
fi
"$py" -m pytest -q -p no:cacheprovider "$@"

echo "== pytest on CPython 3.9, the oldest the abi3 wheel supports (when this machine has it)"
py39=""
for c in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.9*/bin/python3.9 python3.9; do
    if "$c" -c "import sys; assert sys.version_info[:2] == (3, 9)" >/dev/null 2>&1; then
        py39="$c"
        break
    fi
done
if [ -n "$py39" ]; then
    venv=target/py39-venv
    "$py39" -m venv --clear "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-cache-dir \
        "$(ls target/ci-wheels/turbomqtt-*.whl)[test]"
    "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_package.py \
        tests/test_paho_modules.py tests/test_paho_client_live.py tests/test_broker_core.py \
        tests/test_asyncio_client.py tests/test_packaging.py
else
    echo "(no CPython 3.9 on this machine: skipped)"
fi

echo "== sdist: build, install from it in a fresh virtual environment, smoke test"
rm -rf target/ci-sdist
"$py" -m maturin sdist --out target/ci-sdist
sdist=$(ls target/ci-sdist/turbomqtt-*.tar.gz)
"$py" scripts/check_dist.py sdist "$sdist"
venv=target/sdist-venv
"$py" -m venv --clear "$venv"
# pip builds the sdist in a temporary directory; cargo's target directory stays this
# checkout's, so the dependencies compiled above are reused. The crate's own release
# artifacts are removed first: cargo would otherwise take them as fresh (it compares
# source mtimes, and the sdist's files are no newer) and nothing of the sdist would be
# compiled. pip -v, filtered, shows cargo's progress.
cargo clean --release --package turbomqtt
if ! CARGO_TARGET_DIR="$PWD/target" "$venv/bin/python" -m pip install -v --no-cache-dir \
        --disable-pip-version-check "$sdist" 2>&1 | tee target/sdist-install.log \
        | { grep --line-buffered -E '^ *(Compiling turbomqtt|Finished|Successfully)' || true; }; then
    tail -40 target/sdist-install.log
    echo "installing the sdist failed (log: target/sdist-install.log)" >&2
    exit 1
fi
"$venv/bin/python" scripts/smoke.py
