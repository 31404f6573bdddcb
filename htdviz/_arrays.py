"""Small array helpers shared by the analyses and the views (numpy; the torch versions
are :func:`htdviz.topology.unit_rows` and :func:`htdviz.distill._common.unit`)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, so that dot products are cosines; a zero row stays
    zero (the convention of ``torch.nn.functional.normalize``)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def row_blocks(n: int, size: int):
    """(start, stop) of consecutive blocks of ``size`` rows covering ``n`` rows."""
    for start in range(0, n, size):
        yield start, min(start + size, n)


def group_means(x: np.ndarray, labels: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean row of each group (K, d), accumulated in float64; NaN rows for empty groups."""
    membership = sp.csr_matrix((np.ones(labels.size), (labels, np.arange(labels.size))),
                               shape=(n_groups, labels.size))             # (K, N) one-hot
    sums = membership @ x.astype(np.float64)                              # (K, d)
    counts = np.bincount(labels, minlength=n_groups).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None]                       # NaN rows where counts == 0
