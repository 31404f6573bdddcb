"""Run folders: the one place that writes them, reads them and says what a run is.

A run folder ``runs/<name>/`` holds

- ``config.json``: the run's configuration (:class:`~htdviz.config.TeacherConfig` or
  :class:`~htdviz.config.StudentConfig` as their ``to_dict`` records it; a finished run with
  the same configuration is reused, so it holds everything that defines the run: for a data
  file also its sha256 and the split options);
- ``history.csv``: one row per evaluated epoch (``epoch``, losses, ``valid_recall@50``,
  ``test_recall@50``, ...);
- ``metrics.json``: final and best-validation metrics, seconds, parameter count, device, and
  what produced the run (``software``: versions, the git commit, the processor);
- ``embeddings.npz``: arrays ``users`` of shape (n_users, dim) and ``items`` of shape
  (n_items, dim), the final representations;
- optionally ``groups.npz``: int arrays ``users`` and ``items``, the hard preference group
  of every user and item (runs of methods with groups: DE, HTD);
- ``model.safetensors`` and, for distillers with parameters, ``distiller.safetensors``
  (written by :mod:`htdviz.experiment` through :func:`write_run`; not read here).

The folder name is a readable summary plus a hash of ``config.json``
(:meth:`htdviz.config.TeacherConfig.folder_name`). A run is written into a hidden
temporary folder and renamed into place only when complete (:func:`write_run`), so an
interrupted run never leaves a folder that looks finished (:func:`finished`).

Reading needs no training code (no torch import; no pickle: ``np.load(allow_pickle=False)``),
so views and notebooks can use finished runs. :func:`as_run` turns every accepted form of a
run (a :class:`Run`, a folder, a mapping or tuple of arrays) into a :class:`Run`.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ._validation import check_labels, check_matrix

ENTITIES = ("users", "items")


# --------------------------------------------------------------------------------------
# Writing a run
# --------------------------------------------------------------------------------------

def finished(path: str | Path) -> bool:
    """Whether ``path`` is a complete run folder (its metrics.json is written last)."""
    return (Path(path) / "metrics.json").is_file()


def write_run(path: str | Path, run: "Run",
              extra_files: Mapping[str, Callable[[Path], None]] | None = None) -> Path:
    """Write ``run`` as the folder ``path``, atomically; returns ``path``.

    Every file goes into a hidden temporary folder beside ``path`` that is renamed into
    place only when complete. If a concurrent run of the same configuration finished first,
    its folder is kept and this one dropped.

    Parameters
    ----------
    path : str or Path
    run : Run
        Its config, history, metrics, representations and groups are written.
    extra_files : mapping, optional
        file name -> ``write(path)``, for files this module does not read (the model).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        (tmp / "config.json").write_text(json.dumps(run.config, indent=2, sort_keys=True))
        run.history.to_csv(tmp / "history.csv", index=False)
        if run.users is not None:
            np.savez(tmp / "embeddings.npz", users=run.users, items=run.items)
        if run.user_groups is not None:
            np.savez(tmp / "groups.npz", users=run.user_groups, items=run.item_groups)
        for name, write in (extra_files or {}).items():
            write(tmp / name)
        (tmp / "metrics.json").write_text(json.dumps(run.metrics, indent=2))  # last: finished
        try:
            os.rename(tmp, path)
        except OSError:
            if not finished(path):
                raise
            shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


# --------------------------------------------------------------------------------------
# Reading a run
# --------------------------------------------------------------------------------------


