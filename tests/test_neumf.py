"""NeuMF as a base model: its score and loss against a literal per-pair transcription, its
full ranking against a per-pair oracle, a teacher run and the distillation methods on it."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from htdviz import data, experiment, models
from htdviz.distill import FTD
from htdviz.distill.spaces import PerSpace
from htdviz.evaluate import evaluate_model
from htdviz.models import BPRMF, NeuMF
from htdviz.models import neumf as neumf_module
from htdviz.config import StudentConfig, TeacherConfig
from htdviz.runs import load_run


class LiteralNeuMF(nn.Module):
    """NeuMF written as He et al. draw it: four embedding tables, the MLP as a Sequential
    on the concatenation, the output layer on [GMF ; MLP], one (user, item) pair at a
    time if asked. Weights copied from an htdviz NeuMF."""

    def __init__(self, model: NeuMF):
        super().__init__()
        d = model.dim
        self.user_MF = nn.Parameter(model.user_emb.detach()[:, :d].clone())
        self.item_MF = nn.Parameter(model.item_emb.detach()[:, :d].clone())
        self.user_MLP = nn.Parameter(model.user_emb.detach()[:, d:].clone())
        self.item_MLP = nn.Parameter(model.item_emb.detach()[:, d:].clone())
        layers = []
        for mine in model.mlp:
            layer = nn.Linear(mine.in_features, mine.out_features).to(mine.weight.dtype)
            layer.load_state_dict(mine.state_dict())
            layers += [layer, nn.ReLU()]
        self.MLP_layers = nn.Sequential(*layers)
        self.final_layer = nn.Linear(model.predict.in_features, 1).to(model.predict.weight.dtype)
        self.final_layer.load_state_dict(model.predict.state_dict())

    def forward(self, users, items):
        mf = self.user_MF[users] * self.item_MF[items]
        mlp = self.MLP_layers(torch.cat([self.user_MLP[users], self.item_MLP[items]], -1))
        return self.final_layer(torch.cat([mf, mlp], -1)).squeeze(-1)

    def loss(self, users, pos, neg):
        """-sum log sigmoid(s+) - sum log(1 - sigmoid(s-)), written out."""
        pos_prob = torch.sigmoid(self(users, pos))
        neg_prob = torch.sigmoid(self(users, neg))
        return -(torch.log(pos_prob).sum() + torch.log(1 - neg_prob).sum())


def _shaken(model: NeuMF, scale: float = 0.5, seed: int = 1) -> NeuMF:
    """The model with every weight redrawn at ``scale``: scores that spread, ReLUs that cut."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return model


@pytest.fixture(scope="module")
def tiny():
    return data.synthetic(n_users=40, n_items=70, items_per_user=6, seed=3)


@pytest.mark.parametrize("mlp_layers", [1, 3])
def test_loss_and_gradients_equal_literal_transcription(mlp_layers):
    model = _shaken(NeuMF(7, 9, 8, mlp_layers=mlp_layers).double())
    literal = LiteralNeuMF(model)
    users, pos, neg = torch.tensor([0, 3, 3, 6]), torch.tensor([1, 2, 8, 0]), \
        torch.tensor([5, 5, 7, 4])
    user_repr, item_repr = model()
    loss = model.training_loss(user_repr[users], item_repr[pos], item_repr[neg])
    expected = literal.loss(users, pos, neg)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    assert model.pair_scores(user_repr[users], item_repr[pos]).detach().numpy() == \
        pytest.approx(literal(users, pos).detach().numpy(), rel=1e-12)
    loss.backward()
    expected.backward()
    d = model.dim
    pairs = [(model.user_emb.grad[:, :d], literal.user_MF.grad),
             (model.user_emb.grad[:, d:], literal.user_MLP.grad),
             (model.item_emb.grad[:, :d], literal.item_MF.grad),
             (model.item_emb.grad[:, d:], literal.item_MLP.grad),
             (model.predict.weight.grad, literal.final_layer.weight.grad),
             (model.predict.bias.grad, literal.final_layer.bias.grad)]
    for mine, theirs in zip(model.mlp, literal.MLP_layers[::2]):
        pairs += [(mine.weight.grad, theirs.weight.grad), (mine.bias.grad, theirs.bias.grad)]
    for mine, theirs in pairs:
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-14)
    assert model.user_emb.grad[[1, 2, 4, 5]].abs().sum() == 0   # untouched users


