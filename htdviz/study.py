"""Studies: a grid of runs, one tidy table, on this machine or on a Ray cluster.

A study is a list of *cells*, each one student run: its own options (method, dim,
n_groups, alpha, distill_weight, seed, group design, the two quirk switches,
balance_weight, ...) and those of the teacher it distils from (model, dataset,
teacher_dim, teacher_epochs, teacher_seed, ...). :func:`cells` expands a grid into cells;
:func:`study` trains (or reuses) every cell's teacher, then every cell, and returns one row
per cell.

The run folders are the study's state. A finished run is reused, so a study that was
interrupted (a dead notebook kernel, a killed job) picks up where it stopped when it is
started again; a run that fails is a row with ``status`` "failed" and its ``error``, and
the other runs go on.

Executors
---------
``"local"`` (default)
    ``workers=1`` runs the cells one after another in this process; ``workers=N`` runs N
    at a time in a :class:`concurrent.futures.ProcessPoolExecutor` (spawned processes, so a
    script that calls :func:`study` needs the usual ``if __name__ == "__main__":`` guard),
    each with ``cpu_count // N`` torch threads and its own progress bar.
``"ray"`` (``pip install 'htdviz[cluster]'``)
    Each cell is a Ray task. ``address=None`` starts a local Ray instance with ``workers``
    CPUs; ``"auto"`` or ``"ray://head:10001"`` joins a running cluster.
    ``gpus_per_run=0.25`` packs four runs onto each GPU. Runs write their folders under
    ``runs_dir`` on the node that trains them, and the driver reads them there: on one
    machine nothing is needed; across machines ``runs_dir`` (and the data cache,
    ``HTDVIZ_DATA_DIR``) must be on a shared file system mounted at the same path. Ray is
    imported only when this executor is chosen.

Examples
--------
>>> table = study({"method": ["student", "htd"], "dim": [10, 20], "seed": [0, 1]},
...               workers=2)                                       # doctest: +SKIP
>>> table.groupby(["method", "dim"])["final_test_recall@50"].agg(["mean", "std"])
...                                                                # doctest: +SKIP
"""
from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import time
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import distill, experiment, models, reference
from ._io import write_atomically
from .config import StudentConfig, TeacherConfig
from .runs import finished, load_metrics, load_run

EXECUTORS = ("local", "ray")

#: Teacher options a cell may set: their name in a cell -> the TeacherConfig field.
TEACHER_OPTIONS = {"model": "model", "n_layers": "n_layers", "dataset": "dataset",
                   "split": "split", "lr": "lr", "weight_decay": "weight_decay",
                   "min_items": "min_items", "split_seed": "split_seed",
                   "user_col": "user_col", "item_col": "item_col", "teacher_dim": "dim",
                   "teacher_epochs": "epochs", "teacher_seed": "seed",
                   "teacher_schedule": "schedule", "teacher_eval_every": "eval_every",
                   "teacher_updates": "updates", "mlp_layers": "mlp_layers"}


def student_options() -> tuple[str, ...]:
    """Student options a cell may set: the flagged settings of
    :class:`~htdviz.config.StudentConfig` and the options of every registered method (asked
    each time: a method registered in a notebook brings its own)."""
    return tuple(o.name for o in StudentConfig.option_list() if o.flag)


def run_options() -> tuple[str, ...]:
    """Every option a cell may set: :func:`student_options` and :data:`TEACHER_OPTIONS`."""
    return student_options() + tuple(TEACHER_OPTIONS)


def option_default(name: str):
    """The default of student option ``name`` (a setting's, or a method's option's)."""
    return next(o.default for o in StudentConfig.option_list() if o.name == name)


#: The paper's sensitivity study: one factor at a time around HTD's defaults.
SENSITIVITY_FACTORS = {"n_groups": (5, 10, 30, 50), "alpha": (0.0, 0.5, 1.0),
                       "distill_weight": (1e-3, 1e-2)}