@dataclass
class Run:
    """One run: its configuration, history, metrics, representations and groups.

    Attributes
    ----------
    name : str
    config : dict
    history : pandas.DataFrame
        One row per evaluated epoch; empty when the run has none.
    metrics : dict
    users : ndarray of shape (n_users, dim) or None
    items : ndarray of shape (n_items, dim) or None
    user_groups : int ndarray of shape (n_users,) or None
    item_groups : int ndarray of shape (n_items,) or None
    path : Path or None
        The folder it was read from.
    """

    name: str
    config: dict = field(default_factory=dict)
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    metrics: dict = field(default_factory=dict)
    users: np.ndarray | None = None
    items: np.ndarray | None = None
    user_groups: np.ndarray | None = None
    item_groups: np.ndarray | None = None
    path: Path | None = None

    @classmethod
    def from_arrays(cls, name: str, users=None, items=None, user_groups=None,
                    item_groups=None, config: dict | None = None, history=None,
                    metrics: dict | None = None) -> "Run":
        """A run made from arrays in memory (checked like a folder's contents).

        Parameters
        ----------
        name : str
        users : array of shape (n_users, dim), optional
        items : array of shape (n_items, dim), optional
        user_groups : int array of shape (n_users,), optional
        item_groups : int array of shape (n_items,), optional
        config, metrics : dict, optional
        history : pandas.DataFrame, optional
        """
        run = cls(name=str(name), config=dict(config or {}),
                  history=history if history is not None else pd.DataFrame(),
                  metrics=dict(metrics or {}),
                  users=_as_repr(users, f"{name}: users"),
                  items=_as_repr(items, f"{name}: items"),
                  user_groups=_as_groups(user_groups, f"{name}: user_groups"),
                  item_groups=_as_groups(item_groups, f"{name}: item_groups"))
        run._check_shapes()
        return run

    @property
    def method(self) -> str:
        """``config["method"]`` (students), else ``config["role"]`` ("teacher"), else the
        run's name."""
        return str(self.config.get("method") or self.config.get("role") or self.name)

    @property
    def dim(self) -> int | None:
        """The representation dimension: from the embeddings, else ``config["dim"]``."""
        for arr in (self.users, self.items):
            if arr is not None:
                return int(arr.shape[1])
        dim = self.config.get("dim")
        return int(dim) if dim is not None else None

    def representations(self, entity: str) -> np.ndarray:
        """The representations of ``entity`` ("users" or "items"), shape (n, dim)."""
        arr = self.users if _check_entity(entity) == "users" else self.items
        if arr is None:
            raise ValueError(f"run {self.name!r} has no {entity} representations")
        return arr

    def groups(self, entity: str) -> np.ndarray | None:
        """The hard groups of ``entity`` ("users" or "items"), shape (n,), or None."""
        return self.user_groups if _check_entity(entity) == "users" else self.item_groups

    def _check_shapes(self) -> None:
        for reps, groups, what in ((self.users, self.user_groups, "users"),
                                   (self.items, self.item_groups, "items")):
            if reps is not None and groups is not None and groups.shape[0] != reps.shape[0]:
                raise ValueError(f"run {self.name!r}: {groups.shape[0]} {what} groups for "
                                 f"{reps.shape[0]} {what} representations")
        if self.users is not None and self.items is not None and \
                self.users.shape[1] != self.items.shape[1]:
            raise ValueError(f"run {self.name!r}: users have dim {self.users.shape[1]} but "
                             f"items {self.items.shape[1]}")

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={getattr(self, k).shape}" for k in ENTITIES
                           if getattr(self, k) is not None)
        return f"Run({self.name!r}, method={self.method!r}, dim={self.dim}, {shapes})"


def load_run(path: str | Path, embeddings: bool = True) -> Run:
    """Read one run folder.

    Parameters
    ----------
    path : str or Path
        The folder (``runs/<name>``).
    embeddings : bool, default True
        Also read ``embeddings.npz`` and ``groups.npz`` (the large files).

    Returns
    -------
    Run
        Missing optional files leave their attribute empty (``{}``, an empty DataFrame or
        None); a folder with neither ``config.json`` nor ``embeddings.npz`` is not a run
        (FileNotFoundError). Folders of every earlier htdviz version read the same way.
    """
    path = Path(path)
    has_config = (path / "config.json").is_file()
    if not has_config and not (path / "embeddings.npz").is_file():
        raise FileNotFoundError(f"{path} is not a run folder: it has neither config.json nor "
                                f"embeddings.npz")
    config = _read_json(path / "config.json") if has_config else {}
    history = pd.read_csv(path / "history.csv") if (path / "history.csv").is_file() \
        else pd.DataFrame()
    metrics = _read_json(path / "metrics.json") if (path / "metrics.json").is_file() else {}
    arrays = {}
    if embeddings:
        arrays.update(_read_npz(path / "embeddings.npz", ("users", "items"), ""))
        arrays.update(_read_npz(path / "groups.npz", ("users", "items"), "groups"))
    run = Run.from_arrays(path.name, users=arrays.get("users"), items=arrays.get("items"),
                          user_groups=arrays.get("user_groups"),
                          item_groups=arrays.get("item_groups"), config=config,
                          history=history, metrics=metrics)
    run.path = path
    return run


