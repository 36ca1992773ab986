"""The documentation site, as a reader's browser shows it.

Opens the built site (``bash scripts/docs.sh`` writes it to site/) in headless Chromium
over HTTP on 127.0.0.1: every page renders with its title and the navigation, the
navigation reaches every page, and no internal link or anchor is broken. Without a built
site or a Chromium these tests are skipped, saying why; scripts/test.sh builds the site,
installs Chromium and sets TURBOMQTT_DOCS_SITE=1, which turns a skip into a failure.
"""

from __future__ import annotations

import functools
import html
import http.server
import os
import re
import shutil
import struct
import subprocess
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "site"
REQUIRED = os.environ.get("TURBOMQTT_DOCS_SITE", "") not in ("", "0")
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)


def _why_not() -> str | None:
    if not (SITE / "index.html").is_file():
        return "the site is not built (run: bash scripts/docs.sh)"
    if CHROMIUM is None:
        return "no chromium on this machine (Debian: apt-get install chromium)"
    return None


_WHY = _why_not()
if _WHY is not None and REQUIRED:
    raise RuntimeError(f"TURBOMQTT_DOCS_SITE is set but {_WHY}")
pytestmark = [
    pytest.mark.skipif(_WHY is not None, reason=_WHY or ""),
    pytest.mark.timeout(600),
]


def site_pages() -> list[str]:
    """URL paths of the site's pages ("/", "/asyncio/", ...), from the files on disk."""
    pages = []
    for f in sorted(SITE.rglob("index.html")):
        rel = f.parent.relative_to(SITE).as_posix()
        pages.append("/" if rel == "." else f"/{rel}/")
    return sorted(pages)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def chromium(*args: str) -> str:
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-dev-shm-usage", "--hide-scrollbars", *args],
        capture_output=True, text=True, timeout=90, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def rendered(base_url) -> dict[str, str]:
    """The DOM of every page after Chromium ran its scripts, by URL path."""
    return {page: chromium("--virtual-time-budget=3000", "--dump-dom", base_url + page)
            for page in site_pages()}


class _Page(HTMLParser):
    """Links, ids, the title, the h1 and the primary navigation's links of one page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.nav_links: list[str] = []
        self.title = ""
        self.h1 = ""
        self._in: str | None = None
        self._nav_depth = 0
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag not in ("meta", "link", "img", "br", "hr", "input", "source", "wbr"):
            self._depth += 1
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and "name" in a:
            self.ids.add(a["name"])
        if tag == "nav" and "md-nav--primary" in a.get("class", "") and not self._nav_depth:
            self._nav_depth = self._depth
        for key in ("href", "src"):
            if key in a and tag in ("a", "link", "script", "img", "source"):
                self.links.append(a[key])
                if key == "href" and tag == "a" and self._nav_depth:
                    self.nav_links.append(a[key])
        if tag in ("title", "h1") and not getattr(self, tag):
            self._in = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == "nav" and self._nav_depth == self._depth:
            self._nav_depth = 0
        if tag not in ("meta", "link", "img", "br", "hr", "input", "source", "wbr"):
            self._depth -= 1
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.title += data
        elif self._in == "h1":
            self.h1 += data


def parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def page_path(href: str, page: str) -> tuple[str, str] | None:
    """(URL path, fragment) of an internal link found on ``page``; None for others."""
    url = urlsplit(urljoin("http://site" + page, href))
    if url.scheme not in ("http", "https") or url.netloc != "site":
        return None
    return unquote(url.path), unquote(url.fragment)


def nav_sources() -> list[str]:
    """The Markdown files named in mkdocs.yml's nav, as site URL paths."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = text[text.index("\nnav:"):]
    nav = nav[: re.search(r"\n\S", nav[1:]).start() + 1]
    paths = []
    for source in re.findall(r":\s*(\S+\.md)\s*$", nav, re.MULTILINE):
        stem = source[: -len(".md")]
        paths.append("/" if stem == "index" else f"/{stem}/")
    return paths


