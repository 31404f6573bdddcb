"""What defines a run: its configuration, and the named options it is made of.

- :class:`TeacherConfig` and :class:`StudentConfig`: everything that defines a teacher or
  a student run, with every default written once here. A run folder records its
  configuration in config.json and is named after it (:meth:`TeacherConfig.folder_name`);
  :mod:`htdviz.runs` reads and writes the folders, :mod:`htdviz.experiment` trains them.
- The command line of a configuration (:func:`add_options`, :func:`cli_args`), generated
  from its fields, each declared as an :class:`~htdviz.options.Option`.

This module imports neither torch nor the training code: run folders can be read without
them.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import ClassVar

from .options import (DISTILL_WEIGHT, EPOCHS, EVAL_EVERY, LR, SCHEDULES, UPDATES, WEIGHT_DECAY,
                      Option)

#: Data sets known by name; anything else is a file (see :func:`htdviz.data.load_file`).
DATASET_NAMES = ("citeulike", "foursquare", "synthetic")


# --------------------------------------------------------------------------------------
# Configurations: one dataclass per role
# --------------------------------------------------------------------------------------

def _option(default, help: str, flag: str | None = None, record="always", choices=None,
            invert: bool = False, metavar: str | None = None, low: float | None = None):
    """A configuration field and how it is recorded, spelled on the command line and
    checked (the arguments of :class:`~htdviz.options.Option`).

    ``record``: "always"; "changed" (recorded only when not the default: fields added after
    runs were first written, so that older folders keep their names); or a predicate on
    the configuration (recorded only where it means something, e.g. LightGCN's layers).
    ``flag``: its option of ``python -m htdviz distill`` (None: not an option there);
    ``invert``: a True-by-default switch whose flag turns it off; ``choices`` and ``low``:
    the values allowed, checked when a configuration is made.
    """
    return field(default=default, metadata=dict(help=help, flag=flag, record=record,
                                                 choices=choices, invert=invert,
                                                 metavar=metavar, low=low))


def _field_option(f) -> Option:
    """A configuration field as an :class:`~htdviz.options.Option` (the form the command
    line, config.json and the checks read; a method's options have it already)."""
    m = f.metadata
    return Option(f.name, f.default, m["help"], flag=m["flag"] or "", choices=m["choices"],
                  record=m["record"], invert=m["invert"], metavar=m["metavar"],
                  low=m["low"])


def _methods():
    """The method registry (:mod:`htdviz.distill.base`). Imported when a student
    configuration is first built, not with this module: reading run folders needs no
    torch."""
    from .distill import base
    return base


def _models():
    """The model registry (:mod:`htdviz.models.base`), imported when first needed."""
    from .models import base
    return base


class _Config:
    """What the two configurations share: the recorded dict, its hash, the folder name."""

    role: ClassVar[str]

    def __post_init__(self):
        # every choice, count and rate of a run, checked before anything trains
        for f in fields(self):
            option = _field_option(f)
            if option.choices is not None or option.low is not None:
                option.check(getattr(self, f.name))

    @classmethod
    def option_list(cls) -> list[Option]:
        """Every option of this configuration: its fields (and, for a student, every
        registered method's options), each once."""
        return [_field_option(f) for f in fields(cls)]

    def values(self) -> list[tuple[Option, object]]:
        """(option, value) of every field (and, for a student, of its method's options)."""
        return [(_field_option(f), getattr(self, f.name)) for f in fields(self)]

    def to_dict(self) -> dict:
        """The configuration as recorded in config.json and hashed into the folder name."""
        out = {"role": self.role}
        for option, value in self.values():
            if option.recorded(value, self):
                out[option.name] = value
        return out

    @classmethod
    def from_dict(cls, config: Mapping):
        """The configuration recorded in ``config`` (fields it lacks take their defaults)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in names})

    def digest(self) -> str:
        """8 hex digits of the sha256 of :meth:`to_dict` (keys sorted)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def folder_name(self) -> str:
        """``<readable summary>-<digest>``, the run folder's name."""
        return f"{self._summary()}-{self.digest()}"

    def _summary(self) -> str:
        raise NotImplementedError


def _model_names() -> tuple[str, ...]:
    return _models().model_names()


def _model_takes(name: str):
    """Recorded where the configuration's model takes option ``name`` (LightGCN's
    ``n_layers``; NeuMF's ``mlp_layers`` and, for a student, ``space``), so that other
    models' folders do not depend on it."""
    def takes(config) -> bool:
        model = _models().get_model(config.model)
        return name in model.build_options + model.distill_options
    return takes


def _split_option(name: str, default):
    """Recorded for a data file always (its run says how it was split), else only when
    changed (older CiteULike / synthetic folders keep their names)."""
    return lambda config: config.data_file is not None or getattr(config, name) != default


def _is_table_file(config) -> bool:
    return config.data_file is not None and \
        Path(config.data_file).suffix.lower() in (".csv", ".tsv", ".tab", ".parquet", ".pq")


@dataclass(frozen=True)
class TeacherConfig(_Config):
    """Everything that defines a teacher run (BPR-MF or LightGCN on one data set).

    ``dataset`` is a name (:data:`DATASET_NAMES`) or, for a data file, the file's stem, with
    ``data_file`` its absolute path and ``data_sha256`` its hash (so that a changed file
    gives a new run). ``split_seed`` None splits with ``seed`` (as runs always did).
    """

    role: ClassVar[str] = "teacher"

    model: str = _option("bpr", "teacher model", "--model", choices=_model_names)
    dim: int = _option(200, "teacher dim d_t", "--teacher-dim", low=1)
    n_layers: int = _option(2, "LightGCN propagation layers", "--layers",
                            record=_model_takes("n_layers"), low=1)
    mlp_layers: int = _option(1, "NeuMF MLP hidden layers (2d -> d -> d/2 ...)",
                              "--mlp-layers", record=_model_takes("mlp_layers"), low=1)
    dataset: str = _option("citeulike", "'citeulike', 'foursquare', 'synthetic', or a data "
                           "file: users.dat format (.dat/.txt) or (user, item) pairs "
                           "(.csv/.tsv/.parquet)", "--dataset", metavar="NAME_OR_FILE")
    split: str = _option("reference", "CiteULike split: the authors' 'reference' or a "
                         "seeded 'random' leave-one-out (data files: always random)",
                         "--split", choices=("reference", "random"))
    epochs: int = _option(EPOCHS, "teacher epochs (distill, sweep: default --epochs)",
                          "--teacher-epochs", low=1)
    eval_every: int = _option(EVAL_EVERY, "evaluate every this many epochs", low=1)
    seed: int = _option(0, "seed of the teacher run", "--teacher-seed")
    lr: float = _option(LR, "Adam learning rate of the teacher (and its students)", "--lr",
                        low=0.0)
    weight_decay: float = _option(WEIGHT_DECAY, "Adam weight decay of the teacher (and its "
                                  "students)", "--weight-decay", low=0.0)
    schedule: str = _option("default", "the teacher's schedule: 'default' trains E epochs "
                            "(label e = after e epochs); 'reference' the authors' loop, E + 1 "
                            "epochs (label e = after e + 1)", "--teacher-schedule",
                            record="changed", choices=SCHEDULES)
    min_items: int = _option(5, "users with fewer items are dropped", "--min-items",
                             record=_split_option("min_items", 5), low=3)
    split_seed: int | None = _option(None, "seed of a random split (default: the run's "
                                     "seed)", "--split-seed",
                                     record=_split_option("split_seed", None))
    user_col: str = _option("user", "user column of a .csv/.tsv/.parquet data file",
                            "--user-col", record=_is_table_file)
    item_col: str = _option("item", "item column of a .csv/.tsv/.parquet data file",
                            "--item-col", record=_is_table_file)
    updates: str = _option("dense", "the teacher's updates: 'dense', the recipe (Adam over "
                           "every row at every step), or 'sparse' (BPR-MF: only the batch's "
                           "rows; for large data sets)", "--teacher-updates",
                           record="changed", choices=UPDATES)
    data_file: str | None = _option(None, "absolute path of the data file",
                                    record="changed")
    data_sha256: str | None = _option(None, "sha256 of the data file", record="changed")

    def __post_init__(self):
        super().__post_init__()
        if self.dataset not in DATASET_NAMES and self.data_file is None:
            raise ValueError(f"dataset {self.dataset!r} is not one of {DATASET_NAMES}: give "
                             f"a data file through experiment.teacher_config(dataset=path) "
                             f"(or teacher_run(dataset=path)), which records its path and "
                             f"sha256")
        if (self.dataset == "foursquare" or self.data_file is not None) and \
                self.split != "random":
            raise ValueError(f"split must be 'random' for {self.dataset} (it has no "
                             f"published split), got {self.split!r}")
        if self.updates == "sparse" and self.model != "bpr":
            raise ValueError(f"updates 'sparse' needs model 'bpr' (a {self.model} teacher "
                             f"propagates over the whole graph at every step)")

    def _summary(self) -> str:
        schedule = "" if self.schedule == "default" else f"-{self.schedule}"
        schedule += "" if self.updates == "dense" else f"-{self.updates}"
        return f"{self.dataset}-{self.model}-d{self.dim}-teacher{schedule}-s{self.seed}"


def _distils(config) -> bool:
    return _methods().get_method(config.method) is not None


def _method_names() -> tuple[str, ...]:
    return _methods().method_names()


def _never(config) -> bool:
    return False


#: The fields of a student run that come from its teacher run (:meth:`StudentConfig.inherit`).
INHERITED = ("teacher", "model", "dataset", "split", "lr", "weight_decay", "n_layers",
             "mlp_layers")


@dataclass(frozen=True, init=False)
class StudentConfig(_Config):
    """Everything that defines a student run: its own settings, its method's options, and
    what it inherits from its teacher (``teacher`` folder name, ``model``, ``dataset``,
    ``split``, ``lr``, ``weight_decay``, ``n_layers``, ``mlp_layers``; see :meth:`inherit`).

    The method's options (:attr:`htdviz.distill.Distiller.options`: HTD's ``n_groups``,
    ``alpha``, ...) are keywords like the fields, and read as attributes
    (``config.n_groups``); they are held in :attr:`options` with their defaults filled
    in. An option of another method is not used (a grid may give K to every method; it
    reads as its default), except one recorded only when changed (``balance_weight``):
    that, given to a method without it, is an error.

    Examples
    --------
    >>> config = StudentConfig(method="htd", dim=10, positive_pairs_only=False)
    >>> cli_args(config)            # the options of `python -m htdviz distill`
    ['--dim', '10', '--all-pairs']
    >>> config.folder_name()[:34]
    'citeulike-bpr-d10-htd-allpairs-s0-'
    """

    role: ClassVar[str] = "student"

    method: str = _option("htd", "distillation method ('student': trained alone)",
                          "--method", choices=_method_names)
    dim: int = _option(20, "student dim d_s", "--dim", low=1)
    teacher: str = _option("", "folder name of the teacher run")
    epochs: int = _option(EPOCHS, "student epochs", "--epochs", low=1)
    eval_every: int = _option(EVAL_EVERY, "evaluate every this many epochs", "--eval-every",
                              low=1)
    seed: int = _option(0, "seed of the student (model, distiller, batches)", "--seed")
    distill_weight: float = _option(DISTILL_WEIGHT, "lambda, the weight of the distillation loss",
                                    "--distill-weight", record=_distils, low=0.0)
    schedule: str = _option("default", "'default' trains E epochs (label e = after e "
                            "epochs); 'reference' the authors' loop: E + 1 epochs (label e = "
                            "after e + 1) and tau = 1 for the first two", "--schedule",
                            record="changed", choices=SCHEDULES)
    updates: str = _option("dense", "'dense': the recipe, Adam over every row at every "
                           "step; 'sparse' (BPR-MF): only the batch's rows, row-wise Adam "
                           "with L2 on them (for large data sets)", "--updates",
                           record="changed", choices=UPDATES)
    model: str = _option("bpr", "the teacher's model")
    dataset: str = _option("citeulike", "the teacher's data set")
    split: str = _option("reference", "the teacher's split")
    lr: float = _option(LR, "the teacher's learning rate", low=0.0)
    weight_decay: float = _option(WEIGHT_DECAY, "the teacher's weight decay", low=0.0)
    n_layers: int = _option(2, "the teacher's LightGCN layers",
                            record=_model_takes("n_layers"), low=1)
    mlp_layers: int = _option(1, "the teacher's NeuMF MLP layers",
                              record=_model_takes("mlp_layers"), low=1)
    space: str = _option("concat", "NeuMF: distil its representation [MF | MLP] as one "
                         "space ('concat') or each tower as its own ('towers')", "--space",
                         record=_model_takes("space"), choices=("concat", "towers"))
    options: dict = field(default_factory=dict, hash=False, metadata=_option(
        None, "the method's options", record=_never).metadata)

    def __init__(self, **values):
        for f in fields(self):
            if f.name != "options":
                default = f.default if f.name not in values else values.pop(f.name)
                object.__setattr__(self, f.name, default)
        given = {**values.pop("options", {}), **values}
        object.__setattr__(self, "options", _method_values(self.method, given))
        self.__post_init__()

    def __getattr__(self, name: str):
        """A method option's value; another registered method's option reads as its
        default (it is not used by this run)."""
        options = self.__dict__.get("options", {})
        if name in options:
            return options[name]
        if not name.startswith("_"):
            every = _methods().method_options()
            if name in every:
                return every[name].default
        raise AttributeError(f"StudentConfig of method {self.__dict__.get('method')!r} has "
                             f"no field or option {name!r}")

    @classmethod
    def from_dict(cls, config: Mapping) -> "StudentConfig":
        """The configuration recorded in ``config`` (fields it lacks take their defaults;
        keys that are neither a field nor any method's option are left out)."""
        known = {f.name for f in fields(cls)} | set(_methods().method_options())
        return cls(**{k: v for k, v in config.items() if k in known})

    @classmethod
    def option_list(cls) -> list[Option]:
        methods = _methods().method_options()
        return [o for o in super().option_list() if o.name != "options"] + list(methods.values())

    def values(self) -> list[tuple[Option, object]]:
        mine = _methods().method_options(self.method)
        return [(o, v) for o, v in super().values() if o.name != "options"] + \
            [(mine[name], value) for name, value in self.options.items()]

    def inherit(self, teacher_name: str, teacher: TeacherConfig) -> "StudentConfig":
        """This configuration with what a student takes from its teacher run
        (:data:`INHERITED`)."""
        return replace(self, teacher=teacher_name,
                       **{name: getattr(teacher, name) for name in INHERITED[1:]})

    def _summary(self) -> str:
        label = self.method
        for option, value in self.values():
            if option.name in self.options and option.label and value != option.default:
                label += option.label.format(value)
        label += "" if self.schedule == "default" else f"-{self.schedule}"
        label += "" if self.updates == "dense" else f"-{self.updates}"
        return f"{self.dataset}-{self.model}-d{self.dim}-{label}-s{self.seed}"


def _method_values(method: str, given: Mapping) -> dict:
    """Method ``method``'s options with the values ``given`` (defaults for the others),
    checked; ``given`` may hold other methods' options (see :class:`StudentConfig`)."""
    registry = _methods()
    mine = registry.method_options(method)          # ValueError for an unknown method
    every = registry.method_options()
    for name, value in given.items():
        if name in mine:
            continue
        if name not in every:
            raise ValueError(f"{name!r} is neither a student setting nor an option of a "
                             f"registered method; method {method!r} takes "
                             f"{', '.join(mine) or 'no options'}")
        if every[name].record == "changed" and value != every[name].default:
            owners = [m for m in registry.method_names()
                      if name in registry.method_options(m)]
            raise ValueError(f"{name} applies to methods "
                             f"{' and '.join(map(repr, owners))}, not {method!r}")
    reserved = {f.name for f in fields(StudentConfig)}
    clash = sorted(reserved & set(mine))
    if clash:
        raise ValueError(f"method {method!r}: its option {clash[0]!r} is a setting of every "
                         f"student run; rename the option")
    return {name: option.check(given.get(name, option.default))
            for name, option in mine.items()}


def config_from_dict(config: Mapping) -> TeacherConfig | StudentConfig:
    """The configuration recorded in a run's config.json (by its ``role``)."""
    role = config.get("role")
    if role == "teacher":
        return TeacherConfig.from_dict(config)
    if role == "student":
        return StudentConfig.from_dict(config)
    raise ValueError(f"config role must be 'teacher' or 'student', got {role!r}")


def option_of(config_class, name: str) -> Option:
    """The option ``name`` of ``config_class`` (a field, or for a student any registered
    method's option); ValueError if it has none of that name."""
    for option in config_class.option_list():
        if option.name == name:
            return option
    raise ValueError(f"{name!r} is not an option of {config_class.__name__}")


def add_options(parser, config_class, skip=(), defaults: Mapping | None = None,
                prefix: str = "") -> None:
    """Add the command-line options of ``config_class`` to an argparse parser: its fields
    and, for :class:`StudentConfig`, every registered method's options.

    Options without a flag, and those named in ``skip``, are left out; ``defaults``
    overrides an option's default (by name). Each option's destination is ``prefix``
    plus its name (read them back with :func:`options_from_args`).
    """
    defaults = dict(defaults or {})
    for option in config_class.option_list():
        if not option.flag or option.name in skip:
            continue
        if option.invert:
            parser.add_argument(option.flag, dest=prefix + option.name, action="store_false",
                                help=option.help)
            continue
        choices = option.allowed()
        parser.add_argument(option.flag, dest=prefix + option.name, type=option.type,
                            default=defaults.get(option.name, option.default),
                            choices=choices,
                            metavar=option.metavar or (None if choices else option.name.upper()),
                            help=option.help)


def options_from_args(config_class, args, prefix: str = "") -> dict:
    """option name -> value of the options :func:`add_options` added to a parser, from the
    parsed ``args`` (options without a flag are left out)."""
    return {o.name: getattr(args, prefix + o.name) for o in config_class.option_list()
            if o.flag and hasattr(args, prefix + o.name)}


def cli_args(config: TeacherConfig | StudentConfig, skip=()) -> list[str]:
    """The options of ``python -m htdviz distill`` that give ``config`` (its flagged options
    that differ from their defaults); the inverse of :func:`add_options`."""
    args = []
    for option, value in config.values():
        if not option.flag or option.name in skip or value == option.default:
            continue
        if option.invert:
            args.append(option.flag)
        else:
            args += [option.flag, str(value)]
    return args
