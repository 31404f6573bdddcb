"""Pieces shared by the distillation losses."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .._validation import check_matrix


def unit(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length, so that dot products are cosine similarities."""
    return F.normalize(x, dim=-1, eps=1e-12)


def annealed_temperature(epoch: int, n_epochs: int, start: float = 1.0,
                         end: float = 1e-10) -> float:
    """tau(e) = start * (end / start) ** (e / E), floored at ``end`` (docs/method.md §5.2)."""
    return max(start * (end / start) ** (epoch / n_epochs), end)


def as_teacher(repr_, name: str) -> torch.Tensor:
    """A frozen float32 copy of a teacher representation, validated."""
    return torch.from_numpy(check_matrix(repr_, name)).to(torch.float32).clone()


def linear(d_in: int, d_out: int, generator: torch.Generator | None = None) -> torch.nn.Linear:
    """``torch.nn.Linear(d_in, d_out)`` initialised as PyTorch does (weight and bias uniform
    in +-1/sqrt(d_in)), drawn from ``generator`` (default: the global torch RNG)."""
    if generator is None:
        return torch.nn.Linear(d_in, d_out)
    layer = torch.nn.utils.skip_init(torch.nn.Linear, d_in, d_out)   # draws nothing
    bound = 1 / math.sqrt(d_in)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        layer.bias.uniform_(-bound, bound, generator=generator)
    return layer


def mlp(d_in: int, d_out: int, generator: torch.Generator | None = None) -> torch.nn.Sequential:
    """The projector of the paper: d_in -> (d_in + d_out) // 2 -> d_out with a ReLU between."""
    hidden = (d_in + d_out) // 2
    return torch.nn.Sequential(linear(d_in, hidden, generator), torch.nn.ReLU(),
                               linear(hidden, d_out, generator))


def gumbel_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard Gumbel noise of x's shape and device: -log(E) with E ~ Exp(1), drawn from
    ``generator`` (default: the global torch RNG); a generator on another device draws
    there and the noise is moved to x's device."""
    if generator is None or generator.device == x.device:
        return -torch.empty_like(x).exponential_(generator=generator).log()
    noise = torch.empty(x.shape, dtype=x.dtype, device=generator.device)
    return -noise.exponential_(generator=generator).log().to(x.device)
