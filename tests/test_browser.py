"""The notebooks, the explorer and the report as a user sees them: JupyterLab 4 in Chromium.

Playwright for Python drives the system Chromium (the Debian ``chromium`` package; the
Makefile installs it where it is missing: Playwright's own browser download is not used).
These tests assert on what the page shows -- the plotly DOM and ``gd.data`` /
``gd.layout`` read in the page -- not only on the kernel's state, which is what
tests/test_viz.py checks without a browser.

- Every notebook, in a temporary copy of notebooks/, is opened in a JupyterLab started for
  the session (a free port, a token) and run with Run All in its committed SMOKE setting:
  no error output, every plotly output drawn, every widget rendered, no error in the
  browser console. This is the session's one execution of each notebook
  (tests/notebook_session.py): tests/test_notebooks.py checks the kernel's side of it.
- The explorer of notebook 04 is then driven like a user, in the same page and kernel: a
  box selection dragged with the mouse on the teacher's map, the heatmap modes, the
  method, entity, colour and projection controls. After each step: the selected group
  highlighted in both maps, no drawn box left behind, the heatmap's shapes in the page
  equal to the kernel figure's, the run following the method, and a busy sign while the
  kernel works.
- The HTML report of the demo pipeline on a SMOKE synthetic data set (built once for the
  session, conftest.py's ``demo_report``; tests/test_report.py checks its content): no
  console error, no horizontal scroll at 1280 px, a title on every numeric axis.

A failing test leaves a screenshot (and the page's HTML) under
``<pytest basetemp>/screenshots/``; the path is printed with the failure. Marker
``browser``; ``make test-browser`` runs these alone. Most of their time is the notebooks'
SMOKE training (docs/benchmarks.md, "Test suite").
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from notebook_session import NOTEBOOKS, UPDATE_TIMEOUT, Notebook, browser_missing

pytestmark = pytest.mark.browser
if browser_missing():
    pytest.skip(browser_missing(), allow_module_level=True)

EXPLORER_NOTEBOOK = "04_topology_explorer"


# JupyterLab's status bar shows a log item once something reached the notebook's log
# console (kernel output that belongs to no cell: a widget callback's traceback, say); its
# title counts the entries ("3 log entries for ...", at the default level: warnings, errors)
_LOG_ITEM_TITLE = """() => {
  const item = document.querySelector('.jp-LogConsoleStatusItem [title]');
  return item ? item.getAttribute('title') : '';
}"""


def log_console_entries(page) -> str:
    """'' when nothing reached the page's log console, else the console's text."""
    title = page.evaluate(_LOG_ITEM_TITLE)
    entries = re.search(r"(\d+) log entr", title)
    if not entries or int(entries.group(1)) == 0:
        return ""
    page.click(".jp-LogConsoleStatusItem")
    page.wait_for_selector(".jp-LogConsolePanel .jp-OutputArea-output", timeout=10_000)
    texts = page.eval_on_selector_all(".jp-LogConsolePanel .jp-OutputArea-output",
                                      "nodes => nodes.map(n => n.textContent)")
    return f"{title}: " + " | ".join(texts)[:3000]


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def open_notebooks(executed_notebook, browser):
    """name -> the notebook open in the browser after its Run All (the session's one
    execution; the explorer tests reuse notebook 04's page and kernel)."""
    def open_and_run(name: str):
        execution = executed_notebook(name)
        assert execution.how == "browser", f"{name} ran with {execution.how}, not in the browser"
        return execution.notebook
    return open_and_run


@pytest.fixture
def shot_on_failure(request, screenshots):
    """Call with a page (and close=True for a page the test owns): on failure, the page's
    screenshot and HTML go to the screenshots folder (report hook in conftest.py)."""
    pages = []
    yield lambda page, close=False: pages.append((page, close))
    report = getattr(request.node, "rep_call", None)
    for i, (page, close) in enumerate(pages):
        if report is not None and report.failed:
            stem = screenshots / re.sub(r"[^\w.-]", "_", f"{request.node.name}-{i}")
            page.screenshot(path=f"{stem}.png", full_page=True)
            Path(f"{stem}.html").write_text(page.content())
            print(f"screenshot of the failing page: {stem}.png")
        if close:
            page.close()


# --------------------------------------------------------------------------------------
# Every notebook, Run All
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [p.stem for p in NOTEBOOKS])
def test_notebook_runs_all_in_the_browser(name, open_notebooks, shot_on_failure):
    notebook = open_notebooks(name)
    shot_on_failure(notebook.page)
    # widgets render after the kernel is idle: give the last views a moment
    notebook.page.wait_for_timeout(1000)
    cells = notebook.outputs()
    errors = [(c["source"], c["errors"]) for c in cells if c["errors"]]
    assert not errors, f"{name}: cells with error output: {errors}"
    for cell in cells:
        assert cell["plots_outside_widgets"] >= cell["n_plotly"] and \
            cell["plots_drawn"] >= cell["n_plotly"], \
            f"{name}, cell {cell['source']!r}: {cell['n_plotly']} plotly outputs, " \
            f"{cell['plots_drawn']} drawn"
        if cell["n_widgets"]:
            assert cell["widgets_drawn"] and not cell["widget_errors"], \
                f"{name}, cell {cell['source']!r}: widget not rendered " \
                f"{cell['widget_errors']}"
    assert sum(c["n_plotly"] + c["n_widgets"] for c in cells) > 0, f"{name} showed nothing"
    assert not notebook.console_errors, f"{name}: console errors {notebook.console_errors}"
    log = log_console_entries(notebook.page)
    assert not log, f"{name}: JupyterLab's log console shows {log}"


