"""Headless runs: train a teacher, distil a student, sweep student dims x methods.

Every run writes its own folder under ``runs/`` through :func:`htdviz.runs.write_run`
(the folder format, and the configurations that name the folders, are defined in
:mod:`htdviz.runs`). A finished run with the same configuration is reused, not retrained.

A data set is given as a name ("citeulike", "synthetic") or as a file (see
:func:`htdviz.data.load_file`); a file's sha256 and split options are part of the teacher's
configuration, so a changed file trains a new teacher instead of reusing a stale one.
"""
from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import torch

from . import data, distill, models
from .runs import (DATASET_NAMES, Run, StudentConfig, TeacherConfig, finished, load_run,
                   write_run)
from .train import TrainConfig, default_device, fit


def load_dataset(name: str | Path = "citeulike", split: str = "reference", seed: int = 0,
                 min_items: int = 5, user_col: str = "user", item_col: str = "item",
                 sha256: str | None = None):
    """A data set by name or file.

    Parameters
    ----------
    name : str or Path, default "citeulike"
        "citeulike" (split "reference" or "random"), "foursquare" (always a random split),
        "synthetic" (planted groups, seeded by ``seed``), or a data file
        (:func:`htdviz.data.load_file`; always a random split).
    split : {"reference", "random"}, default "reference"
        CiteULike only.
    seed : int, default 0
        Seed of a random split (and of the synthetic set).
    min_items : int, default 5
        Users with fewer items are dropped (not for "synthetic").
    user_col, item_col : str, default "user", "item"
        Columns of a pair table.
    sha256 : str, optional
        For a file: its expected sha256 (ValueError if the file has changed).
    """
    if str(name) == "citeulike":
        return data.load_citeulike(split=split, seed=seed, min_items=min_items)
    if str(name) == "foursquare":
        if split != "random":
            raise ValueError(f"split must be 'random' for Foursquare (it has no published "
                             f"split), got {split!r}")
        return data.load_foursquare(seed=seed, min_items=min_items)
    if str(name) == "synthetic":
        return data.synthetic(seed=seed)
    path = Path(name)
    if not path.is_file():
        raise FileNotFoundError(f"dataset {str(name)!r} is neither one of {DATASET_NAMES} "
                                f"nor an existing file")
    if sha256 is not None and data.file_sha256(path) != sha256:
        raise ValueError(f"data file {path} has changed since the run was made (its sha256 "
                         f"is no longer {sha256[:12]}...); train a new teacher on it")
    return data.load_file(path, user_col, item_col, min_items=min_items, seed=seed)


def teacher_config(model: str = "bpr", dim: int = 200, n_layers: int = 2,
                   dataset: str | Path = "citeulike", split: str = "reference",
                   epochs: int = 100, eval_every: int = 10, seed: int = 0, lr: float = 1e-3,
                   weight_decay: float = 1e-3, schedule: str = "default", min_items: int = 5,
                   split_seed: int | None = None, user_col: str = "user",
                   item_col: str = "item", updates: str = "dense",
                   mlp_layers: int = 1) -> TeacherConfig:
    """The :class:`~htdviz.runs.TeacherConfig` of these options; a data file is recorded
    by its stem, absolute path and sha256, and its split (always random) by ``min_items``
    and the seed it used."""
    data_file = data_sha256 = None
    if str(dataset) not in DATASET_NAMES:
        path = Path(dataset)
        if not path.is_file():
            raise FileNotFoundError(f"dataset {str(dataset)!r} is neither one of "
                                    f"{DATASET_NAMES} nor an existing file")
        data_file, data_sha256 = str(path.resolve()), data.file_sha256(path)
        dataset, split = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem), "random"
        split_seed = seed if split_seed is None else split_seed      # recorded as used
    elif str(dataset) == "foursquare":                  # no published split: always random
        split = "random"
        split_seed = seed if split_seed is None else split_seed
    return TeacherConfig(model=model, dim=dim, n_layers=n_layers, dataset=str(dataset),
                         split=split, epochs=epochs, eval_every=eval_every, seed=seed, lr=lr,
                         weight_decay=weight_decay, schedule=schedule, min_items=min_items,
                         split_seed=split_seed, user_col=user_col, item_col=item_col,
                         updates=updates, data_file=data_file, data_sha256=data_sha256,
                         mlp_layers=mlp_layers)


