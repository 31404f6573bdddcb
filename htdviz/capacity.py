"""Capacity-gap diagnostics: why FTD wins at phi = 1 and loses at phi = 0.1.

The paper's finding (docs/method.md §4): distilling the full topology (FTD) helps a student
as large as its teacher, but overwhelms a small one; HTD's hierarchical target (group-level
relations plus the relations within each group) suits a small student better. This module
puts numbers on that:

- :func:`spectrum`: how the teacher's variance spreads over dimensions.
- :func:`topology_error_bounds`: the smallest error ANY d-dimensional representation can
  reach on the full topology, and on the hierarchical target, from best rank-d
  approximations (Eckart-Young-Mirsky) of the teacher's cosine matrices.
- :func:`capacity_table`: those bounds over student dims beside the errors that trained
  students actually reach, their parameter counts and their metrics, as one tidy table.

Everything takes plain arrays (or run folders holding ``embeddings.npz``); nothing here
trains or loads models. Error units are those of :func:`htdviz.preservation.discrepancy`:
mean squared difference per matrix entry.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from . import preservation, topology
from ._threads import torch_threads
from ._validation import check_int, check_labels, check_matrix
from .topology import group_members, unit_rows

#: Student dims of the paper's sweep as fractions phi = d_s / d_t.
DEFAULT_PHIS = (0.05, 0.1, 0.25, 0.5, 1.0)


# --------------------------------------------------------------------------------------
# Spectrum and parameters
# --------------------------------------------------------------------------------------

def spectrum(repr, normalize: bool = False, center: bool = True) -> pd.DataFrame:
    """Explained variance of a representation by dimension (its PCA spectrum).

    Parameters
    ----------
    repr : array or tensor of shape (n_entities, dim)
    normalize : bool, default False
        Scale rows to unit length first (the representation the cosine topology sees).
    center : bool, default True
        Subtract the column means (PCA). With ``normalize=True, center=False`` the
        ``eigenvalue`` column holds exactly the nonzero eigenvalues of the cosine matrix
        that :func:`topology_error_bounds` truncates.

    Returns
    -------
    pandas.DataFrame
        One row per component (min(n_entities, dim) rows, largest first): ``component``
        (1-based), ``singular_value``, ``eigenvalue`` (= singular_value ** 2),
        ``explained_variance`` (eigenvalue / (n - 1) when centred, / n otherwise),
        ``explained_variance_ratio``, ``cumulative_ratio``.
    """
    x = torch.from_numpy(check_matrix(repr, "repr")).double()
    if normalize:
        x = unit_rows(x)
    if center:
        x = x - x.mean(0)
    eig = _gram_eigenvalues(x)
    n = x.shape[0]
    total = eig.sum()
    ratio = eig / total if total > 0 else np.full_like(eig, np.nan)
    return pd.DataFrame({
        "component": np.arange(1, eig.size + 1),
        "singular_value": np.sqrt(eig),
        "eigenvalue": eig,
        "explained_variance": eig / max(n - 1 if center else n, 1),
        "explained_variance_ratio": ratio,
        "cumulative_ratio": np.cumsum(ratio),
    })


def _gram_eigenvalues(x: torch.Tensor) -> np.ndarray:
    """Eigenvalues of x x^T (= squared singular values of x), descending, min(n, d) of them,
    from whichever of x^T x (d x d) and x x^T (n x n) is smaller; negatives from rounding
    are clipped to 0."""
    x = x.double()
    gram = x.T @ x if x.shape[1] <= x.shape[0] else x @ x.T
    with torch_threads(1):                 # a small eigenproblem: see torch_threads
        eig = torch.linalg.eigvalsh(gram)
    return eig.flip(0).clamp_min(0).numpy()


def parameter_count(n_users: int, n_items: int, dim: int) -> int:
    """Trainable parameters of a BPR-MF or LightGCN model: (n_users + n_items) * dim.

    Both keep one embedding table per entity type and nothing else (docs/method.md §10.4:
    BPR on CiteULike, 5,219 users and 25,181 items: 0.61 M at dim 20, 6.08 M at dim 200).
    The distiller's own parameters (selection networks, experts) train only alongside the
    student and are not counted, as in the paper.
    """
    for name, value in (("n_users", n_users), ("n_items", n_items), ("dim", dim)):
        check_int(value, name, low=0 if name != "dim" else 1)
    return (int(n_users) + int(n_items)) * int(dim)


# --------------------------------------------------------------------------------------
# Lower bounds on the topology error of a d-dimensional student
# --------------------------------------------------------------------------------------

def _tail_energy(eigenvalues: np.ndarray, dims: np.ndarray) -> np.ndarray:
    """sum_{i > d} lambda_i^2 for each d: the Eckart-Young error of the best rank-d
    approximation of a PSD matrix with these eigenvalues (descending)."""
    squares = np.concatenate([eigenvalues ** 2, [0.0]])
    tail = np.cumsum(squares[::-1])[::-1]            # tail[i] = sum_{j >= i} lambda_j^2
    return tail[np.minimum(dims, eigenvalues.size)]


def topology_error_bounds(teacher, dims, labels=None, n_groups: int | None = None
                          ) -> pd.DataFrame:
    """The smallest topology error a d-dimensional student can reach, per d.

    Parameters
    ----------
    teacher : array or tensor of shape (n_entities, d_t)
        Teacher representations of the entity set (e.g. users and items stacked with
        :func:`htdviz.topology.stack_entities`).
    dims : int or sequence of int
        Student dimensions d >= 1.
    labels : int array of shape (n_entities,), optional
        Groups, for the hierarchical target.
    n_groups : int, optional
        Default ``labels.max() + 1``.

    Returns
    -------
    pandas.DataFrame
        One row per d: ``dim``; ``full_error`` (mean per entry over the N x N topology,
        the unit of ``discrepancy()["ftd_error"]``) and ``full_error_relative`` (the same
        as a share of ||C_t||_F^2, i.e. the fraction of the target out of reach). With
        labels also ``entity_error`` (same-group pairs), ``group_error`` (prototype-entity
        pairs), ``hierarchical_error`` (both parts together, the unit of
        ``discrepancy()["htd_error"]``) and ``hierarchical_error_relative``.

    Notes
    -----
    What this bounds. Let C_t = T T^T be the teacher's cosine matrix (T: unit-length
    rows), with eigenvalues l_1 >= l_2 >= ... >= 0. A student with d-dimensional
    representations has a cosine matrix C_s = S S^T of rank <= d, so by Eckart-Young-Mirsky

        ||C_t - C_s||_F^2 >= min_{rank G <= d} ||C_t - G||_F^2 = sum_{i > d} l_i^2,

    and the minimiser (the truncated eigendecomposition) is itself PSD, so the bound also
    holds among PSD matrices. It is zero for every d >= rank(T) <= d_t.

    For the hierarchical target the same argument runs per part. Each within-group block
    C_t[g, g] is matched by the student's block, of rank <= d; blocks of different groups
    involve disjoint entities, so their minima add up. The prototype-entity matrix
    M_t = P_t T^T (n_groups x N, unit prototypes) is matched by P_s S^T, of rank <= d, so
    its error is at least sum_{i > d} sigma_i(M_t)^2 (zero once d >= n_groups). The bound
    on the whole target is the sum of the parts' minima.

    What it does not say. (1) It is not tight: a student's cosine matrix also has a unit
    diagonal (rows of unit length), which the best rank-d approximation in general has not,
    and in the hierarchical target the same student rows (and prototypes that are their
    means) must serve both parts at once; the true minima can be larger. (2) It bounds
    the topology error only, not ranking accuracy: a trained student also fits its own
    BPR loss, and its optimiser does not reach the minimum. (3) Prototypes here are means
    over the whole set, while HTD trains with per-batch prototypes (docs/method.md §5.3).
    (4) It does not model HTD's ``positive_pairs_only`` quirk.

    The comparison that matters is the relative column: at small d the full topology keeps
    a large share of its energy out of any student's reach, the hierarchical target much
    less; at d = d_t both are reachable, and the full topology carries more information.
    """
    x = check_matrix(teacher, "teacher")
    dims = np.atleast_1d(np.asarray(dims))
    if dims.ndim != 1 or dims.size == 0 or not np.issubdtype(dims.dtype, np.integer) or \
            (dims < 1).any():
        raise ValueError(f"dims must be one or more integers >= 1, got {dims.tolist()}")
    if labels is not None:
        labels, n_groups = check_labels(labels, x.shape[0], n_groups=n_groups)
    return _bounds(x, dims, labels, n_groups)[0]


def _bounds(x: np.ndarray, dims: np.ndarray, labels, n_groups):
    """The bound table of validated input, and the targets' energies and entry counts."""
    x = torch.from_numpy(x).double()
    n = x.shape[0]
    x_unit = unit_rows(x)
    full_eig = _gram_eigenvalues(x_unit)
    full_tail = _tail_energy(full_eig, dims)
    energy = {"full": float(_tail_energy(full_eig, np.array([0]))[0]), "full_entries": n ** 2}
    out = pd.DataFrame({"dim": dims, "full_error": full_tail / n ** 2,
                        "full_error_relative": full_tail / energy["full"]})
    if labels is None:
        return out, energy
    within_tail = np.zeros(dims.size)
    within_total, within_entries = 0.0, 0
    for members in group_members(labels, n_groups):
        if members.size:
            eig = _gram_eigenvalues(x_unit[torch.from_numpy(members)])
            within_tail += _tail_energy(eig, dims)
            within_total += float(np.sum(eig ** 2))
            within_entries += members.size ** 2
    protos = topology.prototypes(x.numpy(), labels, n_groups)
    protos = unit_rows(torch.from_numpy(protos[~np.isnan(protos).any(axis=1)]))
    pe = protos @ x_unit.T                                            # (K', N) = M_t
    sigma = np.sqrt(_gram_eigenvalues(pe))                            # singular values
    group_tail = _tail_energy(sigma, dims)                            # sum_{i>d} sigma_i^2
    group_total, group_entries = float(np.sum(sigma ** 2)), pe.numel()
    out["entity_error"] = within_tail / within_entries
    out["group_error"] = group_tail / group_entries
    out["hierarchical_error"] = (within_tail + group_tail) / (within_entries + group_entries)
    out["hierarchical_error_relative"] = (within_tail + group_tail) / (within_total +
                                                                      group_total)
    energy.update(hierarchical=within_total + group_total,
                  hierarchical_entries=within_entries + group_entries)
    return out, energy


