"""The topology of a set of representations, and its split the way HTD distils it.

Kang et al., "Topology Distillation for Recommender System", KDD 2021 (docs/method.md §3, §5).
The *topology* of a set of entities (users, items, or both stacked) is the matrix of
pairwise cosine similarities of their representations. This module computes it and splits
it the way HTD does (prototypes, prototype-prototype and prototype-entity similarities,
within-group blocks). How well a student preserves its teacher's topology is measured in
:mod:`htdviz.preservation`.

Every public function takes plain arrays (numpy arrays or torch tensors) of shape
(n_entities, dim); nothing here knows about models or training, so embeddings from any
source can be analysed.

Conventions
-----------
- Inputs in float64 are computed in float64; every other dtype is computed in float32.
- A row of zeros has cosine 0 to every row, itself included (the convention of
  ``torch.nn.functional.normalize``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ._arrays import group_means, row_blocks
from ._validation import check_int, check_labels, check_matrix

#: Names that moved to :mod:`htdviz.preservation`; reaching them here says where they are.
_MOVED = ("MEASURES", "HIGHER_IS_BETTER", "DEFAULT_N_NEIGHBORS", "DEFAULT_TEMPERATURE",
          "DEFAULT_N_PAIRS", "DEFAULT_BANDS", "discrepancy", "preservation_kl",
          "preservation_kl_per_entity", "knn_overlap", "group_errors", "band_errors",
          "band_error_table")


def __getattr__(name: str):
    if name in _MOVED:
        raise AttributeError(f"htdviz.topology.{name} is now htdviz.preservation.{name}")
    raise AttributeError(f"module 'htdviz.topology' has no attribute {name!r}")


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length (zero rows stay zero), so dot products are cosines."""
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def cosine_similarity(a, b=None, chunk_size: int = 4096, dtype=np.float32) -> np.ndarray:
    """Cosine similarities between the rows of ``a`` and the rows of ``b`` (the topology).

    Parameters
    ----------
    a : array or tensor of shape (n_a, dim)
    b : array or tensor of shape (n_b, dim), optional
        Default ``a`` (the topology of one set).
    chunk_size : int, default 4096
        Rows of ``a`` multiplied at a time.
    dtype : numpy dtype, default float32
        Of the returned matrix.

    Returns
    -------
    ndarray of shape (n_a, n_b)

    Notes
    -----
    Memory: the result (``n_a * n_b`` values of ``dtype``), unit-length copies of the
    inputs (``(n_a + n_b) * dim`` values of the compute dtype) and one product block of
    ``chunk_size * n_b`` values. Nothing of size n_a x n_b in float64 is made unless
    ``dtype`` asks for it; for 25,181 items the float32 result alone is 2.5 GB, so for
    measures over large sets use :func:`htdviz.preservation.discrepancy`, which never holds
    the whole matrix.
    """
    a = check_matrix(a, "a")
    b = a if b is None else check_matrix(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same dim, got {a.shape[1]} and {b.shape[1]}")
    chunk_size = check_int(chunk_size, "chunk_size")
    compute = np.float64 if (a.dtype == np.float64 and b.dtype == np.float64) else np.float32
    a_unit = unit_rows(torch.from_numpy(a.astype(compute, copy=False)))
    b_unit = a_unit if b is a else unit_rows(torch.from_numpy(b.astype(compute, copy=False)))
    out = np.empty((a.shape[0], b.shape[0]), dtype=dtype)
    for start, stop in row_blocks(a.shape[0], chunk_size):
        out[start:stop] = (a_unit[start:stop] @ b_unit.T).numpy()
    return out


def prototypes(repr, labels, n_groups: int | None = None) -> np.ndarray:
    """The prototype (mean representation) of each group, docs/method.md §5.3.

    Parameters
    ----------
    repr : array or tensor of shape (n_entities, dim)
    labels : int array of shape (n_entities,)
        Group of each entity, in ``[0, n_groups)``.
    n_groups : int, optional
        Default ``labels.max() + 1``.

    Returns
    -------
    ndarray of shape (n_groups, dim)
        Means of the raw (not unit-length) representations, as the reference
        implementation takes them, accumulated in float64 and returned in the compute
        dtype. Rows of empty groups are NaN.
    """
    x = check_matrix(repr, "repr")
    labels, n_groups = check_labels(labels, x.shape[0], n_groups=n_groups)
    return group_means(x, labels, n_groups).astype(x.dtype)


@dataclass
class HTDTopology:
    """The topology of one entity set split the way HTD distils it (docs/method.md §5).

    Attributes
    ----------
    prototypes : ndarray of shape (n_groups, dim)
        Mean representation per group; NaN rows for empty groups.
    prototype_prototype : ndarray of shape (n_groups, n_groups)
        Cosines among prototypes, the target of the Group(P,P) design; NaN for empty groups.
    prototype_entity : ndarray of shape (n_groups, n_entities)
        Cosine of every prototype to every entity, the target of the Group(P,e) design
        (the design of the reference numbers); NaN rows for empty groups.
    members : list of int arrays
        ``members[g]`` are the ids of the entities in group g, ascending.
    within_group : list of ndarrays
        ``within_group[g]`` of shape (n_g, n_g): the cosines among the members of group g,
        the entity-level target (same-group pairs, diagonal included).
    """

    prototypes: np.ndarray
    prototype_prototype: np.ndarray
    prototype_entity: np.ndarray
    members: list
    within_group: list

    @property
    def n_groups(self) -> int:
        return self.prototypes.shape[0]


def htd_decomposition(repr, labels, n_groups: int | None = None) -> HTDTopology:
    """Split the topology of ``repr`` into HTD's group-level and entity-level parts.

    Parameters
    ----------
    repr : array or tensor of shape (n_entities, dim)
    labels : int array of shape (n_entities,)
    n_groups : int, optional
        Default ``labels.max() + 1``.

    Returns
    -------
    HTDTopology

    Notes
    -----
    Memory: ``n_groups * n_entities`` for the prototype-entity matrix plus
    ``sum_g n_g ** 2`` for the within-group blocks (for 30 balanced groups, 1/30 of the
    full matrix; a single group is the full matrix).
    """
    x = check_matrix(repr, "repr")
    labels, n_groups = check_labels(labels, x.shape[0], n_groups=n_groups)
    protos = group_means(x, labels, n_groups).astype(x.dtype)
    present = ~np.isnan(protos).any(axis=1)
    pp = np.full((n_groups, n_groups), np.nan, dtype=x.dtype)
    pe = np.full((n_groups, x.shape[0]), np.nan, dtype=x.dtype)
    if present.any():
        p_unit = unit_rows(torch.from_numpy(protos[present]))
        x_unit = unit_rows(torch.from_numpy(x))
        pp[np.ix_(present, present)] = (p_unit @ p_unit.T).numpy()
        pe[present] = (p_unit @ x_unit.T).numpy()
    members = [np.flatnonzero(labels == g) for g in range(n_groups)]
    blocks = [cosine_similarity(x[m], dtype=x.dtype) if m.size else np.empty((0, 0), x.dtype)
              for m in members]
    return HTDTopology(prototypes=protos, prototype_prototype=pp, prototype_entity=pe,
                       members=members, within_group=blocks)


def stack_entities(user_repr, item_repr, user_labels=None, item_labels=None):
    """Users and items as one entity set, the way a distillation batch sees them
    (docs/method.md §3).

    Parameters
    ----------
    user_repr : array or tensor of shape (n_users, dim)
    item_repr : array or tensor of shape (n_items, dim)
    user_labels : int array of shape (n_users,), optional
    item_labels : int array of shape (n_items,), optional
        Give both or neither. Item groups are shifted by the number of user groups
        (``user_labels.max() + 1``), since user and item groups are distinct (2K in all).

    Returns
    -------
    repr : ndarray of shape (n_users + n_items, dim)
        Users first, then items.
    labels : int64 ndarray of shape (n_users + n_items,) or None
    """
    users = check_matrix(user_repr, "user_repr")
    items = check_matrix(item_repr, "item_repr")
    if users.shape[1] != items.shape[1]:
        raise ValueError(f"user_repr and item_repr must have the same dim, got "
                         f"{users.shape[1]} and {items.shape[1]}")
    dtype = np.float64 if (users.dtype == np.float64 and items.dtype == np.float64) \
        else np.float32
    joint = np.concatenate([users.astype(dtype), items.astype(dtype)])
    if (user_labels is None) != (item_labels is None):
        raise ValueError("give both user_labels and item_labels, or neither")
    if user_labels is None:
        return joint, None
    user_labels, n_user_groups = check_labels(user_labels, users.shape[0], "user_labels")
    item_labels, _ = check_labels(item_labels, items.shape[0], "item_labels")
    return joint, np.concatenate([user_labels, item_labels + n_user_groups])


def group_members(labels: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """Entity ids of each group, ascending."""
    order = np.argsort(labels, kind="stable")
    return np.split(order, np.cumsum(np.bincount(labels, minlength=n_groups))[:-1])
