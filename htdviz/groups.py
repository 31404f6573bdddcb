"""Preference groups: where they come from, how they agree, what they mean.

HTD (docs/method.md §5.1) splits users and items into K preference groups with a
selection network that reads the teacher representation. This module produces group
assignments three ways — from a trained HTD selection network, from k-means on the teacher
representations, from labels a user supplies — and describes them: sizes, agreement
between two assignments (ARI, NMI), and for items with tags (CiteULike) each group's most
characteristic tags and its purity.

Everything takes plain arrays; group labels are int arrays of shape (n_entities,) with
values in [0, n_groups).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ._arrays import unit_rows
from ._validation import check_int, check_labels, check_matrix, check_tags


# --------------------------------------------------------------------------------------
# Assignments
# --------------------------------------------------------------------------------------

def selection_groups(teacher_repr, weight, bias) -> np.ndarray:
    """Hard groups of an HTD selection network: argmax_k (W t + b)_k (docs/method.md §5.1).

    The softmax of the selection network does not change the argmax, so it is skipped.

    Parameters
    ----------
    teacher_repr : array or tensor of shape (n_entities, d_t)
    weight : array or tensor of shape (n_groups, d_t)
        ``selection.weight`` of the network's ``nn.Linear(d_t, n_groups)``.
    bias : array or tensor of shape (n_groups,)
        ``selection.bias``.

    Returns
    -------
    int64 ndarray of shape (n_entities,)
        Ties go to the lowest group id.
    """
    t = check_matrix(teacher_repr, "teacher_repr").astype(np.float64)
    w = check_matrix(weight, "weight").astype(np.float64)
    if isinstance(bias, torch.Tensor):
        bias = bias.detach().cpu().numpy()
    b = np.asarray(bias, dtype=np.float64)
    if w.shape[1] != t.shape[1]:
        raise ValueError(f"weight must have shape (n_groups, d_t={t.shape[1]}), got "
                         f"{w.shape}")
    if b.shape != (w.shape[0],):
        raise ValueError(f"bias must have shape ({w.shape[0]},), got {b.shape}")
    return np.argmax(t @ w.T + b, axis=1).astype(np.int64)


def htd_groups(htd, kind: str, teacher_repr) -> np.ndarray:
    """Hard groups from a trained HTD distiller's selection network.

    Parameters
    ----------
    htd : object
        Anything with ``htd.selection[kind]``, an ``nn.Linear(d_t, n_groups)``
        (e.g. ``htdviz.distill.HTD``); only its ``weight`` and ``bias`` are read.
    kind : {"user", "item"}
    teacher_repr : array or tensor of shape (n_entities, d_t)
        The teacher representations of that kind, the network's input.

    Returns
    -------
    int64 ndarray of shape (n_entities,)
    """
    if kind not in ("user", "item"):
        raise ValueError(f"kind must be 'user' or 'item', got {kind!r}")
    try:
        linear = htd.selection[kind]
    except (AttributeError, KeyError, TypeError) as exc:
        raise ValueError(f"htd must have a selection network htd.selection[{kind!r}] "
                         f"(an nn.Linear(d_t, n_groups)); got {type(htd).__name__}") from exc
    bias = linear.bias if linear.bias is not None else torch.zeros(linear.weight.shape[0])
    return selection_groups(teacher_repr, linear.weight, bias)


def kmeans_groups(teacher_repr, n_groups: int = 30, random_state=0, normalize: bool = True,
                  n_init: int = 4) -> np.ndarray:
    """Groups from k-means (scikit-learn) on the teacher representations.

    Parameters
    ----------
    teacher_repr : array or tensor of shape (n_entities, d_t)
    n_groups : int, default 30
        K of the reference runs.
    random_state : int, default 0
    normalize : bool, default True
        Cluster unit-length rows, so that groups follow the cosine topology HTD distils
        (squared Euclidean distance between unit rows is 2 - 2 cos).
    n_init : int, default 4
        k-means++ restarts; the best inertia wins. One restart (scikit-learn's "auto")
        is faster but got stuck merging two planted groups of a trained teacher in the
        tests (ARI 0.76 instead of 0.99). Timings: docs/benchmarks.md ("Analysis").

    Returns
    -------
    int64 ndarray of shape (n_entities,)
    """
    from sklearn.cluster import KMeans

    x = check_matrix(teacher_repr, "teacher_repr")
    n_groups = check_int(n_groups, "n_groups", high=x.shape[0])
    n_init = check_int(n_init, "n_init")
    if normalize:
        x = unit_rows(x)
    km = KMeans(n_clusters=n_groups, n_init=n_init, random_state=random_state)
    return km.fit_predict(x).astype(np.int64)


def groups_from_labels(labels) -> tuple[np.ndarray, np.ndarray]:
    """Any per-entity labels (strings, floats, ints) as group ids.

    Parameters
    ----------
    labels : array-like of shape (n_entities,)
        No missing values.

    Returns
    -------
    groups : int64 ndarray of shape (n_entities,)
        Ids in order of first appearance.
    names : ndarray of shape (n_groups,)
        ``names[g]`` is the label of group g.
    """
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    values = np.asarray(labels, dtype=object)
    if values.ndim != 1:
        raise ValueError(f"labels must be 1-D (one label per entity), got shape {values.shape}")
    missing = pd.isna(pd.Series(values)).to_numpy()
    if missing.any():
        raise ValueError(f"labels has {int(missing.sum())} missing values (first at position "
                         f"{int(np.flatnonzero(missing)[0])})")
    codes, names = pd.factorize(values, sort=False)
    return codes.astype(np.int64), np.asarray(names)


# --------------------------------------------------------------------------------------
# Descriptions
# --------------------------------------------------------------------------------------

def group_sizes(labels, n_groups: int | None = None) -> pd.Series:
    """Number of entities per group, empty groups included.

    Parameters
    ----------
    labels : int array of shape (n_entities,)
    n_groups : int, optional
        Default ``labels.max() + 1``.

    Returns
    -------
    pandas.Series of int, index ``group`` 0..n_groups-1, name ``size``
    """
    labels, n_groups = check_labels(labels, None, n_groups=n_groups)
    return pd.Series(np.bincount(labels, minlength=n_groups),
                     index=pd.RangeIndex(n_groups, name="group"), name="size")


def group_usage(labels, n_groups: int | None = None) -> dict[str, float]:
    """How many groups an assignment uses, and how evenly.

    Parameters
    ----------
    labels : int array of shape (n_entities,)
    n_groups : int, optional
        K, the groups on offer (default ``labels.max() + 1``).

    Returns
    -------
    dict
        ``used``: groups with at least one member; ``entropy``: entropy of the group
        sizes in bits (0 = everyone in one group, log2(K) = all K groups equally full);
        ``effective``: 2 ** entropy, the number of equally full groups with that entropy.
    """
    sizes = group_sizes(labels, n_groups).to_numpy()
    share = sizes[sizes > 0] / sizes.sum()
    entropy = float(-(share * np.log2(share)).sum()) + 0.0
    return {"used": int(share.size), "entropy": entropy, "effective": float(2.0 ** entropy)}


def stratified_sample(n_entities: int, size: int, labels=None, random_state=0) -> np.ndarray:
    """Ids of a seeded sample of ``size`` entities that keeps every group's share.

    For views of large sets (maps, heatmaps): each group gets draws in proportion to its
    size (largest remainders), at least one while ``size`` allows, so small groups stay
    visible; without labels the sample is uniform.

    Parameters
    ----------
    n_entities : int
    size : int
        Entities to draw; all of them (``arange(n_entities)``) when ``size >= n_entities``.
    labels : int array of shape (n_entities,), optional
    random_state : int or numpy Generator, default 0

    Returns
    -------
    int array of shape (min(size, n_entities),), ascending
    """
    n_entities = check_int(n_entities, "n_entities")
    size = check_int(size, "size")
    rng = np.random.default_rng(random_state)
    if size >= n_entities:
        return np.arange(n_entities)
    if labels is None:
        return np.sort(rng.choice(n_entities, size, replace=False))
    labels, _ = check_labels(labels, n_entities)
    sizes = np.bincount(labels)
    present = np.flatnonzero(sizes)
    quota = _apportion(sizes[present], size)
    return np.sort(np.concatenate([
        rng.choice(np.flatnonzero(labels == g), q, replace=False)
        for g, q in zip(present, quota) if q > 0]))


def _apportion(sizes: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` draws among groups of ``sizes`` in proportion (largest remainders),
    each group keeping at least one while ``total`` allows, never more than its size."""
    exact = sizes * total / sizes.sum()
    quota = np.minimum(np.floor(exact).astype(np.int64), sizes)
    if total >= sizes.size:
        quota = np.maximum(quota, 1)
    by_remainder = np.argsort(-(exact - np.floor(exact)), kind="stable")
    while quota.sum() > total:                      # the minimum of one overshot
        quota[np.argmax(quota)] -= 1
    while quota.sum() < total:
        for g in by_remainder:
            if quota[g] < sizes[g]:
                quota[g] += 1
                if quota.sum() == total:
                    break
    return quota


def agreement(a, b) -> dict[str, float]:
    """How much two assignments of the same entities agree, up to renaming the groups.

    Parameters
    ----------
    a, b : int arrays of shape (n_entities,)

    Returns
    -------
    dict
        ``ari``: adjusted Rand index (1 = identical partitions, about 0 = chance);
        ``nmi``: normalized mutual information (arithmetic mean normalisation, in [0, 1]).
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    a, _ = check_labels(a, None, name="a")
    b, _ = check_labels(b, a.shape[0], name="b")
    return {"ari": float(adjusted_rand_score(a, b)),
            "nmi": float(normalized_mutual_info_score(a, b))}


def top_tags(item_labels, item_tags, tag_names=None, n_top: int = 5, min_count: int = 3,
             n_groups: int | None = None) -> pd.DataFrame:
    """Each group's most characteristic tags: highest lift over the global tag frequency.

    For group g and tag j, ``share`` is the fraction of the group's items carrying j,
    ``global_share`` the fraction of all items carrying j, and
    ``lift = share / global_share`` (1 = as common as anywhere, 5 = five times as common).

    Parameters
    ----------
    item_labels : int array of shape (n_items,)
    item_tags : sparse or dense matrix of shape (n_items, n_tags)
        Nonzero where an item carries a tag (``Dataset.item_tags``).
    tag_names : sequence of str of length n_tags, optional
        Default ``"tag {j}"``.
    n_top : int, default 5
        Tags per group.
    min_count : int, default 3
        Only tags carried by at least this many of the group's items compete: lift alone
        favours rare tags (one item with a once-used tag has the largest possible lift).
    n_groups : int, optional
        Default ``item_labels.max() + 1``; empty groups contribute no rows.

    Returns
    -------
    pandas.DataFrame
        Tidy, one row per (group, tag), ``n_top`` or fewer per group: ``group``,
        ``rank`` (1 = highest lift), ``tag``, ``tag_id``, ``lift``, ``count`` (group
        items with the tag), ``group_size``, ``share``, ``global_share``.
    """
    labels, n_groups = check_labels(item_labels, None, name="item_labels", n_groups=n_groups)
    tags = check_tags(item_tags, labels.shape[0])
    n_tags = tags.shape[1]
    if tag_names is None:
        tag_names = [f"tag {j}" for j in range(n_tags)]
    elif len(tag_names) != n_tags:
        raise ValueError(f"tag_names must have one name per tag column ({n_tags}), got "
                         f"{len(tag_names)}")
    n_top = check_int(n_top, "n_top")
    min_count = check_int(min_count, "min_count")

    membership = sp.csr_matrix((np.ones(labels.size), (labels, np.arange(labels.size))),
                               shape=(n_groups, labels.size))
    counts = np.asarray((membership @ tags).todense())                 # (n_groups, n_tags)
    sizes = np.bincount(labels, minlength=n_groups)
    global_share = np.asarray(tags.sum(0)).ravel() / labels.size       # (n_tags,)
    rows = []
    for g in np.flatnonzero(sizes):
        share = counts[g] / sizes[g]
        with np.errstate(invalid="ignore", divide="ignore"):
            lift = np.where(counts[g] >= min_count, share / global_share, -np.inf)
        order = np.lexsort((-counts[g], -lift))[:n_top]        # lift, then count, decides
        for rank, j in enumerate(order[np.isfinite(lift[order])], start=1):
            rows.append((g, rank, tag_names[j], j, lift[j], int(counts[g, j]), int(sizes[g]),
                         share[j], global_share[j]))
    return pd.DataFrame(rows, columns=["group", "rank", "tag", "tag_id", "lift", "count",
                                       "group_size", "share", "global_share"])


def purity(labels, classes, by_group: bool = False):
    """How pure each group is with respect to known classes or tags.

    Parameters
    ----------
    labels : int array of shape (n_entities,)
        The groups.
    classes : int array of shape (n_entities,), or matrix of shape (n_entities, n_tags)
        One class per entity (e.g. the planted groups): the classic purity, the share of
        a group's entities in its most common class. Or a multi-label tag matrix
        (``Dataset.item_tags``): the share of a group's entities that carry the group's
        most common tag.
    by_group : bool, default False

    Returns
    -------
    float or pandas.Series
        Overall purity, the size-weighted mean over groups (1 = every group pure); with
        ``by_group=True`` a Series indexed by the non-empty groups.
    """
    labels, n_groups = check_labels(labels, None)
    if sp.issparse(classes) or np.ndim(classes) == 2:
        indicator = check_tags(classes, labels.size)
    else:
        classes, _ = groups_from_labels(classes)
        if classes.shape[0] != labels.size:
            raise ValueError(f"classes must have one entry per entity ({labels.size}), got "
                             f"{classes.shape[0]}")
        indicator = sp.csr_matrix((np.ones(labels.size), (np.arange(labels.size), classes)))
    membership = sp.csr_matrix((np.ones(labels.size), (labels, np.arange(labels.size))),
                               shape=(n_groups, labels.size))
    counts = (membership @ indicator).toarray()                # (n_groups, n_classes)
    sizes = np.bincount(labels, minlength=n_groups)
    present = sizes > 0
    best = counts.max(axis=1) if counts.shape[1] else np.zeros(n_groups)
    if by_group:
        return pd.Series(best[present] / sizes[present],
                         index=pd.Index(np.flatnonzero(present), name="group"), name="purity")
    return float(best.sum() / sizes.sum())
