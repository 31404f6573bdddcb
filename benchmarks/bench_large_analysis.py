"""The analysis and the views of large sets: how far the sampled modes are from the exact
answer (on CiteULike), and what they cost at MovieLens-20M size.

Part 1, error (``--runs``: a folder with a BPR teacher and its d_s = 20 students): for the
items and the users of CiteULike, every nearest-neighbour measure of
:func:`htdviz.preservation.discrepancy` (kNN overlap@10, KL on the 10 most similar, and the
entity-level HTD error with the reference quirk, which needs the same row pass) computed
exactly over all entities and in the sampled mode (``max_rows`` rows, each ranked against
all entities) for several sample sizes and seeds. Printed: the largest and the mean
absolute error over seeds and students, and the seconds. For contrast, the report's former
approach: all measures among a 5,000-entity subset (a different quantity: neighbours among
the subset only).

Part 2, cost at scale (``--scale``): 138,493 users (MovieLens-20M's count) with a d = 200
teacher and a d = 20 student of a 30-dimensional structure plus noise (the costs do not
depend on the values): the report's measures in the modes the report picks (sampled rows,
band errors of sampled rows, a stratified 30,000-entity UMAP map), seconds each.

Run: ``python benchmarks/bench_large_analysis.py --runs runs [--scale]``.
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import pandas as pd
import torch

from htdviz import preservation
from htdviz.runs import list_runs, load_run

SIZES = (500, 1000, 2000, 5000)
SEEDS = (0, 1, 2, 3, 4)
MEASURES = ("knn_overlap@10", "kl_most_similar", "htd_entity_error")


def neighbour_measures(t, s, labels, **kwargs) -> dict:
    out = preservation.discrepancy(t, s, labels,
                                   measures=["knn_overlap", "kl_most_similar", "htd"],
                                   positive_pairs_only=True, **kwargs)
    return {key: out[key] for key in MEASURES}


def error_part(root: str) -> None:
    table = list_runs(root)
    teacher_name = table.loc[(table["method"] == "teacher") & (table["dim"] == 200) &
                             (table["name"].str.contains("citeulike-bpr")) &
                             ~table["name"].str.contains("sparse"), "name"].iloc[0]
    teacher = load_run(f"{root}/{teacher_name}")
    students = {}
    for method in ("student", "ftd", "htd"):
        name = table.loc[(table["teacher"] == teacher_name) & (table["method"] == method) &
                         (table["dim"] == 20), "name"].iloc[0]
        students[method] = load_run(f"{root}/{name}")
    labels = students["htd"]
    rows = []
    for entity in ("items", "users"):
        t = teacher.representations(entity)
        groups = labels.groups(entity)
        for method, run in students.items():
            s = run.representations(entity)
            tic = time.perf_counter()
            exact = neighbour_measures(t, s, groups)
            exact_s = time.perf_counter() - tic
            rows += [{"entity": entity, "method": method, "rows": "all", "seed": None,
                      "seconds": exact_s, "measure": k, "value": v, "exact": v}
                     for k, v in exact.items()]
            for size in SIZES:
                for seed in SEEDS:
                    tic = time.perf_counter()
                    got = neighbour_measures(t, s, groups, max_rows=size, random_state=seed)
                    seconds = time.perf_counter() - tic
                    rows += [{"entity": entity, "method": method, "rows": size, "seed": seed,
                              "seconds": seconds, "measure": k, "value": v,
                              "exact": exact[k]} for k, v in got.items()]
            subset = np.sort(np.random.default_rng(0).choice(t.shape[0], 5000,
                                                              replace=False))
            tic = time.perf_counter()
            got = neighbour_measures(t[subset], s[subset], groups[subset])
            seconds = time.perf_counter() - tic
            rows += [{"entity": entity, "method": method, "rows": "subset 5000", "seed": 0,
                      "seconds": seconds, "measure": k, "value": v, "exact": exact[k]}
                     for k, v in got.items()]
            print(f"  {entity} {method}: exact {exact_s:.1f} s "
                  + ", ".join(f"{k} {v:.4f}" for k, v in exact.items()), flush=True)
    df = pd.DataFrame(rows)
    df["abs_error"] = (df["value"] - df["exact"]).abs()
    df["rel_error"] = df["abs_error"] / df["exact"].abs()
    summary = df.groupby(["entity", "rows", "measure"], sort=False).agg(
        max_abs_error=("abs_error", "max"), mean_abs_error=("abs_error", "mean"),
        max_rel_error=("rel_error", "max"), mean_value=("exact", "mean"),
        seconds=("seconds", "mean")).reset_index()
    # the report compares students on the same sampled rows: the error of the difference
    pivot = df.pivot_table(index=["entity", "rows", "seed", "measure"], columns="method",
                           values=["value", "exact"], dropna=False).dropna()
    paired = pd.DataFrame({
        "diff_exact": pivot[("exact", "htd")] - pivot[("exact", "ftd")],
        "diff_error": ((pivot[("value", "htd")] - pivot[("value", "ftd")]) -
                       (pivot[("exact", "htd")] - pivot[("exact", "ftd")])).abs()})
    paired = paired.groupby(level=["entity", "rows", "measure"], sort=False).agg(
        htd_minus_ftd=("diff_exact", "mean"), max_abs_error=("diff_error", "max"),
        mean_abs_error=("diff_error", "mean")).reset_index()
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print("\nHTD minus FTD, both on the same sampled rows:")
        print(paired.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def scale_part(n_users: int = 138_493) -> None:
    from htdviz.groups import kmeans_groups
    from htdviz.viz import figures

    rng = np.random.default_rng(0)
    basis_t, basis_s = rng.standard_normal((30, 200)), rng.standard_normal((30, 20))
    latent = rng.standard_normal((n_users, 30))
    t = (latent @ basis_t + 0.5 * rng.standard_normal((n_users, 200))).astype(np.float32)
    s = (latent @ basis_s + 0.5 * rng.standard_normal((n_users, 20))).astype(np.float32)
    labels = rng.integers(30, size=n_users)
    print(f"{n_users:,} entities, d_t = 200, d_s = 20")

    def timed(label, fn):
        tic = time.perf_counter()
        out = fn()
        print(f"  {label}: {time.perf_counter() - tic:.1f} s", flush=True)
        return out

    timed("discrepancy, all measures, neighbour measures from 2,000 rows",
          lambda: preservation.discrepancy(t, s, labels, max_rows=2000))
    timed("band errors (user-user), 1,000 rows",
          lambda: preservation.band_errors(t, s, rows=np.arange(0, n_users, n_users // 1000)))
    timed("k-means groups of the teacher (K = 30)", lambda: kmeans_groups(t, 30))
    fig = timed("UMAP map, stratified sample of 30,000",
                lambda: figures.projection_figure(t, s, groups=labels, cache_dir=False))
    print(f"  title: {fig.layout.title.text}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=None, help="folder of CiteULike runs (part 1)")
    parser.add_argument("--scale", action="store_true", help="time part 2 (138k users)")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    if args.runs:
        error_part(args.runs)
    if args.scale:
        scale_part()


if __name__ == "__main__":
    main()
