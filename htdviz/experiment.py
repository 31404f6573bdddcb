"""Headless runs: train a teacher, distil a student, sweep student dims x methods.

Every run writes its own folder under ``runs/`` (name = readable summary + a hash of its
full configuration), holding:

- ``config.json``   everything that defines the run (reused runs are matched on it);
- ``history.csv``   one row per evaluation (losses, valid_* and test_* metrics, seconds);
- ``metrics.json``  final and best-validation metrics, seconds, parameter count, device;
- ``embeddings.npz`` arrays ``users`` (n_users, d) and ``items`` (n_items, d);
- ``model.safetensors`` the model (no pickle); for DE / HTD also ``distiller.safetensors``
  and ``groups.npz`` (arrays ``users``, ``items``: each entity's hard group).

A run is built in a hidden temporary folder and renamed into place only when complete, so
an interrupted run never leaves a folder that looks finished. A finished run with the same
configuration is reused, not retrained.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import data, distill, models
from .train import TrainConfig, default_device, fit

METHODS = ("student", "fitnet", "de", "ftd", "htd")


def load_dataset(name: str = "citeulike", split: str = "reference", seed: int = 0):
    """``"citeulike"`` (split "reference" or "random") or ``"synthetic"`` (planted groups)."""
    if name == "citeulike":
        return data.load_citeulike(split=split, seed=seed)
    if name == "synthetic":
        return data.synthetic(seed=seed)
    raise ValueError(f"dataset must be 'citeulike' or 'synthetic', got {name!r}")


def _run_dir(runs_dir, prefix: str, config: dict) -> Path:
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    return Path(runs_dir) / f"{prefix}-{digest}"


def _finished(path: Path) -> bool:
    return (path / "metrics.json").exists()


def _build_model(kind: str, dataset, dim: int, n_layers: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    if kind == "bpr":
        return models.BPRMF(dataset.n_users, dataset.n_items, dim, generator=generator)
    if kind == "lightgcn":
        return models.LightGCN(dataset, dim, n_layers=n_layers, generator=generator)
    raise ValueError(f"model must be 'bpr' or 'lightgcn', got {kind!r}")


def _write_run(path: Path, config: dict, model, result, device, distiller=None) -> Path:
    """Write every artifact into a temporary folder, then rename it to ``path``."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        result.history.to_csv(tmp / "history.csv", index=False)
        users, items = (x.cpu().numpy() for x in model.representations())
        np.savez(tmp / "embeddings.npz", users=users, items=items)
        models.save(model, tmp / "model.safetensors")
        if distiller is not None and hasattr(distiller, "hard_groups"):
            np.savez(tmp / "groups.npz", users=distiller.hard_groups("user").cpu().numpy(),
                     items=distiller.hard_groups("item").cpu().numpy())
        if distiller is not None:
            state = {k: v.detach().cpu().contiguous() for k, v in distiller.state_dict().items()
                     if "teacher" not in k}
            if state:
                save_file(state, str(tmp / "distiller.safetensors"))
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
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        try:
            os.rename(tmp, path)
        except OSError:
            if not _finished(path):
                raise
            shutil.rmtree(tmp)       # a concurrent run of the same configuration finished first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _train_config(epochs, eval_every, seed, **overrides) -> TrainConfig:
    return TrainConfig(epochs=epochs, eval_every=eval_every, random_state=seed, **overrides)


