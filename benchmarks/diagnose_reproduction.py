"""What the diagnostics show on the reproduction's runs (docs/results.md, "What the
diagnostics show").

    python benchmarks/diagnose_reproduction.py [runs] [--out diagnostics.csv] [--dims 10 100]
                                               [--sample 3000] [--no-analyses | --no-probes]

For every finished BPR-MF student of the seed-0 CiteULike teacher (reference split, default
HTD switches): test Recall@50, agreement of its top-k items with the teacher's
(``evaluate.ranking_agreement``, training items excluded), the topology errors
(``preservation.discrepancy``: full topology and HTD's hierarchical target, with the HTD run's
groups of the same dim as the target) and the squared cosine error by teacher-similarity
band (``preservation.band_error_table``). Then, at phi = 0.1, the paper's analyses:
topology-preservation KL (most similar / random neighbours) and tag retrieval (linear and
MLP probes, 3 random splits).

Band errors and the KL use a seeded sample of row entities (``--sample``, default 3,000
users and 3,000 items, ranked against all entities); agreement covers all users.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from htdviz import data, preservation, probe, topology
from htdviz.evaluate import ranking_agreement
from htdviz.groups import group_usage
from htdviz.runs import load_run

METHODS = ("student", "de", "ftd", "htd")


def find_runs(root: Path):
    """The seed-0 teacher and its default-switch students, as {(method, dim): Run}."""
    teacher, students = None, {}
    for folder in sorted(root.iterdir()):
        if not (folder / "metrics.json").is_file():
            continue
        run = load_run(folder, embeddings=False)
        c = run.config
        if (c.get("dataset"), c.get("model"), c.get("split"), c.get("seed")) != \
                ("citeulike", "bpr", "reference", 0) or c.get("epochs") != 100 or \
                c.get("updates", "dense") != "dense" or c.get("balance_weight", 0) or \
                c.get("schedule", "default") != "default":
            continue
        if c.get("role") == "teacher" and c.get("dim") == 200 and \
                c.get("weight_decay") == 1e-3:
            teacher = folder
        elif c.get("method") in METHODS and c.get("group_design", "P,e") == "P,e" and \
                c.get("positive_pairs_only", True) and c.get("detach_student_prototypes", True):
            students[(c["method"], c["dim"])] = folder
    if teacher is None:
        raise SystemExit(f"no seed-0 BPR-MF d = 200 teacher of 100 epochs under {root}")
    return load_run(teacher), {key: load_run(path) for key, path in sorted(students.items())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="?", default="runs")
    parser.add_argument("--sample", type=int, default=3000)
    parser.add_argument("--out", default=None, help="write the main table to this CSV")
    parser.add_argument("--no-probes", action="store_true", help="no tag-retrieval probes")
    parser.add_argument("--no-analyses", action="store_true",
                        help="only the per-student table and bands (no KL, no probes)")
    parser.add_argument("--dims", type=int, nargs="+", default=None,
                        help="only the students of these dims (default: all)")
    args = parser.parse_args(argv)
    pd.set_option("display.width", 200, "display.max_columns", 30)

    teacher, students = find_runs(Path(args.runs))
    every_student = students
    if args.dims:
        students = {key: run for key, run in students.items() if key[1] in args.dims}
    dataset = data.load_citeulike("reference")
    rows, bands = [], []
    for (method, dim), run in students.items():
        tic = time.perf_counter()
        agree = ranking_agreement(teacher.users, teacher.items, run.users, run.items,
                                  dataset.train, ks=(10, 50)).mean()
        htd = every_student.get(("htd", dim))
        target = (htd.user_groups, htd.item_groups) if htd is not None else (None, None)
        t_all, labels = topology.stack_entities(teacher.users, teacher.items, *target)
        s_all, _ = topology.stack_entities(run.users, run.items)
        errors = preservation.discrepancy(t_all, s_all, labels, measures=["ftd_error"] + (
            ["htd"] if labels is not None else []))
        band = preservation.band_error_table(teacher.users, teacher.items, run.users, run.items,
                                             max_rows=args.sample, random_state=0)
        band.insert(0, "dim", dim)
        band.insert(0, "method", method)
        bands.append(band)
        near = band[band["rank_to"] <= 10].set_index("pairs")["mean_sq_error"]
        far = band.groupby("pairs").tail(1).set_index("pairs")
        row = {"dim": dim, "method": method,
               "test R@50": run.metrics["final"]["test_recall@50"],
               "top-10 overlap": agree["overlap@10"], "top-50 overlap": agree["overlap@50"],
               "top-50 NDCG": agree["ndcg@50"],
               "full error": errors["ftd_error"], "HTD-target error": errors.get("htd_error"),
               "near err item-item": near["item-item"], "near err user-item": near["user-item"],
               "far err item-item": far.loc["item-item", "mean_sq_error"],
               "far share item-item": far.loc["item-item", "error_share"]}
        if run.item_groups is not None:
            for kind, labels in (("user", run.user_groups), ("item", run.item_groups)):
                row[f"{kind} groups used"] = group_usage(labels, run.config["n_groups"])["used"]
        rows.append(row)
        print(f"{method} d{dim}: {time.perf_counter() - tic:.0f} s", flush=True)
    table = pd.DataFrame(rows)
    print("\n== Per student (BPR-MF, CiteULike reference split, seed 0, 100 epochs) ==")
    print(table.round(4).to_string(index=False))
    bands = pd.concat(bands, ignore_index=True)
    print("\n== Squared cosine error by teacher-similarity band (mean per pair) ==")
    print(bands.pivot_table(index=["pairs", "band"], columns=["dim", "method"],
                            values="mean_sq_error", sort=False).round(4).to_string())
    print("\n== Mean cosine by band: teacher, then each student ==")
    cos = bands.pivot_table(index=["pairs", "band"], columns=["dim", "method"],
                            values="student_cos", sort=False)
    teacher_cos = bands.groupby(["pairs", "band"], sort=False)["teacher_cos"].first()
    cos.insert(0, ("teacher", ""), teacher_cos)
    print(cos.round(3).to_string())
    if args.out:
        table.to_csv(args.out, index=False)
        bands.to_csv(Path(args.out).with_name(Path(args.out).stem + "_bands.csv"), index=False)

    if args.no_analyses:
        return
    analysis = {m: students[(m, 20)] for m in METHODS if (m, 20) in students}
    rng = np.random.default_rng(0)
    t_all, _ = topology.stack_entities(teacher.users, teacher.items)
    sample = np.sort(rng.choice(len(t_all), 2 * args.sample, replace=False))
    rows = []
    for name, run in analysis.items():
        s_all, _ = topology.stack_entities(run.users, run.items)
        row = {"method": name}
        for mode in ("most_similar", "random"):
            row[f"KL {mode}"] = preservation.preservation_kl(t_all[sample], s_all[sample],
                                                             mode=mode, random_state=0)
        rows.append(row)
    print("\n== Topology preservation at phi = 0.1 (10 neighbours, T = 1; "
          f"{2 * args.sample:,} sampled users + items) ==")
    print(pd.DataFrame(rows).round(4).to_string(index=False))
    if args.no_probes:
        return
    rows = []
    for name, run in {"teacher": teacher, **analysis}.items():
        row = {"representation": name}
        for kind in ("linear", "mlp"):
            result = probe.tag_retrieval(run.items, dataset.item_tags, kind, n_repeats=3,
                                         random_state=0)
            row[f"{kind} R@10"] = result["mean"]
            row[f"{kind} std"] = result["std"]
        rows.append(row)
    print("\n== Tag retrieval at phi = 0.1 (Recall@10, mean and std over 3 splits) ==")
    print(pd.DataFrame(rows).round(4).to_string(index=False))


if __name__ == "__main__":
    main()
