"""Run folders: reuse, atomicity, the command line and the parallel sweep (synthetic data)."""
import json
from pathlib import Path

import numpy as np
import pytest

from htdviz import cli, experiment

FAST = dict(epochs=1, eval_every=1)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return experiment.teacher_run(dim=16, dataset="synthetic", runs_dir=runs,
                                  progress=False, **FAST)


def test_teacher_run_writes_every_file_and_is_reused(teacher):
    for name in ("config.json", "history.csv", "metrics.json", "embeddings.npz",
                 "model.safetensors"):
        assert (teacher / name).is_file(), name
    with np.load(teacher / "embeddings.npz") as z:
        assert z["users"].shape[1] == z["items"].shape[1] == 16
    stamp = (teacher / "metrics.json").stat().st_mtime_ns
    again = experiment.teacher_run(dim=16, dataset="synthetic", runs_dir=teacher.parent,
                                   progress=False, **FAST)
    assert again == teacher and (teacher / "metrics.json").stat().st_mtime_ns == stamp


def test_htd_student_run_records_groups_and_its_configuration(teacher):
    path = experiment.student_run(teacher, "htd", 4, progress=False,
                                  positive_pairs_only=False, **FAST)
    config = json.loads((path / "config.json").read_text())
    assert config["method"] == "htd" and config["positive_pairs_only"] is False
    assert "allpairs" in path.name
    with np.load(path / "groups.npz") as g, np.load(teacher / "embeddings.npz") as t:
        assert g["users"].shape == (t["users"].shape[0],)
        assert g["items"].max() < 30
    row = experiment.load_metrics(path)
    assert row["final_epoch"] == 1 and 0 <= row["final_test_recall@50"] <= 1


def test_interrupted_run_leaves_no_finished_looking_folder(teacher, monkeypatch):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(experiment.models, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        experiment.student_run(teacher, "ftd", 3, progress=False, **FAST)
    leftovers = [p.name for p in teacher.parent.iterdir() if "-d3-ftd-" in p.name]
    assert leftovers == []


def test_cli_options_reach_the_same_configuration(teacher, capsys):
    kwargs = dict(positive_pairs_only=False, detach_student_prototypes=False,
                  group_design="P,P", n_groups=5, epochs=1, eval_every=1)
    expected = experiment.student_run(teacher, "htd", 3, progress=False, **kwargs)
    args = ["distill", "--teacher", str(teacher), "--method", "htd", "--dim", "3",
            "--runs", str(teacher.parent), "--no-progress", "--print-path",
            *experiment._cli_args(kwargs)]
    assert cli.main(args) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(expected)


def test_teacher_command_options_reach_the_teacher(teacher, capsys):
    """`teacher --seed 3 --weight-decay 1e-4` trains that teacher (not the default one);
    `distill` keeps --seed for the student and --teacher-seed for its teacher."""
    common = ["--dataset", "synthetic", "--teacher-dim", "16", "--epochs", "1",
              "--eval-every", "1", "--runs", str(teacher.parent), "--no-progress"]
    assert cli.main(["teacher", "--seed", "3", "--weight-decay", "1e-4", *common]) == 0
    path = Path(capsys.readouterr().out.strip().splitlines()[-1])
    config = json.loads((path / "config.json").read_text())
    assert (config["seed"], config["weight_decay"]) == (3, 1e-4)
    assert cli.main(["distill", "--method", "student", "--dim", "2", "--seed", "4",
                     "--print-path", *common]) == 0
    path = Path(capsys.readouterr().out.strip().splitlines()[-1])
    config = json.loads((path / "config.json").read_text())
    assert config["seed"] == 4 and config["teacher"] == teacher.name


def test_parallel_sweep_equals_serial(teacher):
    serial = experiment.sweep((2,), ("student", "fitnet"), teacher_dir=teacher,
                              runs_dir=teacher.parent, progress=False, **FAST)
    # the finished runs are reused by the parallel sweep: same folders, same metrics
    parallel = experiment.sweep((2,), ("student", "fitnet"), teacher_dir=teacher, jobs=2,
                                runs_dir=teacher.parent, progress=False, **FAST)
    assert list(parallel["run"]) == list(serial["run"])
    assert np.allclose(parallel["final_test_recall@50"], serial["final_test_recall@50"])


def test_unknown_method_is_rejected(teacher):
    with pytest.raises(ValueError, match="method"):
        experiment.student_run(teacher, "rrd", 4, progress=False)