def as_run(name, run) -> Run:
    """Any accepted form of a run as a :class:`Run` (the one place that accepts them).

    Parameters
    ----------
    name : hashable
        The run's name (``str(name)`` becomes ``Run.name``).
    run : Run, str, Path, mapping or tuple
        A :class:`Run`; a run folder (:func:`load_run`); a mapping with ``users``
        (n_users, dim) and ``items`` (n_items, dim) and optionally ``user_groups``,
        ``item_groups``, ``method``, ``config``, ``history``, ``metrics``; or a tuple
        ``(users, items)`` or ``(users, items, metrics)``.

    Returns
    -------
    Run
    """
    if isinstance(run, Run):
        return run
    if isinstance(run, (str, Path)):
        return load_run(run)
    if isinstance(run, Mapping):
        if "users" not in run or "items" not in run:
            raise ValueError(f"run {name!r}: a mapping must have 'users' and 'items', got "
                             f"keys {sorted(map(str, run))}")
        config = dict(run.get("config") or {})
        if "method" in run:
            config["method"] = run["method"]
        return Run.from_arrays(str(name), users=run["users"], items=run["items"],
                               user_groups=run.get("user_groups"),
                               item_groups=run.get("item_groups"), config=config,
                               history=run.get("history"), metrics=run.get("metrics"))
    if isinstance(run, (tuple, list)) and len(run) in (2, 3):
        return Run.from_arrays(str(name), users=run[0], items=run[1],
                               metrics=dict(run[2]) if len(run) == 3 else None)
    raise ValueError(f"run {name!r} must be a Run, a run folder, a mapping with 'users' and "
                     f"'items' or a (users, items[, metrics]) tuple; got {type(run).__name__}")


def list_runs(root: str | Path = "runs") -> pd.DataFrame:
    """The run folders under ``root``, one row each, without reading their embeddings.

    Parameters
    ----------
    root : str or Path, default "runs"

    Returns
    -------
    pandas.DataFrame
        Columns ``name``, ``path``, ``method``, ``dim``, ``teacher`` (from ``config.json``;
        None when it has none) and every number of ``metrics.json``, nested objects
        flattened with ``_`` (``final_test_recall@50``), sorted by name. Empty (with the
        first five columns) when ``root`` holds no run.
    """
    root = Path(root)
    rows = []
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if (p / "config.json").is_file()):
            run = load_run(folder, embeddings=False)
            rows.append({"name": run.name, "path": str(folder), "method": run.method,
                         "dim": run.dim, "teacher": run.config.get("teacher"),
                         **flat_metrics(run.metrics)})
    return pd.DataFrame(rows, columns=None if rows else ["name", "path", "method", "dim",
                                                         "teacher"])


def load_metrics(run_dir: str | Path) -> dict:
    """One row of a finished run: ``run`` (its name), ``path``, its configuration, its
    metrics flattened (``final_test_recall@50``, ``best_valid_epoch``, ``train_seconds``,
    ...; :func:`flat_metrics`) and ``device``."""
    run = load_run(run_dir, embeddings=False)
    return {"run": run.name, "path": str(run_dir), **run.config, **flat_metrics(run.metrics),
            "device": run.metrics.get("device")}


def flat_metrics(metrics: dict, prefix: str = "") -> dict:
    """The numbers of a (nested) metrics dict, keys joined with ``_``:
    ``{"final": {"test_recall@50": x}}`` -> ``{"final_test_recall@50": x}``."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(flat_metrics(value, f"{prefix}{key}_"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = value
    return out


def _check_entity(entity: str) -> str:
    if entity not in ENTITIES:
        raise ValueError(f"entity must be 'users' or 'items', got {entity!r}")
    return entity


def _read_json(path: Path) -> dict:
    """A JSON object from ``path``; ValueError naming the file otherwise."""
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(value).__name__}")
    return value


def _read_npz(path: Path, keys, suffix: str) -> dict:
    """Arrays ``keys`` of an npz file (those present), renamed ``user_groups`` etc."""
    if not path.is_file():
        return {}
    out = {}
    with np.load(path, allow_pickle=False) as npz:
        for key in keys:
            if key in npz.files:
                name = f"{key[:-1]}_{suffix}" if suffix else key
                out[name] = npz[key]
    return out


def _as_repr(x, name: str) -> np.ndarray | None:
    return None if x is None else check_matrix(x, name)


def _as_groups(x, name: str) -> np.ndarray | None:
    return None if x is None else check_labels(x, None, name)[0]
