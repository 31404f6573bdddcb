"""Command line: ``python -m htdviz {teacher,distill,sweep,demo} ...`` (see ``--help``)."""
from __future__ import annotations

import argparse
import sys

from . import experiment


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default="runs", help="folder of run folders (default: runs)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _student_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--distill-weight", type=float, default=1e-3, help="lambda (default 1e-3)")
    p.add_argument("--n-groups", type=int, default=30, help="K for DE / HTD (default 30)")
    p.add_argument("--alpha", type=float, default=0.5, help="HTD alpha (default 0.5)")
    p.add_argument("--group-design", choices=["P,e", "P,P"], default="P,e")
    p.add_argument("--all-pairs", action="store_true",
                   help="HTD: keep same-group pairs with teacher cosine <= 0 (quirk a off)")
    p.add_argument("--live-prototypes", action="store_true",
                   help="HTD: student prototypes carry gradient (quirk b off)")


def _teacher_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=["bpr", "lightgcn"], default="bpr")
    p.add_argument("--teacher-dim", type=int, default=200)
    p.add_argument("--layers", type=int, default=2, help="LightGCN layers (default 2)")
    p.add_argument("--dataset", choices=["citeulike", "synthetic"], default="citeulike")
    p.add_argument("--split", choices=["reference", "random"], default="reference")
    p.add_argument("--weight-decay", type=float, default=1e-3,
                   help="the teacher's Adam weight decay, inherited by its students "
                        "(default 1e-3)")


def _student_kwargs(args) -> dict:
    return dict(epochs=args.epochs, eval_every=args.eval_every, seed=args.seed,
                distill_weight=args.distill_weight, n_groups=args.n_groups, alpha=args.alpha,
                group_design=args.group_design, positive_pairs_only=not args.all_pairs,
                detach_student_prototypes=not args.live_prototypes, device=args.device)


def _teacher(args):
    seed = args.seed if args.command == "teacher" else args.teacher_seed
    return experiment.teacher_run(model=args.model, dim=args.teacher_dim, n_layers=args.layers,
                                  dataset=args.dataset, split=args.split,
                                  epochs=args.teacher_epochs or args.epochs,
                                  eval_every=args.eval_every, seed=seed,
                                  weight_decay=args.weight_decay, runs_dir=args.runs,
                                  device=args.device, progress=not args.no_progress)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m htdviz", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("teacher", help="train (or reuse) a teacher")
    _common(p)
    _teacher_options(p)

    p = sub.add_parser("distill", help="distil one student from a teacher")
    _common(p)
    _teacher_options(p)
    _student_options(p)
    p.add_argument("--teacher", default=None, help="teacher run folder (default: train/reuse "
                                                    "the teacher given by the teacher options)")
    p.add_argument("--method", choices=experiment.METHODS, default="htd")
    p.add_argument("--dim", type=int, default=20, help="student dim d_s (default 20)")
    p.add_argument("--print-path", action="store_true", help="print the run folder at the end")

    p = sub.add_parser("sweep", help="student dims x methods from one teacher")
    _common(p)
    _teacher_options(p)
    _student_options(p)
    p.add_argument("--dims", type=int, nargs="+", default=[10, 20, 100, 200])
    p.add_argument("--methods", nargs="+", choices=experiment.METHODS,
                   default=["student", "ftd", "htd"])
    p.add_argument("--jobs", type=int, default=1, help="parallel runs (default 1)")
    p.add_argument("--out", default=None, help="also write the table to this CSV")

    p = sub.add_parser("demo", help="the main job: the quickstart pipeline and HTML report")
    _common(p)
    p.set_defaults(epochs=30)
    p.add_argument("--teacher-epochs", type=int, default=100)
    p.add_argument("--student-dim", type=int, default=20)
    p.add_argument("--projection", choices=["umap", "pca"], default="umap")
    p.add_argument("--report", default="reports/htdviz_report.html")

    for name in ("teacher", "distill", "sweep"):
        sub.choices[name].add_argument("--teacher-epochs", type=int, default=None,
                                       help="teacher epochs (default: --epochs)")
    for name in ("distill", "sweep"):      # `teacher` takes its seed from --seed
        sub.choices[name].add_argument("--teacher-seed", type=int, default=0,
                                       help="seed of the teacher run (default 0); --seed "
                                            "seeds the students")

    args = parser.parse_args(argv)
    progress = not args.no_progress
    if args.command == "teacher":
        print(_teacher(args))
    elif args.command == "distill":
        teacher = args.teacher or _teacher(args)
        path = experiment.student_run(teacher, args.method, args.dim, runs_dir=args.runs,
                                      progress=progress, **_student_kwargs(args))
        if args.print_path:
            print(path)
        else:
            print(experiment.load_metrics(path))
    elif args.command == "sweep":
        table = experiment.sweep(args.dims, args.methods, teacher_dir=_teacher(args),
                                 jobs=args.jobs, runs_dir=args.runs, progress=progress,
                                 **_student_kwargs(args))
        if args.out:
            table.to_csv(args.out, index=False)
        cols = ["method", "dim", "final_test_recall@50", "final_test_ndcg@50",
                "best_valid_epoch", "best_valid_test_recall@50", "train_seconds"]
        print(table[cols].to_string(index=False))
    elif args.command == "demo":
        from .report import run_demo
        print(run_demo(student_dim=args.student_dim, epochs=args.epochs,
                       teacher_epochs=args.teacher_epochs, runs_dir=args.runs,
                       report=args.report, device=args.device, progress=progress,
                       projection=args.projection, seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
