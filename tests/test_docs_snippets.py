"""Every ```python block of README.md and of the documentation pages runs as written.

A block is written to a file and run in a fresh interpreter against the embedded broker
(snippets start their own ``turbomqtt.Broker(port=0)``, or read ``MQTT_HOST`` /
``MQTT_PORT``, which point at this test's broker). A block that defines ``test_``
functions is a pytest file and is run with pytest (the fixtures come from turbomqtt's
plugin). A comment right before a block can say why it is not run here:

    <!-- snippet-test: skip (reason) -->
    <!-- snippet-test: requires MODULE -->   (skipped when MODULE cannot be imported)
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*$")
MARKER = re.compile(r"<!--\s*snippet-test:\s*(?P<what>skip|requires)\s*(?P<arg>.*?)\s*-->")


class Snippet:
    def __init__(self, page: Path, line: int, code: str, marker: re.Match[str] | None):
        self.page = page
        self.line = line
        self.code = code
        self.marker = marker

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def is_pytest_file(self) -> bool:
        return re.search(r"^(async )?def test_", self.code, re.MULTILINE) is not None


def python_blocks(page: Path) -> list[Snippet]:
    lines = page.read_text(encoding="utf-8").splitlines()
    found = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang, start = m.group("indent"), m.group("lang"), i
        i += 1
        body = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i].removeprefix(indent))
            i += 1
        i += 1  # the closing fence
        if lang != "python":
            continue
        before = next((x for x in reversed(lines[:start]) if x.strip()), "")
        found.append(Snippet(page, start + 1, "\n".join(body) + "\n", MARKER.search(before)))
    return found


SNIPPETS = [s for page in PAGES for s in python_blocks(page)]


def test_the_readme_and_the_guides_have_snippets():
    """The collection itself: a change of fence style must not silently run nothing."""
    pages = {s.page.name for s in SNIPPETS}
    assert {"README.md", "index.md", "asyncio.md", "broker.md", "pytest.md"} <= pages
    assert len(SNIPPETS) >= 20


@pytest.mark.timeout(120)
@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.id for s in SNIPPETS])
def test_snippet_runs_as_written(snippet: Snippet, mqtt_broker, tmp_path):
    if snippet.marker is not None:
        what, arg = snippet.marker.group("what"), snippet.marker.group("arg")
        if what == "skip":
            pytest.skip(f"{snippet.id}: {arg.strip('()')}")
        if importlib.util.find_spec(arg) is None:
            pytest.skip(f"{snippet.id} needs {arg}, which is not installed")
    env = {
        **os.environ,
        "MQTT_HOST": mqtt_broker.host,
        "MQTT_PORT": str(mqtt_broker.port),
        "PYTHONUNBUFFERED": "1",
    }
    if snippet.is_pytest_file:
        path = tmp_path / "test_snippet.py"
        # rootdir = tmp_path: the snippet runs with pytest's defaults, not this repository's.
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "--rootdir", str(tmp_path), str(path)]
    else:
        path = tmp_path / "snippet.py"
        cmd = [sys.executable, str(path)]
    path.write_text(snippet.code, encoding="utf-8")
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=100, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"{snippet.id} failed (exit {done.returncode}):\n{out}"
    assert "Traceback" not in out, f"{snippet.id}:\n{out}"
    if snippet.is_pytest_file:
        assert re.search(r"\d+ passed", out), out
        assert not re.search(r"\d+ (failed|skipped|error)", out), out


def test_broker_option_table_is_generated_from_the_code():
    """The broker page's option table comes from turbomqtt.broker.OPTIONS (read from the
    source by the site's hook): every option, with the default the code uses."""
    from turbomqtt.broker import OPTIONS

    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    rows = hooks.broker_options()
    assert [name for name, _, _ in rows] == list(OPTIONS)
    for name, default, meaning in rows:
        assert default == repr(OPTIONS[name][0]), name
        assert meaning == OPTIONS[name][1], name
    table = hooks.options_table()
    page = (ROOT / "docs" / "broker.md").read_text(encoding="utf-8")
    rendered = hooks.on_page_markdown(page, None, None, None)
    assert "<!-- broker-options -->" in page and table in rendered
    assert table.count("\n| `") == len(OPTIONS)
