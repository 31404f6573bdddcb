"""Seconds per training epoch: BPR teacher, student alone, FTD, DE, HTD, FitNet on CiteULike.

    python benchmarks/bench_distill.py [--teacher runs/<teacher run>] [--device cuda]
                                       [--only 'htd (tau=1)' ...]

d_t = 200, d_s = 20, K = 30, batch 1024 (docs/method.md §10.5). RRD's epoch includes its
sampling of each user's items (its teacher lists are made once, before the first epoch, and
not timed). HTD is timed twice: at the
first epoch (tau = 1: every Gumbel-softmax weight vector dense, all 30 experts evaluated)
and in the annealed regime (tau = 1e-5, reached at epoch 50 of 100: weights one-hot to
float precision, only the selected expert evaluated). Without --teacher the teacher is
random N(0, 0.1^2) (the cost does not depend on the teacher's values).
Prints each figure beside the authors' code (docs/method.md §10.5) and the ratio.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from htdviz import data, distill, models
from htdviz.train import TrainConfig, default_device, fit

CASES = ("teacher", "student", "fitnet", "ftd", "de (tau=1)", "htd (tau=1)", "htd (tau=1e-5)",
         "rrd", "htd+rrd (tau=1)")
AUTHORS = {"cpu": {"teacher": 3.0, "ftd": 13.0, "htd (tau=1)": 73.0, "htd (tau=1e-5)": 73.0},
           "cuda": {"teacher": 0.5, "ftd": 0.9, "htd (tau=1)": 6.0, "htd (tau=1e-5)": 6.0}}


def epoch_seconds(make_model, dataset, device, distiller=None, repeats=2) -> float:
    times = []
    for _ in range(repeats):
        model = make_model()
        d = distiller() if distiller else None
        result = fit(model, dataset, TrainConfig(epochs=1, eval_every=1), distiller=d,
                     device=device, progress=False)
        times.append(result.seconds)
    return statistics.median(times)


def teacher_representations(teacher, ds):
    """(users, items) of the teacher run folder ``teacher``, or random N(0, 0.1^2) ones of
    d = 200 when None (the cost does not depend on the teacher's values)."""
    if teacher:
        with np.load(Path(teacher) / "embeddings.npz") as z:
            return torch.from_numpy(z["users"]), torch.from_numpy(z["items"])
    g = torch.Generator().manual_seed(0)
    return (torch.randn(ds.n_users, 200, generator=g) * 0.1,
            torch.randn(ds.n_items, 200, generator=g) * 0.1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--teacher", default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", nargs="+", default=None, metavar="CASE",
                        help="time only these cases, e.g. 'htd (tau=1)' 'htd (tau=1e-5)'")
    args = parser.parse_args()
    unknown = sorted(set(args.only or ()) - set(CASES))
    if unknown:
        parser.error(f"--only: unknown case {unknown[0]!r}; the cases are "
                     f"{', '.join(map(repr, CASES))}")
    device = torch.device(args.device) if args.device else default_device()
    ds = data.load_citeulike()
    tu, ti = teacher_representations(args.teacher, ds)

    def bpr(dim):
        return lambda: models.BPRMF(ds.n_users, ds.n_items, dim,
                                    generator=torch.Generator().manual_seed(0))

    cases = {
        "teacher": (bpr(200), None),
        "student": (bpr(20), None),
        "fitnet": (bpr(20), lambda: distill.FitNet(tu, ti, 20)),
        "ftd": (bpr(20), lambda: distill.FTD(tu, ti)),
        "de (tau=1)": (bpr(20), lambda: distill.DE(tu, ti, 20)),
        "htd (tau=1)": (bpr(20), lambda: distill.HTD(tu, ti, 20)),
        "htd (tau=1e-5)": (bpr(20), lambda: distill.HTD(tu, ti, 20, temperature_start=1e-5)),
        "rrd": (bpr(20), lambda: distill.RRD(tu, ti, 20)),
        "htd+rrd (tau=1)": (bpr(20), lambda: distill.get_method("htd+rrd")(tu, ti, 20)),
    }
    assert tuple(cases) == CASES
    cases = {label: cases[label] for label in args.only or CASES}
    kind = "cuda" if device.type == "cuda" else "cpu"
    name = torch.cuda.get_device_name(device) if kind == "cuda" else \
        f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}")
    print(f"{'epoch of':<16}{'seconds':>9}{'authors':>9}{'speed-up':>10}")
    if kind == "cuda":          # CUDA's start and kernel loading, not timed
        make_model, make_distiller = next(iter(cases.values()))
        epoch_seconds(make_model, ds, device, make_distiller, repeats=1)
    for label, (make_model, make_distiller) in cases.items():
        seconds = epoch_seconds(make_model, ds, device, make_distiller, args.repeats)
        ref = AUTHORS[kind].get(label)
        extra = f"{ref:>9.1f}{ref / seconds:>9.1f}x" if ref else ""
        print(f"{label:<16}{seconds:>9.3f}{extra}", flush=True)


if __name__ == "__main__":
    main()
