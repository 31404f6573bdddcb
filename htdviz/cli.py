"""Command line: ``python -m htdviz {teacher,distill,sweep,study,demo} ...`` (see ``--help``).

Each run shows a progress bar named after it ("teacher bpr d200", "htd d20 s0"); a finished
run prints a summary line (test Recall@50) on stderr and its folder as the last line of
stdout. Expected errors (data missing offline, a bad option value, a missing teacher run, a
bad data file or column) print one line ``htdviz: error: ...`` and exit with status 2;
``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import distill, experiment, runs
from .config import StudentConfig, TeacherConfig, add_options, option_of, options_from_args
from .options import EPOCHS, EVAL_EVERY, SCHEDULES, UPDATES

#: Errors a user can cause: one line, no traceback (``--debug`` re-raises).
EXPECTED_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, ImportError)


class _Parser(argparse.ArgumentParser):
    """An argument error is one line (and a pointer to --help), not the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in every option's help; switches (store_true) without "(default: False)"."""

    def _get_help_string(self, action):
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)) or \
                action.default is None:
            return action.help
        return super()._get_help_string(action)


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where and how")
    g.add_argument("--runs", default="runs", help="folder of run folders")
    g.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA if present)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--debug", action="store_true",
                   help="show the traceback of an error instead of one line")


def _teacher_options(p: argparse.ArgumentParser, command: str) -> None:
    """The teacher's options (destinations ``teacher_<field>``); `teacher` itself takes
    its epochs, seed and schedule from --epochs, --seed and --schedule."""
    g = p.add_argument_group("teacher and data options")
    if command == "teacher":
        add_options(g, TeacherConfig, skip=("epochs", "seed", "schedule", "updates"),
                    prefix="teacher_")
    else:
        add_options(g, TeacherConfig, defaults={"epochs": None}, prefix="teacher_")


def _student_options(p: argparse.ArgumentParser, skip=()) -> None:
    g = p.add_argument_group("student options")
    add_options(g, StudentConfig, skip=skip)


def _teacher_options_of(args) -> dict:
    """teacher_run keyword arguments from the parsed options."""
    options = options_from_args(TeacherConfig, args, prefix="teacher_")
    options["eval_every"] = args.eval_every
    if args.command == "teacher":
        options.update(epochs=args.epochs, seed=args.seed, schedule=args.schedule,
                       updates=args.updates)
    elif options["epochs"] is None:
        options["epochs"] = args.epochs
    return options


def _teacher(args, announce: bool) -> Path:
    """Train or reuse the teacher the options describe (saying which, for distil/sweep)."""
    options = _teacher_options_of(args)
    if announce:
        config = experiment.teacher_config(**options)
        path = Path(args.runs) / config.folder_name()
        epochs = f"{config.epochs} epochs" + ("" if args.teacher_epochs else
                                              " (from --epochs; --teacher-epochs sets it)")
        action = "reusing" if runs.finished(path) else "not trained yet, training it into"
        print(f"teacher: {config.dataset} {config.model} d{config.dim} seed {config.seed}, "
              f"{epochs}: {action} {path}", file=sys.stderr)
    return experiment.teacher_run(**options, runs_dir=args.runs, device=args.device,
                                  progress=not args.no_progress)


def _summary(path: Path) -> str:
    run = runs.load_run(path, embeddings=False)
    final = run.metrics.get("final", {})
    return (f"{path.name}: test Recall@50 {final.get('test_recall@50', float('nan')):.4f} "
            f"(epoch {final.get('epoch')}, {run.metrics.get('train_seconds', 0):.0f} s of "
            f"training)")


def _finished(path: Path, print_path_only: bool = False) -> None:
    if not print_path_only:
        print(_summary(path), file=sys.stderr)
    print(path)


