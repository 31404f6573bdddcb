"""Every notebook executed once per test session, for two kinds of check.

tests/test_notebooks.py checks the kernel's side of each SMOKE execution (no error, every
code cell ran, the runs it used lie in ``../runs/smoke``); tests/test_browser.py checks the
page's side (every plot drawn, every widget rendered, no console error) and drives the
explorer of notebook 04, which needs a live kernel. Both read the same execution
(conftest.py's ``executed_notebook``), made one of two ways:

- in the browser, when the session runs browser tests and Chromium is there: the notebook
  is opened in JupyterLab (started once for the session: a free port, a token) and run
  with Run All, as a user would; its page and kernel stay open for the browser tests;
- with nbclient otherwise (``-m notebooks``, or no Chromium): a fresh kernel runs it top
  to bottom.

Either way the executed notebook, outputs included, is written to ``<root>/executed/``,
from which tests/test_site.py builds the tutorial site; and the notebooks run in a
temporary copy of notebooks/ (conftest.py's ``smoke_project``), in name order, sharing
its runs folder as a user's notebooks share runs/; and after the last cell the kernel is
asked which finished run folders its namespace holds (``RUNS_PROBE``).

The JupyterLab and Chromium helpers are here rather than in tests/test_browser.py because
the execution they make is shared.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: Notebooks whose SMOKE setting reads CiteULike (the others use synthetic data).
SMOKE_NEEDS_CITEULIKE = {"02_teachers", "04_topology_explorer"}
#: Seconds a notebook's Run All, or one cell under nbclient, may take (SMOKE: 10 s to 3 min).
RUN_TIMEOUT = 600
#: Seconds one page update may take in the browser (a UMAP of 5,219 users included).
UPDATE_TIMEOUT = 240
VIEWPORT = {"width": 1400, "height": 1000}
#: Console messages that are not the page's fault: the kernel's missing favicon.
BENIGN_CONSOLE = ("favicon",)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def browser_missing() -> str:
    """Why the browser tests cannot run here ('' when they can)."""
    import importlib.util

    for module in ("playwright", "jupyterlab"):
        if importlib.util.find_spec(module) is None:
            return f"the browser tests need {module} (pip install \"htdviz[test]\")"
    if chromium() is None:
        return ("the browser tests need Chromium on PATH (Debian: apt-get install chromium; "
                "`make test` installs it)")
    return ""


def smoke_copy(source: Path, target: Path) -> None:
    """Copy a notebook with its parameters cell set to the SMOKE setting (``SETTING =
    "smoke"`` where it sets ``SETTING = "lesson"``), as papermill's ``-p`` would."""
    import nbformat

    nb = nbformat.read(source, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    if 'SETTING = "lesson"' not in cell.source:
        raise ValueError(f'{source.name}: its parameters cell does not set SETTING = "lesson"')
    cell.source = cell.source.replace('SETTING = "lesson"', 'SETTING = "smoke"', 1)
    nbformat.write(nb, target)


def kernel_env(root: Path, data_dir: Path) -> dict:
    """The environment of the notebooks' kernels: the session's data and cache folders."""
    env = dict(os.environ, HTDVIZ_CACHE_DIR=str(root / "cache"), HTDVIZ_DATA_DIR=str(data_dir),
               PYDEVD_DISABLE_FILE_VALIDATION="1")
    env.setdefault("OMP_NUM_THREADS", "1")    # SMOKE models are tiny (as conftest.py)
    return env


# --------------------------------------------------------------------------------------
# What one execution left
# --------------------------------------------------------------------------------------

#: Run in the kernel after the last cell: which finished run folders the notebook's
#: namespace holds (Run objects, Paths, and the ``path`` column of study tables, also
#: inside dicts and lists), and where its RUNS_DIR points.
RUNS_PROBE = r'''
def _htdviz_probe():
    import json, pathlib
    import pandas
    from htdviz import runs

    found = set()

    def visit(value, depth=0):
        if isinstance(value, runs.Run):
            value = value.path
        if isinstance(value, pathlib.Path):
            if runs.finished(value):
                found.add(str(value.resolve()))
        elif isinstance(value, pandas.DataFrame) and "path" in value.columns:
            for path in value["path"].dropna():
                visit(pathlib.Path(path), depth + 1)
        elif isinstance(value, dict) and depth < 3:
            for item in value.values():
                visit(item, depth + 1)
        elif isinstance(value, (list, tuple, set)) and depth < 3:
            for item in value:
                visit(item, depth + 1)

    for name, value in list(globals().items()):
        if not name.startswith("_"):
            visit(value)
    print(json.dumps({"runs_dir": str(pathlib.Path(RUNS_DIR).resolve()),
                      "run_folders": sorted(found)}))


_htdviz_probe()
del _htdviz_probe
'''


@dataclass
class Execution:
    """One notebook's SMOKE execution.

    ``cells`` has one entry per code cell: ``source`` (its first 60 characters),
    ``errors`` (``ename: evalue`` of its error outputs) and ``ran`` (it has an execution
    count); in the browser also what the page shows of its outputs (see ``_OUTPUTS``).
    ``probe`` is what ``RUNS_PROBE`` printed. ``notebook`` is the page and live kernel
    (browser only).
    """

    name: str
    how: str                                   # "browser" or "nbclient"
    cells: list[dict]
    probe: dict = field(default_factory=dict)
    notebook: "Notebook | None" = None
    executed: Path | None = None               # the notebook with its outputs


def _parse_probe(text: str, name: str) -> dict:
    lines = [line for line in text.strip().splitlines() if line.startswith("{")]
    assert lines, f"{name}: the runs probe printed no result: {text[-2000:]!r}"
    return json.loads(lines[-1])


def execute_with_nbclient(root: Path, name: str, env: dict) -> Execution:
    """Run ``<root>/notebooks/<name>.ipynb`` top to bottom on a fresh kernel there (the
    executed notebook stays in memory; the file is left as it was)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    copy = root / "notebooks" / f"{name}.ipynb"
    nb = nbformat.read(copy, as_version=4)
    n_cells = len(nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell(RUNS_PROBE))
    client = NotebookClient(nb, timeout=RUN_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(copy.parent)}})
    try:
        client.execute(env=env)
    except CellExecutionError:
        pass                 # the failing cell keeps its error output; the test reports it
    cells = [{"source": cell.source[:60],
              "errors": [f"{o.ename}: {o.evalue}" for o in cell.outputs
                         if o.output_type == "error"],
              "ran": cell.execution_count is not None}
             for cell in nb.cells[:n_cells] if cell.cell_type == "code"]
    probe = {}
    if all(cell["ran"] and not cell["errors"] for cell in cells):
        text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
        probe = _parse_probe(text, name)
    nb.cells.pop()                                 # the probe is not part of the notebook
    return Execution(name, "nbclient", cells, probe,
                     executed=_write_executed(root, name, nb))


def _write_executed(root: Path, name: str, nb) -> Path:
    import nbformat

    path = root / "executed" / f"{name}.ipynb"
    path.parent.mkdir(exist_ok=True)
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:              # JupyterLab's model gives cells empty keys as null
        for key in [key for key, value in cell.items() if value is None]:
            del cell[key]
    nbformat.write(nb, path)
    return path


# --------------------------------------------------------------------------------------
# JupyterLab and Chromium
# --------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int, path: str) -> bool:
    """Whether a local server answers ``path`` with 200 (http.client: conftest.py blocks
    urllib for the whole session)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _lab_settings(folder: Path) -> None:
    """User settings of the test's JupyterLab: every cell attached to the page (the default
    windowing detaches cells out of view, and their outputs with them); no news check."""
    settings = {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False},
    }
    for name, value in settings.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