def test_architecture_and_initialisation():
    model = NeuMF(300, 500, 16, mlp_layers=2, generator=torch.Generator().manual_seed(0))
    assert [(m.in_features, m.out_features) for m in model.mlp] == [(32, 16), (16, 8)]
    assert (model.predict.in_features, model.predict.out_features) == (16 + 8, 1)
    assert model().__len__() == 2 and model()[0].shape == (300, 32)
    assert model.user_emb.std().item() == pytest.approx(0.01, rel=0.05)
    for layer in model.mlp:                               # Xavier-uniform, zero bias
        bound = math.sqrt(6 / (layer.in_features + layer.out_features))
        assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.8 * bound
        assert layer.bias.abs().sum() == 0
    # Kaiming-uniform called with a = 1 and nonlinearity "relu": PyTorch's gain for "relu"
    # is sqrt(2) whatever a is, so the bound is sqrt(6 / fan_in), not sqrt(3 / fan_in)
    bound = math.sqrt(6 / model.predict.in_features)
    weight = model.predict.weight.abs()
    assert weight.max() <= bound and weight.max() > math.sqrt(3 / model.predict.in_features)
    assert model.predict.bias.item() == 0
    again = NeuMF(300, 500, 16, mlp_layers=2, generator=torch.Generator().manual_seed(0))
    other = NeuMF(300, 500, 16, mlp_layers=2, generator=torch.Generator().manual_seed(1))
    state, same, different = model.state_dict(), again.state_dict(), other.state_dict()
    assert all(torch.equal(state[k], same[k]) for k in state)
    assert not torch.equal(state["mlp.0.weight"], different["mlp.0.weight"])


@pytest.mark.parametrize("kwargs, name", [({"dim": 0}, "dim"), ({"mlp_layers": 0}, "mlp_layers"),
                                          ({"dim": 4, "mlp_layers": 4}, "mlp_layers=4")])
def test_rejects_bad_sizes(kwargs, name):
    with pytest.raises(ValueError, match=name):
        NeuMF(5, 5, **{"dim": 4, **kwargs})


def test_representation_spaces():
    assert NeuMF.representation_width(20) == 40
    assert NeuMF.representation_spaces(40) == (slice(0, 40),)
    assert NeuMF.representation_spaces(40, space="towers") == (slice(0, 20), slice(20, 40))
    with pytest.raises(ValueError, match="space must be one of"):
        NeuMF.representation_spaces(40, space="mf")
    assert BPRMF.representation_width(20) == 20 and BPRMF.representation_spaces(20) == \
        (slice(0, 20),)


def _oracle_metrics(literal, dataset, split, ks):
    """Full ranking by scoring every (user, item) pair one at a time with the literal
    model, masking by hand and counting the items above the held-out one."""
    target = dataset.held_out(split)
    other = dataset.held_out("valid" if split == "test" else "test")
    train = dataset.train.tocsr()
    ranks = []
    with torch.no_grad():
        for u in range(dataset.n_users):
            scores = np.array([literal(torch.tensor([u]), torch.tensor([i])).item()
                               for i in range(dataset.n_items)])
            scores[train.indices[train.indptr[u]:train.indptr[u + 1]]] = -np.inf
            scores[other[u]] = -np.inf
            ranks.append(int((scores > scores[target[u]]).sum()))
    ranks = np.array(ranks)
    out = {}
    for k in ks:
        out[f"recall@{k}"] = float(np.mean(ranks < k))
        out[f"ndcg@{k}"] = float(np.mean([1 / math.log2(r + 2) if r < k else 0.0
                                          for r in ranks]))
    return out, ranks


