"""The tutorial site (docs/site/build.py), built from the notebooks' SMOKE executions of
this session (tests/notebook_session.py) and read page by page in Chromium at 1280 px."""
from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import notebook_session

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
VIEWPORT = {"width": 1280, "height": 900}


class _Links(HTMLParser):
    """The hrefs and element ids of a page."""

    def __init__(self):
        super().__init__()
        self.hrefs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])


def _parse(page: Path) -> _Links:
    links = _Links()
    links.feed(page.read_text(encoding="utf-8"))
    return links


@pytest.fixture(scope="module")
def site(executed_notebook, tmp_path_factory) -> Path:
    """The site built from every notebook's execution of the session (SMOKE)."""
    executed = {name: executed_notebook(name).executed
                for name in (path.stem for path in notebook_session.NOTEBOOKS)}
    folder = next(iter(executed.values())).parent
    out = tmp_path_factory.mktemp("site") / "site"
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "site" / "build.py"),
                           "--executed", str(folder), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # the build warns about nothing: a warning is a broken reference or a lost figure
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert not warnings, "\n".join(warnings)
    return out


def _pages(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("*.html")
                  if p.name not in ("genindex.html", "search.html"))


def test_every_internal_link_resolves(site):
    pages = _pages(site)
    names = {p.relative_to(site).as_posix() for p in pages}
    assert {"index.html", "docs/method.html", "docs/results.html",
            "notebooks/01_quickstart.html", "notebooks/04_topology_explorer.html"} <= names
    broken = []
    for page in pages:
        for href in _parse(page).hrefs:
            parts = urlsplit(href)
            if parts.scheme or href.startswith("//"):
                continue                                    # outside the site
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if not target.is_file():
                broken.append(f"{page.relative_to(site)}: {href}")
            elif parts.fragment and target.suffix == ".html" and \
                    parts.fragment not in _parse(target).ids:
                broken.append(f"{page.relative_to(site)}: {href} (no such anchor)")
    assert not broken, "\n".join(broken)


def test_the_site_needs_no_network_and_ships_plotly_once(site):
    scripts = [p.relative_to(site).as_posix() for p in site.rglob("*.js")
               if "plotly" in p.name.lower()]
    assert scripts == ["_static/plotly.min.js"]
    for page in _pages(site):
        text = page.read_text(encoding="utf-8")
        # no script, style or font fetched from elsewhere (links to papers are fine)
        assert not re.search(r'<(script|link)[^>]+(src|href)="(https?:)?//', text), page


def test_every_page_reads_in_chromium(site, browser):
    """Every page at 1280 px: no console error, no request leaving the site, every figure
    drawn, nothing wider than the window, no code cell (nor, in a notebook, an output or a
    text block) scrolling sideways; the explorer's static picture in notebook 04."""
    problems = []
    for page_path in _pages(site):
        page = browser.new_page(viewport=VIEWPORT)
        errors, outside = [], []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.route(re.compile(r"^(?!file:).*"), lambda route: (outside.append(route.request.url),
                                                                route.abort()))
        page.goto(page_path.as_uri())
        page.wait_for_load_state("load")
        figures = page.locator(".plotly-graph-div, .htdviz-explorer-static > div[id]")
        count = figures.count()
        if count:
            page.wait_for_function(
                "n => document.querySelectorAll('.main-svg').length >= n", arg=count,
                timeout=60_000)
        drawn = page.evaluate("""() => [...document.querySelectorAll(
            '.plotly-graph-div, .htdviz-explorer-static > div[id]')].filter(gd =>
            gd._fullLayout && gd.querySelector('.main-svg') &&
            gd.getBoundingClientRect().height > 50).length""")
        wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        name = page_path.relative_to(site).as_posix()
        # a notebook's code, outputs and text blocks; docs pages' command blocks may scroll
        blocks = "pre" if name.startswith("notebooks/") else "div.cell_input pre"
        scrolling = page.evaluate("""s => [...document.querySelectorAll(s)]
            .filter(pre => pre.scrollWidth > pre.clientWidth + 1).length""", blocks)
        if errors:
            problems.append(f"{name}: console errors {errors[:3]}")
        if outside:
            problems.append(f"{name}: requests outside the site {outside[:3]}")
        if drawn != count:
            problems.append(f"{name}: {drawn} of {count} figures drawn")
        if wide > 0:
            problems.append(f"{name}: {wide} px wider than the window")
        if scrolling:
            problems.append(f"{name}: {scrolling} code cells or outputs scroll sideways")
        if name.startswith("notebooks/0") and name != "notebooks/index.html":
            assert count > 0, f"{name} shows no figure"
        if name == "notebooks/04_topology_explorer.html":
            static = page.locator(".htdviz-explorer-static")
            assert static.count() == 1, "the explorer's static picture is missing"
            assert "need the notebook running" in static.inner_text()
            assert static.locator(".main-svg").count() >= 2    # maps and heatmap
        page.close()
    assert not problems, "\n".join(problems)