def dataset_of(config: TeacherConfig | dict):
    """The data set a teacher run was trained on (from its configuration)."""
    if not isinstance(config, TeacherConfig):
        config = TeacherConfig.from_dict(config)
    seed = config.seed if config.split_seed is None else config.split_seed
    return load_dataset(config.data_file or config.dataset, config.split, seed,
                        config.min_items, config.user_col, config.item_col,
                        sha256=config.data_sha256)


def build_model(config: TeacherConfig | StudentConfig, dataset, dim: int):
    """The model ``config`` names (:func:`htdviz.models.get_model`), with the options its
    class takes from the configuration, initialised from the run's seed."""
    cls = models.get_model(config.model)
    options = {name: getattr(config, name) for name in cls.build_options}
    return cls.build(dataset, dim, generator=torch.Generator().manual_seed(config.seed),
                     **options)


def checkpoint_path(run_dir: str | Path) -> Path:
    """Where an unfinished run keeps its training state (beside its folder-to-be): a run
    that is stopped resumes from its last epoch when it is asked for again."""
    run_dir = Path(run_dir)
    return run_dir.with_name(run_dir.name + ".checkpoint.pt")


def _save_run(path: Path, config, model, result, device, distiller=None) -> Path:
    """The run's files, through :func:`htdviz.runs.write_run`; the checkpoint goes."""
    from safetensors.torch import save_file

    history = result.history
    final = history.iloc[-1]
    best = history.loc[history["epoch"] == result.best_epoch].iloc[0]
    metric_cols = [c for c in history.columns if c.startswith(("valid_", "test_"))]
    metrics = {
        "final": {"epoch": int(final["epoch"]), **{c: float(final[c]) for c in metric_cols}},
        "best_valid": {"epoch": int(best["epoch"]), **{c: float(best[c]) for c in metric_cols}},
        "train_seconds": result.seconds,
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "device": str(device),
    }
    users, items = (x.cpu().numpy() for x in model.representations())
    groups = {}
    if distiller is not None and distiller.hard_groups("user") is not None:
        groups = {f"{kind}_groups": distiller.hard_groups(kind).cpu().numpy()
                  for kind in ("user", "item")}
    run = Run.from_arrays(path.name, users=users, items=items, config=config.to_dict(),
                          history=history, metrics=metrics, **groups)
    extra = {"model.safetensors": lambda file: models.save(model, file)}
    if distiller is not None:
        state = {k: v.detach().cpu().contiguous() for k, v in distiller.state_dict().items()
                 if "teacher" not in k}
        if state:
            extra["distiller.safetensors"] = lambda file: save_file(state, str(file))
    written = write_run(path, run, extra)
    checkpoint_path(path).unlink(missing_ok=True)
    return written


def train_config(config: TeacherConfig | StudentConfig, **overrides) -> TrainConfig:
    """The training recipe of a run's configuration (``overrides``: further fields, e.g. a
    student's ``distill_weight``)."""
    return TrainConfig(epochs=config.epochs, eval_every=config.eval_every,
                       random_state=config.seed, lr=config.lr,
                       weight_decay=config.weight_decay, schedule=config.schedule,
                       updates=config.updates, **overrides)


