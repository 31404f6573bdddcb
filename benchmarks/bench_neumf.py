"""Speed of NeuMF's full-ranking evaluation: every CiteULike user ranked against all items.

NeuMF's score needs its MLP for every (user, item) pair (5,551 x 16,980 = 94 M pairs on
CiteULike-t). :meth:`htdviz.models.NeuMF.scorer` computes the first MLP layer's user and
item parts once, and the per-pair rest (ReLU, output weights) in one compiled pass. This
times :func:`htdviz.evaluate.full_ranking` of all users on the test split for NeuMF at
d = 200 (default one MLP layer) with random weights, against BPR-MF's dot products at the
same d; the best of ``--repeats`` runs after one warm-up (other processes on a shared
machine only ever slow a run down: say so where you quote the figure). The goal is 60 s
on a 2-core CPU.

Run: ``HTDVIZ_DATA_MIRROR=../shared/data python benchmarks/bench_neumf.py``
(``--threads`` torch threads, default all; ``--mlp-layers`` for a deeper MLP; ``--device``).
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from htdviz.data import load_citeulike
from htdviz.evaluate import full_ranking
from htdviz.models import BPRMF, NeuMF

GOAL_SECONDS = 60.0


def best_time(model, dataset, repeats: int) -> tuple[float, float]:
    """(best seconds, test recall@50) of full_ranking of all users with the model's scorer."""
    users, items = model.representations()
    scorer = model.scorer(users, items)
    full_ranking(users, items, dataset, "test", scorer=scorer)        # warm-up (compiles)
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        metrics = full_ranking(users, items, dataset, "test", scorer=model.scorer(users, items))
        times.append(time.perf_counter() - tic)
    return min(times), metrics["recall@50"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=200)
    parser.add_argument("--mlp-layers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = load_citeulike()
    generator = torch.Generator().manual_seed(0)
    neumf = NeuMF(dataset.n_users, dataset.n_items, args.dim, mlp_layers=args.mlp_layers,
                  generator=generator).to(args.device)
    bpr = BPRMF(dataset.n_users, dataset.n_items, args.dim, generator=generator).to(args.device)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} torch threads, load average "
          f"{os.getloadavg()[0]:.1f}, device {args.device}")
    print(f"CiteULike-t: {dataset.n_users} users x {dataset.n_items} items, d = {args.dim}, "
          f"NeuMF mlp_layers = {args.mlp_layers}")
    neumf_s, recall = best_time(neumf, dataset, args.repeats)
    bpr_s, _ = best_time(bpr, dataset, args.repeats)
    print(f"NeuMF full ranking, all users (test): {neumf_s:.1f} s (goal {GOAL_SECONDS:.0f} s: "
          f"{neumf_s / GOAL_SECONDS:.2f} of it); recall@50 of random weights {recall:.4f}")
    print(f"BPR-MF (dot products), same d: {bpr_s:.2f} s; NeuMF / BPR-MF = "
          f"{neumf_s / bpr_s:.1f}x")


if __name__ == "__main__":
    main()