# --------------------------------------------------------------------------------------
# The explorer, driven with the mouse
# --------------------------------------------------------------------------------------

# The explorer's output area, its two figures and the state of what they show.
_EXPLORER = """() => {
  const cells = window.jupyterapp.shell.currentWidget.content.widgets;
  const cell = cells.find(c => c.model.sharedModel.getSource().includes('Explorer('));
  return cell.node.querySelector('.jp-OutputArea-output .jupyter-widgets');
}"""

_VIEW_STATE = """(root) => {
  const [map, heat] = root.querySelectorAll('.js-plotly-plot');
  const panel = root.querySelector('.widget-html-content');
  const shape = s => [s.type, s.xref, s.yref, +s.x0, +s.x1, +s.y0, +s.y1];
  return {
    n_points: map.data.map(t => t.x.length),
    groups: map.data[0].customdata.map(row => String(row[1])),
    selected: map.data.map(t => t.selectedpoints == null ? null : [...t.selectedpoints]),
    selections: (map.layout.selections || []).length,
    drawn_selection: map.querySelectorAll('.selectionlayer path, .select-outline').length,
    titles: [...map.querySelectorAll('.annotation-text')].map(e => e.textContent),
    x: Array.from(map.data[0].x.slice(0, 5)),
    coloraxis: Boolean(map._fullLayout.coloraxis && map.data[0].marker.coloraxis),
    heat_shapes: (heat.layout.shapes || []).map(shape),
    heat_shapes_drawn: heat.querySelectorAll('.shapelayer path').length,
    key: (root.querySelector('.htdviz-colour-key') || {textContent: ''}).textContent,
    info: [...root.querySelectorAll('.widget-html-content')].map(e => e.textContent).join(' | '),
    busy: root.querySelectorAll('.htdviz-busy').length,
    run: root.querySelectorAll('select')[2].value,
  };
}"""

# Counts the explorer's finished updates: its status line shows .htdviz-busy while the
# kernel works.
_COUNT_UPDATES = """(root) => {
  window.htdvizUpdates = 0;
  let busy = false;
  new MutationObserver(() => {
    const now = Boolean(root.querySelector('.htdviz-busy'));
    if (busy && !now) window.htdvizUpdates += 1;
    busy = now;
  }).observe(root, {subtree: true, childList: true, characterData: true});
}"""