@pytest.mark.parametrize("mlp_layers", [1, 2])
def test_full_ranking_equals_per_pair_oracle(tiny, mlp_layers, monkeypatch):
    # small blocks: the torch path (two layers) goes through several user and item blocks
    monkeypatch.setattr(neumf_module, "_PAIR_BLOCK", 64)
    model = _shaken(NeuMF(tiny.n_users, tiny.n_items, 6, mlp_layers=mlp_layers), 0.7)
    literal = LiteralNeuMF(model)
    ks = (1, 5, 10)
    for split in ("test", "valid"):
        expected, ranks = _oracle_metrics(literal, tiny, split, ks)
        assert len(set(ranks.tolist())) > 5                  # a ranking, not a constant
        assert evaluate_model(model, tiny, split, ks) == pytest.approx(expected, abs=1e-12)
    users, items = model.representations()
    with torch.no_grad():
        every = literal(torch.arange(tiny.n_users).repeat_interleave(tiny.n_items),
                        torch.arange(tiny.n_items).repeat(tiny.n_users))
    torch.testing.assert_close(model.scorer(users, items)(torch.arange(tiny.n_users)),
                               every.view(tiny.n_users, tiny.n_items), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.score(torch.tensor([3, 0])),
                               every.view(tiny.n_users, tiny.n_items)[[3, 0]],
                               rtol=1e-5, atol=1e-5)


def test_dot_product_models_keep_their_defaults():
    model = BPRMF(6, 8, 4, generator=torch.Generator().manual_seed(0))
    users, items = model.representations()
    assert torch.equal(model.scorer(users, items)(torch.tensor([1, 5])),
                       users[[1, 5]] @ items.T)
    from htdviz.train import bpr_loss
    assert torch.equal(model.training_loss(users[:3], items[:3], items[3:6]),
                       bpr_loss(users[:3], items[:3], items[3:6]))


def test_config_records_neumf_options_only_for_neumf():
    neumf = TeacherConfig(model="neumf", mlp_layers=2).to_dict()
    assert neumf["mlp_layers"] == 2
    assert "mlp_layers" not in TeacherConfig(model="bpr").to_dict()
    student = StudentConfig(method="ftd", space="towers").inherit(
        "t", TeacherConfig(model="neumf", mlp_layers=2)).to_dict()
    assert (student["space"], student["mlp_layers"]) == ("towers", 2)
    bpr_student = StudentConfig(method="ftd").to_dict()
    assert "space" not in bpr_student and "mlp_layers" not in bpr_student
    with pytest.raises(ValueError, match="space"):
        StudentConfig(method="ftd", space="both")


def test_per_tower_ftd_is_the_sum_of_tower_ftds():
    g = torch.Generator().manual_seed(0)
    teacher_users = torch.randn(10, 12, generator=g)
    teacher_items = torch.randn(15, 12, generator=g)
    student_users, student_items = torch.randn(4, 6, generator=g), torch.randn(5, 6, generator=g)
    users, items = torch.tensor([0, 2, 5, 9]), torch.tensor([1, 3, 4, 8, 14])
    spaces = NeuMF.representation_spaces
    per_tower = PerSpace(FTD, teacher_users, teacher_items, spaces(12, space="towers"),
                         spaces(6, space="towers"))
    loss = per_tower(users, items, student_users, student_items)["loss"]
    expected = sum(FTD(teacher_users[:, t], teacher_items[:, t])(
        users, items, student_users[:, s], student_items[:, s])["loss"]
        for t, s in ((slice(0, 6), slice(0, 3)), (slice(6, 12), slice(3, 6))))
    whole = FTD(teacher_users, teacher_items)(users, items, student_users, student_items)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss.item() != pytest.approx(whole["loss"].item(), rel=1e-3)


@pytest.fixture(scope="module")
def neumf_teacher(tmp_path_factory):
    return experiment.teacher_run(model="neumf", dim=12, dataset="synthetic", epochs=3,
                                  eval_every=1, runs_dir=tmp_path_factory.mktemp("runs"),
                                  progress=False)


