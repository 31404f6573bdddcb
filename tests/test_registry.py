"""The seams: a method and a model written here, outside htdviz, registered here, go
through training, a study, the report, the explorer and the diagnostics with no edit to
the package; and the built-ins are registered the same way."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from htdviz import distill, experiment, models, runs, study
from htdviz.config import StudentConfig, config_from_dict
from htdviz.options import Option
from htdviz.distill import base as method_registry
from htdviz.models import base as model_registry

TINY = dict(epochs=2, eval_every=1, progress=False)


class CosineToTeacher(distill.Distiller):
    """A toy method: each batch user's cosines to the batch's items should be the
    teacher's, up to ``margin``; groups: the sign pattern of the teacher's first two
    coordinates (4 groups)."""

    options = (Option("margin", 0.0, "cosine differences up to this are free", low=0.0,
                      label="-m{:g}"),)
    display_name = "Cosine"
    n_groups = 4
    epochs_started: list = []

    def __init__(self, teacher_user_repr, teacher_item_repr, student_dim, generator=None,
                 margin=0.0):
        super().__init__()
        self.register_teacher(teacher_user_repr, teacher_item_repr)
        self.margin = margin

    def forward(self, users, items, student_users, student_items):
        teacher = F.normalize(self.teacher_users[users], dim=1) @ \
            F.normalize(self.teacher_items[items], dim=1).T                # (U, I)
        student = F.normalize(student_users, dim=1) @ F.normalize(student_items, dim=1).T
        gap = F.relu((teacher - student).abs() - self.margin)
        return {"loss": gap.square().sum(), "mean_gap": gap.mean().detach()}

    def start_epoch(self, epoch, n_epochs):
        CosineToTeacher.epochs_started.append((epoch, n_epochs))

    def hard_groups(self, kind):
        teacher = self.teacher_users if kind == "user" else self.teacher_items
        return (teacher[:, 0] > 0).long() * 2 + (teacher[:, 1] > 0).long()


class ScaledMF(models.Recommender):
    """A toy model: BPR-MF whose representations are scaled by one learned factor."""

    def __init__(self, n_users, n_items, dim, generator=None):
        super().__init__()
        self.n_users, self.n_items, self.dim = n_users, n_items, dim
        self.user_emb = nn.Parameter(0.01 * torch.randn(n_users, dim, generator=generator))
        self.item_emb = nn.Parameter(0.01 * torch.randn(n_items, dim, generator=generator))
        self.log_scale = nn.Parameter(torch.zeros(()))

    def forward(self):
        scale = self.log_scale.exp()
        return self.user_emb * scale, self.item_emb * scale

    def config(self):
        return {"n_users": self.n_users, "n_items": self.n_items, "dim": self.dim}


@pytest.fixture(scope="module")
def registered():
    """The toy method and model registered as a notebook cell would; the registries are
    restored afterwards, so other test files see htdviz's own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(method_registry._METHODS, "classes", dict(method_registry._METHODS.classes))
        mp.setattr(model_registry._MODELS, "classes", dict(model_registry._MODELS.classes))
        distill.register_method("cosine", CosineToTeacher)
        models.register_model("scaledmf", ScaledMF)
        yield


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, registered):
    return experiment.teacher_run(dim=16, dataset="synthetic", epochs=3, eval_every=3,
                                  runs_dir=tmp_path_factory.mktemp("registry_runs"),
                                  progress=False)


def test_built_ins_are_registered_and_found_by_name():
    assert distill.method_names()[:5] == ("student", "fitnet", "de", "ftd", "htd")
    assert distill.get_method("student") is None
    assert distill.get_method("htd") is distill.HTD and distill.get_method("de") is distill.DE
    assert list(distill.method_options("htd")) == [
        "n_groups", "alpha", "group_design", "positive_pairs_only",
        "detach_student_prototypes", "balance_weight", "temperature_end"]
    assert distill.method_options("ftd") == {}
    assert models.get_model("bpr") is models.BPRMF
    assert models.get_model("lightgcn").build_options == ("n_layers",)


def test_unknown_names_are_one_clear_error(teacher):
    with pytest.raises(ValueError) as error:
        experiment.student_run(teacher, "cosin", 4, **TINY)
    message = str(error.value)
    assert message.startswith("method must be one of (") and "got 'cosin'" in message
    for name in ("student", "fitnet", "de", "ftd", "htd", "cosine"):
        assert repr(name) in message
    with pytest.raises(ValueError, match=r"model must be one of \('bpr', 'lightgcn', .*"
                                         r"'scaledmf'\), got 'mf'"):
        experiment.teacher_run(model="mf", dataset="synthetic", **TINY)


