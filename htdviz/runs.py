"""Read run folders: what a training run left on disk, as plain arrays and tables.

A run folder ``runs/<name>/`` holds

- ``config.json``: how the run was made (method, dimension, ...);
- ``history.csv``: one row per evaluated epoch (``epoch``, losses, ``valid_recall@50``,
  ``test_recall@50``, ...);
- ``metrics.json``: the final metrics;
- ``embeddings.npz``: arrays ``users`` of shape (n_users, dim) and ``items`` of shape
  (n_items, dim), the final representations;
- optionally ``groups.npz``: int arrays ``users`` and ``items``, the hard preference group
  of every user and item (HTD runs).

This module only reads them (no pickle: ``np.load(allow_pickle=False)``), so that views and
notebooks can use finished runs without importing the training code. :meth:`Run.from_arrays`
wraps embeddings from anywhere else in the same shape.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

ENTITIES = ("users", "items")


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
        None); a folder without ``config.json`` is not a run (FileNotFoundError).
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a run folder: it has no config.json")
    config = json.loads((path / "config.json").read_text())
    history = pd.read_csv(path / "history.csv") if (path / "history.csv").is_file() \
        else pd.DataFrame()
    metrics = json.loads((path / "metrics.json").read_text()) \
        if (path / "metrics.json").is_file() else {}
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
                         **_flat_scalars(run.metrics)})
    return pd.DataFrame(rows, columns=None if rows else ["name", "path", "method", "dim",
                                                         "teacher"])


def _flat_scalars(metrics: dict, prefix: str = "") -> dict:
    """Numbers of a (nested) metrics dict, keys joined with ``_``."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(_flat_scalars(value, f"{prefix}{key}_"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = value
    return out


def _check_entity(entity: str) -> str:
    if entity not in ENTITIES:
        raise ValueError(f"entity must be 'users' or 'items', got {entity!r}")
    return entity


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
    if x is None:
        return None
    if hasattr(x, "detach"):                      # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{name} must be a 2-D numeric array (n, dim), got shape {x.shape} "
                         f"and dtype {x.dtype}")
    return x


def _as_groups(x, name: str) -> np.ndarray | None:
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 1 or not np.issubdtype(x.dtype, np.integer) or (x.size and x.min() < 0):
        raise ValueError(f"{name} must be a 1-D array of int group ids >= 0, got shape "
                         f"{x.shape} and dtype {x.dtype}")
    return x.astype(np.int64)