def test_teacher_run_end_to_end(neumf_teacher):
    run = load_run(neumf_teacher)
    assert "-neumf-d12-teacher-" in neumf_teacher.name
    config = json.loads((neumf_teacher / "config.json").read_text())
    assert (config["model"], config["mlp_layers"]) == ("neumf", 1)
    assert run.representations("users").shape[1] == 24          # [MF | MLP]
    history = run.history
    assert list(history["epoch"]) == [0, 1, 2, 3]
    loss = history["bpr_loss"].iloc[1:]                            # the BCE, summed
    assert (loss > 0).all() and loss.is_monotonic_decreasing
    assert loss.iloc[0] < 2 * math.log(2) * 1024                   # below its start
    dataset = data.synthetic()
    model = models.load(neumf_teacher / "model.safetensors")
    final = run.metrics["final"]
    mine = evaluate_model(model, dataset, "test")
    assert mine["recall@50"] == pytest.approx(final["test_recall@50"], abs=1e-12)


@pytest.mark.parametrize("method, space", [("ftd", "concat"), ("htd", "concat"),
                                           ("de", "concat"), ("fitnet", "concat"),
                                           ("htd", "towers"), ("rrd", "concat"),
                                           ("htd+rrd", "concat")])
def test_methods_distil_a_neumf_student(neumf_teacher, method, space):
    options = {"n_groups": 4} if method in ("htd", "de", "htd+rrd") else {}
    path = experiment.student_run(neumf_teacher, method, 4, epochs=2, eval_every=2,
                                  progress=False, space=space, **options)
    run = load_run(path)
    assert run.config["model"] == "neumf" and run.config["space"] == space
    assert run.representations("users").shape[1] == 8
    trained = run.history[run.history["epochs_trained"] > 0]
    assert len(trained) == 1
    for column in ("bpr_loss", "distill_loss", "test_recall@50"):
        assert np.isfinite(trained[column]).all() and trained[column].iloc[0] >= 0
    assert trained["distill_loss"].iloc[0] > 0


def test_rrd_ranks_by_the_neumf_teachers_own_scores(neumf_teacher):
    """RRD's teacher lists come from the NeuMF teacher's scorer (not dot products of its
    representations), and RRD cannot be split per tower."""
    from htdviz.config import StudentConfig
    from htdviz.distill.rrd import teacher_top_items

    run = load_run(neumf_teacher)
    dataset = experiment.dataset_of(run.config)
    teacher = models.load(neumf_teacher / "model.safetensors", dataset)
    config = StudentConfig(method="rrd", dim=4).inherit(neumf_teacher.name,
                                                        TeacherConfig.from_dict(run.config))
    tu, ti = run.representations("users"), run.representations("items")
    rrd = experiment.make_distiller(config, tu, ti, teacher_model=teacher)
    rrd.prepare(dataset)
    with torch.no_grad():
        scores = teacher.score(torch.arange(dataset.n_users))
    scores[torch.from_numpy(dataset.train.tocoo().row.astype(np.int64)),
           torch.from_numpy(dataset.train.tocoo().col.astype(np.int64))] = float("-inf")
    best = scores.topk(500, dim=1).indices.numpy()
    np.testing.assert_array_equal(rrd.sampler.top_items[:, :50], best[:, :50])
    dot = teacher_top_items(torch.as_tensor(tu), torch.as_tensor(ti), dataset.train, 500)
    assert (dot[:, :50] != best[:, :50]).any()          # the representations' dot is not it
    with pytest.raises(ValueError, match="give teacher_model"):
        experiment.make_distiller(config, tu, ti)
    with pytest.raises(ValueError, match="use space 'concat'"):
        experiment.make_distiller(StudentConfig(method="rrd", dim=4, space="towers").inherit(
            neumf_teacher.name, TeacherConfig.from_dict(run.config)), tu, ti,
            teacher_model=teacher)
