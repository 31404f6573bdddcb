"""Headless runs: train a teacher, distil a student; the demo's pipeline (:func:`run_demo`).

Every run writes its own folder under ``runs/`` through :func:`htdviz.runs.write_run`
(the folder format is defined in :mod:`htdviz.runs`, the configurations that name the
folders in :mod:`htdviz.config`). A finished run with the same configuration is reused,
not retrained.

A data set is given as a name ("citeulike", "synthetic") or as a file (see
:func:`htdviz.data.load_file`); a file's sha256 and split options are part of the teacher's
configuration, so a changed file trains a new teacher instead of reusing a stale one.
"""
from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path

import pandas as pd
import torch

from . import __version__, data, distill, models, published
from .config import DATASET_NAMES, INHERITED, StudentConfig, TeacherConfig
from .runs import Run, finished, load_run, write_run
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
    if sha256 is not None and published.file_sha256(path) != sha256:
        raise ValueError(f"data file {path} has changed since the run was made (its sha256 "
                         f"is no longer {sha256[:12]}...); train a new teacher on it")
    return data.load_file(path, user_col, item_col, min_items=min_items, seed=seed)


def teacher_config(**options) -> TeacherConfig:
    """The :class:`~htdviz.config.TeacherConfig` of these options (its fields; the others
    keep the defaults written there). A data file given as ``dataset`` is recorded by its
    stem, absolute path and sha256, and its split (always random) by ``min_items`` and the
    seed it used; Foursquare, which has no published split, is split at random too."""
    defaults = {f.name: f.default for f in fields(TeacherConfig)}
    dataset = str(options.get("dataset", defaults["dataset"]))
    seed = options.get("seed", defaults["seed"])
    split = {"split": "random", "split_seed": seed if options.get("split_seed") is None
             else options["split_seed"]}
    if dataset == "foursquare":
        options.update(split)
    elif dataset not in DATASET_NAMES:
        path = Path(dataset)
        if not path.is_file():
            raise FileNotFoundError(f"dataset {dataset!r} is neither one of "
                                    f"{DATASET_NAMES} nor an existing file")
        options.update(split, dataset=re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem),
                       data_file=str(path.resolve()), data_sha256=published.file_sha256(path))
    return TeacherConfig(**options)


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


def _software(device) -> dict:
    """What produced a run, for metrics.json: versions, the code (:data:`CODE`) and the
    processor it trained on."""
    import platform

    if torch.device(device).type == "cuda":
        processor = torch.cuda.get_device_name(torch.device(device))
    else:
        cpuinfo = Path("/proc/cpuinfo")
        names = [line.split(":", 1)[1].strip() for line in
                 (cpuinfo.read_text().splitlines() if cpuinfo.is_file() else [])
                 if line.startswith("model name")]
        processor = f"{names[0]} ({len(names)} logical CPUs)" if names else \
            platform.processor() or platform.machine()
    return {"htdviz": __version__, **CODE, "torch": torch.__version__,
            "python": platform.python_version(), "threads": torch.get_num_threads(),
            "processor": processor}


def _code_version() -> dict:
    """The git commit of the code this process loaded, when htdviz runs from a checkout
    (``dirty``: tracked files differed from it), else None: read once, as the package is
    imported, so a long study records the code it runs even if the checkout moves on."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return {"commit": None, "dirty": None}
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                     "--untracked-files=no"], check=True,
                                    capture_output=True, text=True, timeout=10).stdout)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


#: The code this process runs (:func:`_code_version`), for each run's metrics.json.
CODE = _code_version()


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
        "software": _software(device),
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
        state = {k: v.detach().cpu().contiguous() for k, v in distiller.state_dict().items()}
        if state:
            extra["distiller.safetensors"] = lambda file: save_file(state, str(file))
    written = write_run(path, run, extra)
    checkpoint_path(path).unlink(missing_ok=True)
    return written


def train_config(config: TeacherConfig | StudentConfig) -> TrainConfig:
    """The training recipe of a run's configuration."""
    distilling = {"distill_weight": config.distill_weight} \
        if isinstance(config, StudentConfig) else {}
    return TrainConfig(epochs=config.epochs, eval_every=config.eval_every,
                       random_state=config.seed, lr=config.lr,
                       weight_decay=config.weight_decay, schedule=config.schedule,
                       updates=config.updates, **distilling)