def cells(grid) -> list[dict]:
    """The cells of ``grid``: a mapping of option -> values (their product; a scalar is one
    value) or a sequence of such mappings (the union of their products, duplicates once).

    Examples
    --------
    >>> cells({"method": ["student", "htd"], "dim": 20})
    [{'method': 'student', 'dim': 20}, {'method': 'htd', 'dim': 20}]
    """
    grids = [grid] if isinstance(grid, Mapping) else list(grid)
    out, seen = [], set()
    for g in grids:
        if not isinstance(g, Mapping):
            raise ValueError(f"grid must be a mapping of option -> values or a sequence of "
                             f"them, got {type(g).__name__}")
        unknown = sorted(set(g) - set(run_options()))
        if unknown:
            raise ValueError(f"grid option {unknown[0]!r} is not a run option; the options "
                             f"are {', '.join(run_options())}")
        values = [v if isinstance(v, (list, tuple, range)) else [v] for v in g.values()]
        for combo in itertools.product(*values):
            cell = dict(zip(g, combo))
            key = json.dumps(cell, sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                out.append(cell)
    return out


def one_at_a_time(factors: Mapping, defaults: Mapping | None = None, seeds=(0, 1),
                  default_seeds=(0, 1, 2)) -> list[dict]:
    """Grids that vary one factor at a time around ``defaults`` (a sensitivity study).

    Parameters
    ----------
    factors : mapping of option -> values
        Each factor's values; the one equal to its default is the default cell.
    defaults : mapping, optional
        The options every cell shares (default: HTD at d_s = 20).
    seeds, default_seeds : sequences of int
        Seeds of each new cell, and of the default cell.

    Returns
    -------
    list of dict
        Grids for :func:`cells` / :func:`study`.
    """
    defaults = {"method": "htd", "dim": 20, **(defaults or {})}
    base = StudentConfig(**{k: v for k, v in defaults.items() if k in student_options()})
    grids = [{**defaults, "seed": list(default_seeds)}]
    for name, values in factors.items():
        if name not in student_options():
            raise ValueError(f"factor {name!r} is not a student option; the options are "
                             f"{', '.join(student_options())}")
        default = getattr(base, name, option_default(name))
        new = [v for v in values if v != default]
        if new:
            grids.append({**defaults, name: new, "seed": list(seeds)})
    return grids


def sensitivity_grid(dim: int = 20, seeds=(0, 1), default_seeds=(0, 1, 2)) -> list[dict]:
    """The paper's sensitivity study at ``dim``: K in {5, 10, 30, 50}, alpha in
    {0, 0.5, 1}, lambda in {1e-3, 1e-2}, one at a time around the defaults."""
    return one_at_a_time(SENSITIVITY_FACTORS, {"method": "htd", "dim": dim}, seeds,
                         default_seeds)


def balance_grid(weight: float, dims=(20, 10), seeds=(0, 1, 2)) -> list[dict]:
    """HTD with and without the load-balancing term of ``weight``, at ``dims``."""
    return [{"method": "htd", "dim": list(dims), "balance_weight": [0.0, weight],
             "seed": list(seeds)}]


#: DE's weight in the paper's evaluation, as its authors' code (DE-RRD, CIKM 2020) trains it:
#: lambda = 0.01, ten times the recipe's (docs/results.md, "DE as its authors' code sets
#: it"); in DE + RRD, DE's part has that weight and RRD's the recipe's.
AUTHORS_DE = {"de": {"distill_weight": 0.01}, "de+rrd": {"de_weight": 10.0}}


def paper_grid(seeds=(0, 1), dims=(20, 100, 200)) -> list[dict]:
    """The paper's whole evaluation (docs/results.md, "The paper's evaluation"), 100
    epochs each, from teachers of d_t = 200:

    - CiteULike (the authors' split) x {BPR-MF, LightGCN, NeuMF} x d_s in ``dims``
      (phi = 0.1, 0.5, 1.0) x {student, DE, FTD, HTD};
    - CiteULike x {BPR-MF, LightGCN} at d_s = 20: RRD, DE + RRD, HTD + RRD;
    - Foursquare x BPR-MF x ``dims`` x {student, DE, FTD, HTD}.

    DE trains with its authors' weight (:data:`AUTHORS_DE`), every other method with the
    recipe's (lambda = 1e-3). Every d_s = 20 cell runs with each of ``seeds``, the larger
    ones with the first. The cells come in the order a study in the background should
    finish them: every d_s = 20 cell with the first seed (one value for each of the paper's
    phi = 0.1 cells), then with the other seeds, then the larger d_s. Within a seed,
    CiteULike's BPR-MF and LightGCN settings come whole (RRD and its combinations included)
    before NeuMF and Foursquare, whose cells take the longest on a CPU (NeuMF's topology
    space is both towers, 2 x d).
    """
    methods = ["student", "de", "ftd", "htd"]
    small, large = dims[0], list(dims[1:])
    sized = [{"dataset": "citeulike", "model": ["bpr", "lightgcn"], "method": methods},
             {"dataset": "citeulike", "model": "neumf", "method": methods},
             {"dataset": "foursquare", "model": "bpr", "method": methods}]  # at every phi
    rrd = {"dataset": "citeulike", "model": ["bpr", "lightgcn"],
           "method": ["rrd", "de+rrd", "htd+rrd"]}                          # at phi = 0.1
    settings = [sized[0], rrd, *sized[1:]]
    grids = [{**setting, "dim": small, "seed": seed} for seed in seeds for setting in settings]
    grids += [{**setting, "dim": large, "seed": seeds[0]} for setting in sized]
    return [split for grid in grids for split in _authors_de(grid)]


def _authors_de(grid: dict) -> list[dict]:
    """``grid`` with its DE methods in grids of their own, at :data:`AUTHORS_DE`."""
    plain = [method for method in grid["method"] if method not in AUTHORS_DE]
    return ([{**grid, "method": plain}] if plain else []) + [
        {**grid, "method": method, **AUTHORS_DE[method]}
        for method in grid["method"] if method in AUTHORS_DE]


PRESETS = {"sensitivity": sensitivity_grid, "balance": lambda: balance_grid(1.0),
           "paper": paper_grid}


def sensitivity_table(table: pd.DataFrame, factors=tuple(SENSITIVITY_FACTORS),
                      metric: str = "final_test_recall@50",
                      defaults: Mapping | None = None) -> pd.DataFrame:
    """Mean and spread of ``metric`` over seeds, one factor at a time.

    Parameters
    ----------
    table : pandas.DataFrame
        A study's table (:func:`study`); failed rows are left out.
    factors : sequence of str
        The options varied one at a time (default: K, alpha, lambda).
    metric : str, default "final_test_recall@50"
    defaults : mapping, optional
        Each factor's default (default: the option's own, :func:`option_default`). For a
        factor, the rows whose other factors sit at their defaults are compared.

    Returns
    -------
    pandas.DataFrame
        One row per factor and value: ``factor``, ``value``, ``is_default``, ``n`` (seeds),
        ``mean``, ``std`` (sample; NaN for one seed), ``min``, ``max``, ``seeds``.
    """
    defaults = {f: (defaults or {}).get(f, option_default(f)) for f in factors}
    ok = table[table["status"] != "failed"] if "status" in table else table
    if metric not in ok:
        raise ValueError(f"metric {metric!r} is not a column of the study's table")
    rows = []
    for factor in factors:
        keep = np.ones(len(ok), dtype=bool)
        for other in factors:
            if other != factor:
                keep &= _equal(ok[other], defaults[other])
        at_default = ok[keep]
        for value, group in at_default.groupby(factor, sort=True):
            values = group[metric].astype(float)
            rows.append({"factor": factor, "value": value,
                         "is_default": bool(_equal(pd.Series([value]), defaults[factor])[0]),
                         "n": len(values), "mean": values.mean(),
                         "std": values.std(ddof=1) if len(values) > 1 else np.nan,
                         "min": values.min(), "max": values.max(),
                         "seeds": sorted(group["seed"].tolist()) if "seed" in group else []})
    return pd.DataFrame(rows, columns=["factor", "value", "is_default", "n", "mean", "std",
                                       "min", "max", "seeds"])


def paper_table(table: pd.DataFrame, metric: str = "final_test_recall@50") -> pd.DataFrame:
    """A study's finished cells beside the paper's figure (``--preset paper``'s table).

    Parameters
    ----------
    table : pandas.DataFrame
        A study's table (:func:`study`, or its CSV read back); failed and unfinished rows
        are left out. Teacher options the grid did not set take their defaults.
    metric : str, default "final_test_recall@50"

    Returns
    -------
    pandas.DataFrame
        One row per data set, base model, capacity phi = d_s / d_t and method, in the
        table's order: ``mean``, ``low``, ``high`` (over the seeds), ``seeds`` (how many),
        ``paper`` (:func:`htdviz.reference.figure_recall`: the paper's figure, its own split
        and early stopping; NaN where the paper has no such cell) and ``difference``.
    """
    columns = ["dataset", "model", "phi", "method", "mean", "low", "high", "seeds", "paper",
               "difference"]
    done = table[table["status"].isin(("done", "reused"))] if "status" in table else table
    if done.empty:
        return pd.DataFrame(columns=columns)
    if metric not in table:
        raise ValueError(f"metric {metric!r} is not a column of the study's table")
    done = done[done[metric].notna()].copy()
    teacher_defaults = {f.name: f.default for f in fields(TeacherConfig)}
    for option in ("dataset", "model", "teacher_dim"):
        default = teacher_defaults[TEACHER_OPTIONS[option]]
        done[option] = done[option].fillna(default) if option in done else default
    done["phi"] = (done["dim"] / done["teacher_dim"]).round(3)
    keys = ["dataset", "model", "phi", "method"]
    out = done.groupby(keys, sort=False)[metric].agg(
        mean="mean", low="min", high="max", seeds="count").reset_index()
    out["paper"] = [reference.figure_recall(*key) for key in
                    zip(out["dataset"], out["model"], out["method"], out["phi"])]
    out["paper"] = out["paper"].astype(float)
    out["difference"] = out["mean"] - out["paper"]
    return out[columns]


#: The paper's orderings, each checked per (data set, base model) by :func:`paper_orderings`:
#: its name, the (method, phi) cells it compares, and its margin, which is > 0 where it holds.
PAPER_ORDERINGS = (
    ("HTD above DE and FTD at phi = 0.1", (("htd", 0.1), ("de", 0.1), ("ftd", 0.1)),
     lambda htd, de, ftd: min(htd - de, htd - ftd)),
    ("FTD - HTD larger at phi = 1.0 than at 0.1", (("ftd", 0.1), ("htd", 0.1), ("ftd", 1.0),
                                                   ("htd", 1.0)),
     lambda ftd_small, htd_small, ftd_full, htd_full:
     (ftd_full - htd_full) - (ftd_small - htd_small)),
    ("HTD + RRD above HTD at phi = 0.1", (("htd+rrd", 0.1), ("htd", 0.1)),
     lambda combined, htd: combined - htd),
)


def paper_orderings(evaluation: pd.DataFrame) -> pd.DataFrame:
    """Whether the paper's orderings (:data:`PAPER_ORDERINGS`) hold, in its figures and in
    ours, for each (data set, base model) of :func:`paper_table`'s ``evaluation``.

    Returns
    -------
    pandas.DataFrame
        One row per data set, base model and ordering the paper has cells for: ``paper``
        and ``ours`` ("holds" or "fails"; ours "pending" while a cell has no finished
        seed), the ``margin`` of each (> 0 where it holds; ours from the seeds' means),
        ``seed_range`` (the widest high - low of the compared cells; NaN with one seed
        each), and ``values``, the compared cells as ``method@phi ours (paper's)``.

    Examples
    --------
    >>> evaluation = paper_table(finished_table(paper_grid(), runs_dir="runs"))
    ...                                                                # doctest: +SKIP
    >>> paper_orderings(evaluation)[["model", "ordering", "paper", "ours"]]  # doctest: +SKIP
    """
    settings = [("citeulike", model) for model in reference.FIGURE_RECALL50] + \
        [("foursquare", "bpr")]
    cells_ = evaluation.set_index(["dataset", "model", "method", "phi"]) \
        if not evaluation.empty else pd.DataFrame(columns=["mean", "low", "high", "seeds"])
    rows = []
    for dataset, model in settings:
        for name, compared, margin in PAPER_ORDERINGS:
            paper = [reference.figure_recall(dataset, model, method, phi)
                     for method, phi in compared]
            if None in paper:
                continue
            keys = [(dataset, model, method, phi) for method, phi in compared]
            found = cells_.reindex(keys)
            missing = [f"{method}@{phi}" for (method, phi), mean
                       in zip(compared, found["mean"]) if pd.isna(mean)]
            ours = np.nan if missing else margin(*found["mean"].astype(float))
            ranges = (found["high"] - found["low"])[found["seeds"] > 1].astype(float)
            paper_margin = margin(*paper)
            rows.append({
                "dataset": dataset, "model": model, "ordering": name,
                "paper": "holds" if paper_margin > 0 else "fails",
                "ours": f"pending ({', '.join(missing)})" if missing else
                        "holds" if ours > 0 else "fails",
                "paper_margin": paper_margin, "margin": ours,
                "seed_range": ranges.max() if len(ranges) else np.nan,
                "values": ", ".join(f"{method}@{phi} {_recall(v)} ({_recall(p)})" for
                                    (method, phi), v, p in zip(compared, found["mean"], paper))})
    return pd.DataFrame(rows, columns=["dataset", "model", "ordering", "paper", "ours",
                                       "paper_margin", "margin", "seed_range", "values"])


def _recall(value) -> str:
    """A recall as .2711 (- when missing)."""
    return "-" if pd.isna(value) else f"{value:.4f}".lstrip("0")


def _equal(column: pd.Series, value) -> np.ndarray:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return np.isclose(column.astype(float), float(value), rtol=1e-9, atol=0)
    return (column == value).to_numpy()


def study(grid, teacher: str | Path | None = None, executor: str = "local",
          workers: int = 1, address: str | None = None, gpus_per_run: float = 0.0,
          cpus_per_run: int = 1, runs_dir: str | Path = "runs", device: str | None = None,
          progress: bool = True, out: str | Path | None = None, **options) -> pd.DataFrame:
    """Train (or reuse) every cell of ``grid``; one row per cell.

    Parameters
    ----------
    grid : mapping or sequence of mappings
        See :func:`cells`; keys are :func:`run_options` (student settings by their
        :class:`~htdviz.config.StudentConfig` name, the options of any registered method,
        teacher options as in :data:`TEACHER_OPTIONS`). A method or model registered in
        this process is registered in the worker processes too.
    teacher : path, optional
        A finished teacher run for every cell (then the grid sets no teacher option);
        default: each cell's teacher is trained or reused from its teacher options.
    executor : {"local", "ray"}, default "local"
    workers : int, default 1
        Runs at a time ("local"), or the CPUs of a local Ray instance ("ray").
    address : str, optional
        Ray: the cluster to join ("auto", "ray://head:10001"); None starts one here.
    gpus_per_run, cpus_per_run : float, int
        Ray: the resources of each run (0.25 GPU: four runs share a GPU).
    runs_dir : path, default "runs"
    device : str, optional
        Of every run (default: CUDA where present).
    progress : bool, default True
        One bar over the runs, and each run's own.
    out : path, optional
        Also write the table to this CSV file, after every finished run (atomically).
    **options
        Options shared by every cell (a cell's own value wins), e.g. ``epochs=1``.

    Returns
    -------
    pandas.DataFrame
        One row per cell, in grid order: ``cell``, ``status`` ("done", "reused" or
        "failed"), ``error``, ``seconds`` (of this call), ``run``, ``path``, ``teacher``,
        every student option, the teacher options the grid set, and the run's metrics
        flattened (``final_test_recall@50``, ``best_valid_epoch``, ``train_seconds``, ...).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    if not 0 <= gpus_per_run:
        raise ValueError(f"gpus_per_run must be >= 0, got {gpus_per_run!r}")
    unknown = sorted(set(options) - set(run_options()))
    if unknown:
        raise ValueError(f"study option {unknown[0]!r} is not a run option; the options are "
                         f"{', '.join(run_options())}")
    runs_dir = Path(runs_dir).resolve()
    todo = [{**options, **cell} for cell in cells(grid)]
    specs = [_Cell(i, cell, teacher) for i, cell in enumerate(todo)]
    run = _Ray(workers, address, gpus_per_run, cpus_per_run) if executor == "ray" \
        else _Local(workers)
    common = {"runs_dir": str(runs_dir), "device": device, "progress": progress,
              **_registries()}

    bar = tqdm(total=len(specs), desc="study", unit="run", disable=not progress)
    table = _Table(specs, out)
    try:
        _train_teachers(specs, runs_dir, common, run, table, bar)
        _train_students(specs, runs_dir, common, run, table, bar)
    finally:
        bar.close()
        run.close()
    return table.frame()


def finished_table(grid, runs_dir: str | Path = "runs", teacher: str | Path | None = None,
                   **options) -> pd.DataFrame:
    """The table :func:`study` would return for ``grid``, from the runs already finished
    under ``runs_dir``: nothing is trained. A cell whose teacher or student run is not
    finished has the status "missing" and no metrics (e.g. a study still under way, read
    from a notebook)."""
    runs_dir = Path(runs_dir).resolve()
    specs = [_Cell(i, {**options, **cell}, teacher) for i, cell in enumerate(cells(grid))]
    table = _Table(specs, None)
    for spec in specs:
        if spec.teacher_dir is None and finished(spec.teacher_path(runs_dir)):
            spec.teacher_dir = spec.teacher_path(runs_dir)
        path = spec.student_path(runs_dir) if spec.teacher_dir is not None else None
        if path is not None and finished(path):
            table.finish(spec, path, "reused", 0.0)
        else:
            table.missing(spec)
    return table.frame()


def _train_teachers(specs, runs_dir: Path, common: dict, run, table, bar) -> None:
    """Each distinct teacher of the cells once, before its students: reused when
    finished, else trained by ``run``; a cell whose teacher fails is failed."""
    teachers = {}
    for spec in specs:
        if spec.teacher_dir is None:            # not given: from its teacher options
            teachers.setdefault(spec.teacher_key, []).append(spec)
    tasks = []
    for group in teachers.values():
        path = group[0].teacher_path(runs_dir)
        if finished(path):
            for spec in group:
                spec.teacher_dir = path
        else:
            tasks.append({**common, "kind": "teacher", "options": group[0].teacher_options,
                          "cells": [s.index for s in group]})
    for task, result in run(tasks):
        for index in task["cells"]:
            spec = specs[index]
            if result["error"]:
                table.fail(spec, f"teacher failed: {result['error']}")
                bar.update()
            else:
                spec.teacher_dir = Path(result["path"])


def _train_students(specs, runs_dir: Path, common: dict, run, table, bar) -> None:
    """Every cell with a teacher: reused when finished, else trained by ``run``."""
    tasks = []
    for spec in specs:
        if spec.teacher_dir is None:
            continue
        path = spec.student_path(runs_dir)
        if finished(path):
            table.finish(spec, path, "reused", 0.0)
            bar.update()
        else:
            tasks.append({**common, "kind": "student", "options": spec.student_options,
                          "teacher": str(spec.teacher_dir), "cells": [spec.index]})
    for task, result in run(tasks):
        spec = specs[task["cells"][0]]
        if result["error"]:
            table.fail(spec, result["error"], result["seconds"])
        else:
            table.finish(spec, Path(result["path"]), "done", result["seconds"])
        bar.update()
        bar.set_postfix(table.counts())


class _Cell:
    """One cell: its student options, its teacher (given, or from its teacher options)."""

    def __init__(self, index: int, cell: dict, teacher):
        self.index, self.cell = index, cell
        self.student_options = {k: v for k, v in cell.items() if k in student_options()}
        teacher_given = {k: v for k, v in cell.items() if k in TEACHER_OPTIONS}
        described = _describe(cell)
        if teacher is not None and teacher_given:
            raise ValueError(f"study cell {index} ({described}) sets teacher option "
                             f"{next(iter(teacher_given))!r}, but a teacher run is given")
        self.teacher_options = {TEACHER_OPTIONS[k]: v for k, v in teacher_given.items()}
        self.teacher_key = json.dumps(self.teacher_options, sort_keys=True, default=str)
        self.teacher_dir = Path(teacher) if teacher is not None else None
        if teacher is not None and not finished(teacher):
            raise FileNotFoundError(f"teacher run {teacher} is missing or unfinished (no "
                                    f"metrics.json)")
        try:       # every configuration checked before anything trains
            self.config = StudentConfig(**self.student_options)
            self.teacher_config = experiment.teacher_config(**self.teacher_options)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"study cell {index} ({described}): {exc}") from None

    def teacher_path(self, runs_dir: Path) -> Path:
        return runs_dir / self.teacher_config.folder_name()

    def student_path(self, runs_dir: Path) -> Path:
        teacher = TeacherConfig.from_dict(load_run(self.teacher_dir, embeddings=False).config)
        return runs_dir / self.config.inherit(self.teacher_dir.name, teacher).folder_name()


def _describe(cell: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in cell.items())


class _Table:
    """The study's rows as they come in (written to ``out`` after each one)."""

    def __init__(self, specs, out):
        self.rows = {}
        self.specs = specs
        self.out = Path(out) if out is not None else None

    def _base(self, spec: _Cell, status: str, seconds: float) -> dict:
        row = {"cell": spec.index, "status": status, "error": None, "seconds": seconds}
        row.update({option.name: value for option, value in spec.config.values()
                    if option.flag})
        row.update({k: v for k, v in spec.cell.items() if k in TEACHER_OPTIONS})
        row["teacher"] = spec.teacher_dir.name if spec.teacher_dir is not None else None
        return row

    def finish(self, spec: _Cell, path: Path, status: str, seconds: float) -> None:
        row = self._base(spec, status, seconds)
        row.update(load_metrics(path))
        self._add(spec, row)

    def fail(self, spec: _Cell, error: str, seconds: float = 0.0) -> None:
        row = self._base(spec, "failed", seconds)
        row["error"] = error
        self._add(spec, row)

    def missing(self, spec: _Cell) -> None:
        """A cell without a finished run (:func:`finished_table`)."""
        self._add(spec, {**self._base(spec, "missing", 0.0), "error": None})

    def _add(self, spec, row) -> None:
        self.rows[spec.index] = row
        if self.out is not None:
            write_atomically(self.out, lambda f: f.write(
                self.frame().to_csv(index=False).encode("utf-8")))

    def counts(self) -> dict:
        statuses = [row["status"] for row in self.rows.values()]
        return {s: statuses.count(s) for s in ("done", "reused", "failed") if s in statuses}

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.rows[i] for i in sorted(self.rows)])


