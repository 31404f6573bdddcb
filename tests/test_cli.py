"""The command line: one-line errors, help with defaults, named progress, run summaries."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from htdviz import cli, experiment, published
from htdviz.config import StudentConfig, cli_args

FAST = ["--epochs", "1", "--eval-every", "1", "--no-progress"]


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.fixture
def pairs_file(tmp_path):
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", int(i)) for u in range(80) for i in rng.choice(120, 8, replace=False)]
    path = tmp_path / "clicks.csv"
    pd.DataFrame(rows, columns=["uid", "iid"]).to_csv(path, index=False)
    return path


def test_every_option_has_help_and_shows_its_default():
    parser = cli.build_parser()
    for name, sub in parser._subparsers._group_actions[0].choices.items():
        text = sub.format_help()
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (name, action.option_strings)
            if action.default not in (None, False, True):
                shown = action.default if not isinstance(action.default, list) \
                    else " ".join(map(str, action.default))
                assert f"(default: {action.default})" in " ".join(text.split()) or \
                    str(shown) in text, (name, action.option_strings)
    distill = parser._subparsers._group_actions[0].choices["distill"].format_help()
    assert "{P,e | P,P}" in distill                   # two choices, not four
    assert "(default: htd)" in distill and "(default: False)" not in distill


@pytest.mark.parametrize("argv,names", [
    (["distill", "--teacher", "{tmp}/no-such-run"], ["no-such-run", "missing"]),
    (["distill", "--dim", "0"], ["--dim must be an integer >= 1, got 0"]),
    (["sweep", "--dims", "4", "-1"], ["--dims", "-1"]),
    (["teacher", "--epochs", "0"], ["--epochs", "got 0"]),
    (["demo", "--student-dim", "0"], ["--student-dim must be an integer >= 1, got 0"]),
    (["distill", "--alpha", "2"], ["--alpha must be in [0, 1], got 2.0"]),
    (["distill", "--n-groups", "0"], ["--n-groups must be an integer >= 1, got 0"]),
    (["distill", "--weight-decay", "-1"], ["--weight-decay must be a finite number >= 0"]),
    (["distill", "--min-items", "2"], ["--min-items must be an integer >= 3, got 2"]),
    (["teacher", "--dataset", "{tmp}/nothing.csv"], ["nothing.csv", "neither"]),
    (["teacher", "--dataset", "{pairs}"], ["clicks.csv", "user_col='user'", "--user-col"]),
    (["teacher", "--dataset", "{pairs}", "--user-col", "uid", "--item-col", "iid",
      "--min-items", "50"], ["clicks.csv", "min_items=50"]),
])
def test_expected_errors_are_one_line_naming_the_option_or_file(argv, names, tmp_path,
                                                                 pairs_file, capsys):
    argv = [a.format(tmp=tmp_path, pairs=pairs_file) for a in argv]
    assert cli.main([*argv, "--runs", str(tmp_path / "runs"), "--no-progress"]) == 2
    line = error_line(capsys)
    assert line.startswith(f"python -m htdviz {argv[0]}: error: ")
    for name in names:
        assert name in line, (name, line)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_bad_choice_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["distill", "--group-design", "P"])
    assert exit_.value.code == 2
    line = error_line(capsys)
    assert "--group-design" in line and "'P,e', 'P,P'" in line


def test_missing_data_offline_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HTDVIZ_DATA_MIRROR", raising=False)
    monkeypatch.setenv("HTDVIZ_DATA_DIR", str(tmp_path / "empty"))
    assert cli.main(["teacher", "--runs", str(tmp_path / "runs"), *FAST]) == 2
    line = error_line(capsys)
    assert "users.dat" in line and "HTDVIZ_DATA_MIRROR" in line


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-run"):
        cli.main(["distill", "--teacher", str(tmp_path / "no-such-run"), "--debug"])


def test_a_data_file_end_to_end(pairs_file, tmp_path, capsys):
    """teacher, distill and their summaries on a CSV of pairs; the config records the file;
    a changed file gives a new teacher, and its old students refuse the changed file."""
    common = ["--dataset", str(pairs_file), "--user-col", "uid", "--item-col", "iid",
              "--teacher-dim", "8", "--runs", str(tmp_path / "runs"), *FAST]
    assert cli.main(["teacher", *common]) == 0
    out = capsys.readouterr()
    teacher = Path(out.out.strip().splitlines()[-1])
    assert teacher.name.startswith("clicks-bpr-d8-teacher-s0-")
    assert "test Recall@50" in out.err and teacher.name in out.err
    config = json.loads((teacher / "config.json").read_text())
    assert config["data_file"] == str(pairs_file.resolve()) and config["split"] == "random"
    assert config["data_sha256"] == published.file_sha256(pairs_file)
    assert (config["user_col"], config["item_col"]) == ("uid", "iid")
    assert (config["min_items"], config["split_seed"]) == (5, 0)      # the split it used

    assert cli.main(["distill", "--method", "htd", "--dim", "2", "--n-groups", "3",
                     *common]) == 0
    out = capsys.readouterr()
    assert "teacher: clicks bpr d8 seed 0, 1 epochs (from --epochs" in out.err
    assert f"reusing {teacher}" in out.err
    student = Path(out.out.strip().splitlines()[-1])
    assert json.loads((student / "config.json").read_text())["teacher"] == teacher.name

    with open(pairs_file, "a") as f:
        f.write("u0,119\n" if "u0,119" not in pairs_file.read_text() else "u0,118\n")
    assert cli.main(["distill", "--teacher", str(teacher), "--dim", "3", *common]) == 2
    assert "has changed since the run was made" in error_line(capsys)
    assert cli.main(["teacher", *common]) == 0
    assert Path(capsys.readouterr().out.strip().splitlines()[-1]) != teacher


def test_progress_bars_are_named_after_their_run(tmp_path):
    runs = str(tmp_path / "runs")
    proc = subprocess.run([sys.executable, "-m", "htdviz", "distill", "--dataset",
                           "synthetic", "--teacher-dim", "8", "--method", "ftd", "--dim", "2",
                           "--epochs", "1", "--eval-every", "1", "--seed", "3",
                           "--runs", runs], capture_output=True, text=True, check=True)
    assert "teacher bpr d8:" in proc.stderr and "ftd d2 s3:" in proc.stderr
    assert "test Recall@50" in proc.stderr
    assert Path(proc.stdout.strip().splitlines()[-1]).is_dir()


# --------------------------------------------------------------------------------------
# Options reach the run configuration (the session's tiny teacher run, conftest.py)
# --------------------------------------------------------------------------------------

def test_cli_options_reach_the_same_configuration(tiny_teacher, capsys):
    kwargs = dict(positive_pairs_only=False, detach_student_prototypes=False,
                  group_design="P,P", n_groups=5, epochs=1, eval_every=1)
    expected = experiment.student_run(tiny_teacher, "htd", 3, progress=False, **kwargs)
    args = ["distill", "--teacher", str(tiny_teacher), "--method", "htd", "--dim", "3",
            "--runs", str(tiny_teacher.parent), "--no-progress", "--print-path",
            *cli_args(StudentConfig(method="htd", dim=3, **kwargs))]
    assert cli.main(args) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(expected)


def test_teacher_command_options_reach_the_teacher(tiny_teacher, capsys):
    """`teacher --seed 3 --weight-decay 1e-4` trains that teacher (not the default one);
    `distill` keeps --seed for the student and --teacher-seed for its teacher."""
    common = ["--dataset", "synthetic", "--teacher-dim", "16", "--epochs", "1",
              "--eval-every", "1", "--runs", str(tiny_teacher.parent), "--no-progress"]
    assert cli.main(["teacher", "--seed", "3", "--weight-decay", "1e-4", *common]) == 0
    path = Path(capsys.readouterr().out.strip().splitlines()[-1])
    config = json.loads((path / "config.json").read_text())
    assert (config["seed"], config["weight_decay"]) == (3, 1e-4)
    assert cli.main(["distill", "--method", "student", "--dim", "2", "--seed", "4",
                     "--print-path", *common]) == 0
    path = Path(capsys.readouterr().out.strip().splitlines()[-1])
    config = json.loads((path / "config.json").read_text())
    assert config["seed"] == 4 and config["teacher"] == tiny_teacher.name


def test_study_command(tiny_study, capsys):
    """The tiny study of conftest.py again from the command line: every run reused."""
    runs_dir, _ = tiny_study
    args = ["study", "--grid", "method", "student", "htd", "--grid", "dim", "4", "8",
            "--set", "dataset", "synthetic", "--set", "teacher_dim", "16",
            "--set", "teacher_epochs", "2", "--set", "epochs", "2", "--set", "eval_every", "1",
            "--runs", str(runs_dir), "--no-progress"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert out.count("reused") == 4 and "final_test_recall@50" in out
    assert cli.main(["study", "--grid", "alpha", "x", "--runs", str(runs_dir)]) == 2
    assert "--grid/--set alpha: expected float, got 'x'" in capsys.readouterr().err


def test_paper_study_prints_its_cells_beside_the_paper_and_the_orderings(monkeypatch, capsys,
                                                                         tmp_path):
    """``study --preset paper`` ends with the finished cells beside the paper's figure and
    the paper's orderings (the study itself replaced: its table of three finished cells)."""
    from htdviz import study

    table = pd.DataFrame({"cell": [0, 1, 2], "status": ["done"] * 3,
                          "method": ["htd", "de", "ftd"], "dim": [20] * 3, "seed": [0] * 3,
                          "final_test_recall@50": [.27, .23, .25],
                          "final_test_ndcg@50": [.1, .08, .09], "run": ["a", "b", "c"]})
    monkeypatch.setattr(study, "study", lambda grid, **options: table)
    assert cli.main(["study", "--preset", "paper", "--runs", str(tmp_path),
                     "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "beside the paper's figure" in out and "0.2803" in out        # HTD's figure
    orderings = out.split("the paper's orderings")[1].splitlines()
    assert any("HTD above DE and FTD" in line and "holds" in line and "0.02" in line
               for line in orderings)                                 # margin .27 - .25
    assert sum("pending" in line for line in orderings) == 9
