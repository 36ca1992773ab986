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
echo "== cargo test"
cargo test --locked
echo "== pytest"
# Run from tests/ so that `import turbomqtt` finds the installed package, not python/.
python3 -m pytest -q -p no:cacheprovider "$@"
