"""Small array helpers shared by the analyses and the views (numpy; the torch versions
are :func:`htdviz.topology.unit_rows` and :func:`htdviz.distill._common.unit`)."""
from __future__ import annotations

import numpy as np


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, so that dot products are cosines; a zero row stays
    zero (the convention of ``torch.nn.functional.normalize``)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
