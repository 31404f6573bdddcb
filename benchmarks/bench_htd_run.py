"""A whole HTD run, epoch by epoch: the training seconds of every epoch of a student run.

    python benchmarks/bench_htd_run.py --teacher runs/<BPR teacher run> [--method htd]
                                       [--dim 20] [--epochs 100] [--out epochs.csv]

The student run that ``python -m htdviz distill --method <method> --dim <dim>`` trains
from that teacher (same data set, model, distiller, seeds and recipe; evaluation every
10 epochs), without writing a run folder. The seconds of each epoch are measured from the
distiller's ``start_epoch`` hook (called as each epoch starts) to the next, evaluations
left out, so the curve shows the dense phase (high temperature: every expert on every
entity), the transition and the sparse phase. ``kill -TSTP`` pauses the run without
counting the pause (``kill -CONT`` resumes it). Prints the curve in blocks of ten epochs
and the total (each epoch's line is printed as it ends); ``--out`` writes one row per epoch
(epoch, temperature, seconds).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from htdviz import experiment, train
from htdviz.config import StudentConfig, TeacherConfig
from htdviz.runs import load_run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--teacher", required=True, help="a finished teacher run folder")
    parser.add_argument("--method", default="htd")
    parser.add_argument("--dim", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="CSV of the per-epoch seconds")
    args = parser.parse_args()

    teacher_dir = Path(args.teacher)
    teacher = TeacherConfig.from_dict(load_run(teacher_dir, embeddings=False).config)
    config = StudentConfig(method=args.method, dim=args.dim, epochs=args.epochs,
                           seed=args.seed).inherit(teacher_dir.name, teacher)
    dataset = experiment.dataset_of(teacher)
    run = load_run(teacher_dir)
    model = experiment.build_model(config, dataset, args.dim)
    distiller = experiment.make_distiller(config, run.representations("users"),
                                          run.representations("items"),
                                          torch.Generator().manual_seed(args.seed + 1))
    # the timings below read fit's own clock (bound around fit), which leaves out a stop
    # by `kill -TSTP <pid>` until `kill -CONT <pid>`; evaluations are left out by hand
    clock = None
    starts, left_out = [], [0.0]

    def largest_groups() -> str:
        """The largest hard group's share of users and of items (HTD, DE): the entity
        level's work grows with the square of the group sizes."""
        groups = [distiller.hard_groups(kind) for kind in ("user", "item")]
        if groups[0] is None:
            return "-"
        shares = [float(torch.bincount(g).max()) / len(g) for g in groups]
        return " / ".join(f"{share:.0%}" for share in shares)

    start_epoch, evaluate_both = distiller.start_epoch, train.evaluate_both

    def timed_start(epoch, n_epochs):
        if starts:                                    # the epoch before this one, as it ends
            e, t0, ev0, tau = starts[-1]
            seconds = clock() - t0 - (left_out[0] - ev0)
            tau = "-" if tau is None else f"{tau:.2g}"       # FTD, FitNet: no temperature
            print(f"epoch {e:3d}  tau {tau}  {seconds:6.1f} s  largest group: "
                  f"{largest_groups()}", flush=True)
        starts.append((epoch, clock(), left_out[0]))
        start_epoch(epoch, n_epochs)
        starts[-1] += (getattr(distiller, "temperature", None) or
                       getattr(getattr(distiller, "assignment", None), "temperature", None),)

    def timed_evaluation(*a, **k):
        tic = clock()
        try:
            return evaluate_both(*a, **k)
        finally:                              # the clock leaves a stop out already
            left_out[0] += clock() - tic

    distiller.start_epoch = timed_start
    train.evaluate_both = timed_evaluation
    print(f"{teacher.dataset}: {dataset.n_train:,} training pairs; {args.method} d_s = "
          f"{args.dim}, {args.epochs} epochs; CPU, {torch.get_num_threads()} threads",
          flush=True)
    with train.training_clock() as clock:
        result = train.fit(model, dataset, experiment.train_config(config),
                           distiller=distiller, device="cpu", progress=False)
        end = (None, clock(), left_out[0], None)
    rows = [{"epoch": e, "temperature": tau, "seconds": (t1 - t0) - (ev1 - ev0)}
            for (e, t0, ev0, tau), (_, t1, ev1, _) in zip(starts, starts[1:] + [end])]
    curve = pd.DataFrame(rows)
    for block in range(0, len(curve), 10):
        part = curve.iloc[block:block + 10]
        taus = " -> ".join("-" if pd.isna(t) else f"{t:.2g}"
                           for t in part.temperature.iloc[[0, -1]])
        print(f"epochs {block:3d}-{block + len(part) - 1:3d}: tau {taus}, "
              f"{part.seconds.sum():7.1f} s "
              f"({part.seconds.min():.1f}-{part.seconds.max():.1f} s an epoch)")
    print(f"training {curve.seconds.sum() / 60:.1f} min (fit: {result.seconds / 60:.1f} min); "
          f"test Recall@50 {result.history['test_recall@50'].iloc[-1]:.4f}")
    if args.out:
        curve.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
