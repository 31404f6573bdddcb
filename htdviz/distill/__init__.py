"""Distillation losses, one method per file; each is a distiller for :func:`htdviz.train.fit`.

- :class:`FTD` (ftd.py): full topology distillation.
- :class:`HTD` (htd.py): hierarchical topology distillation (the paper's method).
- :class:`DE` (experts.py): distillation experts, the group-assignment loss alone.
- :class:`FitNet` (fitnet.py): one projector from student to teacher space.
"""
from ._common import annealed_temperature
from .experts import DE, Experts, GroupAssignment, assignment_loss, balance_loss
from .fitnet import FitNet
from .ftd import FTD, ftd_loss
from .htd import HTD, group_level_error, within_group_error


__all__ = ["FTD", "HTD", "DE", "FitNet", "GroupAssignment", "Experts", "ftd_loss",
           "assignment_loss", "balance_loss", "within_group_error", "group_level_error",
           "annealed_temperature"]
