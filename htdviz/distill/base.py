"""The contract every distillation method follows, and the registry that names them.

A method is one small class: a :class:`Distiller` whose :meth:`~Distiller.forward` returns
the loss terms of a batch. Everything else has a harmless default that a method overrides
when it has something to say: a per-epoch schedule (:meth:`~Distiller.start_epoch`), hard
groups for the views and the history (:meth:`~Distiller.hard_groups`), its named options
(:attr:`~Distiller.options`, each an :class:`~htdviz.options.Option`).

:func:`register_method` maps the name a person types (``--method htd``, a study's grid,
config.json) to the class, in this one place; Python code passes classes and objects.
Registering is one call, so a method written in a notebook cell trains through
:func:`htdviz.experiment.student_run` and :func:`htdviz.study.study` like the built-ins.

A run builds its method's distiller as ``cls(teacher_user_repr, teacher_item_repr,
student_dim, generator=generator, **options)``, the options being those the class
declares, with the run's values.

Examples
--------
>>> class Cosine(Distiller):
...     options = (Option("margin", 0.0, "cosines above this count as equal", low=0.0),)
...     def __init__(self, teacher_user_repr, teacher_item_repr, student_dim,
...                  generator=None, margin=0.0): ...
...     def forward(self, users, items, student_users, student_items): ...
>>> register_method("cosine", Cosine)                              # doctest: +SKIP
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from .._registry import Registry
from ..options import Option
from ._common import as_teacher

__all__ = ["Distiller", "Option", "register_method", "get_method", "method_names",
           "is_built_in", "method_options", "display_name", "as_distiller", "STUDENT"]

#: The method name of a student trained alone (no distiller).
STUDENT = "student"
#: Entity kinds of :meth:`Distiller.hard_groups`.
KINDS = ("user", "item")


class Distiller(nn.Module):
    """A distillation loss for :func:`htdviz.train.fit`, trained jointly with the student.

    Subclasses implement :meth:`forward`; the other methods are hooks with defaults.

    Attributes
    ----------
    options : tuple of Option
        The method's named options (keywords of its constructor besides the teacher's
        representations, ``student_dim`` and ``generator``), with defaults and help: what
        the command line, a study's grid and config.json offer for the method.
    display_name : str, optional
        How reports name the method (default: its registered name).
    n_groups : int, optional
        K, for a method with groups (see :meth:`hard_groups`).
    """

    options: ClassVar[tuple[Option, ...]] = ()
    display_name: ClassVar[str | None] = None
    #: True for a method that reads the student's scores of items beyond the batch (RRD):
    #: :meth:`forward` then also gets ``scores``, a function of user ids (U,) and item ids
    #: (U, M) returning the student's scores (U, M), with gradient.
    needs_scores: ClassVar[bool] = False

    def forward(self, users: torch.Tensor, items: torch.Tensor, student_users: torch.Tensor,
                student_items: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss terms of one batch (a method with :attr:`needs_scores` also takes
        ``scores``, a keyword).

        Parameters
        ----------
        users : int tensor of shape (U,)
            The batch's unique user ids (ascending).
        items : int tensor of shape (I,)
            The batch's unique positive and negative item ids (ascending).
        student_users : tensor of shape (U, d_s)
            The student's final representations of ``users`` (with gradient).
        student_items : tensor of shape (I, d_s)

        Returns
        -------
        dict of str to scalar tensor
            ``"loss"``, what is minimised (weighted by lambda, ``distill_weight``), and any
            further terms to log in the history, detached.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement forward(users, "
                                  f"items, student_users, student_items)")

    def register_teacher(self, teacher_user_repr, teacher_item_repr) -> None:
        """Keep the teacher's representations as ``self.teacher_users`` (n_users, d_t) and
        ``self.teacher_items`` (n_items, d_t): float32 copies, checked, that move with the
        module (``.to(device)``) and stay out of its ``state_dict`` (they are the teacher
        run's, not the distiller's: checkpoints and ``distiller.safetensors`` leave them
        out). The teacher's dim must be the same for both."""
        users = as_teacher(teacher_user_repr, "teacher_user_repr")
        items = as_teacher(teacher_item_repr, "teacher_item_repr")
        if users.shape[1] != items.shape[1]:
            raise ValueError(f"teacher user dim {users.shape[1]} != item dim {items.shape[1]}")
        self.register_buffer("teacher_users", users, persistent=False)
        self.register_buffer("teacher_items", items, persistent=False)

    def prepare(self, dataset) -> None:
        """Called once before training with the :class:`htdviz.data.Dataset` (RRD ranks
        the teacher's items for every user here). Default: nothing."""

    def start_epoch(self, epoch: int, n_epochs: int) -> None:
        """Called before each epoch with its 0-based index and the epochs in all (the
        place of a per-epoch schedule: DE and HTD anneal their temperature here).
        Default: nothing."""

    def hard_groups(self, kind: str) -> torch.Tensor | None:
        """The hard group (0..n_groups-1) of every user (``kind`` "user") or item ("item"),
        shape (n_users,) or (n_items,); None (the default) for a method without groups.
        Groups are drawn in the views and recorded in the run folder and its history."""
        return None

    @torch.no_grad()
    def group_usage(self) -> dict[str, float]:
        """Groups in use and the entropy of their sizes (bits), for the history:
        ``{kind}_groups_used`` and ``{kind}_group_entropy`` for each kind whose
        :meth:`hard_groups` is not None (the measure of :func:`htdviz.groups.group_usage`,
        computed here so that training needs no analysis module)."""
        out = {}
        for kind in KINDS:
            labels = self.hard_groups(kind)
            if labels is None:
                continue
            sizes = torch.bincount(labels.flatten().cpu())
            share = sizes[sizes > 0].double() / sizes.sum()
            out[f"{kind}_groups_used"] = int(share.numel())
            out[f"{kind}_group_entropy"] = float(-(share * share.log2()).sum()) + 0.0
        return out