_QUIET = """async ([quiet, timeout]) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const start = Date.now();
  let idleSince = Date.now();
  while (Date.now() - start < timeout) {
    if (kernel.status !== 'idle') idleSince = Date.now();
    else if (Date.now() - idleSince >= quiet) return;
    await new Promise(resolve => setTimeout(resolve, 100));
  }
}"""

_KERNEL_SHAPES = """
import json
print(json.dumps([[s.type, s.xref, s.yref, s.x0, s.x1, s.y0, s.y1]
                  for s in explorer.heatmap_widget.layout.shapes]))
"""

_GROUP_BOX = """([root, group, quantiles]) => {
  const map = root.querySelector('.js-plotly-plot'), trace = map.data[0];
  const xa = map._fullLayout.xaxis, ya = map._fullLayout.yaxis;
  const box = map.getBoundingClientRect(), xs = [], ys = [];
  trace.customdata.forEach((row, i) => {
    if (String(row[1]) === group) { xs.push(trace.x[i]); ys.push(trace.y[i]); } });
  const q = (a, p) => { const s = [...a].sort((u, v) => u - v);
                        return s[Math.floor(p * (s.length - 1))]; };
  return {x0: box.left + xa._offset + xa.l2p(q(xs, quantiles[0])),
          x1: box.left + xa._offset + xa.l2p(q(xs, quantiles[1])),
          y0: box.top + ya._offset + ya.l2p(q(ys, quantiles[0])),
          y1: box.top + ya._offset + ya.l2p(q(ys, quantiles[1]))};
}"""


class ExplorerView:
    def __init__(self, notebook: Notebook):
        self.notebook, self.page = notebook, notebook.page
        self.root = self.page.evaluate_handle(_EXPLORER)
        assert self.root.as_element() is not None, "notebook 04 shows no explorer"
        self.element = self.root.as_element()
        self.page.evaluate(_COUNT_UPDATES, self.root)

    def state(self) -> dict:
        return self.page.evaluate(_VIEW_STATE, self.root)

    def act(self, action, while_busy=None) -> None:
        """Do ``action`` and wait for the explorer's update to finish: its busy sign has
        come and gone (counted in the page, however short). ``while_busy()`` runs while
        the sign shows."""
        done = self.page.evaluate("() => window.htdvizUpdates")
        action()
        if while_busy is not None:
            self.page.wait_for_function("(root) => root.querySelector('.htdviz-busy')",
                                        arg=self.root, timeout=10_000)
            while_busy()
        self.page.wait_for_function(f"() => window.htdvizUpdates > {done}",
                                    timeout=UPDATE_TIMEOUT * 1000)
        # then the page's echoes settle (removing a drawn box makes plotly.js report an
        # empty selection, which the kernel answers): the kernel idle for 1.5 s on end
        self.page.evaluate(_QUIET, [1500, UPDATE_TIMEOUT * 1000])

    def click_toggle(self, label: str) -> None:
        self.element.query_selector(f"button:text-is('{label}')").click()

    def choose(self, which: int, value: str) -> None:
        """Pick ``value`` in the explorer's dropdown number ``which`` (method, dim, run,
        colour)."""
        self.element.query_selector_all("select")[which].select_option(label=value)

    def kernel_shapes(self) -> list:
        return json.loads(self.notebook.kernel(_KERNEL_SHAPES))

    def assert_heatmap_matches_the_kernel(self, state: dict, when: str) -> None:
        kernel = [[t, xr, yr, float(x0), float(x1), float(y0), float(y1)]
                  for t, xr, yr, x0, x1, y0, y1 in self.kernel_shapes()]
        assert state["heat_shapes"] == kernel, \
            f"{when}: the page's heatmap has {len(state['heat_shapes'])} shapes, the " \
            f"kernel's figure {len(kernel)}"
        assert state["heat_shapes_drawn"] == len(kernel), \
            f"{when}: {state['heat_shapes_drawn']} shapes drawn, the kernel has {len(kernel)}"

    def assert_no_drawn_selection(self, state: dict, when: str) -> None:
        assert state["selections"] == 0 and state["drawn_selection"] == 0, \
            f"{when}: a drawn selection box is left in the map ({state['selections']} in " \
            f"layout.selections, {state['drawn_selection']} outlines drawn)"