# --------------------------------------------------------------------------------------
# Running tasks: each executor yields (task, result) as runs finish
# --------------------------------------------------------------------------------------

def _registries() -> dict:
    """The registered methods and models, sent with each task: a worker process knows
    only htdviz's own until it registers those of the study's process (a method defined in
    a notebook travels by value, pickled by cloudpickle)."""
    return {"methods": {name: distill.get_method(name) for name in distill.method_names()
                        if not distill.base.is_built_in(name)},
            "models": {name: models.get_model(name) for name in models.model_names()}}


def _register(task: dict) -> None:
    for name, cls in task.get("methods", {}).items():
        if cls is not None:
            distill.register_method(name, cls)
    for name, cls in task.get("models", {}).items():
        models.register_model(name, cls)


def _execute(task: dict, threads: int | None = None) -> dict:
    """Train one run; ``{"path", "error", "seconds"}`` (an exception is recorded, not
    raised, so that one failed run does not stop a study)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    slots = task.get("slots")
    slot = slots.get() if slots is not None else None
    progress = task["progress"]
    if progress and slot is not None:
        progress = {"position": slot, "leave": False}
    tic = time.perf_counter()
    try:
        _register(task)
        common = dict(runs_dir=task["runs_dir"], device=task["device"], progress=progress)
        if task["kind"] == "teacher":
            path = experiment.teacher_run(**task["options"], **common)
        else:
            path = experiment.student_run(task["teacher"], **task["options"], **common)
        return {"path": str(path), "error": None, "seconds": time.perf_counter() - tic}
    except Exception as exc:           # noqa: BLE001 - recorded in the study's table
        return {"path": None, "error": f"{type(exc).__name__}: {exc}",
                "seconds": time.perf_counter() - tic}
    finally:
        if slot is not None:
            slots.put(slot)


class _Local:
    """Tasks in this process (``workers=1``) or in joblib's worker processes."""

    def __init__(self, workers: int):
        self.workers = workers

    def __call__(self, tasks):
        if self.workers == 1:
            return ((task, _execute(task)) for task in tasks)
        return _run_pool(tasks, self.workers)

    def close(self):
        pass


