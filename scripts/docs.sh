#!/usr/bin/env bash
# Builds the documentation site from docs/ and mkdocs.yml into site/ with
# `mkdocs build --strict` (a broken link, a missing page or a warning fails the build).
# The pinned tools of scripts/docs-requirements.txt go into their own venv (.venv-docs in the
# checkout, or DOCS_VENV), installed from PyPI when missing or when the pins changed.
# The API reference is read from python/turbomqtt (sources and .pyi stubs) without
# building or importing the package.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${DOCS_VENV:-.venv-docs}"
pins=scripts/docs-requirements.txt
if [ ! -x "$venv/bin/mkdocs" ] || ! cmp -s "$pins" "$venv/docs-requirements.txt"; then
    echo "== installing the documentation tools into $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$pins"
    cp "$pins" "$venv/docs-requirements.txt"
fi

echo "== mkdocs build --strict"
NO_MKDOCS_2_WARNING=1 "$venv/bin/mkdocs" build --strict --clean --site-dir site
echo "site built: site/index.html"