def teacher_run(model: str = "bpr", dim: int = 200, n_layers: int = 2,
                dataset: str | Path = "citeulike", split: str = "reference",
                epochs: int = 100, eval_every: int = 10, seed: int = 0, lr: float = 1e-3,
                weight_decay: float = 1e-3, runs_dir: str | Path = "runs", device=None,
                progress: bool = True, schedule: str = "default", min_items: int = 5,
                split_seed: int | None = None, user_col: str = "user",
                item_col: str = "item", updates: str = "dense", mlp_layers: int = 1) -> Path:
    """Train (or reuse) a teacher; returns its run folder.

    Parameters
    ----------
    model : {"bpr", "lightgcn", "neumf"}, default "bpr"
        Any registered model (:func:`htdviz.models.model_names`).
    dim : int, default 200
    n_layers : int, default 2
        LightGCN only.
    mlp_layers : int, default 1
        NeuMF only: hidden layers of its MLP tower.
    dataset : str or Path, default "citeulike"
        A name or a data file (see :func:`load_dataset`).
    split : {"reference", "random"}, default "reference"
    epochs, eval_every, seed, lr, weight_decay
        The recipe (:class:`htdviz.train.TrainConfig`).
    schedule : {"default", "reference"}, default "default"
        See :class:`htdviz.train.TrainConfig`.
    updates : {"dense", "sparse"}, default "dense"
        See :class:`htdviz.train.TrainConfig` ("sparse": BPR-MF only, for large data sets).
    min_items, split_seed, user_col, item_col
        Data options (:func:`load_dataset`; ``split_seed`` None: ``seed``).
    runs_dir : path, default "runs"
    device : str, optional
        Default: CUDA when present.
    progress : bool, default True
        A progress bar named after the run ("teacher bpr d200").

    Examples
    --------
    >>> path = teacher_run(dim=8, dataset="synthetic", epochs=1,
    ...                    runs_dir=tempfile.mkdtemp(), progress=False)  # doctest: +SKIP
    """
    config = teacher_config(model, dim, n_layers, dataset, split, epochs, eval_every, seed,
                            lr, weight_decay, schedule, min_items, split_seed, user_col,
                            item_col, updates, mlp_layers)
    path = Path(runs_dir) / config.folder_name()
    if finished(path):
        return path
    ds = dataset_of(config)
    net = build_model(config, ds, dim)
    device = torch.device(device) if device else default_device()
    result = fit(net, ds, train_config(config), device=device,
                 progress=_bar(f"teacher {model} d{dim}", progress),
                 checkpoint=checkpoint_path(path))
    return _save_run(path, config, net, result, device)


def make_distiller(config: StudentConfig, teacher_users, teacher_items,
                   generator: torch.Generator | None = None):
    """The distiller ``config`` describes: its method's class (:func:`htdviz.distill.get_method`)
    built with the method's options; None for method "student" (trained alone).

    Parameters
    ----------
    config : StudentConfig
    teacher_users, teacher_items : arrays of shape (n_users, d_t), (n_items, d_t)
    generator : torch.Generator, optional
        Draws the distiller's initialisation and Gumbel noise (default: the global torch
        RNG).

    The student's representations are ``representation_width(config.dim)`` columns of
    its model (2 * dim for NeuMF); where the model reads them as several spaces
    (NeuMF with ``space="towers"``) there is one distiller per space
    (:class:`htdviz.distill.spaces.PerSpace`).
    """
    cls = distill.get_method(config.method)
    if cls is None:
        return None
    model = models.get_model(config.model)
    if cls.needs_scores and model.scorer is not models.Recommender.scorer:
        # RRD ranks the teacher's items by dot products of its representations
        raise ValueError(f"method {config.method!r} needs a teacher whose score is a dot "
                         f"product (BPR-MF, LightGCN); model {config.model!r} is not")
    reads = {name: getattr(config, name) for name in model.distill_options}
    student_spaces = model.representation_spaces(model.representation_width(config.dim),
                                                 **reads)
    if len(student_spaces) == 1:
        return cls(teacher_users, teacher_items, student_spaces[0].stop,
                   generator=generator, **config.options)
    from .distill.spaces import PerSpace

    teacher_spaces = model.representation_spaces(teacher_users.shape[1], **reads)
    return PerSpace(cls, teacher_users, teacher_items, teacher_spaces, student_spaces,
                    generator=generator, **config.options)