def test_every_page_renders_with_title_heading_and_navigation(rendered):
    pages = site_pages()
    assert sorted(nav_sources()) == pages
    for page, dom in rendered.items():
        static = parse((SITE / page.lstrip("/") / "index.html").read_text(encoding="utf-8"))
        shown = parse(dom)
        assert shown.title.strip() == static.title.strip() != "", page
        assert shown.title.strip().endswith("- turbomqtt") or page == "/", shown.title
        heading = shown.h1.strip().rstrip("¶").strip()  # the heading's permalink sign
        assert heading, f"{page}: no heading"
        assert shown.h1 == static.h1, page
        assert shown.nav_links, f"{page}: no navigation"


def test_the_browser_ran_the_theme_scripts(rendered):
    """The theme's JavaScript marks the document and adds a copy button to every code
    block; their absence would mean the scripts failed to load (a broken asset path)."""
    static = (SITE / "index.html").read_text(encoding="utf-8")
    assert '<html lang="en" class="no-js">' in static
    assert 'class="md-code__button"' not in static
    for page, dom in rendered.items():
        assert re.search(r'<html lang="en" class="[^"]*\bjs\b', dom), page
    code_blocks = static.count('<div class="highlight">') + static.count('class="highlight"')
    assert code_blocks and rendered["/"].count('class="md-code__button"') >= 5


def test_navigation_reaches_every_page(rendered):
    pages = set(site_pages())
    from_landing = set()
    for href in parse(rendered["/"]).nav_links:
        target = page_path(href, "/")
        if target is not None:
            from_landing.add(target[0])
    assert pages <= from_landing, f"not in the landing page's navigation: {pages - from_landing}"

    reached, todo = {"/"}, ["/"]
    while todo:
        page = todo.pop()
        for href in parse(rendered[page]).nav_links:
            target = page_path(href, page)
            if target is not None and target[0] in pages and target[0] not in reached:
                reached.add(target[0])
                todo.append(target[0])
    assert reached == pages


def _target_file(path: str) -> Path:
    f = SITE / path.lstrip("/")
    return f / "index.html" if path.endswith("/") or f.is_dir() else f


def test_no_broken_internal_links_or_anchors():
    ids: dict[Path, set[str]] = {}
    broken = []
    files = sorted(SITE.rglob("*.html"))
    for f in files:
        rel = f.relative_to(SITE).as_posix()
        page = "/" + (rel.removesuffix("index.html"))
        for href in parse(f.read_text(encoding="utf-8")).links:
            target = page_path(href, page)
            if target is None:
                continue
            path, fragment = target
            tf = _target_file(path)
            if not tf.is_file():
                broken.append(f"{rel}: {href} (no {tf.relative_to(SITE)})")
                continue
            if fragment and tf.suffix == ".html":
                if tf not in ids:
                    ids[tf] = parse(tf.read_text(encoding="utf-8")).ids
                if fragment not in ids[tf]:
                    broken.append(f"{rel}: {href} (no id {fragment!r})")
    assert len(files) >= len(nav_sources())
    assert not broken, "\n".join(broken)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("page", ["/", "/asyncio/"])
def test_screenshot(base_url, tmp_path, page):
    """A screenshot of the landing page and of a guide (TURBOMQTT_DOCS_SCREENSHOTS=DIR
    keeps them there for a person to look at)."""
    out_dir = Path(os.environ.get("TURBOMQTT_DOCS_SCREENSHOTS") or tmp_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"\W+", "-", page.strip("/")) or "landing"
    shot = out_dir / f"{name}.png"
    chromium("--window-size=1280,1600", "--virtual-time-budget=3000",
             f"--screenshot={shot}", base_url + page)
    assert _png_size(shot) == (1280, 1600)
    # A page that failed to render (blank or an error page) compresses to a few KB.
    assert shot.stat().st_size > 60_000, shot.stat().st_size


def test_built_broker_page_lists_every_option_with_its_default():
    from turbomqtt.broker import OPTIONS

    text = (SITE / "broker" / "index.html").read_text(encoding="utf-8")
    for name, (default, _meaning) in OPTIONS.items():
        row = re.search(rf"<td><code>{re.escape(name)}</code></td>\s*<td><code>(.*?)</code></td>",
                        text)
        assert row, f"option {name} is not in the built broker page"
        assert row.group(1) == html.escape(repr(default), quote=False), name