class JupyterLab:
    """A JupyterLab serving ``root`` (its notebooks/ a copy of the project's) on a free
    port with a token; its kernels get ``env``. Use as a context manager."""

    def __init__(self, root: Path, env: dict):
        self.root, self.env = root, dict(env, JUPYTERLAB_WORKSPACES_DIR=str(root / "workspaces"),
                                         JUPYTER_RUNTIME_DIR=str(root / "runtime"))
        self.port, self.token = _free_port(), os.urandom(16).hex()
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "JupyterLab":
        root = self.root
        _lab_settings(root / "settings")
        command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
                   f"--port={self.port}", "--ServerApp.port_retries=0",
                   "--ServerApp.allow_root=True", f"--IdentityProvider.token={self.token}",
                   f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
                   "--LabApp.extension_manager=readonly",
                   f"--LabApp.user_settings_dir={root / 'settings'}"]
        self.log = open(root / "jupyterlab.log", "w")
        self.server = subprocess.Popen(command, env=self.env, cwd=root, stdout=self.log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while not _answers(self.port, f"/api/status?token={self.token}"):
                if self.server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start; see {root}/jupyterlab.log")
                time.sleep(0.5)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        os.killpg(self.server.pid, signal.SIGTERM)     # the server and the kernels it started
        try:
            self.server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.server.pid, signal.SIGKILL)
        self.log.close()

    def open(self, browser, name: str) -> "Notebook":
        """Open notebooks/<name>.ipynb in a page of its own, its kernel connected."""
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(UPDATE_TIMEOUT * 1000)
        notebook = Notebook(page, name)
        # a workspace of its own, reset: JupyterLab would reopen the notebooks of the
        # pages before, and Run All would go to whichever tab is current
        page.goto(f"{self.url}/lab/workspaces/{name}/tree/notebooks/{name}.ipynb"
                  f"?reset&token={self.token}")
        page.wait_for_function(
            "(path) => { const w = window.jupyterapp && window.jupyterapp.shell"
            ".currentWidget; return w && w.context && w.context.path === path &&"
            " w.sessionContext && w.sessionContext.session &&"
            " w.sessionContext.session.kernel &&"
            " w.sessionContext.session.kernel.connectionStatus === 'connected'; }",
            arg=f"notebooks/{name}.ipynb")
        page.evaluate("window.jupyterapp.commands.execute('application:toggle-left-area')")
        return notebook


