"""Tables of the reproduction (docs/results.md) from finished runs beside docs/method.md §10.1.

    python benchmarks/summarize_reproduction.py [runs]

One row per run; then, where a cell has runs of several seeds, their mean and spread.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from htdviz.runs import load_metrics
from htdviz.reference import paper_recall


def variant(row) -> str:
    if row["role"] == "teacher":
        return "teacher"
    name = row["method"]
    if name == "htd":
        if row.get("group_design") == "P,P":
            name += " Group(P,P)"
        if row.get("positive_pairs_only") is False:
            name += " all pairs"
        if row.get("detach_student_prototypes") is False:
            name += " live prototypes"
    return name


def main(runs="runs"):
    rows = [load_metrics(p.parent) for p in sorted(Path(runs).glob("*/metrics.json"))]
    if not rows:
        sys.exit(f"no finished runs under {runs}")
    table = pd.DataFrame(rows)
    table["variant"] = table.apply(variant, axis=1)
    table["reference R@50"] = [
        paper_recall(v, d) if (m, ds, sp) == ("bpr", "citeulike", "reference") else None
        for v, d, m, ds, sp in zip(table["variant"], table["dim"], table["model"],
                                   table["dataset"], table["split"])]
    table["diff"] = table["final_test_recall@50"] - table["reference R@50"]
    cols = ["model", "dim", "variant", "epochs", "seed", "final_test_recall@50", "reference R@50",
            "diff", "final_test_ndcg@50", "best_valid_epoch", "best_valid_test_recall@50",
            "best_valid_test_ndcg@50", "train_seconds", "device"]
    table = table.sort_values(["model", "dim", "variant", "epochs", "seed"])[cols]
    print(to_markdown(table))
    spread = (table.groupby(["model", "dim", "variant", "epochs"])["final_test_recall@50"]
              .agg(seeds="count", mean="mean", min="min", max="max").reset_index())
    spread = spread[spread["seeds"] > 1]
    if len(spread):
        spread["max - min"] = spread["max"] - spread["min"]
        print("\nSeed spread of test Recall@50 at the last epoch:\n")
        print(to_markdown(spread))
    return table


def to_markdown(table: pd.DataFrame) -> str:
    def fmt(v):
        if isinstance(v, float):
            return "" if pd.isna(v) else f"{v:.4f}" if abs(v) < 10 else f"{v:.0f}"
        return str(v)
    lines = ["| " + " | ".join(table.columns) + " |",
             "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |"
              for row in table.itertuples(index=False)]
    return "\n".join(lines)


if __name__ == "__main__":
    main(*sys.argv[1:])