def student_run(teacher_dir: str | Path, method: str = "htd", dim: int = 20,
                epochs: int = 100, eval_every: int = 10, seed: int = 0,
                distill_weight: float = 1e-3, runs_dir: str | Path | None = None,
                device=None, progress: bool | dict = True, schedule: str = "default",
                updates: str = "dense", **options) -> Path:
    """Distil (or reuse) a student of ``dim`` from a finished teacher run; returns its folder.

    The student is trained on its teacher's data set (for a data file: the same file,
    checked against the sha256 the teacher recorded) with the teacher's lr and weight
    decay. The settings are those of :class:`htdviz.runs.StudentConfig`; ``method`` is any
    registered method (:func:`htdviz.distill.method_names`) and ``**options`` its options
    (HTD's ``n_groups``, ``alpha``, ...: :func:`htdviz.distill.method_options`; their
    defaults when not given; another method's options are not used). ``runs_dir``
    defaults to the teacher's parent folder; ``progress`` shows a bar named after the run
    ("htd d20 s0"; a dict: more tqdm options for it, see :func:`htdviz.train.fit`).

    Examples
    --------
    >>> path = student_run(teacher_path, "htd", 8, epochs=1, n_groups=6,
    ...                    progress=False)                          # doctest: +SKIP
    """
    teacher_dir = Path(teacher_dir)
    if not finished(teacher_dir):
        raise FileNotFoundError(f"teacher run {teacher_dir} is missing or unfinished (no "
                                f"metrics.json)")
    teacher = TeacherConfig.from_dict(load_run(teacher_dir, embeddings=False).config)
    config = StudentConfig(method=method, dim=dim, epochs=epochs, eval_every=eval_every,
                           seed=seed, distill_weight=distill_weight, schedule=schedule,
                           updates=updates, **options).inherit(teacher_dir.name, teacher)
    path = Path(runs_dir or teacher_dir.parent) / config.folder_name()
    if finished(path):
        return path
    ds = dataset_of(teacher)
    teacher_reprs = load_run(teacher_dir)
    teacher_users = teacher_reprs.representations("users")
    teacher_items = teacher_reprs.representations("items")
    net = build_model(config, ds, dim)
    # the distiller's own initialisation and Gumbel noise: a stream of its own
    generator = torch.Generator().manual_seed(seed + 1)
    distiller = make_distiller(config, teacher_users, teacher_items, generator)
    device = torch.device(device) if device else default_device()
    result = fit(net, ds, train_config(config, distill_weight=distill_weight),
                 distiller=distiller, device=device,
                 progress=_bar(f"{method} d{dim} s{seed}", progress),
                 checkpoint=checkpoint_path(path))
    return _save_run(path, config, net, result, device, distiller)


def plan(teacher: Mapping, students: Mapping[str, tuple] | None = None,
         runs_dir: str | Path = "runs") -> pd.DataFrame:
    """Which runs :func:`teacher_run` and :func:`student_run` would reuse and which they
    would train, without training anything (a notebook says so before it starts).

    Parameters
    ----------
    teacher : mapping
        :func:`teacher_run`'s arguments (``runs_dir`` and ``device`` left out).
    students : mapping name -> (method, dim, options)
        :func:`student_run`'s method, dim and other arguments, per student.
    runs_dir : path, default "runs"

    Returns
    -------
    pandas.DataFrame
        One row per run: ``run`` (its name here), ``folder``, ``epochs`` and ``reused``
        (True: finished, nothing to train).
    """
    keys = inspect.signature(teacher_config).parameters
    unknown = set(teacher) - set(keys)
    if unknown:
        raise ValueError(f"teacher: unknown arguments {sorted(unknown)}")
    t_config = teacher_config(**teacher)
    t_folder = t_config.folder_name()
    rows = [{"run": "teacher", "folder": t_folder, "epochs": t_config.epochs}]
    for name, (method, dim, options) in (students or {}).items():
        options = dict(options)
        fields = {key: options.pop(key) for key in ("epochs", "eval_every", "seed",
                                                     "distill_weight", "schedule", "updates")
                  if key in options}
        config = StudentConfig(method=method, dim=dim, **fields, **options).inherit(
            t_folder, t_config)
        rows.append({"run": name, "folder": config.folder_name(), "epochs": config.epochs})
    table = pd.DataFrame(rows)
    table["reused"] = [finished(Path(runs_dir) / folder) for folder in table["folder"]]
    return table


def _bar(name: str, progress: bool | dict):
    """The ``progress`` argument of :func:`htdviz.train.fit` for a run called ``name``."""
    if isinstance(progress, dict):
        return {"desc": name, **progress}
    return name if progress else False


def load_metrics(run_dir: str | Path) -> dict:
    """config.json and metrics.json of a finished run, flattened into one row."""
    run = load_run(run_dir, embeddings=False)
    config, metrics = run.config, run.metrics
    row = {"run": run.name, "path": str(run_dir), **config}
    for phase in ("final", "best_valid"):
        for key, value in metrics[phase].items():
            row[f"{phase}_{key}"] = value
    row.update(train_seconds=metrics["train_seconds"], n_parameters=metrics["n_parameters"],
               device=metrics["device"])
    return row
