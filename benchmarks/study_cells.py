"""Train a list of study cells with ``htdviz.study.study`` (what GPU session 8 ran).

    python benchmarks/study_cells.py CELLS.json TEACHER_RUN RUNS_DIR [--workers 9]

``CELLS.json`` is a JSON list of cells as :func:`htdviz.study.cells` returns them (e.g. the
cells of ``study.sensitivity_grid()`` and ``study.balance_grid(1.0)`` whose run folder does
not exist yet). With the finished runs present the same is ``python -m htdviz study
--preset sensitivity --workers 9``; this script lets a machine that holds only the teacher
(a lent GPU) train just the missing cells. Every worker process trains on the GPU where one
is present. Prints the table and the wall time; the table is also written to
``RUNS_DIR/study_cells.csv`` after every run.
"""
from __future__ import annotations

import argparse
import json
import time

from htdviz import study


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cells", help="a JSON list of cells")
    parser.add_argument("teacher", help="a finished teacher run folder")
    parser.add_argument("runs", help="the runs folder to train into")
    parser.add_argument("--workers", type=int, default=1, help="runs at a time")
    args = parser.parse_args()
    with open(args.cells) as f:
        cells = json.load(f)
    tic = time.time()
    table = study.study(cells, teacher=args.teacher, workers=args.workers,
                        runs_dir=args.runs, progress=False,
                        out=f"{args.runs}/study_cells.csv")
    cols = [c for c in ("status", "run", "seconds", "train_seconds",
                        "final_test_recall@50", "error") if c in table]
    print(table[cols].to_string(index=False))
    print(f"wall {time.time() - tic:.1f} s, {args.workers} workers")


if __name__ == "__main__":
    main()
