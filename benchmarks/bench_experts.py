"""The expert mixture of DE/HTD across the temperature schedule: each path's time per tau.

    python benchmarks/bench_experts.py [--repeats 5] [--taus 1 0.3 0.1 ...]

One training step's group-assignment work (forward and backward of sum_k z_k f_k(s) for a
batch's unique users and, separately, its unique items; K = 30, d_s = 20, d_t = 200) with
z drawn by the Gumbel-softmax at each tau, as the training loop does after the process has
used torch's thread pool (every pipeline builds a model first). The batch sizes are those
of a Foursquare batch of 1,024 training pairs (read from the mirror, else 1,000 users and
2,000 items). Paths:

- mixture: the two big matmuls over every (entity, expert) pair, ``MIXTURE_ROWS`` rows at a
  time (as the CPU runs it); "mixture, whole" all rows at once;
- padded: each expert on the rows it weighs, in zero-padded blocks (two batched matmuls);
- per expert: each expert on its own rows (K small matmuls);
- chosen: what ``Experts.forward`` picks, for the weights of ``gumbel_softmax_weights``
  (those below tau * 2^-24 / K set to 0);
- chosen, all kept: the same for the plain Gumbel-softmax weights (every weight kept, as
  before that threshold).

Every step runs inside ``htdviz._threads.flush_denormals`` (as ``fit`` does); the column
"mixture, workers not flushed" is the mixture with flush-to-zero set in the calling thread
only (the behaviour before flush_denormals). Times are the best of --repeats, interleaved;
ratios are to the dense mixture at tau = 1. The last column is chosen / fastest path.
"""
from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from htdviz import data
from htdviz._threads import flush_denormals
from htdviz.distill import experts as experts_module
from htdviz.distill._common import gumbel_like, linear
from htdviz.distill.experts import Experts, gumbel_softmax_weights

K, STUDENT_DIM, TEACHER_DIM, BATCH = 30, 20, 200, 1024


def batch_sizes(seed: int = 0) -> tuple[int, int, str]:
    """Unique users and items (positives and negatives) of one Foursquare batch."""
    mirror = os.environ.get("HTDVIZ_DATA_MIRROR")
    path = Path(mirror or "") / "foursquare" / "users.dat"
    if not mirror or not path.exists():
        return 1000, 2000, "assumed (no Foursquare mirror)"
    dataset = data.load_users_file(path)
    users, items = dataset.train_pairs()
    rng = np.random.default_rng(seed)
    pick = rng.choice(users.size, BATCH, replace=False)
    negatives = data.NegativeSampler(dataset.train).sample(users[pick], rng)
    n_users = np.unique(users[pick]).size
    n_items = np.unique(np.concatenate([items[pick], negatives])).size
    return n_users, n_items, f"a Foursquare batch of {BATCH} pairs"


class Side:
    """One entity type: teacher and student rows, a selection network and its experts."""

    def __init__(self, n: int, generator: torch.Generator, logit_std: float):
        # teacher rows scaled so that the selection logits have std ``logit_std``: a
        # trained selection network is peaked (HTD's groups collapse to a few), which is
        # what sends Gumbel-softmax weights through the subnormal range as tau falls
        scale = logit_std / (math.sqrt(TEACHER_DIM) / math.sqrt(3 * TEACHER_DIM))
        self.teacher = torch.randn(n, TEACHER_DIM, generator=generator) * scale
        self.student = torch.randn(n, STUDENT_DIM, generator=generator) * 0.1
        self.selection = linear(TEACHER_DIM, K, generator)
        self.experts = Experts(K, STUDENT_DIM, TEACHER_DIM, generator)
        self.noise = gumbel_like(torch.empty(n, K), generator)

    def weights(self, tau: float, all_kept: bool = False) -> torch.Tensor:
        alpha = torch.softmax(self.selection(self.teacher), dim=1) + 1e-10
        logits = alpha.log() + self.noise
        return torch.softmax(logits / tau, dim=1) if all_kept else \
            gumbel_softmax_weights(logits, tau)

    def step(self, tau: float, path: str) -> None:
        """Forward and backward of the reconstruction loss by ``path``."""
        student = self.student.clone().requires_grad_(True)
        z = self.weights(tau, all_kept=path == "chosen, all kept")
        if path == "mixture, whole":
            rows, experts_module.MIXTURE_ROWS = experts_module.MIXTURE_ROWS, len(student)
            try:
                out = self.experts.mixture(student, z)
            finally:
                experts_module.MIXTURE_ROWS = rows
        elif path in ("mixture", "chosen", "chosen, all kept"):
            out = self.experts.mixture(student, z) if path == "mixture" else \
                self.experts(student, z)
        else:
            expert, row = torch.nonzero(z.detach().T).unbind(1)
            run = self.experts.padded_mixture if path == "padded" else \
                self.experts.per_expert_mixture
            out = run(student, z, expert, row)
        (self.teacher - out).square().sum().backward()
        self.experts.zero_grad(set_to_none=True)
        self.selection.zero_grad(set_to_none=True)

    def chosen(self, tau: float, all_kept: bool = False) -> str:
        """The path ``Experts.forward`` takes at ``tau``."""
        with torch.no_grad():
            return self.experts.path(self.weights(tau, all_kept))[0]

    def nonzero_share(self, tau: float, all_kept: bool = False) -> float:
        with torch.no_grad():
            return float((self.weights(tau, all_kept) > 0).float().mean())