# --------------------------------------------------------------------------------------
# Runs and the capacity table
# --------------------------------------------------------------------------------------

def _run_arrays(name, run) -> dict:
    """A run's representations and metrics as {users, items, metrics}: from an object with
    ``users``, ``items`` and ``metrics`` attributes (:class:`htdviz.runs.Run`), a mapping
    with those keys, or a ``(users, items[, metrics])`` tuple. Folders are read by the
    caller (:func:`htdviz.runs.load_run`): this module reads arrays."""
    if isinstance(run, (str, os.PathLike)):
        raise ValueError(f"runs[{name!r}] is a path ({str(run)!r}); capacity_table takes "
                         f"arrays: load the run first (htdviz.runs.load_run)")
    if isinstance(run, Mapping):
        users, items, metrics = run.get("users"), run.get("items"), run.get("metrics")
    elif isinstance(run, (tuple, list)) and len(run) in (2, 3):
        users, items, metrics = run[0], run[1], run[2] if len(run) == 3 else None
    else:
        users, items = getattr(run, "users", None), getattr(run, "items", None)
        metrics = getattr(run, "metrics", None)
    if users is None or items is None:
        raise ValueError(f"run {name!r} lacks user or item representations (a Run, a "
                         f"mapping with 'users' and 'items', or a (users, items[, metrics]) "
                         f"tuple; a run folder needs embeddings.npz)")
    return {"users": users, "items": items, "metrics": dict(metrics or {})}


