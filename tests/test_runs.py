"""htdviz.runs: reading run folders without the training code."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from htdviz import runs


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
    with pytest.raises(ValueError, match="int group ids"):
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
