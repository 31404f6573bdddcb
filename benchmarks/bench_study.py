"""Wall time of a study: the capacity sweep (dims x student/FTD/HTD, 12 runs) with the
local executor at 1 and 2 workers, and with Ray, in fresh runs folders.

    python benchmarks/bench_study.py [--dataset citeulike] [--epochs 2] [--repeats 1]
                                     [--executors local1 local2 ray2] [--teacher RUN]

Every configuration trains the same 12 student runs from one teacher (trained once, first,
or given with --teacher) into a runs folder of its own, so nothing is reused. The
configurations alternate (A, B, C, A, B, C, ...) so that a busy machine slows them alike.
Prints the seconds of each repeat and the ratio of each configuration's median to the first
one's. The runs are short (``--epochs``, evaluation every epoch), so this measures the
executors' overhead and parallel speed-up, not a reproduction.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from htdviz import experiment, study

CONFIGS = {"local1": dict(executor="local", workers=1),
           "local2": dict(executor="local", workers=2),
           "ray2": dict(executor="ray", workers=2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="citeulike")
    parser.add_argument("--teacher", default=None, help="a finished teacher run")
    parser.add_argument("--teacher-dim", type=int, default=200)
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 20, 100, 200])
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each student")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--executors", nargs="+", choices=sorted(CONFIGS),
                        default=["local1", "local2"])
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench_study_"))
    teacher = args.teacher or experiment.teacher_run(
        dataset=args.dataset, dim=args.teacher_dim, epochs=args.epochs, eval_every=1,
        runs_dir=root / "teacher", progress=False)
    grid = {"dim": args.dims, "method": ["student", "ftd", "htd"]}
    print(f"{len(study.cells(grid))} runs of {args.epochs} epochs from {Path(teacher).name}; "
          f"runs under {root}")
    seconds = {name: [] for name in args.executors}
    for repeat in range(args.repeats):
        for name in args.executors:
            tic = time.perf_counter()
            table = study.study(grid, teacher=teacher, runs_dir=root / f"{name}-{repeat}",
                                progress=False, epochs=args.epochs, eval_every=1,
                                **CONFIGS[name])
            seconds[name].append(time.perf_counter() - tic)
            failed = (table["status"] == "failed").sum()
            print(f"  {name} repeat {repeat}: {seconds[name][-1]:.1f} s"
                  + (f" ({failed} runs failed)" if failed else ""), flush=True)
    first = statistics.median(seconds[args.executors[0]])
    print(f"\n{'executor':<10} {'median s':>9} {'ratio to ' + args.executors[0]:>16}")
    for name in args.executors:
        median = statistics.median(seconds[name])
        print(f"{name:<10} {median:9.1f} {median / first:16.2f}")


if __name__ == "__main__":
    main()
