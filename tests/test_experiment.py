"""htdviz.experiment: teacher and student runs, their reuse, atomicity and resumption,
and the parallel sweep (synthetic data)."""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from htdviz import experiment, runs, study

from conftest import TINY_TEACHER

FAST = dict(epochs=1, eval_every=1)


@pytest.fixture
def teacher(tiny_teacher):
    """The session's tiny teacher run (conftest.py); students go to its runs folder."""
    return tiny_teacher


def test_teacher_run_writes_every_file_and_is_reused(teacher):
    for name in ("config.json", "history.csv", "metrics.json", "embeddings.npz",
                 "model.safetensors"):
        assert (teacher / name).is_file(), name
    with np.load(teacher / "embeddings.npz") as z:
        assert z["users"].shape[1] == z["items"].shape[1] == 16
    stamp = (teacher / "metrics.json").stat().st_mtime_ns
    again = experiment.teacher_run(**TINY_TEACHER, runs_dir=teacher.parent, progress=False)
    assert again == teacher and (teacher / "metrics.json").stat().st_mtime_ns == stamp


def test_a_run_records_what_produced_it(teacher):
    software = json.loads((teacher / "metrics.json").read_text())["software"]
    assert software["torch"] == torch.__version__ and software["processor"]
    root = Path(experiment.__file__).resolve().parent.parent
    if (root / ".git").exists():                 # a checkout: the code's commit
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        assert software["commit"] == head and isinstance(software["dirty"], bool)
    else:
        assert software["commit"] is None


def test_htd_student_run_records_groups_and_its_configuration(teacher):
    path = experiment.student_run(teacher, "htd", 4, progress=False,
                                  positive_pairs_only=False, **FAST)
    config = json.loads((path / "config.json").read_text())
    assert config["method"] == "htd" and config["positive_pairs_only"] is False
    assert "allpairs" in path.name
    with np.load(path / "groups.npz") as g, np.load(teacher / "embeddings.npz") as t:
        assert g["users"].shape == (t["users"].shape[0],)
        assert g["items"].max() < 30
    row = runs.load_metrics(path)
    assert row["final_epoch"] == 1 and 0 <= row["final_test_recall@50"] <= 1


def test_interrupted_run_leaves_no_finished_looking_folder(teacher, monkeypatch):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt
    from htdviz import train

    monkeypatch.setattr(experiment.models, "save", boom)
    monkeypatch.setattr(train, "CHECKPOINT_SECONDS", 0.0)
    with pytest.raises(KeyboardInterrupt):
        experiment.student_run(teacher, "ftd", 3, progress=False, **FAST)
    leftovers = [p for p in teacher.parent.iterdir() if "-d3-ftd-" in p.name]
    # only the training state, from which the run resumes; no run folder
    assert [p.name.endswith(".checkpoint.pt") and p.is_file() for p in leftovers] == [True]
    monkeypatch.undo()
    path = experiment.student_run(teacher, "ftd", 3, progress=False, **FAST)
    assert runs.finished(path) and not experiment.checkpoint_path(path).exists()


@pytest.mark.parametrize("method, updates", [("htd", "dense"), ("student", "sparse")])
def test_a_stopped_run_resumes_where_it_stopped_and_ends_as_an_uninterrupted_one(
        teacher, tmp_path, monkeypatch, method, updates):
    from htdviz import train

    monkeypatch.setattr(train, "CHECKPOINT_SECONDS", 0.0)          # after every epoch
    options = dict(epochs=4, eval_every=2, n_groups=4, progress=False, updates=updates)
    whole = experiment.student_run(teacher, method, 4, runs_dir=tmp_path / "whole", **options)

    real = train.evaluate_both
    calls = []

    def stop_at_the_third_evaluation(*args, **kwargs):      # after epoch 2 of 4 is saved
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "evaluate_both", stop_at_the_third_evaluation)
    with pytest.raises(KeyboardInterrupt):
        experiment.student_run(teacher, method, 4, runs_dir=tmp_path / "split", **options)
    monkeypatch.setattr(train, "evaluate_both", real)
    checkpoint = experiment.checkpoint_path(tmp_path / "split" / whole.name)
    assert checkpoint.is_file() and not (tmp_path / "split" / whole.name).exists()
    assert torch.load(checkpoint, weights_only=True)["trained"] == 3
    resumed = experiment.student_run(teacher, method, 4, runs_dir=tmp_path / "split", **options)
    assert resumed.name == whole.name and not checkpoint.exists()
    a, b = runs.load_run(whole), runs.load_run(resumed)
    np.testing.assert_array_equal(a.users, b.users)
    np.testing.assert_array_equal(a.items, b.items)
    columns = [c for c in a.history.columns if c != "seconds"]
    assert len(a.history) == 3
    assert a.history[columns].equals(b.history[columns])
    if method == "htd":
        np.testing.assert_array_equal(a.item_groups, b.item_groups)


def test_parallel_sweep_equals_serial(teacher, tmp_path):
    """Two worker processes, in a folder of their own (nothing to reuse), train the very
    same runs as one process."""
    serial = study.sweep((2,), ("student", "fitnet"), teacher_dir=teacher,
                              runs_dir=teacher.parent, progress=False, **FAST)
    parallel = study.sweep((2,), ("student", "fitnet"), teacher_dir=teacher, jobs=2,
                                runs_dir=tmp_path, progress=False, **FAST)
    assert list(parallel["status"]) == ["done", "done"]
    assert list(parallel["run"]) == list(serial["run"])
    for name in serial["run"]:
        assert runs.finished(tmp_path / name)
        a, b = runs.load_run(teacher.parent / name), runs.load_run(tmp_path / name)
        np.testing.assert_array_equal(a.users, b.users)
        np.testing.assert_array_equal(a.items, b.items)
    assert np.array_equal(parallel["final_test_recall@50"], serial["final_test_recall@50"])