class _Module(Distiller):
    """A plain ``nn.Module`` loss seen through the contract: its forward, and its own
    ``start_epoch`` where it has one (modules written before the contract)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, users, items, student_users, student_items):
        out = self.module(users, items, student_users, student_items)
        return out if isinstance(out, dict) else {"loss": out}

    def start_epoch(self, epoch: int, n_epochs: int) -> None:
        schedule = getattr(self.module, "start_epoch", None)
        if schedule is not None:
            schedule(epoch, n_epochs)


class Composite(Distiller):
    """A distiller made of other distillers (:attr:`members`): the per-run and per-epoch
    hooks reach every member. :class:`~htdviz.distill.spaces.PerSpace` (one member per
    space) and the combinations of :func:`~htdviz.distill.combination.combine` (one per
    method) are composites; each says how its members' losses add up."""

    @property
    def members(self) -> list[Distiller]:
        """The member distillers, in order."""
        raise NotImplementedError

    def prepare(self, dataset) -> None:
        for member in self.members:
            member.prepare(dataset)

    def start_epoch(self, epoch: int, n_epochs: int) -> None:
        for member in self.members:
            member.start_epoch(epoch, n_epochs)


def as_distiller(distiller: nn.Module | None) -> Distiller | None:
    """``distiller`` under the contract: a :class:`Distiller` (or None) as it is; any other
    module whose forward takes the contract's arguments and returns a loss (a scalar or a
    dict) is wrapped, its missing hooks taking their defaults."""
    if distiller is None or isinstance(distiller, Distiller):
        return distiller
    if not isinstance(distiller, nn.Module):
        raise ValueError(f"distiller must be a torch.nn.Module (a Distiller), got "
                         f"{type(distiller).__name__}")
    return _Module(distiller)


# --------------------------------------------------------------------------------------
# The registry: names a person types -> classes
# --------------------------------------------------------------------------------------

_METHODS = Registry("method", Distiller, "htdviz.distill.register_method",
                    extra_characters="+")
_METHODS.register(STUDENT, None, built_in=True, allow_none=True)


def register_method(name: str, cls: type[Distiller] | None, *, built_in: bool = False) -> None:
    """Make ``cls`` the method called ``name`` (in ``--method``, study grids, config.json).

    Registering a name again replaces the earlier class (a notebook cell run twice), except
    for the built-in methods. An option that several methods share (``n_groups``) must
    mean the same everywhere: same default and type.

    Parameters
    ----------
    name : str
        Letters, digits, ``_``, ``-`` and ``+`` (a combination, :func:`combine`); it
        becomes part of run folder names.
    cls : subclass of Distiller, or None
        None: a student trained alone (the built-in "student").
    built_in : bool, default False
        For htdviz's own methods: the name cannot be replaced.
    """
    _check_options(name, cls)
    _METHODS.register(name, cls, built_in, allow_none=True)


def _check_options(name: str, cls) -> None:
    """An option that several methods declare must mean the same in each (the command
    line and a study's grid offer it once)."""
    for option in getattr(cls, "options", ()):
        if not isinstance(option, Option):
            raise ValueError(f"method {name!r}: options must be htdviz.options.Option "
                             f"objects, got {option!r}")
        for other, other_cls in _METHODS.classes.items():
            for theirs in getattr(other_cls, "options", ()):
                if other != name and theirs.name == option.name and \
                        (theirs.default, theirs.type) != (option.default, option.type):
                    raise ValueError(
                        f"method {name!r}: option {option.name!r} (default "
                        f"{option.default!r}) differs from method {other!r}'s (default "
                        f"{theirs.default!r}); one name means one option")


def get_method(name: str) -> type[Distiller] | None:
    """The class registered as ``name`` (None for "student", trained alone).

    Raises
    ------
    ValueError
        ``name`` is not registered; the message lists the names that are.
    """
    return _METHODS.get(name)


def is_built_in(name: str) -> bool:
    """Whether method ``name`` is one of htdviz's own (registered on import)."""
    return name in _METHODS.built_in


def method_names() -> tuple[str, ...]:
    """The registered method names, built-ins first, in the order they were registered."""
    return _METHODS.names()


def method_options(name: str | None = None) -> dict[str, Option]:
    """The options of method ``name``, or (None) of every registered method, by name."""
    names = [name] if name is not None else list(_METHODS.names())
    return {option.name: option for n in names
            for option in getattr(get_method(n), "options", ())}


def display_name(name: str) -> str:
    """How reports name method ``name`` ("student" is "student alone")."""
    if name == STUDENT:
        return "student alone"
    cls = _METHODS.classes.get(name)
    return getattr(cls, "display_name", None) or name
