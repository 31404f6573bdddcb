"""Studies (htdviz.study): grids, executors, resume, failures, sensitivity tables.

Tiny synthetic runs throughout. The Ray executor test (marker ``cluster``) needs Ray
(``pip install 'htdviz[cluster]'``; ``make test-cluster``) and is skipped without it.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from htdviz import experiment, runs, study
from htdviz.config import TeacherConfig

from conftest import GRID, TINY


@pytest.fixture
def serial(tiny_study):
    """The tiny grid, one run after another in this process (conftest.py)."""
    return tiny_study


def _same_runs(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a["run"]) == list(b["run"])
    assert np.array_equal(a["final_test_recall@50"], b["final_test_recall@50"])
    assert np.array_equal(a["final_test_ndcg@50"], b["final_test_ndcg@50"])


def test_cells_product_union_and_duplicates():
    assert study.cells({"method": ["student", "htd"], "dim": 20}) == [
        {"method": "student", "dim": 20}, {"method": "htd", "dim": 20}]
    grids = [{"dim": [10, 20], "seed": 0}, {"dim": 20, "seed": [0, 1]}]
    assert study.cells(grids) == [{"dim": 10, "seed": 0}, {"dim": 20, "seed": 0},
                                  {"dim": 20, "seed": 1}]
    with pytest.raises(ValueError, match="'dimm' is not a run option"):
        study.cells({"dimm": [1]})


def test_sensitivity_grid_is_one_factor_at_a_time():
    cells = study.cells(study.sensitivity_grid())
    # default cell x 3 seeds; K 5, 10, 50; alpha 0, 1; lambda 1e-2: each x 2 seeds
    assert len(cells) == 3 + (3 + 2 + 1) * 2
    for cell in cells:
        assert cell["method"] == "htd" and cell["dim"] == 20
        defaults = (("n_groups", 30), ("alpha", 0.5), ("distill_weight", 1e-3))
        changed = [k for k, default in defaults if cell.get(k, default) != default]
        assert len(changed) <= 1
        assert cell["seed"] in ((0, 1, 2) if not changed else (0, 1))


def test_serial_study_table(serial):
    runs_dir, table = serial
    assert list(table["cell"]) == [0, 1, 2, 3]
    assert set(table["status"]) == {"done"}
    assert list(zip(table["method"], table["dim"])) == [("student", 4), ("student", 8),
                                                        ("htd", 4), ("htd", 8)]
    for _, row in table.iterrows():
        config = json.loads((Path(row["path"]) / "config.json").read_text())
        assert (config["method"], config["dim"], config["epochs"]) == \
            (row["method"], row["dim"], 2)
        assert row["teacher"] == config["teacher"]
    assert table["final_test_recall@50"].between(0, 1).all()
    # one teacher for all four cells
    assert len({p.name for p in runs_dir.iterdir() if "-teacher-" in p.name}) == 1


def test_parallel_workers_give_the_same_table(serial, tmp_path):
    """Two worker processes (fresh folders) train the very same runs as one process."""
    _, table = serial
    parallel = study.study(GRID, runs_dir=tmp_path, workers=2, progress=False, **TINY)
    assert set(parallel["status"]) == {"done"}
    _same_runs(parallel, table)


def test_finished_runs_are_reused_and_out_is_written(serial, tmp_path):
    runs_dir, table = serial
    out = tmp_path / "study.csv"
    bigger = study.study({**GRID, "dim": [4, 8, 6]}, runs_dir=runs_dir, progress=False,
                         out=out, **TINY)
    assert list(bigger["status"]) == ["reused", "reused", "done"] * 2
    _same_runs(bigger[bigger["dim"] != 6].reset_index(drop=True), table)
    written = pd.read_csv(out)
    assert list(written["run"]) == list(bigger["run"])


def test_finished_table_reads_the_finished_cells_and_trains_nothing(serial, tmp_path):
    runs_dir, table = serial
    before = sorted(p.name for p in runs_dir.iterdir())
    read = study.finished_table({**GRID, "dim": [4, 8, 12]}, runs_dir=runs_dir, **TINY)
    assert list(read["status"]) == ["reused", "reused", "missing"] * 2
    assert sorted(p.name for p in runs_dir.iterdir()) == before          # nothing trained
    _same_runs(read[read["status"] == "reused"].reset_index(drop=True), table)
    assert read.loc[read["status"] == "missing", "final_test_recall@50"].isna().all()
    nothing = study.finished_table(GRID, runs_dir=tmp_path, **TINY)     # not even a teacher
    assert set(nothing["status"]) == {"missing"} and nothing["teacher"].isna().all()
    assert study.paper_table(nothing).empty


def test_a_failed_run_is_recorded_and_the_others_go_on(serial, monkeypatch):
    runs_dir, _ = serial
    real = experiment.student_run

    def flaky(teacher, method="htd", dim=20, **kwargs):
        if dim == 5:
            raise RuntimeError("out of memory (planted)")
        return real(teacher, method, dim, **kwargs)

    monkeypatch.setattr(experiment, "student_run", flaky)
    table = study.study({"method": "student", "dim": [5, 3]}, runs_dir=runs_dir,
                        progress=False, **TINY)
    assert list(table["status"]) == ["failed", "done"]
    assert table.loc[0, "error"] == "RuntimeError: out of memory (planted)"
    assert pd.isna(table.loc[0, "final_test_recall@50"])
    assert table.loc[1, "final_test_recall@50"] >= 0


def test_a_killed_study_resumes_where_it_stopped(tmp_path):
    """Kill the study (SIGKILL) once its first run is finished; started again, it reuses
    that run and trains the rest, and no half-written run looks finished."""
    grid = ["--grid", "method", "student", "ftd", "--grid", "dim", "3"]
    common = ["--set", "dataset", "synthetic", "--set", "teacher_dim", "16",
              "--set", "teacher_epochs", "2", "--set", "eval_every", "1",
              "--runs", str(tmp_path), "--no-progress"]
    # the second run (FTD, 60 epochs) is still training when the first has finished
    slow = ["--set", "epochs", "60"]
    proc = subprocess.Popen([sys.executable, "-m", "htdviz", "study", *grid, *common, *slow],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.monotonic() + 240
    while not any(runs.finished(p) for p in tmp_path.glob("*-student-*")):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the first run did not finish in time"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    visible = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert all(runs.finished(p) for p in visible if p.is_dir())
    assert not any("-ftd-" in p.name for p in visible)
    table = study.study({"method": ["student", "ftd"], "dim": 3}, runs_dir=tmp_path,
                        progress=False, **{**TINY, "epochs": 60})
    assert list(table["status"]) == ["reused", "done"]


def test_bad_cells_fail_before_anything_trains(tmp_path):
    with pytest.raises(ValueError, match=r"study cell 1 \(.*dim=0.*\): dim must be"):
        study.study({"dim": [4, 0]}, runs_dir=tmp_path, progress=False, **TINY)
    with pytest.raises(ValueError, match="balance_weight applies to methods 'de' and 'htd'"):
        study.study({"method": "student", "balance_weight": 1.0}, runs_dir=tmp_path,
                    progress=False, **TINY)
    with pytest.raises(ValueError, match="executor must be one of"):
        study.study(GRID, executor="dask", runs_dir=tmp_path)
    with pytest.raises(ValueError, match="study option 'epoch' is not a run option"):
        study.study(GRID, runs_dir=tmp_path, epoch=2)
    assert list(tmp_path.iterdir()) == []


def test_teacher_given_and_teacher_options_conflict(serial):
    runs_dir, table = serial
    teacher = runs_dir / table.loc[0, "teacher"]
    with pytest.raises(ValueError, match="sets teacher option 'dataset'"):
        study.study({"dim": 4}, teacher=teacher, runs_dir=runs_dir, dataset="synthetic")
    # a finished run of the default teacher in the same folder must not be taken instead
    decoy = runs_dir / TeacherConfig().folder_name()
    decoy.mkdir()
    (decoy / "metrics.json").write_text("{}")
    again = study.study({"method": ["student", "htd"], "dim": 4, "epochs": 2,
                         "eval_every": 1}, teacher=teacher, runs_dir=runs_dir, progress=False)
    assert list(again["status"]) == ["reused", "reused"]
    assert set(again["teacher"]) == {teacher.name}
    decoy.joinpath("metrics.json").unlink()
    decoy.rmdir()


@pytest.mark.cluster
def test_ray_executor_gives_the_same_table(serial, tmp_path):
    """A local Ray instance with 2 CPUs trains the same runs as the local executor."""
    pytest.importorskip("ray", reason="the Ray executor needs Ray (make test-cluster)")
    _, table = serial
    remote = study.study(GRID, runs_dir=tmp_path, executor="ray", workers=2, progress=False,
                         **TINY)
    assert set(remote["status"]) == {"done"}
    _same_runs(remote, table)


def test_ray_missing_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'htdviz\[cluster\]'"):
        study.study(GRID, runs_dir=tmp_path, executor="ray", progress=False, **TINY)


def test_ray_is_imported_only_for_its_executor():
    code = ("import sys, htdviz.study, htdviz.cli, htdviz.experiment; "
            "sys.exit(int('ray' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_sensitivity_table_compares_one_factor_at_a_time():
    rows = [dict(n_groups=30, alpha=0.5, distill_weight=1e-3, seed=s, r=v)
            for s, v in enumerate([.27, .28, .29])]
    rows += [dict(n_groups=10, alpha=0.5, distill_weight=1e-3, seed=s, r=v)
             for s, v in enumerate([.20, .22])]
    rows += [dict(n_groups=10, alpha=1.0, distill_weight=1e-3, seed=0, r=.99)]  # two changed
    rows += [dict(n_groups=30, alpha=0.0, distill_weight=1e-3, seed=0, r=.25, status="failed")]
    table = pd.DataFrame(rows).fillna({"status": "done"})
    summary = study.sensitivity_table(table, ("n_groups", "alpha"), metric="r")
    k = summary[summary["factor"] == "n_groups"].set_index("value")
    assert list(k.index) == [10, 30] and list(k["n"]) == [2, 3]
    assert k.loc[30, "is_default"] and not k.loc[10, "is_default"]
    assert k.loc[30, "mean"] == pytest.approx(.28) and k.loc[10, "max"] == pytest.approx(.22)
    assert k.loc[30, "std"] == pytest.approx(0.01)
    alpha = summary[summary["factor"] == "alpha"]
    assert list(alpha["value"]) == [0.5]                 # the failed run and .99 left out
    with pytest.raises(ValueError, match="metric 'nope'"):
        study.sensitivity_table(table, ("n_groups",), metric="nope")


def test_paper_table_sets_finished_cells_beside_the_papers_figure():
    table = pd.DataFrame({
        "status": ["done", "reused", "failed", "done", "done", "done"],
        "dataset": ["citeulike", "citeulike", "citeulike", "foursquare", None, "citeulike"],
        "model": ["bpr", "bpr", "bpr", "bpr", None, "lightgcn"],
        "teacher_dim": [200, 200, 200, 200, None, 100],
        "method": ["htd", "htd", "ftd", "student", "ftd", "htd+rrd"],
        "dim": [20, 20, 20, 100, 200, 10], "seed": [0, 1, 0, 0, 0, 0],
        "final_test_recall@50": [.27, .274, .9, .25, .31, .28]})
    out = study.paper_table(table).set_index(["dataset", "model", "phi", "method"])
    assert len(out) == 4                                     # the failed ftd left out
    htd = out.loc[("citeulike", "bpr", 0.1, "htd")]
    assert htd["seeds"] == 2 and htd["mean"] == pytest.approx(.272)
    assert (htd["low"], htd["high"]) == (.27, .274)
    assert htd["paper"] == .2803 and htd["difference"] == pytest.approx(.272 - .2803)
    assert out.loc[("foursquare", "bpr", 0.5, "student"), "paper"] == .2400
    # teacher options left unset take their defaults (CiteULike, BPR-MF, d_t = 200)
    assert out.loc[("citeulike", "bpr", 1.0, "ftd"), "paper"] == .3290
    assert out.loc[("citeulike", "lightgcn", 0.1, "htd+rrd"), "paper"] == .2877


def test_paper_orderings_hold_fail_or_wait_for_their_cells():
    table = pd.DataFrame({
        "status": ["done"] * 8,
        "model": ["bpr"] * 7 + ["lightgcn"],
        "method": ["htd", "htd", "de", "ftd", "ftd", "htd", "htd+rrd", "htd"],
        "dim": [20, 20, 20, 20, 200, 200, 20, 20], "seed": [0, 1, 0, 0, 0, 0, 0, 0],
        "final_test_recall@50": [.27, .274, .25, .26, .33, .325, .27, .28]})
    out = study.paper_orderings(study.paper_table(table)).set_index(
        ["dataset", "model", "ordering"])
    bpr = out.loc[("citeulike", "bpr")]
    above, growing, combined = (bpr.loc[name] for name, _, _ in study.PAPER_ORDERINGS)
    assert above["ours"] == "holds" and above["margin"] == pytest.approx(.272 - .26)
    assert above["seed_range"] == pytest.approx(.004)           # HTD's two seeds
    assert growing["ours"] == "holds" and growing["margin"] == pytest.approx(.005 + .012)
    assert combined["ours"] == "fails" and combined["margin"] == pytest.approx(-.002)
    assert combined["paper"] == "holds" and combined["paper_margin"] == pytest.approx(.0039)
    assert combined["values"] == "htd+rrd@0.1 .2700 (.2842), htd@0.1 .2720 (.2803)"
    lightgcn = out.loc[("citeulike", "lightgcn")]
    assert lightgcn.iloc[0]["ours"] == "pending (de@0.1, ftd@0.1)"
    # the paper's NeuMF: FTD - HTD is -.0079 at phi = 0.1 and -.0008 at 1.0
    neumf = out.loc[("citeulike", "neumf", growing.name)]
    assert neumf["paper"] == "holds" and neumf["paper_margin"] == pytest.approx(.0071)
    # no RRD cells for NeuMF or Foursquare in the paper, so no such ordering
    assert len(out) == 10 and ("foursquare", "bpr", combined.name) not in out.index
    assert (study.paper_orderings(study.paper_table(table.iloc[:0]))["ours"]
            .str.startswith("pending").all())


def test_paper_preset_is_the_papers_whole_evaluation():
    """Every (data set, base model, phi, method) cell of the paper's figures and RRD table,
    two seeds at phi = 0.1 and one elsewhere; each cell a valid run configuration."""
    from htdviz import reference

    grid = study.cells(study.PRESETS["paper"]())
    keys = {(c["dataset"], c["model"], c["dim"], c["method"], c["seed"]) for c in grid}
    assert len(keys) == len(grid) == 76
    for dataset, models_ in (("citeulike", ("bpr", "lightgcn", "neumf")),
                             ("foursquare", ("bpr",))):
        for model in models_:
            for phi, dim in ((0.1, 20), (0.5, 100), (1.0, 200)):
                for method in ("student", "de", "ftd", "htd"):
                    assert reference.figure_recall(dataset, model, method, phi) is not None
                    seeds = (0, 1) if dim == 20 else (0,)
                    assert {(dataset, model, dim, method, s) for s in seeds} <= keys
    for model in ("bpr", "lightgcn"):
        for method in ("rrd", "de+rrd", "htd+rrd"):
            assert reference.figure_recall("citeulike", model, method, 0.1) is not None
            assert {("citeulike", model, 20, method, s) for s in (0, 1)} <= keys
    assert not any(c["model"] == "neumf" and "rrd" in c["method"] for c in grid)
    # DE at its authors' weight (lambda = 0.01; in DE + RRD, DE's part), the rest at 1e-3
    for c in grid:
        assert c.get("distill_weight") == (0.01 if c["method"] == "de" else None)
        assert c.get("de_weight") == (10.0 if c["method"] == "de+rrd" else None)
    # in the order a background study should finish them: one seed of every phi = 0.1 cell
    # first, then the second seeds, then the larger students
    order = [(c["dim"] != 20, c["seed"]) for c in grid]
    assert order == sorted(order)
    assert len([key for key in order if key == (False, 0)]) == 22
    # within a seed, CiteULike's BPR-MF and LightGCN settings whole before NeuMF's and
    # Foursquare's slower cells
    first = [(c["dataset"], c["model"]) for c in grid[:22]]
    assert set(first[:14]) == {("citeulike", "bpr"), ("citeulike", "lightgcn")}
    assert first[14:] == [("citeulike", "neumf")] * 4 + [("foursquare", "bpr")] * 4