def test_sweep_is_a_study_and_raises_on_failure(tiny_study, monkeypatch):
    """A sweep over the tiny study's cells (conftest.py) reuses its runs."""
    runs_dir, table = tiny_study
    teacher = runs_dir / table.loc[0, "teacher"]
    swept = study.sweep((4, 8), ("student", "htd"), teacher_dir=teacher,
                             runs_dir=runs_dir, progress=False, epochs=2, eval_every=1)
    assert set(swept["status"]) == {"reused"}
    monkeypatch.setattr(experiment, "student_run",
                        lambda *a, **k: (_ for _ in ()).throw(ValueError("planted")))
    with pytest.raises(RuntimeError, match="1 of 1 sweep runs failed.*planted"):
        study.sweep((7,), ("student",), teacher_dir=teacher, runs_dir=runs_dir,
                         progress=False, epochs=2, eval_every=1)


def test_unknown_method_is_rejected(teacher):
    with pytest.raises(ValueError, match="method"):
        experiment.student_run(teacher, "no-such-method", 4, progress=False)


def test_reference_schedule_is_its_own_run(teacher):
    path = experiment.student_run(teacher, "student", 2, schedule="reference", progress=False,
                                  **FAST)
    config = json.loads((path / "config.json").read_text())
    assert config["schedule"] == "reference" and "-student-reference-" in path.name
    history = runs.load_run(path, embeddings=False).history
    assert list(history["epoch"]) == [-1, 0, 1] and list(history["epochs_trained"]) == [0, 1, 2]
    default = experiment.student_run(teacher, "student", 2, progress=False, **FAST)
    assert default != path and "schedule" not in json.loads(
        (default / "config.json").read_text())



def test_plan_names_the_folders_runs_would_use_and_which_exist(teacher, tmp_path):
    students = {"alone": ("student", 4, FAST), "htd": ("htd", 5, dict(FAST, n_groups=3))}
    before = experiment.plan(TINY_TEACHER, students, runs_dir=teacher.parent)
    assert before["run"].tolist() == ["teacher", "alone", "htd"]
    assert before.loc[0, "folder"] == teacher.name and before.loc[0, "reused"]
    assert not before.loc[2, "reused"] and before.loc[2, "epochs"] == 1
    path = experiment.student_run(teacher, "htd", 5, n_groups=3, progress=False, **FAST)
    after = experiment.plan(TINY_TEACHER, students, runs_dir=teacher.parent)
    assert after.loc[2, "folder"] == path.name and after.loc[2, "reused"]
    assert not experiment.plan(TINY_TEACHER, runs_dir=tmp_path)["reused"].any()
    with pytest.raises(ValueError, match=r"teacher: unknown arguments \['colour'\]"):
        experiment.plan(dict(TINY_TEACHER, colour="red"))


def test_student_run_takes_from_the_teacher_what_is_the_teachers(teacher):
    from htdviz.config import StudentConfig

    with pytest.raises(TypeError, match="lr come from the teacher run"):
        experiment.student_run(teacher, "ftd", 3, lr=0.1)
    with pytest.raises(TypeError, match="not both .*epochs"):
        experiment.student_run(teacher, StudentConfig(method="ftd", dim=3), epochs=2)


@pytest.fixture
def one_thread():
    """torch on one thread during the test (two trainings compared bit for bit; the
    suite's earlier tests may leave another count), then as before."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("model", ["bpr", "lightgcn", "neumf"])
def test_a_student_alone_of_its_teachers_size_is_its_teacher_run(tmp_path, monkeypatch,
                                                                 one_thread, model):
    # the paper's phi = 1.0 student alone: its folder is written from the teacher's run,
    # which is what training it again gives, to the last bit (on as many threads)
    teacher = experiment.teacher_run(model=model, dim=8, dataset="synthetic", epochs=2,
                                     eval_every=1, seed=3, runs_dir=tmp_path / "a",
                                     progress=False)
    alone = dict(epochs=2, eval_every=1, seed=3, progress=False)
    reused = experiment.student_run(teacher, "student", 8, **alone)
    assert runs.load_run(reused, embeddings=False).metrics["trained_as"] == teacher.name
    monkeypatch.setattr(experiment, "trains_as_teacher", lambda config, teacher: False)
    trained = experiment.student_run(teacher, "student", 8, runs_dir=tmp_path / "b", **alone)
    assert trained.name == reused.name
    assert "trained_as" not in runs.load_run(trained, embeddings=False).metrics
    assert (trained / "config.json").read_bytes() == (reused / "config.json").read_bytes()
    weights = [load_file(run / "model.safetensors") for run in (trained, reused)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    a, b = runs.load_run(trained), runs.load_run(reused)
    assert np.array_equal(a.users, b.users) and np.array_equal(a.items, b.items)
    assert a.metrics["final"] == b.metrics["final"]
    assert a.history.drop(columns="seconds").equals(b.history.drop(columns="seconds"))


def test_only_a_student_alone_with_its_teachers_settings_is_its_teacher(teacher):
    config = experiment.TeacherConfig(**TINY_TEACHER)
    same = dict(method="student", dim=16, epochs=1, eval_every=1, seed=0)
    student = experiment.StudentConfig
    assert experiment.trains_as_teacher(student(**same).inherit(teacher.name, config), config)
    for change in (dict(method="ftd"), dict(dim=8), dict(epochs=2), dict(seed=1),
                   dict(eval_every=2), dict(schedule="reference"), dict(updates="sparse")):
        other = student(**{**same, **change}).inherit(teacher.name, config)
        assert not experiment.trains_as_teacher(other, config), change
