"""Input validation at the public boundary: one set of rules for every layer.

Each checker takes the value and the name the user knows it by, returns the value in the
one form the code behind it assumes, and raises ValueError naming the parameter and the
offending value otherwise. Private helpers behind a public function assume checked input.

Rules (the same everywhere):

- representations: a 2-D array of shape (n_entities, dim), at least one row (or as many as
  the caller needs) and one column, numbers (or bools) only, all finite; float64 stays
  float64 and every other dtype becomes float32, unless the caller asks for one dtype;
- group labels: a 1-D array of integer ids >= 0, one per entity;
- counts: Python or numpy integers (not bools) within their bounds.

numpy arrays, lists and torch tensors are accepted; torch is recognised by duck typing
(``.detach()``), so that importing this module does not import torch.
"""
from __future__ import annotations

import numpy as np


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):         # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def check_matrix(x, name: str, min_rows: int = 1, dtype=None) -> np.ndarray:
    """A validated 2-D float array of shape (n_entities, dim).

    Parameters
    ----------
    x : array-like or torch.Tensor of shape (n_entities, dim)
    name : str
        The parameter's name, for the error message.
    min_rows : int, default 1
        The fewest rows accepted.
    dtype : numpy dtype, optional
        The dtype returned (contiguous). Default: float64 if ``x`` is float64, else
        float32.

    Returns
    -------
    ndarray of shape (n_entities, dim)
    """
    x = _to_numpy(x)
    if x.ndim != 2 or x.shape[0] < min_rows or x.shape[1] == 0:
        raise ValueError(f"{name} must be a 2-D array of shape (n_entities, dim) with at "
                         f"least {min_rows} row{'s' * (min_rows > 1)} and 1 column, got "
                         f"shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise ValueError(f"{name} must hold numbers, got dtype {x.dtype}")
    if dtype is not None:
        x = np.ascontiguousarray(x, dtype=dtype)
    elif x.dtype != np.float64:
        x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} holds non-finite values (NaN or inf)")
    return x


def check_labels(labels, n_entities: int | None, name: str = "labels",
                 n_groups: int | None = None) -> tuple[np.ndarray, int]:
    """Validated int64 group labels of shape (n_entities,) and the number of groups.

    Parameters
    ----------
    labels : int array-like of shape (n_entities,)
    n_entities : int or None
        The length required; None accepts any length.
    name : str, default "labels"
    n_groups : int, optional
        K; must exceed the largest label. Default ``labels.max() + 1``.

    Returns
    -------
    labels : int64 ndarray of shape (n_entities,)
    n_groups : int
    """
    labels = _to_numpy(labels)
    if labels.ndim != 1 or (n_entities is not None and labels.shape[0] != n_entities):
        expected = f"({n_entities},)" if n_entities is not None else "(n_entities,)"
        raise ValueError(f"{name} must have shape {expected} (one group per entity), got "
                         f"shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must hold integer group ids, got dtype {labels.dtype}; map "
                         f"other labels with htdviz.groups.groups_from_labels")
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name} must be >= 0, got {labels.min()}")
    top = int(labels.max()) + 1 if labels.size else 0
    if n_groups is None:
        n_groups = top
    elif int(n_groups) < top:
        raise ValueError(f"n_groups must exceed the largest label {top - 1}, got {n_groups}")
    return labels, int(n_groups)


def check_int(value, name: str, low: int = 1, high: int | None = None) -> int:
    """``value`` as an int in [low, high] (``high`` None: no upper bound); bools refused."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or \
            (high is not None and value > high):
        bound = f"an integer in [{low}, {high}]" if high is not None else f"an integer >= {low}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return int(value)


def check_choice(value, choices, name: str):
    """``value`` if it is one of ``choices``, else ValueError naming both."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_tags(item_tags, n_items: int):
    """A tag matrix (dense or sparse, one row per item) as a CSR matrix of presence (1.0
    where an item carries a tag, whatever the count)."""
    import scipy.sparse as sp

    if not sp.issparse(item_tags):
        item_tags = np.asarray(item_tags)
        if item_tags.ndim != 2:
            raise ValueError(f"item_tags must be a 2-D (n_items, n_tags) matrix, got shape "
                             f"{item_tags.shape}")
    item_tags = sp.csr_matrix(item_tags)
    if item_tags.shape[0] != n_items:
        raise ValueError(f"item_tags must have one row per item ({n_items}), got "
                         f"{item_tags.shape[0]} rows")
    return (item_tags != 0).astype(np.float64).tocsr()   # presence, not counts
