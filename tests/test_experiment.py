"""Run folders: reuse, atomicity, the command line and the parallel sweep (synthetic data)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from htdviz import cli, experiment, runs
from htdviz.distill import annealed_temperature

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


def test_a_checkpoint_of_another_run_is_refused(tmp_path, small_synthetic, monkeypatch):
    from htdviz import models, train
    from htdviz.train import TrainConfig, fit

    monkeypatch.setattr(train, "CHECKPOINT_SECONDS", 0.0)
    checkpoint = tmp_path / "state.pt"
    model = models.BPRMF(small_synthetic.n_users, small_synthetic.n_items, 4)
    fit(model, small_synthetic, TrainConfig(epochs=1), progress=False, checkpoint=checkpoint)
    with pytest.raises(ValueError, match=r"state\.pt was written by another run"):
        fit(model, small_synthetic, TrainConfig(epochs=1, lr=0.01), progress=False,
            checkpoint=checkpoint)
    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"state\.pt: cannot be read"):
        fit(model, small_synthetic, TrainConfig(epochs=1), progress=False,
            checkpoint=checkpoint)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_a_gpu_checkpoint_on_a_cpu_only_machine_is_one_clear_error(tmp_path, small_synthetic,
                                                                   monkeypatch):
    from htdviz import models, train
    from htdviz.train import TrainConfig, fit

    monkeypatch.setattr(train, "CHECKPOINT_SECONDS", 0.0)
    checkpoint = tmp_path / "state.pt"
    model = models.BPRMF(small_synthetic.n_users, small_synthetic.n_items, 4)
    fit(model, small_synthetic, TrainConfig(epochs=1), progress=False, checkpoint=checkpoint)
    state = torch.load(checkpoint, weights_only=True)
    # what a distiller's Gumbel noise stream on a GPU leaves in a checkpoint
    state["generators"] = {"assignment.noise.cuda:0": torch.zeros(16, dtype=torch.uint8)}
    torch.save(state, checkpoint)
    with pytest.raises(ValueError, match=r"state\.pt was written on cuda:0, which this "
                                         r"machine lacks"):
        fit(model, small_synthetic, TrainConfig(epochs=1), progress=False,
            checkpoint=checkpoint)


def test_cli_options_reach_the_same_configuration(teacher, capsys):
    kwargs = dict(positive_pairs_only=False, detach_student_prototypes=False,
                  group_design="P,P", n_groups=5, epochs=1, eval_every=1)
    expected = experiment.student_run(teacher, "htd", 3, progress=False, **kwargs)
    args = ["distill", "--teacher", str(teacher), "--method", "htd", "--dim", "3",
            "--runs", str(teacher.parent), "--no-progress", "--print-path",
            *runs.cli_args(runs.StudentConfig(method="htd", dim=3, **kwargs))]
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


class _Recorder(torch.nn.Module):
    """A distiller that adds nothing and records the temperature HTD would use."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.calls = []

    def start_epoch(self, epoch, n_epochs):
        self.calls.append(annealed_temperature(epoch, n_epochs))

    def forward(self, users, items, user_repr, item_repr):
        return self.w * 0.0


@pytest.mark.parametrize("schedule", ["default", "reference"])
def test_schedules(schedule, small_synthetic):
    """default: E epochs, labels 0..E, tau(0), ..., tau(E-1); reference (the authors'
    loop): E + 1 epochs, labels -1..E (label e after e + 1 epochs), tau = 1 twice, then
    tau(1), ..., tau(E-1)."""
    from htdviz import models
    from htdviz.train import TrainConfig, fit
    epochs = 4
    recorder = _Recorder()
    model = models.BPRMF(small_synthetic.n_users, small_synthetic.n_items, 4,
                         generator=torch.Generator().manual_seed(0))
    result = fit(model, small_synthetic, TrainConfig(epochs=epochs, eval_every=2,
                                                     schedule=schedule),
                 distiller=recorder, device="cpu", progress=False)
    history = result.history
    tau = [annealed_temperature(e, epochs) for e in range(epochs)]
    assert (history["schedule"] == schedule).all()
    if schedule == "default":
        assert recorder.calls == tau
        assert list(history["epoch"]) == [0, 2, 4]
        assert list(history["epochs_trained"]) == [0, 2, 4]
    else:
        assert recorder.calls == [1.0] + tau
        assert recorder.calls[-1] == pytest.approx(1e-10 ** ((epochs - 1) / epochs))
        assert list(history["epoch"]) == [-1, 0, 2, 4]
        assert list(history["epochs_trained"]) == [0, 1, 3, 5]


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

