"""The contract every htdviz recommender follows, and pickle-free save / load."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn


class Recommender(nn.Module):
    """A model with one representation per user and per item; score = dot product.

    Subclasses implement :meth:`forward`, returning all user representations of shape
    (n_users, dim) and all item representations of shape (n_items, dim). These final
    representations are what evaluation ranks with and what distillation transfers.
    """

    n_users: int
    n_items: int
    dim: int

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def config(self) -> dict:
        """Constructor arguments (JSON-serialisable) that rebuild this model."""
        raise NotImplementedError

    @torch.no_grad()
    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Detached (user_repr, item_repr), shapes (n_users, dim) and (n_items, dim)."""
        users, items = self()
        return users.detach(), items.detach()

    @torch.no_grad()
    def score(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of all items for a batch of user ids, shape (len(users), n_items)."""
        user_repr, item_repr = self()
        return user_repr[users] @ item_repr.T


def save(model: Recommender, path: str | Path) -> None:
    """Write the model's weights and configuration to a safetensors file (no pickle)."""
    from safetensors.torch import save as to_bytes

    from ..data import _write_atomically

    meta = {"class": type(model).__name__, "config": json.dumps(model.config())}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _write_atomically(Path(path), lambda f: f.write(to_bytes(tensors, metadata=meta)))


def load(path: str | Path, dataset=None, device: str | torch.device = "cpu") -> Recommender:
    """Load a model written by :func:`save`. LightGCN needs the ``dataset`` for its graph."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from . import BPRMF, LightGCN

    path = Path(path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    classes = {"BPRMF": BPRMF, "LightGCN": LightGCN}
    if meta.get("class") not in classes:
        raise ValueError(f"{path}: unknown model class {meta.get('class')!r}")
    config = json.loads(meta["config"])
    if meta["class"] == "LightGCN":
        if dataset is None:
            raise ValueError(f"{path}: loading a LightGCN model needs dataset= for its graph")
        model = LightGCN(dataset, **config)
    else:
        model = BPRMF(**config)
    model.load_state_dict(load_file(str(path)))
    return model.to(device)