@pytest.fixture(scope="module")
def explorer_view(open_notebooks):
    notebook = open_notebooks(EXPLORER_NOTEBOOK)
    view = ExplorerView(notebook)
    view.element.scroll_into_view_if_needed()
    return view


def test_explorer_box_selection_highlights_the_group_in_both_maps(explorer_view,
                                                                  shot_on_failure):
    view, page = explorer_view, explorer_view.page
    shot_on_failure(page)
    before = view.state()
    groups = before["groups"]
    counts = {g: groups.count(g) for g in set(groups)}
    assert len(counts) > 1, f"the SMOKE maps show {len(counts)} HTD item group(s)"
    group = max(counts, key=counts.get)

    map_plot = view.element.query_selector(".js-plotly-plot")
    map_plot.scroll_into_view_if_needed()
    map_plot.hover()
    map_plot.query_selector('[data-title="Box Select"]').click()
    box = page.evaluate(_GROUP_BOX, [view.root, group, [0.35, 0.65]])

    def drag():
        page.mouse.move(box["x0"], box["y0"])
        page.mouse.down()
        page.mouse.move((box["x0"] + box["x1"]) / 2, (box["y0"] + box["y1"]) / 2, steps=5)
        page.mouse.move(box["x1"], box["y1"], steps=5)
        page.mouse.up()

    view.act(drag)
    state = view.state()

    picked = re.search(r"HTD group (\d+): ", state["info"])
    assert picked, f"the side panel names no group: {state['info'][:300]!r}"
    chosen = picked.group(1)
    members = [i for i, g in enumerate(state["groups"]) if g == chosen]
    assert chosen == group, f"a box around group {group} picked group {chosen}"
    assert [sorted(s or []) for s in state["selected"]] == [members, members], \
        f"group {chosen} ({len(members)} items) is not the selection of both maps: " \
        f"{[None if s is None else len(s) for s in state['selected']]} selected"
    view.assert_no_drawn_selection(state, "after a box selection")
    view.assert_heatmap_matches_the_kernel(state, "after a box selection")
    assert any(s[0] == "rect" for s in state["heat_shapes"]), \
        "the heatmap does not outline the selected group"

    for mode in ("prototypes", "selected group", "groups"):
        view.act(lambda: view.click_toggle(mode))
        view.assert_heatmap_matches_the_kernel(view.state(), f"heatmap mode {mode!r}")


def test_explorer_method_switches_the_run(explorer_view, shot_on_failure):
    view = explorer_view
    shot_on_failure(view.page)
    before = view.state()
    assert before["run"].startswith("htd"), before["run"]
    view.act(lambda: view.choose(0, "student"))   # SMOKE's htd and student share d_s = 8
    state = view.state()
    assert state["run"] != before["run"] and state["run"].startswith("student"), \
        f"choosing method 'student' left the run at {state['run']!r}"
    assert any(state["run"] in title for title in state["titles"]), \
        f"the student map's title {state['titles']} does not name {state['run']!r}"
    view.assert_heatmap_matches_the_kernel(state, "after the method switch")
    view.act(lambda: view.choose(0, "htd"))
    assert view.state()["run"] == before["run"]


def test_explorer_entity_colour_and_projection_controls(explorer_view, shot_on_failure):
    view, page = explorer_view, explorer_view.page
    shot_on_failure(page)
    n_users = int(view.notebook.kernel("print(dataset.n_users)"))
    view.act(lambda: view.click_toggle("users"))
    state = view.state()
    assert state["n_points"] == [n_users, n_users]
    assert state["selected"] == [None, None], "a selection survived the entity switch"
    view.assert_no_drawn_selection(state, "after the entity switch")
    view.assert_heatmap_matches_the_kernel(state, "after the entity switch")
    assert len(set(state["groups"])) > 1, "the SMOKE maps show one HTD user group"
    assert "HTD group" in state["key"], f"no colour key above the maps: {state['key']!r}"

    view.act(lambda: view.choose(3, "popularity"))
    state = view.state()
    assert state["coloraxis"] and state["key"] == "", \
        "colour by popularity: expected a colour bar, not a key of categories"

    pca_x = state["x"]

    def locked():
        assert view.element.query_selector_all("select")[0].is_disabled(), \
            "the controls stay live while the kernel is busy"

    view.act(lambda: view.click_toggle("umap"), while_busy=locked)   # a busy sign meanwhile
    state = view.state()
    assert state["x"] != pca_x, "the map did not change with the projection"
    view.assert_no_drawn_selection(state, "after the projection switch")
    assert state["selected"] == [None, None]
    view.act(lambda: view.choose(3, "HTD group"))
    view.act(lambda: view.click_toggle("items"))
    view.assert_heatmap_matches_the_kernel(view.state(), "back to items")