def timed(sides, tau: float, path: str, workers_flushed: bool = True) -> float:
    if workers_flushed:
        with flush_denormals():
            tic = time.perf_counter()
            for side in sides:
                side.step(tau, path)
            return time.perf_counter() - tic
    torch.set_flush_denormal(True)                 # the calling thread only
    try:
        tic = time.perf_counter()
        for side in sides:
            side.step(tau, path)
        return time.perf_counter() - tic
    finally:
        torch.set_flush_denormal(False)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--logit-std", type=float, default=3.0,
                        help="std of the selection network's logits (its peakedness)")
    parser.add_argument("--taus", type=float, nargs="+",
                        default=[1.0, 0.5, 0.3, 0.18, 0.1, 0.07, 0.05, 0.03, 0.02, 0.01,
                                 1e-3, 1e-4])
    args = parser.parse_args()
    n_users, n_items, where = batch_sizes()
    generator = torch.Generator().manual_seed(0)
    sides = [Side(n, generator, args.logit_std) for n in (n_users, n_items)]  # pool exists
    paths = ["mixture", "padded", "per expert", "chosen", "chosen, all kept", "mixture, whole"]
    print(f"CPU, {torch.get_num_threads()} threads; torch {torch.__version__}; "
          f"{n_users} users + {n_items} items ({where}); K={K}, d_s={STUDENT_DIM}, "
          f"d_t={TEACHER_DIM}; selection logits std {args.logit_std:g}; best of "
          f"{args.repeats}, ms per step (ratio to mixture at tau=1)")
    for path in paths:                                             # warm-up
        timed(sides, 1.0, path)
    rows = []
    for tau in args.taus:
        best = {p: float("inf") for p in paths + ["unflushed"]}
        for _ in range(args.repeats):
            for p in paths:
                best[p] = min(best[p], timed(sides, tau, p))
            best["unflushed"] = min(best["unflushed"], timed(sides, tau, "mixture", False))
        shares = [np.mean([s.nonzero_share(tau, kept) for s in sides]) for kept in (True, False)]
        rows.append((tau, shares, best, "/".join(s.chosen(tau) for s in sides)))
    base = rows[0][2]["mixture"]
    print(f"| tau | z non-zero, all kept | z non-zero | {' | '.join(paths)} | mixture, workers "
          f"not flushed | path chosen (users/items) | chosen / fastest |")
    print("|---" * (len(paths) + 6) + "|")
    for tau, shares, best, chosen in rows:
        fastest = min(best[p] for p in paths[:3])
        cells = [f"{1e3 * best[p]:.0f} ({best[p] / base:.2f})" for p in paths + ["unflushed"]]
        print(f"| {tau:g} | {shares[0]:.0%} | {shares[1]:.0%} | {' | '.join(cells)} | {chosen} | "
              f"{best['chosen'] / fastest:.2f} |")


if __name__ == "__main__":
    main()
