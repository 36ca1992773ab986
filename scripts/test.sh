#!/usr/bin/env bash
# The one test command: installs everything the tests need, checks formatting and lints,
# then runs every test (cargo test and pytest). `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-test-tools.sh

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --all-targets --all-features --locked -- -D warnings
echo "== ruff"
python3 -m ruff check .
echo "== mypy --strict and stubtest"
# Both check the installed package: run from tests/, where python/ is not importable.
# mypy 1.18 is the first to know @disjoint_base, which _core.pyi uses (pip does nothing
# when a recent enough mypy is installed).
python3 -m pip install -q --disable-pip-version-check "mypy>=1.18"
(
    cd tests
    python3 -m mypy --strict -p turbomqtt
    python3 -m mypy.stubtest turbomqtt._core --allowlist stubtest-allowlist.txt
)
echo "== cargo test"
cargo test --locked
echo "== pytest"
# Run from tests/ so that `import turbomqtt` finds the installed package, not python/.
python3 -m pytest -q -p no:cacheprovider "$@"

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
        tests/test_asyncio_client.py
else
    echo "(no CPython 3.9 on this machine: skipped)"
fi

echo "== documentation site: mkdocs build --strict, then opened in headless Chromium"
bash scripts/docs.sh
if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
TURBOMQTT_DOCS_SITE=1 python3 -m pytest -q -p no:cacheprovider tests/test_docs_site.py