def teacher_run(config: TeacherConfig | None = None, *, runs_dir: str | Path = "runs",
                device=None, progress: bool = True, **options) -> Path:
    """Train (or reuse) a teacher; returns its run folder.

    Parameters
    ----------
    config : TeacherConfig, optional
        The run; or give its fields as keywords instead (``**options``: ``model``,
        ``dim``, ``dataset``, ``epochs``, ...; see :class:`htdviz.config.TeacherConfig`
        for each and its default, and :func:`teacher_config` for data files).
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
    if config is None:
        config = teacher_config(**options)
    elif not isinstance(config, TeacherConfig):
        raise TypeError(f"teacher_run's first argument is a TeacherConfig, got "
                        f"{config!r}; give the options as keywords (model=..., dim=...)")
    elif options:
        raise TypeError(f"teacher_run takes a configuration or options, not both (got "
                        f"{', '.join(options)} beside a configuration)")
    path = Path(runs_dir) / config.folder_name()
    if finished(path):
        return path
    ds = dataset_of(config)
    net = build_model(config, ds, config.dim)
    device = torch.device(device) if device else default_device()
    result = fit(net, ds, train_config(config), device=device,
                 progress=_bar(f"teacher {config.model} d{config.dim}", progress),
                 checkpoint=checkpoint_path(path))
    return _save_run(path, config, net, result, device)


def make_distiller(config: StudentConfig, teacher_users, teacher_items,
                   generator: torch.Generator | None = None, teacher_model=None):
    """The distiller ``config`` describes: its method's class (:func:`htdviz.distill.get_method`)
    built with the method's options; None for method "student" (trained alone).

    Parameters
    ----------
    config : StudentConfig
    teacher_users, teacher_items : arrays of shape (n_users, d_t), (n_items, d_t)
    generator : torch.Generator, optional
        Draws the distiller's initialisation and Gumbel noise (default: the global torch
        RNG).
    teacher_model : Recommender, optional
        The trained teacher. A method that reads the teacher's scores (RRD: its ranking)
        gets them from the model's own scorer where they are not dot products of the
        representations (NeuMF); needed then.

    The student's representations are ``representation_width(config.dim)`` columns of
    its model (2 * dim for NeuMF); where the model reads them as several spaces
    (NeuMF with ``space="towers"``) there is one distiller per space
    (:class:`htdviz.distill.spaces.PerSpace`).
    """
    cls = distill.get_method(config.method)
    if cls is None:
        return None
    model = models.get_model(config.model)
    extra = {}
    if cls.needs_scores and model.scorer is not models.Recommender.scorer:
        if teacher_model is None:
            raise ValueError(f"method {config.method!r} ranks the teacher's items, and a "
                             f"{config.model} teacher's score is not a dot product: give "
                             f"teacher_model")
        extra["teacher_scorer"] = teacher_model.scorer(*teacher_model.representations())
    reads = {name: getattr(config, name) for name in model.distill_options}
    student_spaces = model.representation_spaces(model.representation_width(config.dim),
                                                 **reads)
    if len(student_spaces) == 1:
        return cls(teacher_users, teacher_items, student_spaces[0].stop,
                   generator=generator, **extra, **config.options)
    if cls.needs_scores:
        raise ValueError(f"method {config.method!r} distils the whole model's scores, not "
                         f"one space each: use space 'concat', not {config.space!r}")
    from .distill.spaces import PerSpace

    teacher_spaces = model.representation_spaces(teacher_users.shape[1], **reads)
    return PerSpace(cls, teacher_users, teacher_items, teacher_spaces, student_spaces,
                    generator=generator, **config.options)


def student_run(teacher_dir: str | Path, method: str | StudentConfig | None = None,
                dim: int | None = None, *, runs_dir: str | Path | None = None, device=None,
                progress: bool | dict = True, **options) -> Path:
    """Distil (or reuse) a student from a finished teacher run; returns its folder.

    The student is trained on its teacher's data set (for a data file: the same file,
    checked against the sha256 the teacher recorded) with the teacher's lr and weight
    decay. A student alone with its teacher's size, seed, epochs and schedule is the
    teacher's run again (:func:`trains_as_teacher`): its folder is written from the
    teacher's, which records it as ``trained_as`` in metrics.json, instead of training.

    Parameters
    ----------
    teacher_dir : path
        A finished teacher run.
    method : str or StudentConfig, optional
        Any registered method (:func:`htdviz.distill.method_names`; "student": trained
        alone), or the whole configuration. Default: that of
        :class:`htdviz.config.StudentConfig` (HTD).
    dim : int, optional
        d_s (default: StudentConfig's).
    runs_dir : path, optional
        Default: the teacher's parent folder.
    device : str, optional
        Default: CUDA when present.
    progress : bool or dict, default True
        A bar named after the run ("htd d20 s0"; a dict: more tqdm options for it, see
        :func:`htdviz.train.fit`).
    **options
        The other settings of :class:`~htdviz.config.StudentConfig` (``epochs``, ``seed``,
        ``distill_weight``, ...) and the method's options (HTD's ``n_groups``, ``alpha``,
        ...: :func:`htdviz.distill.method_options`); their defaults where not given.

    Examples
    --------
    >>> path = student_run(teacher_path, "htd", 8, epochs=1, n_groups=6,
    ...                    progress=False)                          # doctest: +SKIP
    """
    teacher_dir = Path(teacher_dir)
    if not finished(teacher_dir):
        raise FileNotFoundError(f"teacher run {teacher_dir} is missing or unfinished (no "
                                f"metrics.json)")
    if isinstance(method, StudentConfig):
        if dim is not None or options:
            given = ["dim"] * (dim is not None) + list(options)
            raise TypeError(f"student_run takes a configuration or options, not both (got "
                            f"{', '.join(given)} beside a configuration)")
        config = method
    else:
        inherited = sorted(set(options) & set(INHERITED))
        if inherited:
            raise TypeError(f"student_run: {', '.join(inherited)} come from the teacher run "
                            f"{teacher_dir.name}, not from the student's options")
        given = {k: v for k, v in (("method", method), ("dim", dim)) if v is not None}
        config = StudentConfig(**given, **options)
    teacher = TeacherConfig.from_dict(load_run(teacher_dir, embeddings=False).config)
    config = config.inherit(teacher_dir.name, teacher)
    path = Path(runs_dir or teacher_dir.parent) / config.folder_name()
    if finished(path):
        return path
    if trains_as_teacher(config, teacher):
        return _teacher_as_student(teacher_dir, path, config)
    ds = dataset_of(teacher)
    teacher_reprs = load_run(teacher_dir)
    teacher_users = teacher_reprs.representations("users")
    teacher_items = teacher_reprs.representations("items")
    net = build_model(config, ds, config.dim)
    # the distiller's own initialisation and Gumbel noise: a stream of its own
    generator = torch.Generator().manual_seed(config.seed + 1)
    method = distill.get_method(config.method)
    # a method that ranks the teacher's items may need the teacher's own scorer (NeuMF)
    teacher_model = models.load(teacher_dir / "model.safetensors", ds) \
        if method is not None and method.needs_scores else None
    distiller = make_distiller(config, teacher_users, teacher_items, generator, teacher_model)
    device = torch.device(device) if device else default_device()
    result = fit(net, ds, train_config(config), distiller=distiller, device=device,
                 progress=_bar(f"{config.method} d{config.dim} s{config.seed}", progress),
                 checkpoint=checkpoint_path(path))
    return _save_run(path, config, net, result, device, distiller)


#: What a student alone must share with its teacher to train exactly as the teacher did
#: (besides what it inherits, :data:`htdviz.config.INHERITED`).
SAME_AS_TEACHER = ("dim", "epochs", "eval_every", "seed", "schedule", "updates")


def trains_as_teacher(config: StudentConfig, teacher: TeacherConfig) -> bool:
    """Whether the student run ``config`` (inherited from ``teacher``) is its teacher's run
    again: a student alone of the teacher's size, seed, epochs and schedule trains the
    same model on the same data with the same initialisation and batches
    (tests/test_experiment.py trains both and compares), e.g. the paper's phi = 1.0 cell."""
    return distill.get_method(config.method) is None and all(
        getattr(config, name) == getattr(teacher, name) for name in SAME_AS_TEACHER)


