"""Build the tutorial site: the README's story, docs/*.md and every notebook executed with
its outputs, as static HTML pages (Sphinx with MyST-NB, the Furo theme).

    python docs/site/build.py                    # execute the notebooks as they open, build
    python docs/site/build.py --smoke            # the SMOKE setting (what the tests build)
    python docs/site/build.py --executed DIR     # notebooks already executed, in DIR
    python docs/site/build.py --picture reports/htdviz_report.html   # README's picture

The site lands in ``build/site/`` (``--out``): plain files, ready to publish as static
pages, that work with no network. Plotly's JavaScript is shipped once with the site; each
figure of a notebook becomes a div drawn by it, so the figures stay interactive in the page.
Widgets cannot run without a kernel: the explorer's output carries a static picture of its
maps (htdviz.viz.Explorer), which the page shows instead.

Why Sphinx and MyST-NB: both install from PyPI, build with no network, read executed
notebooks as they are (nothing is executed during the build), and MyST reads the project's
Markdown files and their relative links unchanged.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = Path(__file__).resolve().parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
DOCS = ("method", "results", "benchmarks", "guide")
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def execute(out_dir: Path, smoke: bool) -> list[tuple[str, float]]:
    """Execute every notebook (papermill, from notebooks/ so that their ``../runs`` is the
    project's runs/), into ``out_dir``; the committed notebooks are left as they are.
    Returns (name, seconds) per notebook."""
    import papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    times = []
    for path in NOTEBOOKS:
        start = time.perf_counter()
        print(f"executing {path.name} ({'SMOKE' if smoke else 'as it opens'})", flush=True)
        papermill.execute_notebook(str(path), str(out_dir / path.name),
                                   parameters={"SETTING": "smoke"} if smoke else {},
                                   cwd=str(path.parent), progress_bar=False)
        times.append((path.stem, time.perf_counter() - start))
        print(f"  {times[-1][1]:.0f} s", flush=True)
    return times


def static_outputs(nb) -> int:
    """Turn a notebook's outputs into what a static page can show: each plotly figure
    into a div drawn by the site's plotly.js (its JSON dropped), each widget view left to
    its HTML fallback. Returns the number of figures converted."""
    from htdviz.viz.figures import figure_html

    figures = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data")
            if not data:
                continue
            if PLOTLY_MIME in data:
                data["text/html"] = figure_html(data.pop(PLOTLY_MIME), f"htdviz-figure-{figures}")
                figures += 1
            data.pop(WIDGET_MIME, None)
    return figures


def stage(src: Path, executed: Path) -> None:
    """The site's sources in ``src``, laid out as in the repository (so that the Markdown
    files' relative links hold): index.md (the README), docs/*.md, notebooks/, and
    conf.py with _static/ (plotly.js, the site's CSS)."""
    import nbformat

    (src / "docs").mkdir(parents=True)
    (src / "notebooks").mkdir()
    pages = [f"notebooks/{path.stem}" for path in NOTEBOOKS] + \
        [f"docs/{name}" for name in DOCS if (ROOT / "docs" / f"{name}.md").exists()]
    toctree = "\n\n```{toctree}\n:hidden:\n:maxdepth: 1\n\n" + "\n".join(pages) + "\n```\n"
    (src / "index.md").write_text((ROOT / "README.md").read_text() + toctree)
    for name in DOCS:
        if (ROOT / "docs" / f"{name}.md").exists():
            shutil.copy(ROOT / "docs" / f"{name}.md", src / "docs" / f"{name}.md")
    if (ROOT / "docs" / "img").is_dir():
        shutil.copytree(ROOT / "docs" / "img", src / "docs" / "img")
    for path in NOTEBOOKS:
        executed_path = executed / path.name
        if not executed_path.exists():
            raise SystemExit(f"--executed: {executed_path} is missing (every notebook of "
                             f"notebooks/ must be there, executed)")
        nb = nbformat.read(executed_path, as_version=4)
        static_outputs(nb)
        nbformat.write(nb, src / "notebooks" / path.name)
    static = src / "_static"
    static.mkdir()
    import plotly

    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", static)
    shutil.copy(CONF_DIR / "htdviz.css", static)
    shutil.copy(CONF_DIR / "conf.py", src)


def build(executed: Path, out: Path) -> None:
    from sphinx.cmd.build import build_main

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        stage(src, executed)
        if out.exists():
            shutil.rmtree(out)
        code = build_main(["-b", "html", "-q", "-d", str(Path(tmp) / "doctrees"), str(src),
                           str(out)])
    if code:
        raise SystemExit(f"sphinx-build failed (exit {code})")
    print(f"site: {out}/index.html")


#: The report's view whose figure is the README's picture.
PICTURE_VIEW = "Where the maps can be trusted"
#: The width of the page the picture is taken from, in CSS pixels (it is saved at twice).
PICTURE_WIDTH = 900


def picture(report: Path, out: Path = ROOT / "docs" / "img" / "maps.png") -> None:
    """The README's picture: the figure of the report's :data:`PICTURE_VIEW` view, as
    Chromium draws it on a page :data:`PICTURE_WIDTH` px wide (Playwright), saved as a PNG
    at twice that resolution."""
    import shutil as _shutil

    from playwright.sync_api import sync_playwright

    chromium = _shutil.which("chromium") or _shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("--picture needs Chromium on PATH (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        # a narrow page at twice the pixels: the README shows the picture at most ~900 px
        # wide, where a 1280 px figure's text would shrink to ~7 px
        page = browser.new_page(viewport={"width": PICTURE_WIDTH, "height": 900},
                                device_scale_factor=2)
        page.goto(report.resolve().as_uri())
        figure = page.locator(f"xpath=//h2[normalize-space()='{PICTURE_VIEW}']"
                              f"/following::div[contains(@class, 'plotly-graph-div')][1]")
        if figure.count() != 1:
            raise SystemExit(f"--picture: {report} has no view {PICTURE_VIEW!r} with one "
                             f"figure (a report of htdviz demo is needed)")
        figure.locator(".main-svg").first.wait_for()
        page.add_style_tag(content=".modebar-container { display: none; }")
        out.parent.mkdir(parents=True, exist_ok=True)
        figure.screenshot(path=str(out))
        browser.close()
    print(f"picture: {out}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="execute the notebooks in their SMOKE setting")
    parser.add_argument("--executed", type=Path,
                        help="a folder of notebooks already executed (nothing is run)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site")
    parser.add_argument("--picture", type=Path, metavar="REPORT",
                        help="only save the README's picture (docs/img/maps.png) from a "
                             "report of `htdviz demo`")
    args = parser.parse_args(argv)
    if args.picture is not None:
        if not args.picture.is_file():
            parser.error(f"--picture: {args.picture} is not a file")
        picture(args.picture)
        return
    if args.executed is not None:
        if not args.executed.is_dir():
            parser.error(f"--executed: {args.executed} is not a folder")
        build(args.executed, args.out)
        return
    executed = ROOT / "build" / ("executed-smoke" if args.smoke else "executed")
    times = execute(executed, args.smoke)
    print("executed:", ", ".join(f"{name} {seconds:.0f} s" for name, seconds in times))
    build(executed, args.out)


if __name__ == "__main__":
    sys.exit(main())
