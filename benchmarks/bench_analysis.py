"""Speed and memory of the analysis layer on all 25,181 CiteULike-t items.

The goal (issue "Topology analysis core"): every discrepancy measure of
:func:`htdviz.preservation.discrepancy` for a d = 200 teacher against a d = 20 student over all
25,181 items in at most 60 s on a 2-core CPU and within 4 GiB of memory. Also timed: the
capacity bounds and table on users + items stacked (30,400 entities), and optionally the
tag probes.

Representations: two run folders (``embeddings.npz`` with ``users`` and ``items``) given
with ``--teacher`` and ``--student``; by default seeded random ones with a low-rank
structure (the costs do not depend on the values). Memory: the peak resident set size of
this process (``resource.getrusage``, imports and inputs included), and the increase of
that peak during each step (a lower bound on the step's own peak use when an earlier
step peaked higher).

Run: ``python benchmarks/bench_analysis.py [--teacher RUN --student RUN] [--probe]``.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time

import numpy as np
import torch

from htdviz import capacity, groups, preservation, probe, topology

N_USERS, N_ITEMS = 5219, 25181
GOAL_SECONDS, GOAL_GIB = 60.0, 4.0


def peak_rss_gib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 30 if sys.platform == "darwin" else peak / 2 ** 20


def random_run(dim: int, seed: int, basis: np.ndarray | None = None):
    """Users and items with a 30-dimensional structure plus noise, float32."""
    rng = np.random.default_rng(seed)
    latent_dim = 30
    basis = rng.standard_normal((latent_dim, dim)) if basis is None else basis
    latent = rng.standard_normal((N_USERS + N_ITEMS, latent_dim))
    x = latent @ basis + 0.5 * rng.standard_normal((N_USERS + N_ITEMS, dim))
    x = x.astype(np.float32)
    return x[:N_USERS], x[N_USERS:]


def load(path):
    with np.load(os.path.join(path, "embeddings.npz"), allow_pickle=False) as npz:
        return npz["users"].astype(np.float32), npz["items"].astype(np.float32)


def timed(label: str, fn):
    before = peak_rss_gib()
    tic = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - tic
    print(f"  {label:<44s} {seconds:7.2f} s   peak RSS {peak_rss_gib():5.2f} GiB "
          f"(+{peak_rss_gib() - before:4.2f})", flush=True)
    return result, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", help="run folder of a d_t = 200 teacher")
    parser.add_argument("--student", help="run folder of a d_s = 20 student")
    parser.add_argument("--probe", action="store_true", help="also time the tag probes")
    parser.add_argument("--chunk-size", type=int, default=1024)
    args = parser.parse_args()

    print(f"htdviz analysis benchmark: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} "
          f"threads)")
    if args.teacher and args.student:
        (t_users, t_items), (s_users, s_items) = load(args.teacher), load(args.student)
        source = f"runs {args.teacher} / {args.student}"
    else:
        (t_users, t_items) = random_run(200, seed=0)
        (s_users, s_items) = random_run(20, seed=1)
        source = "seeded random low-rank representations"
    print(f"teacher {t_items.shape[1]}-d, student {s_items.shape[1]}-d, {t_items.shape[0]:,} "
          f"items, {t_users.shape[0]:,} users ({source})")
    print(f"peak RSS after loading: {peak_rss_gib():.2f} GiB\n")

    print("Discrepancy over all items, one measure at a time:")
    item_groups, _ = timed("k-means groups (K = 30) on teacher items",
                           lambda: groups.kmeans_groups(t_items, 30))
    per_measure = {}
    for measure in preservation.MEASURES:
        _, per_measure[measure] = timed(measure, lambda m=measure: preservation.discrepancy(
            t_items, s_items, item_groups, measures=[m], chunk_size=args.chunk_size))
    print("\nAll measures in one call (the goal):")
    start_peak = peak_rss_gib()
    values, total = timed("discrepancy(), every measure", lambda: preservation.discrepancy(
        t_items, s_items, item_groups, chunk_size=args.chunk_size))
    for key, value in values.items():
        print(f"    {key:<22s} {value:.4f}")
    peak = peak_rss_gib()
    verdict = "meets" if total <= GOAL_SECONDS and peak <= GOAL_GIB else "MISSES"
    print(f"  -> {total:.1f} s (goal <= {GOAL_SECONDS:.0f} s, {total / GOAL_SECONDS:.2f} of it), "
          f"peak RSS {peak:.2f} GiB (goal <= {GOAL_GIB:.0f} GiB; {start_peak:.2f} GiB before "
          f"the call): {verdict} the goal")

    print("\nCapacity diagnostics, users + items stacked "
          f"({t_users.shape[0] + t_items.shape[0]:,} entities):")
    user_groups, _ = timed("k-means groups (K = 30) on teacher users",
                           lambda: groups.kmeans_groups(t_users, 30))
    joint, labels = topology.stack_entities(t_users, t_items, user_groups, item_groups)
    bounds, _ = timed("topology_error_bounds, dims 10, 20, 50, 100, 200",
                      lambda: capacity.topology_error_bounds(joint, [10, 20, 50, 100, 200],
                                                             labels))
    with np.printoptions(precision=4):
        print(bounds.round(5).to_string(index=False))
    table, _ = timed("capacity_table, 1 run (ftd + htd errors)", lambda: capacity.capacity_table(
        t_users, t_items, runs={"student": (s_users, s_items)}, user_labels=user_groups,
        item_labels=item_groups))
    print(table[["method", "dim", "n_params", "full_error", "full_error_relative",
                 "hierarchical_error", "hierarchical_error_relative"]].round(5)
          .to_string(index=False))

    if args.probe:
        print("\nTag probes (needs the CiteULike tags; 3 repeats each):")
        from htdviz.data import load_citeulike
        tags = load_citeulike().item_tags
        for kind in probe.PROBES:
            result, _ = timed(f"tag_retrieval {kind}, teacher",
                              lambda k=kind: probe.tag_retrieval(t_items, tags, kind=k))
            print(f"    Recall@10 {result['mean']:.4f} +- {result['std']:.4f}")
    print(f"\nfinal peak RSS {peak_rss_gib():.2f} GiB")


if __name__ == "__main__":
    main()
