"""FitNet: hint regression through a projector (Romero et al., ICLR 2015; docs/method.md §7).

One projector f (MLP d_s -> (d_s + d_t) // 2 -> d_t) maps every student representation to
the teacher space; L = sum_e ||t_e - f(s_e)||^2 over the batch's unique users and items.
"""
from __future__ import annotations

import torch

from ._common import mlp
from .base import Distiller, register_method


class FitNet(Distiller):
    """FitNet as a distiller for :func:`htdviz.train.fit`.

    Parameters
    ----------
    teacher_user_repr : array or tensor of shape (n_users, d_t)
    teacher_item_repr : array or tensor of shape (n_items, d_t)
    student_dim : int
    generator : torch.Generator, optional
        Draws the projector's initialisation (default: the global torch RNG).
    """

    display_name = "FitNet"

    def __init__(self, teacher_user_repr, teacher_item_repr, student_dim: int,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.register_teacher(teacher_user_repr, teacher_item_repr)
        self.projector = mlp(student_dim, self.teacher_users.shape[1], generator)

    def forward(self, users, items, student_users, student_items) -> dict[str, torch.Tensor]:
        teacher = torch.cat([self.teacher_users[users], self.teacher_items[items]])
        student = torch.cat([student_users, student_items])
        return {"loss": (teacher - self.projector(student)).square().sum()}


register_method("fitnet", FitNet, built_in=True)