def _student_kwargs(args) -> dict:
    options = options_from_args(StudentConfig, args)
    for name in ("method", "dim"):         # given separately (sweep: --methods, --dims)
        options.pop(name, None)
    return dict(options, device=args.device)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m htdviz``.

    Long because it declares the whole command line, one subcommand after another; each
    option is one statement, and splitting the list would only scatter it.
    """
    parser = _Parser(prog="python -m htdviz", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name, help):
        return sub.add_parser(name, help=help, description=help,
                              formatter_class=_HelpFormatter)

    p = command("teacher", "train (or reuse) a teacher")
    p.add_argument("--epochs", type=int, default=EPOCHS, help="teacher epochs")
    p.add_argument("--eval-every", dest="eval_every", type=int, default=EVAL_EVERY,
                   help="evaluate every this many epochs (and after the last)")
    p.add_argument("--seed", type=int, default=0, help="seed of the teacher (and its split)")
    p.add_argument("--schedule", choices=SCHEDULES, default="default",
                   help=option_of(TeacherConfig, "schedule").help)
    p.add_argument("--updates", choices=UPDATES, default="dense",
                   help=option_of(TeacherConfig, "updates").help)
    _teacher_options(p, "teacher")
    _common(p)

    p = command("distill", "distil one student from a teacher")
    p.add_argument("--teacher", default=None,
                   help="teacher run folder (default: train or reuse the teacher that the "
                        "teacher options describe)")
    p.add_argument("--print-path", action="store_true",
                   help="print only the run folder (no summary line)")
    _student_options(p)
    _teacher_options(p, "distill")
    _common(p)

    p = command("sweep", "student dims x methods from one teacher")
    p.add_argument("--dims", type=int, nargs="+", default=[10, 20, 100, 200],
                   help="student dims d_s")
    p.add_argument("--methods", nargs="+", choices=distill.method_names(),
                   default=["student", "ftd", "htd"], help="methods")
    p.add_argument("--jobs", type=int, default=1, help="parallel runs")
    p.add_argument("--out", default=None, help="also write the table to this CSV file")
    _student_options(p, skip=("method", "dim"))
    _teacher_options(p, "sweep")
    _common(p)

    p = command("study", "a grid of runs -> one table, on local processes or Ray")
    p.add_argument("--grid", nargs="+", action="append", default=[],
                   metavar="OPTION VALUE", help="an option and its values (repeatable), e.g. "
                   "--grid dim 10 20 --grid seed 0 1 2; the cells are the product; options: "
                   "the student options of `distill` by field name (method, dim, n_groups, "
                   "alpha, distill_weight, seed, group_design, positive_pairs_only, "
                   "detach_student_prototypes, balance_weight, ...) and the teacher's (model, "
                   "dataset, teacher_dim, teacher_epochs, teacher_seed, ...)")
    p.add_argument("--preset", choices=sorted(study_module().PRESETS), default=None,
                   help="a ready grid: 'sensitivity', the paper's study at d_s = 20 (K, "
                   "alpha, lambda one at a time); 'balance', HTD with and without the "
                   "load-balancing term at d_s = 20 and 10 (3 seeds)")
    p.add_argument("--set", nargs=2, action="append", default=[], metavar=("OPTION", "VALUE"),
                   help="an option for every cell (repeatable), e.g. --set epochs 30")
    p.add_argument("--teacher", default=None,
                   help="a finished teacher run for every cell (default: each cell's teacher "
                        "from its teacher options, trained or reused)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="'local': this machine's processes; 'ray': Ray tasks (pip install "
                        "'htdviz[cluster]')")
    p.add_argument("--workers", type=int, default=1,
                   help="runs at a time (local), or CPUs of the local Ray instance")
    p.add_argument("--address", default=None,
                   help="Ray: join this cluster ('auto', 'ray://head:10001') instead of "
                        "starting one here")
    p.add_argument("--gpus-per-run", type=float, default=0.0,
                   help="Ray: GPU share of each run (0.25: four runs per GPU)")
    p.add_argument("--cpus-per-run", type=int, default=1, help="Ray: CPUs of each run")
    p.add_argument("--out", default=None,
                   help="also write the table to this CSV file (after every run)")
    _common(p)

    p = command("demo", "the main job: the quickstart pipeline and its HTML report")
    p.add_argument("--epochs", type=int, default=30, help="student epochs")
    p.add_argument("--teacher-epochs", type=int, default=100, help="teacher epochs")
    p.add_argument("--student-dim", type=int, default=20, help="student dim d_s")
    p.add_argument("--seed", type=int, default=0, help="seed of the teacher and students")
    p.add_argument("--projection", choices=["umap", "pca"], default="umap",
                   help="how the maps are drawn")
    p.add_argument("--report", default="reports/htdviz_report.html",
                   help="the HTML file to write")
    g = p.add_argument_group("data options")
    add_options(g, TeacherConfig, prefix="teacher_",
                skip=[f for f in TeacherConfig.__dataclass_fields__
                      if f not in ("dataset", "min_items", "user_col", "item_col")])
    _common(p)
    return parser


def study_module():
    from . import study
    return study


def _study_value(option: str, text: str):
    """A study option's value from its command-line text, by the option's type."""
    study = study_module()
    if option not in study.run_options():
        raise ValueError(f"--grid/--set: {option!r} is not a run option; the options are "
                         f"{', '.join(study.run_options())}")
    kind = option_of(StudentConfig, option).type \
        if option in study.student_options() else \
        option_of(TeacherConfig, study.TEACHER_OPTIONS[option]).type
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"--grid/--set {option}: expected true or false, got {text!r}")
        return text.lower() in ("true", "1")
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"--grid/--set {option}: expected {kind.__name__}, got "
                         f"{text!r}") from None


def _study(args) -> int:
    study = study_module()
    if not args.grid and not args.preset:
        raise ValueError("study: give --grid OPTION VALUE ... or --preset")
    grid = study.PRESETS[args.preset]() if args.preset else []
    if args.grid:
        own = {}
        for option, *values in args.grid:
            if not values:
                raise ValueError(f"--grid {option}: give at least one value")
            own[option] = [_study_value(option, v) for v in values]
        grid = own if not grid else [dict(g, **own) for g in grid]
    options = {option: _study_value(option, value) for option, value in args.set}
    table = study.study(grid, teacher=args.teacher, executor=args.executor,
                        workers=args.workers, address=args.address,
                        gpus_per_run=args.gpus_per_run, cpus_per_run=args.cpus_per_run,
                        runs_dir=args.runs, device=args.device,
                        progress=not args.no_progress, out=args.out, **options)
    varied = [c for c in study.run_options()
              if c in table and table[c].dropna().astype(str).nunique() > 1]
    cols = ["status", *varied, "final_test_recall@50", "final_test_ndcg@50", "run"]
    print(table[[c for c in cols if c in table]].to_string(index=False))
    if args.preset == "paper":
        print("\nbeside the paper's figure (test Recall@50; its own split, early stopping):")
        evaluation = study.paper_table(table)
        print(evaluation.round(4).to_string(index=False))
        print("\nthe paper's orderings (margin > 0 where one holds):")
        print(study.paper_orderings(evaluation).drop(columns="values").round(4)
              .to_string(index=False))
    failed = table[table["status"] == "failed"]
    for _, row in failed.iterrows():
        print(f"cell {row['cell']} failed: {row['error']}", file=sys.stderr)
    return 1 if len(failed) else 0


def main(argv=None) -> int:
    parser = build_parser()
    for name, sub in parser._subparsers._group_actions[0].choices.items():
        _PARSER_ACTIONS[name] = sub._actions
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except EXPECTED_ERRORS as exc:
        if args.debug:
            raise
        print(f"python -m htdviz {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _check_options(args) -> None:
    """Build the configurations the options describe before any training starts, so that
    a bad value fails at once; errors name the option (``--dim``), not the field."""
    checks = []
    if args.command in ("distill", "sweep"):
        student = _student_kwargs(args)
        student.pop("device")
        for method in getattr(args, "methods", [getattr(args, "method", "htd")]):
            for dim in getattr(args, "dims", [getattr(args, "dim", 20)]):
                checks.append((StudentConfig, dict(student, method=method, dim=dim), ""))
    # the data file is checked when it is read
    checks.append((TeacherConfig, dict(_teacher_options_of(args), dataset="synthetic"),
                   "teacher_"))
    for config_class, options, prefix in checks:
        try:
            config_class(**options)
        except ValueError as exc:
            flags = {"dim": "--dims", "method": "--methods"} if args.command == "sweep" else \
                {"epochs": "--epochs", "seed": "--seed", "eval_every": "--eval-every"} \
                if args.command == "teacher" else {}
            for action in _PARSER_ACTIONS.get(args.command, ()):
                if action.dest.startswith(prefix) and action.option_strings:
                    flags.setdefault(action.dest[len(prefix):], action.option_strings[0])
            name, _, rest = str(exc).partition(" must ")
            if name in flags:
                raise ValueError(f"{flags[name]} must {rest}") from None
            raise


_PARSER_ACTIONS: dict = {}


def _check_demo_options(args) -> None:
    from ._validation import check_int

    for flag in ("--epochs", "--teacher-epochs", "--student-dim", "--min-items"):
        low = 3 if flag == "--min-items" else 1
        check_int(getattr(args, flag[2:].replace("-", "_"), None) if flag != "--min-items"
                  else args.teacher_min_items, flag, low=low)


def _run(args) -> int:
    if args.command == "study":
        return _study(args)
    if args.command == "demo":
        _check_demo_options(args)
    else:
        _check_options(args)
    progress = not args.no_progress
    if args.command == "teacher":
        _finished(_teacher(args, announce=False))
    elif args.command == "distill":
        teacher = args.teacher or _teacher(args, announce=True)
        path = experiment.student_run(teacher, args.method, args.dim, runs_dir=args.runs,
                                      progress=progress, **_student_kwargs(args))
        _finished(path, print_path_only=args.print_path)
    elif args.command == "sweep":
        table = study_module().sweep(args.dims, args.methods,
                                     teacher_dir=_teacher(args, announce=True),
                                     jobs=args.jobs, runs_dir=args.runs, progress=progress,
                                     **_student_kwargs(args))
        if args.out:
            table.to_csv(args.out, index=False)
        cols = ["method", "dim", "final_test_recall@50", "final_test_ndcg@50",
                "best_valid_epoch", "best_valid_test_recall@50", "train_seconds"]
        print(table[cols].to_string(index=False))
    elif args.command == "demo":
        print(experiment.run_demo(
            student_dim=args.student_dim, epochs=args.epochs,
            teacher_epochs=args.teacher_epochs, runs_dir=args.runs, report=args.report,
            device=args.device, progress=progress, projection=args.projection,
            seed=args.seed, dataset=args.teacher_dataset, min_items=args.teacher_min_items,
            user_col=args.teacher_user_col, item_col=args.teacher_item_col))
    return 0


if __name__ == "__main__":
    sys.exit(main())