def _checked_runs(runs, n_users: int, n_items: int) -> dict:
    """``runs`` as name -> {users, items, metrics}, each checked against the teacher's
    entity counts."""
    runs = {} if runs is None else runs
    if not isinstance(runs, Mapping):
        raise ValueError(f"runs must be a mapping name -> run, got {type(runs).__name__}")
    loaded = {name: _run_arrays(name, run) for name, run in runs.items()}
    for name, run in loaded.items():
        run["users"] = check_matrix(run["users"], f"runs[{name!r}] users")
        run["items"] = check_matrix(run["items"], f"runs[{name!r}] items")
        if run["users"].shape[0] != n_users or run["items"].shape[0] != n_items:
            raise ValueError(f"run {name!r} has {run['users'].shape[0]} users and "
                             f"{run['items'].shape[0]} items; the teacher has {n_users} and "
                             f"{n_items}")
    return loaded


def _achieved_row(method: str, dim: int, measured: dict, energy: dict) -> dict:
    """One run's row of the capacity table: its discrepancies, named as the bounds are
    (``full_error``, ``hierarchical_error``, ...) and as shares of the target's energy."""
    row = {"method": method, "kind": "achieved", "dim": dim}
    if "ftd_error" in measured:
        row["full_error"] = measured.pop("ftd_error")
        row["full_error_relative"] = row["full_error"] * energy["full_entries"] / \
            energy["full"]
    if "htd_error" in measured:
        row["entity_error"] = measured.pop("htd_entity_error")
        row["group_error"] = measured.pop("htd_group_error")
        row["hierarchical_error"] = measured.pop("htd_error")
        row["hierarchical_error_relative"] = row["hierarchical_error"] * \
            energy["hierarchical_entries"] / energy["hierarchical"]
    return {**row, **measured}


