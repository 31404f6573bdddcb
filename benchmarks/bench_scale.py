"""The cost curve: training, evaluation and memory from small data sets to MovieLens-20M size.

    python benchmarks/bench_scale.py [--sizes 0.025 0.1 0.25 1] [--steps 30] [--full-epoch 0.1]
                                     [--device cpu]

Each size is a fraction f of MovieLens-20M (138,000 users, 27,000 items, 20M
interactions): f x 138,000 users and f x 20M interactions over the 27,000 items, drawn by
``data.synthetic_large`` in chunks (no user x item matrix). Each size runs in a process of
its own, so its peak memory is its own. Per size:

- generation: seconds to draw the data set and split it;
- teacher epoch (BPR-MF, d = 200, batch 1,024): dense (the recipe: Adam over every row at
  every step) and sparse (``updates="sparse"``: the batch's rows only), each timed over
  ``--steps`` steps after 3 warm-up steps and scaled to the steps of one epoch; with
  ``--full-epoch F``, sizes up to F also run one whole sparse epoch through ``fit`` to check
  the scaling;
- HTD epoch (d_s = 20, K = 30, sparse updates), timed and scaled the same way;
- full evaluation: Recall/NDCG@{10,20,50} of all users (``evaluate.full_ranking``, training
  items excluded), one split, timed once;
- peak memory (max RSS of the process).

Then a least-squares fit of log(seconds) against log(interactions) for each step gives how
each cost grows (exponent 1: linear in the data). Timings of one run on a machine that may
be busy: read the ratios, not the last digit.
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import numpy as np
import torch

ML20M = dict(n_users=138_000, n_items=27_000, n_interactions=20_000_000)


def _steps_seconds(model, ds, updates: str, steps: int, distiller=None) -> float:
    """Seconds per training step (mean over ``steps`` after 3 warm-up steps): the step of
    ``train.fit`` on random batches of the training pairs."""
    from htdviz import train

    users, items = ds.train_pairs()
    rng = np.random.default_rng(0)
    sampler = train.NegativeSampler(ds.train)
    config = train.TrainConfig(updates=updates)
    optimizers, rows = train._optimizers(model, distiller, config)
    times = []
    for step in range(steps + 3):
        pick = rng.integers(users.size, size=config.batch_size)
        u = torch.from_numpy(users[pick])
        pos = torch.from_numpy(items[pick])
        neg = torch.from_numpy(sampler.sample(users[pick], rng))
        tic = time.perf_counter()
        train._step(model, u, pos, neg, distiller, optimizers, rows, config.distill_weight)
        if step >= 3:
            times.append(time.perf_counter() - tic)
    return float(np.mean(times))


def measure(fraction: float, steps: int, full_epoch: bool, device: str) -> dict:
    from htdviz import data, distill, evaluate, models, train

    torch.set_flush_denormal(True)
    sizes = dict(n_users=round(ML20M["n_users"] * fraction), n_items=ML20M["n_items"],
                 n_interactions=round(ML20M["n_interactions"] * fraction))
    tic = time.perf_counter()
    ds = data.synthetic_large(**sizes, seed=0)
    out = {"fraction": fraction, "users": ds.n_users, "items": ds.n_items,
           "interactions": ds.info["n_interactions"], "train_pairs": ds.n_train,
           "generate_s": time.perf_counter() - tic}
    steps_per_epoch = math.ceil(ds.n_train / 1024)
    out["steps_per_epoch"] = steps_per_epoch
    gen = torch.Generator().manual_seed(0)
    for updates in ("dense", "sparse"):
        teacher = models.BPRMF(ds.n_users, ds.n_items, 200, generator=gen).to(device)
        out[f"teacher_{updates}_epoch_s"] = \
            _steps_seconds(teacher, ds, updates, steps) * steps_per_epoch
    if full_epoch:
        teacher = models.BPRMF(ds.n_users, ds.n_items, 200, generator=gen)
        result = train.fit(teacher, ds, train.TrainConfig(epochs=1, eval_every=1,
                                                          updates="sparse"),
                           device=device, progress=False)
        out["teacher_sparse_full_epoch_s"] = result.seconds
    teacher_users, teacher_items = teacher.representations()
    student = models.BPRMF(ds.n_users, ds.n_items, 20, generator=gen).to(device)
    htd = distill.HTD(teacher_users, teacher_items, 20, n_groups=30, generator=gen).to(device)
    htd.start_epoch(50, 100)                        # mid-training temperature
    out["htd_sparse_epoch_s"] = _steps_seconds(student, ds, "sparse", steps,
                                               distiller=htd) * steps_per_epoch
    tic = time.perf_counter()
    evaluate.full_ranking(teacher_users, teacher_items, ds, "test")
    out["evaluation_s"] = time.perf_counter() - tic
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.025, 0.1, 0.25, 1.0],
                        help="fractions of MovieLens-20M")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--full-epoch", type=float, default=0.1,
                        help="also one whole sparse teacher epoch for sizes up to this")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:                        # a child: one size, one JSON line
        print(json.dumps(measure(args.one, args.steps, args.one <= args.full_epoch,
                                 args.device)))
        return
    rows = []
    for fraction in args.sizes:
        child = subprocess.run([sys.executable, __file__, "--one", str(fraction),
                                "--steps", str(args.steps), "--full-epoch",
                                str(args.full_epoch), "--device", args.device],
                               capture_output=True, text=True)
        if child.returncode != 0:
            raise SystemExit(f"size {fraction} failed:\n{child.stderr[-2000:]}")
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    import pandas as pd

    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    cols = ["interactions", "users", "generate_s", "teacher_dense_epoch_s",
            "teacher_sparse_epoch_s", "teacher_sparse_full_epoch_s", "htd_sparse_epoch_s",
            "evaluation_s", "peak_rss_gib"]
    print(table[[c for c in cols if c in table]].round(2).to_string(index=False))
    if len(table) > 1:
        x = np.log(table["interactions"])
        print("\nGrowth, seconds ~ interactions^b:")
        for col in cols[2:-1]:
            if col in table and table[col].notna().sum() > 1:
                ok = table[col].notna()
                b = np.polyfit(x[ok], np.log(table.loc[ok, col]), 1)[0]
                print(f"  {col:<28} b = {b:.2f}")
        last = table.iloc[-1]
        print(f"  dense / sparse teacher epoch at the largest size: "
              f"{last['teacher_dense_epoch_s'] / last['teacher_sparse_epoch_s']:.1f}x")


if __name__ == "__main__":
    main()
