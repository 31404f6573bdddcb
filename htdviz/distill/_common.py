"""Pieces shared by the distillation losses."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def unit(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length, so that dot products are cosine similarities."""
    return F.normalize(x, dim=-1, eps=1e-12)


def annealed_temperature(epoch: int, n_epochs: int, start: float = 1.0,
                         end: float = 1e-10) -> float:
    """tau(e) = start * (end / start) ** (e / E), floored at ``end`` (docs/method.md §5.2)."""
    return max(start * (end / start) ** (epoch / n_epochs), end)


def as_teacher(repr_, name: str) -> torch.Tensor:
    """A frozen float32 copy of a teacher representation, validated."""
    t = torch.as_tensor(repr_).detach().to(torch.float32).clone()
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n, d_t), got shape "
                         f"{tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} holds non-finite values")
    return t


def mlp(d_in: int, d_out: int) -> torch.nn.Sequential:
    """The projector of the paper: d_in -> (d_in + d_out) // 2 -> d_out with a ReLU between."""
    hidden = (d_in + d_out) // 2
    return torch.nn.Sequential(torch.nn.Linear(d_in, hidden), torch.nn.ReLU(),
                               torch.nn.Linear(hidden, d_out))
