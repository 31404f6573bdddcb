"""FTD: full topology distillation (Kang et al., KDD 2021, docs/method.md §4).

L_FTD = sum over all ordered pairs (a, b) of the batch set (users and items in one matrix,
diagonal included) of (cos(t_a, t_b) - cos(s_a, s_b))^2.

With T, S the row-normalised teacher / student matrices (N x d_t, N x d_s) this is
||T T^T - S S^T||_F^2 = ||T^T T||_F^2 - 2 ||T^T S||_F^2 + ||S^T S||_F^2, which needs only
d x d Gram matrices: O(N d^2) work instead of O(N^2 d), and no N x N matrix. The Gram
products are taken in float64 so that the subtraction loses no precision.
"""
from __future__ import annotations

import torch

from ._common import unit
from .base import Distiller, register_method


def ftd_loss(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """Full topology loss of one batch set; teacher (N, d_t), student (N, d_s)."""
    t = unit(teacher).double()
    s = unit(student).double()
    loss = (t.T @ t).square().sum() - 2 * (t.T @ s).square().sum() + (s.T @ s).square().sum()
    return loss.to(student.dtype)


class FTD(Distiller):
    """Full topology distillation as a distiller for :func:`htdviz.train.fit`.

    Parameters
    ----------
    teacher_user_repr : array or tensor of shape (n_users, d_t)
    teacher_item_repr : array or tensor of shape (n_items, d_t)
    student_dim : int, optional
    generator : torch.Generator, optional
        Not used: FTD has no parameters and draws nothing (taken as every method's
        constructor takes them, see :mod:`htdviz.distill.base`).
    """

    display_name = "FTD"

    def __init__(self, teacher_user_repr, teacher_item_repr, student_dim: int | None = None,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.register_teacher(teacher_user_repr, teacher_item_repr)

    def forward(self, users, items, student_users, student_items) -> dict[str, torch.Tensor]:
        teacher = torch.cat([self.teacher_users[users], self.teacher_items[items]])
        student = torch.cat([student_users, student_items])
        return {"loss": ftd_loss(teacher, student)}


register_method("ftd", FTD, built_in=True)