def _teacher_as_student(teacher_dir: Path, path: Path, config: StudentConfig) -> Path:
    """The teacher's run written as the student run ``path`` (its configuration; metrics
    with ``trained_as``: the teacher's folder), instead of training it again."""
    run = load_run(teacher_dir)
    run = replace(run, config=config.to_dict(),
                  metrics={**run.metrics, "trained_as": teacher_dir.name})
    # the teacher's own files, byte for byte (write_run writes these two before its extras)
    copies = {name: (lambda file, name=name: shutil.copyfile(teacher_dir / name, file))
              for name in ("history.csv", "model.safetensors")}
    return write_run(path, run, copies)


def run_demo(student_dim: int = 20, epochs: int = 30, teacher_epochs: int = 100,
             runs_dir: str | Path = "runs", report: str | Path = "reports/htdviz_report.html",
             device=None, progress: bool = True, max_heatmap: int = 400,
             projection: str = "umap", seed: int = 0, dataset: str | Path = "citeulike",
             min_items: int = 5, user_col: str = "user", item_col: str = "item",
             methods=()) -> Path:
    """The main job: train (or reuse) a teacher and its students, then write the report
    (:func:`htdviz.report.write_report`); returns the report's path.

    Parameters
    ----------
    student_dim : int, default 20
        d_s of the students (phi = d_s / 200).
    epochs : int, default 30
        Student epochs (the paper: 100; the temperature schedule anneals over these).
    teacher_epochs : int, default 100
    runs_dir, report : path
    device : str, optional
        Default: CUDA when present.
    progress : bool, default True
        Progress bars of the runs, and one line per phase of the report on stderr.
    max_heatmap : int, default 400
        Entities shown in the similarity heatmaps.
    projection : {"umap", "pca"}, default "umap"
    seed : int, default 0
    dataset : str or Path, default "citeulike"
        A name or a data file (:func:`htdviz.experiment.load_dataset`); CiteULike uses the
        authors' reference split, a file a random one seeded by ``seed``.
    min_items, user_col, item_col
        Data-file options (:func:`htdviz.data.load_file`).
    methods : sequence of str, default :data:`htdviz.report.METHODS`
        The students: registered method names (:func:`htdviz.distill.method_names`), each
        trained with its default options. The report compares HTD with FTD and the student
        alone, so these three are always among them; every other method (one of your own)
        joins the views that compare all students (accuracy, curves, agreement, error
        bands, discrepancy, preservation, capacity).
    """
    from . import report as report_module

    def say(message):
        if progress:
            print(f"[report {time.perf_counter() - tic:6.0f} s] {message}", file=sys.stderr,
                  flush=True)

    methods = list(dict.fromkeys([*report_module.METHODS, *methods]))
    for method in methods:
        distill.get_method(method)                       # an unknown name fails before training
    tic = time.perf_counter()
    teacher_dir = teacher_run(epochs=teacher_epochs, runs_dir=runs_dir, device=device,
                              progress=progress, seed=seed, dataset=dataset,
                              min_items=min_items, user_col=user_col, item_col=item_col)
    student_dirs = {m: student_run(teacher_dir, m, student_dim, epochs=epochs,
                                   runs_dir=runs_dir, device=device, progress=progress,
                                   seed=seed)
                    for m in methods}
    seconds_training = time.perf_counter() - tic
    say("runs ready; loading the data set and the runs")
    teacher = load_run(teacher_dir)
    data_set = dataset_of(teacher.config)
    students = {m: load_run(p) for m, p in student_dirs.items()}
    say(f"drawing the report ({projection.upper()} maps, heatmaps, discrepancies, capacity "
        f"diagnostics of {data_set.n_items:,} items)")
    split = data_set.info.get("split")
    settings = (f"{data_set.name}, {split} split ({data_set.n_users:,} users, "
                f"{data_set.n_items:,} items, {data_set.n_train:,} training interactions); "
                f"BPR-MF teacher d_t = 200, {teacher_epochs} epochs; "
                f"students d_s = {student_dim} (phi = {student_dim / 200:g}), {epochs} epochs; "
                f"seed {seed}. Training {seconds_training / 60:.1f} min (finished runs "
                f"reused).")
    path = report_module.write_report(report, data_set, teacher, students, settings,
                                      max_heatmap, projection, seed)
    say(f"report written: {path}")
    return path


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
    unknown = set(teacher) - {f.name for f in fields(TeacherConfig)}
    if unknown:
        raise ValueError(f"teacher: unknown arguments {sorted(unknown)}")
    t_config = teacher_config(**teacher)
    t_folder = t_config.folder_name()
    rows = [{"run": "teacher", "folder": t_config.folder_name(), "epochs": t_config.epochs}]
    for name, (method, dim, options) in (students or {}).items():
        config = StudentConfig(method=method, dim=dim, **options).inherit(t_folder, t_config)
        rows.append({"run": name, "folder": config.folder_name(), "epochs": config.epochs})
    table = pd.DataFrame(rows)
    table["reused"] = [finished(Path(runs_dir) / folder) for folder in table["folder"]]
    return table


def _bar(name: str, progress: bool | dict):
    """The ``progress`` argument of :func:`htdviz.train.fit` for a run called ``name``."""
    if isinstance(progress, dict):
        return {"desc": name, **progress}
    return name if progress else False
