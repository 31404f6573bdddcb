"""Named options: the vocabulary of run configurations and method options.

An :class:`Option` is one setting a person types: its name, default and help text, how the
command line spells it, and when a run records it in config.json (and so in its folder's
hash). The run configurations (:mod:`htdviz.config`) declare their fields with it, and every
distillation method declares its own options with it (``Distiller.options``,
:mod:`htdviz.distill.base`), so that the command line, a study's grid and config.json are
all generated from the same declarations. The training recipe's defaults live here too,
read by the run configurations and by :class:`htdviz.train.TrainConfig` alike.

This module imports neither torch nor the training code.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable

from ._validation import check_int

#: The training recipe's defaults (the paper's): epochs, an evaluation every this many
#: epochs, Adam's learning rate and weight decay, and lambda, the weight of the
#: distillation loss.
EPOCHS, EVAL_EVERY = 100, 10
LR = WEIGHT_DECAY = DISTILL_WEIGHT = 1e-3
#: Training schedules (see :class:`htdviz.train.TrainConfig`).
SCHEDULES = ("default", "reference")
#: Which rows a training step updates (see :class:`htdviz.train.TrainConfig`).
UPDATES = ("dense", "sparse")


@dataclass(frozen=True)
class Option:
    """One named option: default, help, command-line spelling, how it is recorded and checked.

    Parameters
    ----------
    name : str
        The keyword a person passes (``student_run(..., n_groups=10)``), the key in
        config.json and in a study's grid.
    default : bool, int, float, str or None
        Its type is the option's type (an int option refuses 2.5; None: an int).
    help : str
        One line for ``--help``.
    flag : str, optional
        Its command-line option; default ``--`` + ``name`` with dashes. An empty string: no
        command-line option.
    choices : tuple or callable, optional
        The values allowed (a callable returning them is asked when they are needed: e.g.
        the registered methods).
    low, high : float, optional
        Bounds of a number (inclusive); None: unbounded.
    record : {"always", "changed"} or callable, default "always"
        "always": in config.json of every run that has the option; "changed": only when
        not the default (an option added after runs were first written, so older folders
        keep their names; for a method's option, an addition that is off by default, which
        another method refuses instead of ignoring); a callable takes the configuration and
        says whether it is recorded.
    invert : bool, default False
        A True-by-default switch whose flag turns it off (``--all-pairs``).
    metavar : str, optional
        How ``--help`` names its value.
    label : str, optional
        Added to a run folder's readable name when the value is not the default, formatted
        with the value (``"-bal{:g}"``); None: the folder's hash alone tells such runs apart.
    """

    name: str
    default: Any
    help: str
    flag: str | None = None
    choices: tuple | Callable[[], tuple] | None = None
    low: float | None = None
    high: float | None = None
    record: str | Callable[[Any], bool] = "always"
    invert: bool = False
    metavar: str | None = None
    label: str | None = None

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"option name must be a Python identifier, got {self.name!r}")
        if self.record not in ("always", "changed") and not callable(self.record):
            raise ValueError(f"option {self.name!r}: record must be 'always', 'changed' or a "
                             f"callable, got {self.record!r}")
        if self.flag is None:
            object.__setattr__(self, "flag", "--" + self.name.replace("_", "-"))

    @property
    def type(self) -> type:
        """The type of its values (int where the default is None)."""
        return type(self.default) if self.default is not None else int

    def allowed(self) -> tuple | None:
        """The values allowed, or None (any value of its type)."""
        return self.choices() if callable(self.choices) else self.choices

    def check(self, value):
        """``value`` if it is a valid value of this option; ValueError naming the option and
        the value otherwise."""
        allowed = self.allowed()
        if allowed is not None:
            if value not in allowed:
                raise ValueError(f"{self.name} must be one of {tuple(allowed)}, got {value!r}")
            return value
        if value is None and self.default is None:
            return value
        kind = self.type
        if kind is bool and not isinstance(value, bool):
            raise ValueError(f"{self.name} must be True or False, got {value!r}")
        if kind is int and self.low is not None:
            check_int(value, self.name, low=self.low, high=self.high)
        elif kind is int and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
            raise ValueError(f"{self.name} must be an integer, got {value!r}")
        if kind is float:
            self._check_number(value)
        if kind is str and not isinstance(value, str):
            raise ValueError(f"{self.name} must be a string, got {value!r}")
        return value

    def _check_number(self, value) -> None:
        low = -math.inf if self.low is None else self.low
        high = math.inf if self.high is None else self.high
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value) or not low <= value <= high:
            if self.high is not None:
                bound = f"in [{low:g}, {high:g}]"
            else:
                bound = "a finite number" + (f" >= {low:g}" if self.low is not None else "")
            raise ValueError(f"{self.name} must be {bound}, got {value!r}")

    def recorded(self, value, config=None) -> bool:
        """Whether ``value`` goes into config.json (``config``: for a callable ``record``)."""
        if self.record == "always":
            return True
        if self.record == "changed":
            return value != self.default
        return bool(self.record(config))