def test_registration_refuses_what_would_break_runs(registered):
    with pytest.raises(ValueError, match="'htd' is built into htdviz"):
        distill.register_method("htd", CosineToTeacher)
    with pytest.raises(ValueError, match="model 'bpr' is built into htdviz"):
        models.register_model("bpr", ScaledMF)
    models.register_model("bpr", models.BPRMF)          # the same class again: harmless
    with pytest.raises(ValueError, match="subclass of htdviz.distill.Distiller"):
        distill.register_method("plain", nn.Linear)
    with pytest.raises(ValueError, match="method name must be"):
        distill.register_method("a b", CosineToTeacher)

    class OtherK(CosineToTeacher):
        options = (Option("n_groups", 8, "K"),)

    with pytest.raises(ValueError, match="option 'n_groups' .* differs from method 'de'"):
        distill.register_method("otherk", OtherK)

    class Shadow(CosineToTeacher):
        options = (Option("dim", 3, "a clash"),)

    distill.register_method("shadow", Shadow)
    with pytest.raises(ValueError, match="option 'dim' is a setting of every student run"):
        StudentConfig(method="shadow")


def test_a_method_of_ones_own_trains_through_student_run(teacher):
    CosineToTeacher.epochs_started.clear()
    path = experiment.student_run(teacher, "cosine", 4, margin=0.1, n_groups=7, **TINY)
    config = json.loads((path / "config.json").read_text())
    assert config["method"] == "cosine" and config["margin"] == 0.1
    assert "n_groups" not in config                 # HTD's option: not this method's
    assert "-cosine-m0.1-s0-" in path.name
    assert CosineToTeacher.epochs_started == [(0, 2), (1, 2)]      # the hook was called
    run = runs.load_run(path)
    assert {"distill_loss", "mean_gap", "user_groups_used", "item_group_entropy"} <= \
        set(run.history.columns)
    teacher_run = runs.load_run(teacher)
    planted = (teacher_run.items[:, 0] > 0) * 2 + (teacher_run.items[:, 1] > 0)
    assert np.array_equal(run.item_groups, planted)                 # groups.npz written
    # the same configuration is reused, another option value is another run
    assert experiment.student_run(teacher, "cosine", 4, margin=0.1, **TINY) == path
    assert experiment.student_run(teacher, "cosine", 4, **TINY) != path
    # the configuration reads back, options included
    back = config_from_dict(config)
    assert back.margin == 0.1 and back.folder_name() == path.name


def test_a_method_of_ones_own_trains_through_a_study(teacher):
    experiment.student_run(teacher, "cosine", 4, margin=0.1, **TINY)
    table = study.study({"method": "cosine", "dim": 4, "margin": [0.1, 0.2]}, teacher=teacher,
                        runs_dir=teacher.parent, **TINY)
    assert list(table["status"]) == ["reused", "done"]
    assert list(table["margin"]) == [0.1, 0.2]
    assert "margin" in study.student_options()
    # worker processes learn the method from the study's process
    parallel = study.study({"method": "cosine", "dim": 4, "margin": [0.3, 0.4]},
                           teacher=teacher,
                           runs_dir=teacher.parent, workers=2, **TINY)
    assert list(parallel["status"]) == ["done", "done"], list(parallel["error"])
    with pytest.raises(ValueError, match="margin must be a finite number >= 0, got -1"):
        study.study({"method": "cosine", "margin": -1}, teacher=teacher,
                    runs_dir=teacher.parent, **TINY)


def test_a_model_of_ones_own_trains_a_teacher_and_its_students(teacher, registered):
    path = experiment.teacher_run(model="scaledmf", dim=8, dataset="synthetic",
                                  runs_dir=teacher.parent, **TINY)
    config = json.loads((path / "config.json").read_text())
    assert config["model"] == "scaledmf" and "n_layers" not in config
    assert path.name.startswith("synthetic-scaledmf-d8-teacher-s0-")
    model = models.load(path / "model.safetensors")
    assert isinstance(model, ScaledMF)
    users, _ = model.representations()
    assert np.allclose(users.numpy(), runs.load_run(path).users)
    student = experiment.student_run(path, "ftd", 4, **TINY)
    assert json.loads((student / "config.json").read_text())["model"] == "scaledmf"
    assert isinstance(models.load(student / "model.safetensors"), ScaledMF)


def test_the_report_and_the_explorer_show_a_method_of_ones_own(teacher):
    """The report's views that compare all students, and the diagnostics behind them (the
    discrepancy measures, the capacity table), take the method's run like the built-ins'."""
    pytest.importorskip("plotly")
    from htdviz import report

    students = {m: runs.load_run(experiment.student_run(teacher, m, 4, **TINY))
                for m in ("student", "ftd", "htd", "cosine")}
    teacher_run = runs.load_run(teacher)
    dataset = experiment.dataset_of(teacher_run.config)
    sections = {s.title: s for s in report._sections(dataset, teacher_run, students, 100,
                                                      "pca", 0)}
    accuracy = sections["Accuracy"].content
    assert "Cosine" in list(accuracy["method"]) and "Cosine" in sections["Accuracy"].finding
    curves = sections["Learning curves"].content
    assert "Cosine" in {trace.name for trace in curves.data}
    assert "cosine" in set(sections["Topology discrepancy"].csv[1]["method"])
    assert "Cosine" in set(sections["Capacity gap"].content[1]["method"])
    assert "Cosine" in set(sections["Where the topology error lies"].csv[1]["method"])
    pytest.importorskip("ipywidgets")
    from htdviz.viz import Explorer

    ex = Explorer.from_folder(teacher.parent, teacher=teacher.name, projection="pca",
                              n_groups=4, cache_dir=False)
    assert "cosine" in ex.method_dd.options