def teacher_run(model: str = "bpr", dim: int = 200, n_layers: int = 2,
                dataset: str = "citeulike", split: str = "reference", epochs: int = 100,
                eval_every: int = 10, seed: int = 0, lr: float = 1e-3,
                weight_decay: float = 1e-3, runs_dir: str | Path = "runs", device=None,
                progress: bool = True) -> Path:
    """Train (or reuse) a teacher; returns its run folder."""
    config = {"role": "teacher", "model": model, "dim": dim, "dataset": dataset, "split": split,
              "epochs": epochs, "eval_every": eval_every, "seed": seed, "lr": lr,
              "weight_decay": weight_decay}
    if model == "lightgcn":
        config["n_layers"] = n_layers
    path = _run_dir(runs_dir, f"{dataset}-{model}-d{dim}-teacher-s{seed}", config)
    if _finished(path):
        return path
    ds = load_dataset(dataset, split, seed)
    net = _build_model(model, ds, dim, n_layers, seed)
    device = torch.device(device) if device else default_device()
    result = fit(net, ds, _train_config(epochs, eval_every, seed, lr=lr,
                                        weight_decay=weight_decay), device=device,
                 progress=progress)
    return _write_run(path, config, net, result, device)


def make_distiller(method: str, teacher_users, teacher_items, student_dim: int,
                   n_groups: int = 30, alpha: float = 0.5, group_design: str = "P,e",
                   positive_pairs_only: bool = True, detach_student_prototypes: bool = True):
    """The distiller of ``method`` ("student" gives None: the student trains alone)."""
    if method == "student":
        return None
    if method == "ftd":
        return distill.FTD(teacher_users, teacher_items)
    if method == "fitnet":
        return distill.FitNet(teacher_users, teacher_items, student_dim)
    if method == "de":
        return distill.DE(teacher_users, teacher_items, student_dim, n_groups=n_groups)
    if method == "htd":
        return distill.HTD(teacher_users, teacher_items, student_dim, n_groups=n_groups,
                           alpha=alpha, group_design=group_design,
                           positive_pairs_only=positive_pairs_only,
                           detach_student_prototypes=detach_student_prototypes)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def student_run(teacher_dir: str | Path, method: str = "htd", dim: int = 20,
                epochs: int = 100, eval_every: int = 10, seed: int = 0,
                distill_weight: float = 1e-3, n_groups: int = 30, alpha: float = 0.5,
                group_design: str = "P,e", positive_pairs_only: bool = True,
                detach_student_prototypes: bool = True, runs_dir: str | Path | None = None,
                device=None, progress: bool = True) -> Path:
    """Distil (or reuse) a student of ``dim`` from a finished teacher run; returns its folder."""
    teacher_dir = Path(teacher_dir)
    if not _finished(teacher_dir):
        raise FileNotFoundError(f"teacher run {teacher_dir} is missing or unfinished")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    teacher_config = json.loads((teacher_dir / "config.json").read_text())
    config = {"role": "student", "method": method, "dim": dim, "teacher": teacher_dir.name,
              "model": teacher_config["model"], "dataset": teacher_config["dataset"],
              "split": teacher_config["split"], "epochs": epochs, "eval_every": eval_every,
              "seed": seed, "lr": teacher_config["lr"],
              "weight_decay": teacher_config["weight_decay"]}
    if "n_layers" in teacher_config:
        config["n_layers"] = teacher_config["n_layers"]
    if method != "student":
        config["distill_weight"] = distill_weight
    if method in ("de", "htd"):
        config["n_groups"] = n_groups
    if method == "htd":
        config.update(alpha=alpha, group_design=group_design,
                      positive_pairs_only=positive_pairs_only,
                      detach_student_prototypes=detach_student_prototypes)
    label = method
    if method == "htd":
        label += "" if group_design == "P,e" else "-PP"
        label += "" if positive_pairs_only else "-allpairs"
        label += "" if detach_student_prototypes else "-liveproto"
    path = _run_dir(runs_dir or teacher_dir.parent,
                    f"{config['dataset']}-{config['model']}-d{dim}-{label}-s{seed}", config)
    if _finished(path):
        return path
    ds = load_dataset(config["dataset"], config["split"], teacher_config["seed"])
    with np.load(teacher_dir / "embeddings.npz") as z:
        teacher_users, teacher_items = z["users"], z["items"]
    net = _build_model(config["model"], ds, dim, config.get("n_layers", 2), seed)
    torch.manual_seed(seed)      # the distiller's own initialisation
    distiller = make_distiller(method, teacher_users, teacher_items, dim, n_groups, alpha,
                               group_design, positive_pairs_only, detach_student_prototypes)
    device = torch.device(device) if device else default_device()
    train_config = _train_config(epochs, eval_every, seed, lr=config["lr"],
                                 weight_decay=config["weight_decay"],
                                 distill_weight=distill_weight)
    result = fit(net, ds, train_config, distiller=distiller, device=device, progress=progress)
    return _write_run(path, config, net, result, device, distiller)


