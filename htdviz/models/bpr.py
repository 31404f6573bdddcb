"""BPR-MF: matrix factorisation trained with Bayesian Personalized Ranking.

Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009.
The base model of the topology distillation paper's reference numbers (docs/method.md §2).
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Recommender, register_model


class BPRMF(Recommender):
    """User and item embeddings, initialised from N(0, init_std^2); score = dot product.

    Parameters
    ----------
    n_users, n_items : int
    dim : int
        Embedding dimension (d_t for a teacher, d_s for a student).
    init_std : float, default 0.01
    generator : torch.Generator, optional
        Seeds the initialisation.
    """

    def __init__(self, n_users: int, n_items: int, dim: int, init_std: float = 0.01,
                 generator: torch.Generator | None = None):
        super().__init__()
        for name, value in (("n_users", n_users), ("n_items", n_items), ("dim", dim)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.n_users, self.n_items, self.dim, self.init_std = n_users, n_items, dim, init_std
        self.user_emb = nn.Parameter(torch.randn(n_users, dim, generator=generator) * init_std)
        self.item_emb = nn.Parameter(torch.randn(n_items, dim, generator=generator) * init_std)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_emb, self.item_emb

    def embedding_tables(self) -> tuple[nn.Parameter, nn.Parameter]:
        """The user and item tables whose rows are the representations (what
        ``updates="sparse"`` training looks up row by row)."""
        return self.user_emb, self.item_emb

    def config(self) -> dict:
        return {"n_users": self.n_users, "n_items": self.n_items, "dim": self.dim,
                "init_std": self.init_std}


register_model("bpr", BPRMF, built_in=True)