class Notebook:
    """A notebook open in the browser: its page, console errors and helpers."""

    def __init__(self, page, name: str):
        self.page, self.name = page, name
        self.console_errors: list[str] = []
        page.on("console", lambda m: self.console_errors.append(m.text)
                if m.type == "error" and not any(b in m.text for b in BENIGN_CONSOLE) else None)
        page.on("pageerror", lambda e: self.console_errors.append(f"page error: {e}"))

    def run_all(self) -> None:
        """Run All, and wait for the last cell's result and the kernel to be idle."""
        finished = self.page.evaluate(_RUN_ALL, RUN_TIMEOUT * 1000)
        assert finished == "done", f"{self.name}: Run All did not finish ({finished})"

    def kernel(self, code: str) -> str:
        """Run ``code`` in the notebook's kernel (not in a cell); its printed output."""
        return self.page.evaluate(_KERNEL_EXECUTE, code)

    def outputs(self) -> list[dict]:
        return self.page.evaluate(_OUTPUTS)

    def close(self) -> None:
        self.page.evaluate("window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
        self.page.close()


def execute_in_browser(lab: JupyterLab, browser, name: str) -> Execution:
    """Open ``name`` in JupyterLab, Run All, and ask its kernel for its run folders."""
    notebook = lab.open(browser, name)
    notebook.run_all()
    cells = notebook.outputs()
    probe = {}
    if all(cell["ran"] and not cell["errors"] for cell in cells):
        probe = _parse_probe(notebook.kernel(RUNS_PROBE), name)
    executed = _write_executed(lab.root, name, notebook.page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.context.model.toJSON()"))
    return Execution(name, "browser", cells, probe, notebook, executed)


# Done when every code cell has run (or one failed, which stops Run All) and the kernel is
# idle; the command's promise alone may settle before the last cell's outputs arrive.
_RUN_ALL = """async (timeout) => {
  const app = window.jupyterapp, panel = app.shell.currentWidget;
  await panel.sessionContext.ready;
  const start = Date.now(), pause = () => new Promise(r => setTimeout(r, 250));
  const run = app.commands.execute('notebook:run-all-cells');
  await Promise.race([run, new Promise(r => setTimeout(r, timeout))]);
  while (Date.now() - start < timeout) {
    const cells = panel.content.widgets.filter(c => c.model.type === 'code');
    const failed = cells.some(c => c.model.outputs.toJSON()
                                    .some(o => o.output_type === 'error'));
    const ran = cells.every(c => c.model.executionCount != null);
    if ((ran || failed) && panel.sessionContext.session.kernel.status === 'idle')
      return 'done';
    await pause();
  }
  return 'timed out after ' + timeout / 1000 + ' s';
}"""

_KERNEL_EXECUTE = """async (code) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  let out = '';
  const future = kernel.requestExecute({code, store_history: false, silent: false});
  future.onIOPub = msg => {
    if (msg.header.msg_type === 'stream') out += msg.content.text;
    if (msg.header.msg_type === 'error') out += 'ERROR ' + msg.content.ename + ': ' +
                                                  msg.content.evalue;
  };
  await future.done;
  return out;
}"""

# Per code cell: the outputs in the model and what the page shows of them.
_OUTPUTS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  return panel.content.widgets.filter(cell => cell.model.type === 'code').map(cell => {
    const outputs = cell.model.outputs.toJSON();
    const mimes = outputs.map(o => Object.keys(o.data || {}));
    const node = cell.node;
    // the plotly renderer's output node is itself the plot (JupyterLab's mimerender);
    // a widget's figures sit inside its output
    const plots = [...node.querySelectorAll('.jp-OutputArea-output.js-plotly-plot, '
                                            + '.jp-OutputArea-output .js-plotly-plot')];
    return {
      source: cell.model.sharedModel.getSource().slice(0, 60),
      ran: cell.model.executionCount != null,
      errors: outputs.filter(o => o.output_type === 'error')
                     .map(o => o.ename + ': ' + o.evalue),
      n_plotly: mimes.filter(m => m.includes('application/vnd.plotly.v1+json')).length,
      n_widgets: mimes.filter(m => m.includes('application/vnd.jupyter.widget-view+json'))
                      .length,
      plots_drawn: plots.filter(gd => gd._fullLayout && gd.querySelector('.main-svg') &&
                                      gd.data && gd.data.length > 0 &&
                                      gd.getBoundingClientRect().height > 50).length,
      plots_outside_widgets: plots.filter(gd => !gd.closest('.jupyter-widgets')).length,
      widgets_drawn: node.querySelectorAll('.jp-OutputArea-output .jupyter-widgets').length,
      widget_errors: [...node.querySelectorAll('.jp-OutputArea-output')]
          .map(o => o.textContent).filter(t => /Error displaying widget|Loading widget/.test(t))
    };
  });
}"""