def load_metrics(run_dir: str | Path) -> dict:
    """config.json and metrics.json of a finished run, flattened into one row."""
    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    row = {"run": run_dir.name, "path": str(run_dir), **config}
    for phase in ("final", "best_valid"):
        for key, value in metrics[phase].items():
            row[f"{phase}_{key}"] = value
    row.update(train_seconds=metrics["train_seconds"], n_parameters=metrics["n_parameters"],
               device=metrics["device"])
    return row


def sweep(dims=(10, 20, 100, 200), methods=("student", "ftd", "htd"), teacher_dir=None,
          jobs: int = 1, runs_dir: str | Path = "runs", progress: bool = True,
          **student_kwargs) -> pd.DataFrame:
    """Every student dim x method from one teacher; returns the tidy table of their metrics.

    With ``jobs > 1`` the runs go to that many parallel processes of ``python -m htdviz``
    (useful on a GPU, where one run leaves most of the device idle).
    """
    if teacher_dir is None:
        teacher_dir = teacher_run(runs_dir=runs_dir, progress=progress)
    grid = [(dim, method) for dim in dims for method in methods]
    if jobs <= 1:
        paths = [student_run(teacher_dir, method, dim, runs_dir=runs_dir, progress=progress,
                             **student_kwargs) for dim, method in grid]
    else:
        paths = _parallel_students(teacher_dir, grid, jobs, runs_dir, student_kwargs)
    return pd.DataFrame([load_metrics(p) for p in paths])


def _cli_args(student_kwargs: dict) -> list[str]:
    """student_run keyword arguments as the options of ``python -m htdviz distill``."""
    args = []
    for key, value in student_kwargs.items():
        if key == "positive_pairs_only":
            args += [] if value else ["--all-pairs"]
        elif key == "detach_student_prototypes":
            args += [] if value else ["--live-prototypes"]
        elif key == "device":
            args += ["--device", str(value)] if value else []
        else:
            args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def _parallel_students(teacher_dir, grid, jobs, runs_dir, student_kwargs) -> list[Path]:
    extra_args = _cli_args(student_kwargs)
    pending = list(enumerate(grid))
    running: dict[int, subprocess.Popen] = {}
    paths: dict[int, Path] = {}
    threads = max(1, (os.cpu_count() or 2) // jobs)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    try:
        while pending or running:
            while pending and len(running) < jobs:
                index, (dim, method) = pending.pop(0)
                cmd = [sys.executable, "-m", "htdviz", "distill", "--teacher", str(teacher_dir),
                       "--method", method, "--dim", str(dim), "--runs", str(runs_dir),
                       "--no-progress", "--print-path", *extra_args]
                running[index] = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                                  text=True)
            for index, proc in list(running.items()):
                if proc.poll() is None:
                    continue
                out = proc.stdout.read()
                del running[index]
                if proc.returncode != 0:
                    raise RuntimeError(f"student run {grid[index]} failed with exit code "
                                       f"{proc.returncode}")
                paths[index] = Path(out.strip().splitlines()[-1])
            time.sleep(0.2)
    finally:
        for proc in running.values():       # on failure or interrupt, stop the others
            proc.terminate()
            proc.wait()
    return [paths[i] for i in range(len(grid))]
