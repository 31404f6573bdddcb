"""Distillation space by space: one distiller per column block of the representations.

A model whose representation is several spaces side by side (NeuMF read per tower,
``space="towers"``: columns [MF | MLP]) is distilled in each space separately, with the
same method and options, the losses summed: what hieunm44/hyperkdma does for NeuMF (MF
users and items, MLP users and items). Which blocks are spaces is the model's to say
(:meth:`htdviz.models.Recommender.representation_spaces`);
:func:`htdviz.experiment.make_distiller` builds this wrapper where there are several.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Composite, Distiller


class PerSpace(Composite):
    """Method ``method`` in each space, the terms of a batch summed over the spaces.

    Parameters
    ----------
    method : subclass of Distiller
    teacher_user_repr : array or tensor of shape (n_users, d_t)
    teacher_item_repr : array or tensor of shape (n_items, d_t)
    teacher_spaces, student_spaces : sequences of slice
        The column blocks of the teacher's d_t and of the student's d_s columns, one per
        space, in the same order (same length).
    generator : torch.Generator, optional
        Shared by the spaces' distillers, built in order.
    **options
        The method's options, the same in every space.

    Each space's distiller takes that space's columns only; its groups (DE, HTD) are its
    own, so there is no one grouping of the entities: :meth:`hard_groups` is None.
    """

    def __init__(self, method: type[Distiller], teacher_user_repr, teacher_item_repr,
                 teacher_spaces, student_spaces, generator: torch.Generator | None = None,
                 **options):
        super().__init__()
        if len(teacher_spaces) != len(student_spaces) or not student_spaces:
            raise ValueError(f"teacher_spaces and student_spaces must be as many (one per "
                             f"space), got {len(teacher_spaces)} and {len(student_spaces)}")
        self.method = method
        self.student_spaces = tuple(student_spaces)
        self.parts = nn.ModuleList(
            method(teacher_user_repr[:, t], teacher_item_repr[:, t], s.stop - s.start,
                   generator=generator, **options)
            for t, s in zip(teacher_spaces, student_spaces))

    def forward(self, users, items, student_users, student_items) -> dict[str, torch.Tensor]:
        """Each space's terms from its columns of ``student_users`` (U, d_s) and
        ``student_items`` (I, d_s), summed term by term."""
        out: dict[str, torch.Tensor] = {}
        for part, columns in zip(self.parts, self.student_spaces):
            terms = part(users, items, student_users[:, columns], student_items[:, columns])
            for key, value in terms.items():
                out[key] = out[key] + value if key in out else value
        return out

    @property
    def members(self) -> list[Distiller]:
        return list(self.parts)

    @torch.no_grad()
    def group_usage(self) -> dict[str, float]:
        """Each space's group usage, its keys suffixed ``_space<j>`` (j = 0, 1, ...)."""
        return {f"{key}_space{j}": value for j, part in enumerate(self.parts)
                for key, value in part.group_usage().items()}