def _run_pool(tasks, workers: int):
    """joblib's worker processes (loky: no fork of a process with torch threads, and no
    re-run of the calling script)."""
    if not tasks:
        return
    from joblib import Parallel, delayed

    threads = max(1, (os.cpu_count() or 1) // workers)
    with multiprocessing.Manager() as manager:
        slots = manager.Queue()                      # a free line for each run's bar
        for slot in range(workers):
            slots.put(slot + 1)                      # line 0 is the study's bar
        jobs = (delayed(_numbered)(i, dict(task, slots=slots), threads)
                for i, task in enumerate(tasks))
        for i, result in Parallel(n_jobs=min(workers, len(tasks)),
                                  return_as="generator_unordered")(jobs):
            yield tasks[i], result


def _numbered(i: int, task: dict, threads: int) -> tuple[int, dict]:
    return i, _execute(task, threads)


class _Ray:
    """Ray tasks: a local instance (or the cluster at ``address``) started at the first
    batch of tasks and, if this study started it, shut down by :meth:`close`."""

    def __init__(self, workers, address, gpus_per_run, cpus_per_run):
        try:
            import ray
        except ImportError:
            raise ImportError("executor 'ray' needs Ray: pip install 'htdviz[cluster]'") \
                from None
        self.ray, self.started, self.remote = ray, False, None
        self.workers, self.address = workers, address
        self.gpus_per_run, self.cpus_per_run = gpus_per_run, cpus_per_run

    def _start(self):
        ray = self.ray
        if not ray.is_initialized():
            env = {k: os.environ[k] for k in ("HTDVIZ_DATA_DIR", "HTDVIZ_DATA_MIRROR")
                   if k in os.environ}
            ray.init(address=self.address, num_cpus=None if self.address else self.workers,
                     include_dashboard=False,
                     runtime_env={"env_vars": env} if env else None)
            self.started = True
        self.remote = ray.remote(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run,
                                 max_retries=0)(_execute)

    def __call__(self, tasks):
        if not tasks:
            return
        if self.remote is None:
            self._start()
        # each run's bar stays off: Ray forwards worker output line by line
        pending = {self.remote.remote(dict(task, progress=False), self.cpus_per_run): task
                   for task in tasks}
        try:
            while pending:
                done, _ = self.ray.wait(list(pending), num_returns=1)
                for ref in done:
                    yield pending.pop(ref), self.ray.get(ref)
        finally:
            for ref in pending:               # an interrupt: stop the runs still going
                self.ray.cancel(ref, force=True)

    def close(self):
        if self.started:
            self.ray.shutdown()


def sweep(dims=(10, 20, 100, 200), methods=("student", "ftd", "htd"), teacher_dir=None,
          jobs: int = 1, runs_dir: str | Path = "runs", progress: bool = True,
          dataset: str | Path = "citeulike", teacher_options: dict | None = None,
          **student_kwargs) -> pd.DataFrame:
    """Every student dim x method from one teacher; returns the tidy table of their metrics.

    A thin case of :func:`study` (grid ``{"dim": dims, "method": methods}``) that raises if
    a run fails.

    Parameters
    ----------
    dims, methods : sequences
        The grid.
    teacher_dir : path, optional
        A finished teacher run; default: train (or reuse) the teacher of ``dataset`` and
        ``teacher_options`` (keyword arguments of :func:`htdviz.experiment.teacher_run`).
    jobs : int, default 1
        Runs at a time (the local executor's workers).
    **student_kwargs
        Options of :func:`htdviz.experiment.student_run` (and ``device``).
    """
    if teacher_dir is None:
        teacher_dir = experiment.teacher_run(dataset=dataset, runs_dir=runs_dir,
                                             progress=progress,
                                             device=student_kwargs.get("device"),
                                             **(teacher_options or {}))
    device = student_kwargs.pop("device", None)
    table = study({"dim": list(dims), "method": list(methods)}, teacher=teacher_dir,
                  workers=jobs, runs_dir=runs_dir, device=device, progress=progress,
                  **student_kwargs)
    failed = table[table["status"] == "failed"]
    if len(failed):
        first = failed.iloc[0]
        raise RuntimeError(f"{len(failed)} of {len(table)} sweep runs failed; "
                           f"{first['method']} d{first['dim']}: {first['error']}")
    return table
