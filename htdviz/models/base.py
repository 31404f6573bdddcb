"""The contract every htdviz recommender follows, the registry that names them, and
pickle-free save / load.

Adding a model is one file with a :class:`Recommender` subclass and one call to
:func:`register_model`; ``teacher_run(model=<name>)``, ``--model <name>`` and a study's
``model`` option then reach it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .._io import write_atomically
from .._registry import Registry


class Recommender(nn.Module):
    """A model with one representation per user and per item; score = dot product.

    Subclasses implement :meth:`forward`, returning all user representations of shape
    (n_users, dim) and all item representations of shape (n_items, dim). These final
    representations are what evaluation ranks with and what distillation transfers; and
    :meth:`config`. A run builds one with :meth:`build`.

    A model whose score is not the dot product of the two (NeuMF) overrides the hooks
    that read it, each with a dot-product default: :meth:`training_loss` (default: BPR),
    :meth:`scorer` (full ranking), and, where ``forward`` returns more than ``dim``
    columns or several spaces, :meth:`representation_width` and
    :meth:`representation_spaces` (what a distiller is built on).

    Attributes
    ----------
    build_options : tuple of str
        The teacher configuration's fields (:class:`htdviz.config.TeacherConfig`) that
        :meth:`build` takes besides the dimension (LightGCN: ``("n_layers",)``); only
        these are recorded in its runs' config.json.
    distill_options : tuple of str
        The student configuration's fields (:class:`htdviz.config.StudentConfig`) that
        :meth:`representation_spaces` takes (NeuMF: ``("space",)``); recorded in a
        student's config.json only for such a model.
    """

    n_users: int
    n_items: int
    dim: int
    build_options: ClassVar[tuple[str, ...]] = ()
    distill_options: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def build(cls, dataset, dim: int, generator: torch.Generator | None = None,
              **options) -> "Recommender":
        """The model a run trains on ``dataset`` (an :class:`htdviz.data.Dataset`), its
        initialisation drawn from ``generator``; ``options`` are those named in
        :attr:`build_options`. Default: ``cls(n_users, n_items, dim, generator=...)``."""
        return cls(dataset.n_users, dataset.n_items, dim, generator=generator, **options)

    @classmethod
    def from_config(cls, config: dict, dataset=None) -> "Recommender":
        """The model that :meth:`config` describes (weights not loaded); ``dataset`` for a
        model that needs more than its configuration (LightGCN's graph)."""
        return cls(**config)

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
        return self.scorer(user_repr, item_repr)(users)

    def training_loss(self, user_repr: torch.Tensor, pos_repr: torch.Tensor,
                      neg_repr: torch.Tensor) -> torch.Tensor:
        """The model's own loss on a batch of (user, positive, negative) triples, given the
        rows of :meth:`forward`'s output, each of shape (B, width); a scalar (summed over
        the batch). Default: the BPR loss on dot products (:func:`bpr_loss`)."""
        return bpr_loss(user_repr, pos_repr, neg_repr)

    def scorer(self, user_repr: torch.Tensor, item_repr: torch.Tensor):
        """The scores a full ranking sorts by, as a function of a batch of user ids.

        Parameters
        ----------
        user_repr : tensor of shape (n_users, width)
        item_repr : tensor of shape (n_items, width)
            :meth:`representations` (or arrays of a saved run), read without gradient.

        Returns
        -------
        callable
            ``scores(users, out=None)``: users an int tensor of shape (B,); returns the
            scores of every item, shape (B, n_items), written into ``out`` when given.
            Default: dot products. What it needs from all items is computed once, here.
        """
        def scores(users: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
            return torch.mm(user_repr[users], item_repr.T, out=out)
        return scores

    def item_scores(self, user_rows: torch.Tensor, item_rows: torch.Tensor) -> torch.Tensor:
        """Scores of M items for each of U users from rows of :meth:`forward`'s output,
        with gradient (RRD distils them): user_rows (U, width), item_rows (U, M, width) ->
        (U, M). Default: dot products."""
        return torch.bmm(item_rows, user_rows[:, :, None]).squeeze(2)

    @classmethod
    def representation_width(cls, dim: int) -> int:
        """Columns of :meth:`forward`'s output for a model of dimension ``dim`` (what a
        distiller's ``student_dim`` is). Default: ``dim``."""
        return dim

    @classmethod
    def representation_spaces(cls, width: int, **options) -> tuple[slice, ...]:
        """The column blocks of a representation of ``width`` columns that distillation
        treats as separate spaces, one distiller each (``options``: those named in
        :attr:`distill_options`). Default: one space, all columns."""
        return (slice(0, width),)


def bpr_loss(user_repr, pos_repr, neg_repr) -> torch.Tensor:
    """-log sigmoid(<u, i+> - <u, j->), summed over the batch; each input (B, width)."""
    diff = (user_repr * pos_repr).sum(1) - (user_repr * neg_repr).sum(1)
    return -F.logsigmoid(diff).sum()


_MODELS = Registry("model", Recommender, "htdviz.models.register_model")


def register_model(name: str, cls: type[Recommender], *, built_in: bool = False) -> None:
    """Make ``cls`` the model called ``name`` (``--model``, a study's grid, config.json).

    Registering a name again replaces the earlier class (a notebook cell run twice), except
    for the built-in models: their names are in run folders that must keep meaning them.

    Parameters
    ----------
    name : str
        Letters, digits, ``_`` and ``-``; it becomes part of run folder names.
    cls : subclass of Recommender
    built_in : bool, default False
        For htdviz's own models: the name cannot be replaced.
    """
    _MODELS.register(name, cls, built_in)


def get_model(name: str) -> type[Recommender]:
    """The class registered as ``name``; ValueError listing the registered names if none."""
    return _MODELS.get(name)


def model_names() -> tuple[str, ...]:
    """The registered model names, in the order they were registered."""
    return _MODELS.names()


def save(model: Recommender, path: str | Path) -> None:
    """Write the model's weights and configuration to a safetensors file (no pickle)."""
    from safetensors.torch import save as to_bytes


    meta = {"class": type(model).__name__, "config": json.dumps(model.config())}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_atomically(Path(path), lambda f: f.write(to_bytes(tensors, metadata=meta)))


def load(path: str | Path, dataset=None, device: str | torch.device = "cpu") -> Recommender:
    """Load a model written by :func:`save` (its class must be registered). LightGCN needs
    the ``dataset`` for its graph."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    classes = {cls.__name__: cls for cls in _MODELS.classes.values()}
    if meta.get("class") not in classes:
        raise ValueError(f"{path}: unknown model class {meta.get('class')!r} (registered: "
                         f"{sorted(classes)})")
    try:
        model = classes[meta["class"]].from_config(json.loads(meta["config"]), dataset)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    model.load_state_dict(load_file(str(path)))
    return model.to(device)