# Whatever of the explorer reaches past its notebook cell's right edge, and how far its
# output area scrolls sideways
_OVERFLOW = """(root) => {
  const limit = root.closest('.jp-Cell').getBoundingClientRect().right;
  const over = [];
  root.querySelectorAll('.widget-hbox > *, .widget-vbox > *, .js-plotly-plot').forEach(el => {
    const box = el.getBoundingClientRect();
    if (box.width && box.right > limit + 1)
      over.push(`${el.className.baseVal ?? el.className} by ${Math.round(box.right - limit)} px`);
  });
  const area = root.closest('.jp-OutputArea-output');
  return {over: over.slice(0, 5), scroll: area.scrollWidth - area.clientWidth};
}"""


def test_explorer_fits_at_1280_px_with_the_file_browser_open(explorer_view, shot_on_failure):
    page = explorer_view.page
    shot_on_failure(page)
    size = page.viewport_size
    page.set_viewport_size({"width": 1280, "height": 900})
    page.evaluate("() => window.jupyterapp.shell.activateById('filebrowser')")
    try:
        page.wait_for_selector("#filebrowser", state="visible", timeout=10_000)
        page.wait_for_timeout(1500)                     # the widgets and figures re-lay out
        state = page.evaluate(_OVERFLOW, explorer_view.root)
        assert not state["over"] and state["scroll"] <= 0, \
            f"at 1280 px with the file browser open the explorer overflows its cell: " \
            f"{state['over']}, sideways scroll {state['scroll']} px"
    finally:
        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        page.set_viewport_size(size)


def test_explorer_clicks_leave_the_log_console_empty(explorer_view, shot_on_failure):
    """Every click above went through the kernel's widget callbacks; an exception in one
    reaches no cell, only JupyterLab's log console (and a counter in the status bar)."""
    shot_on_failure(explorer_view.page)
    log = log_console_entries(explorer_view.page)
    assert not log, f"after the explorer's clicks, JupyterLab's log console shows {log}"


# --------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------

_AXES_WITHOUT_TITLE = """() => {
  const missing = [];
  document.querySelectorAll('.js-plotly-plot').forEach((gd, i) => {
    const layout = gd._fullLayout;
    Object.keys(layout).filter(k => /^[xy]axis\\d*$/.test(k)).forEach(k => {
      const axis = layout[k];
      if (!axis.visible || axis.type === 'category' || !axis.showticklabels) return;
      const title = axis.title && axis.title.text;
      if (!title || !String(title).trim()) missing.push(`figure ${i} ${k}`);
    });
  });
  return missing;
}"""


def test_report_reads_in_the_browser(demo_report, browser, shot_on_failure):
    path, _ = demo_report
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    shot_on_failure(page, close=True)
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(Path(path).as_uri())
    page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')]"
                           ".every(gd => gd._fullLayout)")
    page.wait_for_timeout(1000)
    assert not errors, f"console errors in the report: {errors}"
    width = page.evaluate("() => [document.documentElement.scrollWidth,"
                          " document.documentElement.clientWidth]")
    assert width[0] <= width[1], f"the report scrolls sideways at 1280 px: {width}"
    assert page.evaluate("() => document.querySelectorAll('.js-plotly-plot').length") > 0
    missing = page.evaluate(_AXES_WITHOUT_TITLE)
    assert not missing, f"numeric axes without a title: {missing}"