def _scalar_metrics(metrics: dict, prefix: str = "") -> dict:
    """The numeric scalars of a metrics dict; nested dicts are flattened with ``_``
    (``{"final": {"test_recall@50": x}}`` -> ``final_test_recall@50``), other values are
    skipped."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            out.update(_scalar_metrics(value, f"{prefix}{key}_"))
        elif isinstance(value, (int, float, np.integer, np.floating)) and \
                not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def capacity_table(teacher_users, teacher_items, dims=None, runs=None, user_labels=None,
                   item_labels=None, n_groups: int = 30, entities: str = "both",
                   measures=("ftd_error", "htd"), max_entities: int | None = None,
                   random_state=0, chunk_size: int = 1024) -> pd.DataFrame:
    """Bounds and achieved topology errors over student dims (and methods), in one table.

    Parameters
    ----------
    teacher_users : array or tensor of shape (n_users, d_t)
    teacher_items : array or tensor of shape (n_items, d_t)
    dims : sequence of int, optional
        Student dims for the bound rows. Default: the dims of ``runs`` if given, else
        d_t times :data:`DEFAULT_PHIS` (10, 20, 50, 100, 200 for d_t = 200).
    runs : mapping, optional
        name -> run, where a run is an object with ``users`` (n_users, d), ``items``
        (n_items, d) and ``metrics`` attributes (``htdviz.runs.Run``: a run folder read by
        ``htdviz.runs.load_run``); or a tuple ``(user_repr, item_repr)`` or
        ``(user_repr, item_repr, metrics)``; or a mapping with ``users``, ``items`` and
        optionally ``metrics``. The method is the
        name, or its first element when the name is a tuple such as ``("HTD", 20)``; the
        dim is read from the arrays. Numeric metrics become columns (nested ones
        flattened: ``final_test_recall@50``; a name that clashes with a column of the
        table gets the prefix ``metrics_``).
    user_labels : int array of shape (n_users,), optional
    item_labels : int array of shape (n_items,), optional
        Groups of the hierarchical target (e.g. from :func:`htdviz.groups.htd_groups`),
        one set for the whole table, so that every run is measured against the same
        target. Default: k-means with ``n_groups`` groups on the teacher
        (:func:`htdviz.groups.kmeans_groups`), a stand-in for HTD's learned groups.
    n_groups : int, default 30
        K of the k-means stand-in.
    entities : {"both", "users", "items"}, default "both"
        The entity set whose topology is measured; "both" stacks users and items as one
        set with distinct user and item groups, as HTD's batches do.
    measures : sequence of str, default ("ftd_error", "htd")
        :func:`htdviz.preservation.discrepancy` measures computed for each run (all are
        added as columns); the default ones cost O(N d_t d_s), the neighbour-based ones
        an N x N pass per run.
    max_entities : int, optional
        Measure a seeded uniform sample of this many entities (bounds and runs alike).
    random_state : int, default 0
        Seeds k-means, the entity sample and the sampled measures.
    chunk_size : int, default 1024

    Returns
    -------
    pandas.DataFrame
        Tidy, one row per observation: ``method``, ``kind`` ("bound" rows, method
        "rank-d bound", one per dim; "achieved" rows, one per run), ``dim``, ``phi``
        (dim / d_t), ``n_params`` (:func:`parameter_count`), ``full_error``,
        ``full_error_relative``, ``entity_error``, ``group_error``,
        ``hierarchical_error``, ``hierarchical_error_relative`` (achieved rows: the
        student's errors in the same units; relative = error energy / target energy),
        ``teacher_variance_ratio`` (the teacher's cumulative explained variance at dim),
        then any further measures and the runs' numeric metrics as columns.
    """
    from . import groups as groups_module

    tu = check_matrix(teacher_users, "teacher_users")
    ti = check_matrix(teacher_items, "teacher_items")
    if tu.shape[1] != ti.shape[1]:
        raise ValueError(f"teacher_users and teacher_items must have the same dim, got "
                         f"{tu.shape[1]} and {ti.shape[1]}")
    if entities not in ("both", "users", "items"):
        raise ValueError(f"entities must be 'both', 'users' or 'items', got {entities!r}")
    d_t, n_users, n_items = tu.shape[1], tu.shape[0], ti.shape[0]
    loaded = _checked_runs(runs, n_users, n_items)
    if dims is None:
        dims = sorted({r["users"].shape[1] for r in loaded.values()}) or \
            sorted({max(1, round(phi * d_t)) for phi in DEFAULT_PHIS})
    dims = np.asarray(sorted(set(np.atleast_1d(dims).tolist())))

    if user_labels is None and entities != "items":
        user_labels = groups_module.kmeans_groups(tu, min(n_groups, n_users), random_state)
    if item_labels is None and entities != "users":
        item_labels = groups_module.kmeans_groups(ti, min(n_groups, n_items), random_state)

    def entity_set(users, items):
        if entities == "users":
            return users, check_labels(user_labels, n_users, "user_labels")[0]
        if entities == "items":
            return items, check_labels(item_labels, n_items, "item_labels")[0]
        return topology.stack_entities(users, items, user_labels, item_labels)

    teacher, labels = entity_set(tu, ti)
    keep = np.arange(teacher.shape[0])
    if max_entities is not None:
        max_entities = check_int(max_entities, "max_entities", low=3)
        if max_entities < teacher.shape[0]:
            keep = np.sort(np.random.default_rng(random_state).choice(
                teacher.shape[0], max_entities, replace=False))
    teacher, labels = teacher[keep], np.unique(labels[keep], return_inverse=True)[1]

    variance = spectrum(teacher)["cumulative_ratio"].to_numpy()
    bounds, energy = _bounds(teacher, dims, labels, int(labels.max()) + 1)
    bounds.insert(0, "kind", "bound")
    bounds.insert(0, "method", "rank-d bound")
    rows = [bounds]
    for name, run in loaded.items():
        student = entity_set(run["users"], run["items"])[0][keep]
        measured = preservation.discrepancy(teacher, student, labels, measures=list(measures),
                                            random_state=random_state, chunk_size=chunk_size)
        row = _achieved_row(name[0] if isinstance(name, tuple) else name, student.shape[1],
                            measured, energy)
        for key, value in _scalar_metrics(run["metrics"]).items():
            row[f"metrics_{key}" if key in row or key in ("phi", "n_params") else key] = value
        rows.append(pd.DataFrame([row]))
    table = pd.concat(rows, ignore_index=True)
    table.insert(3, "phi", table["dim"] / d_t)
    table.insert(4, "n_params", [parameter_count(n_users, n_items, int(d)) for d in
                                 table["dim"]])
    table["teacher_variance_ratio"] = variance[np.minimum(table["dim"], variance.size) - 1]
    return table

