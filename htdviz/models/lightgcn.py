"""LightGCN: embeddings propagated over the normalised user-item graph.

He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020. The final representation is the mean of the layer-0 embedding
and its ``n_layers`` propagations over D^-1/2 A D^-1/2 (A the bipartite adjacency of the
training interactions); that propagated representation is the one distilled.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from .base import Recommender, register_model


def normalized_adjacency(train: sp.csr_matrix) -> torch.Tensor:
    """D^-1/2 A D^-1/2 of the (n_users + n_items) bipartite graph, as a sparse CSR tensor."""
    n_users, n_items = train.shape
    r = sp.csr_matrix(train, dtype=np.float32)
    adj = sp.bmat([[None, r], [r.T, None]], format="csr")
    degree = np.asarray(adj.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(degree)
    inv_sqrt[degree > 0] = degree[degree > 0] ** -0.5
    norm = (sp.diags(inv_sqrt) @ adj @ sp.diags(inv_sqrt)).tocsr().astype(np.float32)
    norm.sort_indices()
    with warnings.catch_warnings():      # "sparse CSR support is in beta": we rely on spmm only
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(norm.indptr.astype(np.int64)),
                                       torch.from_numpy(norm.indices.astype(np.int64)),
                                       torch.from_numpy(norm.data), size=norm.shape,
                                       check_invariants=False)


class LightGCN(Recommender):
    """LightGCN over a data set's training graph.

    Parameters
    ----------
    dataset : htdviz.data.Dataset
        Supplies the training graph (only ``dataset.train`` is read).
    dim : int
    n_layers : int, default 2
    init_std : float, default 0.01
    generator : torch.Generator, optional
    """

    build_options = ("n_layers",)

    def __init__(self, dataset, dim: int, n_layers: int = 2, init_std: float = 0.01,
                 generator: torch.Generator | None = None):
        super().__init__()
        if n_layers < 0:
            raise ValueError(f"n_layers must be >= 0, got {n_layers}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.n_users, self.n_items = dataset.n_users, dataset.n_items
        self.dim, self.n_layers, self.init_std = dim, n_layers, init_std
        self.user_emb = nn.Parameter(torch.randn(self.n_users, dim, generator=generator) * init_std)
        self.item_emb = nn.Parameter(torch.randn(self.n_items, dim, generator=generator) * init_std)
        self.register_buffer("adjacency", normalized_adjacency(dataset.train), persistent=False)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        layer = torch.cat([self.user_emb, self.item_emb])       # (n_users + n_items, dim)
        total = layer
        for _ in range(self.n_layers):
            layer = self.adjacency @ layer
            total = total + layer
        final = total / (self.n_layers + 1)
        return final[: self.n_users], final[self.n_users:]

    @classmethod
    def build(cls, dataset, dim: int, generator: torch.Generator | None = None,
              **options) -> "LightGCN":
        return cls(dataset, dim, generator=generator, **options)

    @classmethod
    def from_config(cls, config: dict, dataset=None) -> "LightGCN":
        if dataset is None:
            raise ValueError("loading a LightGCN model needs dataset= for its graph")
        return cls(dataset, **config)

    def config(self) -> dict:
        return {"dim": self.dim, "n_layers": self.n_layers, "init_std": self.init_std}


register_model("lightgcn", LightGCN, built_in=True)
