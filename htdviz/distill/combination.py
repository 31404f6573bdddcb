"""Combinations: one method that is the weighted sum of registered methods.

The paper adds the prediction-level RRD to the representation-level DE and HTD
(docs/method.md §7): L = sum_m w_m L_m, the whole weighted by lambda (``distill_weight``)
like any method. :func:`combine` makes such a method from registered names; ``htd+rrd``
and ``de+rrd`` are registered, and a notebook can register its own
(``register_method("ftd+rrd", combine("ftd", "rrd"))``).

Each part is built as it would be alone, in the order named, from the same generator, so
the first part starts exactly as the method alone would. Its options are the union of the
parts' options (an option two parts share means the same in both, as the registry
ensures) plus one weight per part, ``<part>_weight`` (default 1).
"""
from __future__ import annotations

import torch
from torch import nn

from ..options import Option
from .base import Composite, Distiller, get_method


def combine(*names: str) -> type[Distiller]:
    """The method sum_m w_m L_m of the registered methods ``names`` (at least two)."""
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"names must be two or more different methods, got {names}")
    nested = [name for name in names if "+" in name]
    if nested:
        raise ValueError(f"names must be single methods, not combinations: got {nested[0]!r}; "
                         f"combine their parts instead")
    parts = {name: get_method(name) for name in names}
    if any(cls is None for cls in parts.values()):
        raise ValueError(f"names must be distillation methods, not 'student': {names}")
    options: dict[str, Option] = {}
    for cls in parts.values():
        options.update({option.name: option for option in cls.options})
    weights = tuple(Option(f"{name.replace('-', '_')}_weight", 1.0,
                           f"in a combination: weight of {name}'s loss", low=0.0,
                           label=f"-{name}w{{:g}}")
                    for name in names)

    class Combination(Composite):
        __doc__ = f"{' + '.join(names)}: the weighted sum of their losses."
        display_name = " + ".join(getattr(cls, "display_name", None) or name
                                  for name, cls in parts.items())

        def __init__(self, teacher_user_repr, teacher_item_repr, student_dim: int,
                     generator: torch.Generator | None = None, teacher_scorer=None,
                     **values):
            super().__init__()
            unknown = set(values) - {o.name for o in self.options}
            if unknown:
                raise ValueError(f"{'+'.join(names)} has no option {sorted(unknown)[0]!r}")
            self.parts = nn.ModuleDict({
                name: cls(teacher_user_repr, teacher_item_repr, student_dim,
                          generator=generator,
                          **({"teacher_scorer": teacher_scorer}
                             if cls.needs_scores and teacher_scorer is not None else {}),
                          **{o.name: values[o.name] for o in cls.options if o.name in values})
                for name, cls in parts.items()})
            self.weights = {name: values.get(w.name, w.default)
                            for name, w in zip(names, weights)}

        @property
        def members(self) -> list[Distiller]:
            return list(self.parts.values())

        def hard_groups(self, kind: str):
            """The groups of the first part that has them."""
            for part in self.parts.values():
                groups = part.hard_groups(kind)
                if groups is not None:
                    return groups
            return None

        @property
        def n_groups(self):
            return next((part.n_groups for part in self.parts.values()
                         if getattr(part, "n_groups", None) is not None), None)

        def forward(self, users, items, student_users, student_items, scores=None):
            total, terms = 0.0, {}
            for name, part in self.parts.items():
                extra = {"scores": scores} if part.needs_scores else {}
                out = part(users, items, student_users, student_items, **extra)
                total = total + self.weights[name] * out["loss"]
                terms.update({f"{name}_{key}": value.detach() for key, value in out.items()})
            return {"loss": total, **terms}

    Combination.options = tuple(options.values()) + weights
    Combination.needs_scores = any(cls.needs_scores for cls in parts.values())
    Combination.__name__ = Combination.__qualname__ = \
        "".join(name.capitalize() for name in names)
    return Combination
