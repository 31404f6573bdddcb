"""NeuMF: neural collaborative filtering, a GMF tower and an MLP tower fused.

He et al., "Neural Collaborative Filtering", WWW 2017. The topology distillation paper's
third base model (docs/method.md §2.2), built as the public code of the same distillation
line builds it (hieunm44/hyperkdma, Models/NeuMF.py)::

    score(u, i) = w . [u_MF * i_MF ; MLP([u_MLP ; i_MLP])] + b
    MLP: 2d -> d -> d/2 -> ...   (``mlp_layers`` Linear + ReLU, each halving; default 1)

trained with binary cross-entropy on the logits, summed over the batch's positives (label
1) and their sampled negatives (label 0). Embeddings start from N(0, 0.01^2), the MLP's
weights Xavier-uniform, the output layer's Kaiming-uniform as that code calls it (a = 1,
nonlinearity "relu", for which PyTorch ignores a: bound sqrt(6 / fan_in)), biases zero.

Full ranking needs the MLP for every (user, item) pair. Its first layer is linear in
[u_MLP ; i_MLP], so W [u; i] + b = (W_u u) + (W_i i + b) is computed once per user and once
per item (:meth:`NeuMF.scorer`); only the ReLU and the deeper layers are per pair.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Recommender, register_model

#: How distillation reads a NeuMF representation (see :class:`NeuMF`).
SPACES = ("concat", "towers")

#: Floats of the (users, items, hidden) block the torch scoring path holds at a time.
_PAIR_BLOCK = 1 << 22


class NeuMF(Recommender):
    """GMF and MLP towers with their own embeddings of dimension ``dim``.

    Representations: :meth:`forward` returns each user's row ``[user_MF | user_MLP]``,
    shape (n_users, 2 * dim), and each item's ``[item_MF | item_MLP]``, (n_items, 2 * dim):
    both towers' embeddings side by side, everything that is the entity's own (the MLP and
    the output layer are shared by all). Evaluation ranks with the model's score, not the
    dot product of these rows. Distillation reads them as the student configuration's
    ``space`` says (:meth:`representation_spaces`):

    - ``"concat"`` (default): one space of 2 * dim columns, one topology per batch over
      the concatenation, as for a one-tower model;
    - ``"towers"``: each tower its own space (the first ``dim`` columns, the last ``dim``),
      one distiller per tower, their losses summed: what hieunm44/hyperkdma's NeuMF_DE
      does (MF users, MF items, MLP users, MLP items).

    Parameters
    ----------
    n_users, n_items : int
    dim : int
        Embedding dimension of each tower (d_t for a teacher, d_s for a student).
    mlp_layers : int, default 1
        Hidden layers of the MLP tower, each halving its width: 2d -> d -> d/2 ...
        (hieunm44/hyperkdma's ``num_layers`` default).
    init_std : float, default 0.01
    generator : torch.Generator, optional
        Seeds every initialisation (embeddings, MLP, output layer).
    """

    build_options = ("mlp_layers",)
    distill_options = ("space",)

    def __init__(self, n_users: int, n_items: int, dim: int, mlp_layers: int = 1,
                 init_std: float = 0.01, generator: torch.Generator | None = None):
        super().__init__()
        for name, value in (("n_users", n_users), ("n_items", n_items), ("dim", dim),
                            ("mlp_layers", mlp_layers)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        widths = [2 * dim]
        for _ in range(mlp_layers):
            widths.append(widths[-1] // 2)
        if widths[-1] < 1:
            raise ValueError(f"mlp_layers={mlp_layers} halves 2 * dim = {2 * dim} to zero "
                             f"units; at most {(2 * dim).bit_length() - 1} layers for "
                             f"dim={dim}")
        self.n_users, self.n_items, self.dim = n_users, n_items, dim
        self.mlp_layers, self.init_std = mlp_layers, init_std
        # one table per entity kind, columns [MF | MLP]: forward returns them as they are
        self.user_emb = nn.Parameter(torch.randn(n_users, 2 * dim, generator=generator)
                                     * init_std)
        self.item_emb = nn.Parameter(torch.randn(n_items, 2 * dim, generator=generator)
                                     * init_std)
        self.mlp = nn.ModuleList(nn.utils.skip_init(nn.Linear, a, b)
                                 for a, b in zip(widths, widths[1:]))
        self.predict = nn.utils.skip_init(nn.Linear, dim + widths[-1], 1)
        with torch.no_grad():
            for layer in self.mlp:
                nn.init.xavier_uniform_(layer.weight, generator=generator)
                layer.bias.zero_()
            nn.init.kaiming_uniform_(self.predict.weight, a=1, nonlinearity="relu",
                                     generator=generator)
            self.predict.bias.zero_()

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_emb, self.item_emb

    def config(self) -> dict:
        return {"n_users": self.n_users, "n_items": self.n_items, "dim": self.dim,
                "mlp_layers": self.mlp_layers, "init_std": self.init_std}

    def pair_scores(self, user_repr: torch.Tensor, item_repr: torch.Tensor) -> torch.Tensor:
        """Logits of (user, item) pairs from their rows of :meth:`forward`, each of shape
        (B, 2 * dim); returns shape (B,)."""
        d = self.dim
        gmf = user_repr[:, :d] * item_repr[:, :d]                          # (B, d)
        hidden = torch.cat([user_repr[:, d:], item_repr[:, d:]], 1)        # (B, 2d)
        for layer in self.mlp:
            hidden = F.relu(layer(hidden))                                 # (B, h_l)
        return self.predict(torch.cat([gmf, hidden], 1)).squeeze(1)

    def item_scores(self, user_rows: torch.Tensor, item_rows: torch.Tensor) -> torch.Tensor:
        """Logits of M items for each of U users (RRD): user_rows (U, 2d), item_rows
        (U, M, 2d) -> (U, M), by :meth:`pair_scores`."""
        u, m, width = item_rows.shape
        users = user_rows[:, None, :].expand(u, m, width).reshape(u * m, width)
        return self.pair_scores(users, item_rows.reshape(u * m, width)).view(u, m)

    def training_loss(self, user_repr, pos_repr, neg_repr) -> torch.Tensor:
        """Binary cross-entropy on the logits, summed: positives (B, 2d) labelled 1, the
        sampled negatives labelled 0."""
        logits = self.pair_scores(torch.cat([user_repr, user_repr]),
                                  torch.cat([pos_repr, neg_repr]))          # (2B,)
        labels = torch.cat([logits.new_ones(len(pos_repr)), logits.new_zeros(len(neg_repr))])
        return F.binary_cross_entropy_with_logits(logits, labels, reduction="sum")

    @torch.no_grad()
    def scorer(self, user_repr: torch.Tensor, item_repr: torch.Tensor):
        """Scores of all items for batches of users: :meth:`pair_scores` up to float rounding.

        Computed once here: the GMF term's user side weighted by the output layer, and the
        first MLP layer's user part (n_users, h) and item part with its bias (n_items, h).
        Per batch: one matmul for GMF, then per pair the ReLU, the deeper layers and the
        output weights (one compiled pass on the CPU for one layer; else torch, in blocks
        of at most 2^22 floats).
        """
        d, first = self.dim, self.mlp[0]
        weights = self.predict.weight[0]
        user_gmf = user_repr[:, :d] * weights[:d]                           # (n_users, d)
        item_gmf = item_repr[:, :d].T.contiguous()                          # (d, n_items)
        user_hidden = user_repr[:, d:] @ first.weight[:, :d].T              # (n_users, h)
        item_hidden = torch.addmm(first.bias, item_repr[:, d:],
                                  first.weight[:, d:].T)                    # (n_items, h)

        @torch.no_grad()
        def scores(users: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
            out = torch.addmm(self.predict.bias, user_gmf[users], item_gmf,
                              out=out)                                      # (B, n_items)
            self._add_mlp_scores(user_hidden[users], item_hidden, weights[d:], out)
            return out
        return scores

    def _add_mlp_scores(self, user_hidden, item_hidden, weights, out) -> None:
        """``out`` (B, n_items) += the MLP tower's output term for every pair, from the
        first layer's user part (B, h) and item part (n_items, h)."""
        if len(self.mlp) == 1 and out.is_cpu and out.is_contiguous():
            from .._kernels import add_relu_dot, use_torch_threads   # numba: on first use

            use_torch_threads()
            add_relu_dot(user_hidden.contiguous().numpy(), item_hidden.contiguous().numpy(),
                         weights.contiguous().numpy(), out.numpy())
            return
        width = user_hidden.shape[1]
        item_step = max(1, min(item_hidden.shape[0], 4096, _PAIR_BLOCK // width))
        user_step = max(1, _PAIR_BLOCK // (item_step * width))
        for u in range(0, user_hidden.shape[0], user_step):
            for i in range(0, item_hidden.shape[0], item_step):
                hidden = (user_hidden[u:u + user_step, None]
                          + item_hidden[None, i:i + item_step]).relu_()     # (bu, bi, h)
                for layer in self.mlp[1:]:
                    hidden = F.relu(layer(hidden))
                out[u:u + user_step, i:i + item_step] += hidden @ weights

    @classmethod
    def representation_width(cls, dim: int) -> int:
        return 2 * dim

    @classmethod
    def representation_spaces(cls, width: int, space: str = "concat") -> tuple[slice, ...]:
        """``"concat"``: all ``width`` columns, one space; ``"towers"``: the MF half and the
        MLP half, two spaces (see the class docstring)."""
        if space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {space!r}")
        if width % 2:
            raise ValueError(f"a NeuMF representation has an even width (2 * dim), got "
                             f"width={width}")
        if space == "concat":
            return (slice(0, width),)
        return (slice(0, width // 2), slice(width // 2, width))


register_model("neumf", NeuMF, built_in=True)
