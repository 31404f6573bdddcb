"""Distillation losses, one method per file; each is a distiller for :func:`htdviz.train.fit`.

- :class:`Distiller` (base.py): the contract every method follows, and the registry that
  maps the names a person types to the classes (:func:`register_method`, :func:`get_method`);
  :class:`Composite`, a distiller made of others (its hooks reach every member).
- :class:`FitNet` (fitnet.py): one projector from student to teacher space.
- :class:`DE` (experts.py): distillation experts, the group-assignment loss alone.
- :class:`FTD` (ftd.py): full topology distillation.
- :class:`HTD` (htd.py): hierarchical topology distillation (the paper's method).
- :class:`RRD` (rrd.py): relaxed ranking distillation, of the teacher's predictions.
- :func:`combine` (combination.py): a method that is the weighted sum of others
  ("htd+rrd", "de+rrd").

Each registers itself under its name ("fitnet", "de", "ftd", "htd", "rrd"; "student" is a
student trained alone); in that order they are listed, then the combinations.
"""
from ._common import annealed_temperature
from .base import (Composite, Distiller, Option, as_distiller, display_name, get_method,
                   method_names, method_options, register_method)
from .fitnet import FitNet
from .experts import DE, Experts, GroupAssignment, assignment_loss, balance_loss  # noqa: I001
from .ftd import FTD, ftd_loss
from .htd import HTD, group_level_error, within_group_error
from .rrd import RRD, relaxed_ranking_loss
from .combination import combine

register_method("htd+rrd", combine("htd", "rrd"), built_in=True)
register_method("de+rrd", combine("de", "rrd"), built_in=True)


__all__ = ["Distiller", "Composite", "Option", "register_method", "get_method", "method_names",
           "method_options", "display_name", "as_distiller", "FTD", "HTD", "DE", "FitNet",
           "GroupAssignment", "Experts", "ftd_loss", "assignment_loss", "balance_loss",
           "within_group_error", "group_level_error", "annealed_temperature", "RRD",
           "relaxed_ranking_loss", "combine"]
