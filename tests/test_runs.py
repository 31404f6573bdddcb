"""htdviz.runs: reading run folders without the training code."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from htdviz import runs
from htdviz.config import (StudentConfig, TeacherConfig, add_options, cli_args, config_from_dict,
                           options_from_args)


def write_run(folder, config, users=None, items=None, user_groups=None, item_groups=None,
              history=None, metrics=None):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    if history is not None:
        history.to_csv(folder / "history.csv", index=False)
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    if users is not None:
        np.savez(folder / "embeddings.npz", users=users, items=items)
    if user_groups is not None:
        np.savez(folder / "groups.npz", users=user_groups, items=item_groups)
    return folder


@pytest.fixture
def run_root(tmp_path):
    rng = np.random.default_rng(0)
    history = pd.DataFrame({"epoch": [0, 10], "bpr_loss": [np.nan, 0.5],
                            "test_recall@50": [0.1, 0.2]})
    write_run(tmp_path / "t", {"role": "teacher", "dim": 8},
              rng.standard_normal((5, 8)), rng.standard_normal((7, 8)), history=history,
              metrics={"final": {"epoch": 10, "test_recall@50": 0.2}, "train_seconds": 3.5,
                       "device": "cpu"})
    write_run(tmp_path / "s", {"role": "student", "method": "htd", "dim": 2, "teacher": "t"},
              rng.standard_normal((5, 2)), rng.standard_normal((7, 2)),
              user_groups=np.array([0, 1, 1, 0, 2]), item_groups=np.arange(7) % 3)
    (tmp_path / "not-a-run").mkdir()
    return tmp_path


def test_load_run_reads_every_file(run_root):
    run = runs.load_run(run_root / "t")
    assert run.name == "t" and run.method == "teacher" and run.dim == 8
    assert run.users.shape == (5, 8) and run.items.shape == (7, 8)
    assert run.user_groups is None and run.groups("items") is None
    assert list(run.history["epoch"]) == [0, 10]
    assert run.metrics["final"]["test_recall@50"] == 0.2
    with np.load(run_root / "t" / "embeddings.npz") as npz:
        np.testing.assert_array_equal(run.representations("users"), npz["users"])

    student = runs.load_run(run_root / "s")
    assert student.method == "htd" and student.dim == 2
    np.testing.assert_array_equal(student.groups("users"), [0, 1, 1, 0, 2])
    np.testing.assert_array_equal(student.item_groups, np.arange(7) % 3)
    assert student.history.empty and student.metrics == {}


def test_load_run_without_embeddings_reads_only_the_small_files(run_root):
    run = runs.load_run(run_root / "s", embeddings=False)
    assert run.users is None and run.user_groups is None
    assert run.dim == 2                                   # from config.json


def test_list_runs_flattens_metrics_and_skips_other_folders(run_root):
    table = runs.list_runs(run_root)
    assert list(table["name"]) == ["s", "t"]
    assert list(table["method"]) == ["htd", "teacher"]
    assert table.set_index("name").loc["s", "teacher"] == "t"
    assert table.set_index("name").loc["t", "final_test_recall@50"] == 0.2
    assert table.set_index("name").loc["t", "train_seconds"] == 3.5
    assert "final_device" not in table.columns and "device" not in table.columns


def test_list_runs_of_a_missing_folder_is_empty(tmp_path):
    table = runs.list_runs(tmp_path / "nothing")
    assert table.empty and list(table.columns) == ["name", "path", "method", "dim", "teacher"]


def test_errors_name_what_is_wrong(run_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        runs.load_run(run_root / "not-a-run")
    with pytest.raises(ValueError, match="3 users groups for 2 users"):
        runs.Run.from_arrays("x", users=np.zeros((2, 3)), items=np.zeros((4, 3)),
                             user_groups=np.zeros(3, int))
    with pytest.raises(ValueError, match="integer group ids"):
        runs.Run.from_arrays("x", users=np.zeros((2, 3)), user_groups=np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="entity must be"):
        runs.Run.from_arrays("x", users=np.zeros((2, 3))).representations("tags")
    with pytest.raises(ValueError, match="no items representations"):
        runs.Run.from_arrays("x", users=np.zeros((2, 3))).representations("items")


def test_object_arrays_are_refused(tmp_path):
    """Run files are read without pickle."""
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    np.savez(folder / "embeddings.npz", users=np.array([{"a": 1}], dtype=object),
             items=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="allow_pickle"):
        runs.load_run(folder)


def test_runs_does_not_import_the_training_code():
    code = ("import sys, htdviz.runs; "
            "bad = [m for m in ('torch', 'htdviz.train', 'htdviz.models', 'htdviz.distill') "
            "if m in sys.modules]; print(bad); assert not bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------------------
# Configurations: recorded dict, folder name, command-line options
# --------------------------------------------------------------------------------------

#: config.json of runs written before the configuration dataclasses (kept verbatim): their
#: folder names must not change, or finished runs would be retrained.
OLD_TEACHER = {"dataset": "citeulike", "dim": 200, "epochs": 100, "eval_every": 10,
               "lr": 0.001, "model": "bpr", "role": "teacher", "seed": 0,
               "split": "reference", "weight_decay": 0.001}
OLD_STUDENT = {"alpha": 0.5, "dataset": "citeulike", "detach_student_prototypes": True,
               "dim": 20, "distill_weight": 0.001, "epochs": 30, "eval_every": 10,
               "group_design": "P,e", "lr": 0.001, "method": "htd", "model": "bpr",
               "n_groups": 30, "positive_pairs_only": False, "role": "student", "seed": 0,
               "split": "reference", "teacher": "citeulike-bpr-d200-teacher-s0-4ffecace",
               "weight_decay": 0.001}


def old_digest(config):
    """The folder hash as experiment.py computed it before runs.py owned it."""
    import hashlib
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]


@pytest.mark.parametrize("old", [OLD_TEACHER, OLD_STUDENT,
                                 {**OLD_TEACHER, "model": "lightgcn", "n_layers": 3},
                                 {**OLD_STUDENT, "method": "student", "dim": 10}])
def test_old_configurations_keep_their_folder_names(old):
    if old["role"] == "student" and old["method"] == "student":
        old = {k: v for k, v in old.items() if k not in (
            "alpha", "detach_student_prototypes", "distill_weight", "group_design",
            "n_groups", "positive_pairs_only")}
    config = config_from_dict(old)
    assert config.to_dict() == old
    assert config.digest() == old_digest(old)
    assert TeacherConfig().folder_name() == "citeulike-bpr-d200-teacher-s0-4ffecace"


def test_new_fields_are_recorded_only_when_they_change_something():
    base = TeacherConfig()
    assert "schedule" not in base.to_dict() and "data_sha256" not in base.to_dict()
    ref = TeacherConfig(schedule="reference")
    assert ref.to_dict()["schedule"] == "reference" and ref.digest() != base.digest()
    assert "-teacher-reference-" in ref.folder_name()
    table = TeacherConfig(dataset="clicks", split="random", data_file="/d/clicks.csv",
                               data_sha256="ab" * 32, user_col="uid")
    assert table.to_dict()["user_col"] == "uid" and table.to_dict()["data_sha256"] == "ab" * 32
    changed = TeacherConfig(**{**table.__dict__, "data_sha256": "cd" * 32})
    assert changed.folder_name() != table.folder_name()       # a changed file: a new run
    users_dat = TeacherConfig(dataset="u", split="random", data_file="/d/u.dat")
    assert "user_col" not in users_dat.to_dict()               # no columns in users.dat
    with pytest.raises(ValueError, match="schedule must be one of"):
        StudentConfig(schedule="paper")
    with pytest.raises(ValueError, match="dim must be an integer >= 1, got 0"):
        StudentConfig(dim=0)


@pytest.mark.parametrize("student", [
    StudentConfig(),
    StudentConfig(method="fitnet", dim=3, epochs=7, seed=2, distill_weight=0.5),
    StudentConfig(method="htd", positive_pairs_only=False, detach_student_prototypes=False,
                       group_design="P,P", n_groups=5, alpha=0.25, schedule="reference"),
])
def test_cli_args_are_parsed_back_into_the_same_configuration(student):
    """One spelling: the options cli_args writes, parsed by the options add_options makes,
    give the configuration back."""
    import argparse
    parser = argparse.ArgumentParser()
    add_options(parser, StudentConfig)
    args = parser.parse_args(cli_args(student))
    assert StudentConfig(**options_from_args(StudentConfig, args)) == student
    if not student.positive_pairs_only:
        assert "--all-pairs" in cli_args(student)


def test_write_run_then_load_run_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    run = runs.Run.from_arrays("r", users=rng.standard_normal((4, 3)),
                               items=rng.standard_normal((5, 3)),
                               user_groups=np.array([0, 1, 0, 1]), item_groups=np.arange(5),
                               config=StudentConfig(dim=3).to_dict(),
                               history=pd.DataFrame({"epoch": [0, 1], "test_recall@50": [0, .5]}),
                               metrics={"final": {"epoch": 1}})
    written = []
    path = runs.write_run(tmp_path / "r", run, {"model.bin": lambda f: written.append(f.name)})
    assert runs.finished(path) and written == ["model.bin"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no leftovers
    back = runs.load_run(path)
    np.testing.assert_array_equal(back.users, run.users)
    np.testing.assert_array_equal(back.item_groups, run.item_groups)
    assert back.config == run.config and back.metrics == run.metrics
    assert config_from_dict(back.config) == StudentConfig(dim=3)


def test_write_run_leaves_nothing_when_interrupted(tmp_path):
    run = runs.Run.from_arrays("r", users=np.ones((2, 2)), items=np.ones((3, 2)))

    def boom(file):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        runs.write_run(tmp_path / "r", run, {"model.bin": boom})
    assert list(tmp_path.iterdir()) == []


def test_as_run_accepts_each_form_once(run_root):
    users, items = np.ones((5, 2)), np.zeros((7, 2))
    folder = runs.as_run("s", run_root / "s")
    assert folder.method == "htd" and folder.path == run_root / "s"
    assert runs.as_run("x", folder) is folder
    mapping = runs.as_run("m", {"users": users, "items": items, "method": "ftd",
                                "metrics": {"a": 1}})
    assert mapping.method == "ftd" and mapping.metrics == {"a": 1}
    tup = runs.as_run(("htd", 2), (users, items, {"b": 2}))
    assert tup.name == "('htd', 2)" and tup.metrics == {"b": 2} and tup.dim == 2
    with pytest.raises(ValueError, match="must be a Run, a run folder"):
        runs.as_run("z", 3)
    with pytest.raises(ValueError, match="'users' and 'items'"):
        runs.as_run("z", {"users": users})


@pytest.mark.parametrize("method", ["de", "htd"])
def test_temperature_end_in_the_run_configuration_and_the_schedule(method):
    """DE and HTD take the last epoch's temperature (0.1: the authors' DE code cut at 100
    epochs); the default leaves the folder names of existing runs alone."""
    from htdviz import distill

    config = StudentConfig(method=method, temperature_end=0.1)
    assert f"-{method}-tend0.1-" in config.folder_name()
    assert cli_args(config)[-2:] == ["--temperature-end", "0.1"]
    assert "temperature_end" not in StudentConfig(method=method).to_dict()
    rng = np.random.default_rng(0)
    made = distill.get_method(method)(rng.normal(size=(6, 8)), rng.normal(size=(7, 8)), 4,
                                      **config.options)
    made.start_epoch(99, 100)
    assert made.temperature == pytest.approx(0.1 ** 0.99)     # 1 * (0.1 / 1) ** (99 / 100)
    made.start_epoch(100, 100)
    assert made.temperature == pytest.approx(0.1)
    for bad in (-1.0, 0.0, 1.5):
        with pytest.raises(ValueError, match=r"temperature_end must be in \[1e-30, 1\]"):
            StudentConfig(method=method, temperature_end=bad)


def test_balance_weight_in_the_run_configuration():
    config = StudentConfig(method="htd", balance_weight=0.5)
    assert "-htd-bal0.5-" in config.folder_name()
    assert cli_args(config) == ["--balance-weight", "0.5"]
    assert "balance_weight" not in StudentConfig(method="htd").to_dict()
    with pytest.raises(ValueError, match="balance_weight must be a finite number >= 0"):
        StudentConfig(method="htd", balance_weight=-1.0)


def test_a_teacher_configuration_names_a_data_set_it_can_find():
    from htdviz import experiment

    with pytest.raises(ValueError, match="not one of .*give a data file through"):
        TeacherConfig(dataset="data/clicks.csv")          # no path, no sha256 recorded
    with pytest.raises(ValueError, match="split must be 'random' for foursquare"):
        TeacherConfig(dataset="foursquare")
    config = experiment.teacher_config(dataset="foursquare", seed=3)
    assert (config.split, config.split_seed) == ("random", 3)
    with pytest.raises(TypeError, match="first argument is a TeacherConfig"):
        experiment.teacher_run("bpr")
