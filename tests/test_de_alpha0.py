"""DE is HTD at alpha = 0 (docs/method.md §7), exactly: same parameters from the same
generator, same Gumbel noise, same loss, same gradients, and the same training run.

Issue 24, item 7: DE's 100-epoch runs and the alpha = 0 cells of the sensitivity study
disagree by more than their seed spread. These tests pin down that the two are one
computation in the current code, so that any difference between such runs comes from
outside the loss (random streams, code version, device), not from HTD's extra terms.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from htdviz import experiment, models
from htdviz.distill import DE, HTD
from htdviz.config import StudentConfig
from htdviz.train import TrainConfig, fit


def problem(seed, n_users=60, n_items=90, d_t=16, d_s=6, batch_users=40, batch_items=70):
    g = torch.Generator().manual_seed(seed)
    tu, ti = torch.randn(n_users, d_t, generator=g), torch.randn(n_items, d_t, generator=g)
    users = torch.randperm(n_users, generator=g)[:batch_users].sort().values
    items = torch.randperm(n_items, generator=g)[:batch_items].sort().values
    su = torch.randn(batch_users, d_s, generator=g).requires_grad_(True)
    si = torch.randn(batch_items, d_s, generator=g).requires_grad_(True)
    return tu, ti, users, items, su, si


def build_pair(tu, ti, d_s, k, seed, balance_weight=0.0):
    de = DE(tu, ti, d_s, n_groups=k, generator=torch.Generator().manual_seed(seed),
            balance_weight=balance_weight)
    htd = HTD(tu, ti, d_s, n_groups=k, alpha=0.0, generator=torch.Generator().manual_seed(seed),
              balance_weight=balance_weight)
    return de, htd


def assert_same_parameters(de, htd):
    """HTD's parameters are its GroupAssignment's, in the same order, bit for bit."""
    de_params = dict(de.named_parameters())
    htd_params = dict(htd.named_parameters())
    assert list(htd_params) == [f"assignment.{name}" for name in de_params]
    for name, p in de_params.items():
        assert torch.equal(p, htd_params[f"assignment.{name}"]), name


def step(distiller, users, items, su, si, noise=None):
    """Loss and gradients (students' and every parameter's) of one distiller call."""
    for t in (su, si):
        t.grad = None
    distiller.zero_grad(set_to_none=True)
    if noise is None:
        loss = distiller(users, items, su, si)["loss"]
    elif isinstance(distiller, HTD):
        loss = distiller(users, items, su, si, noise)["loss"]
    else:                                   # DE's forward draws its noise; .loss takes it
        loss = distiller.loss(users, items, su, si, noise)
    loss.backward()
    grads = [su.grad.clone(), si.grad.clone()] + [p.grad.clone() for p in distiller.parameters()]
    return loss.detach(), grads


# tau = 1: every expert weight non-zero (the dense mixture); tau = 1e-3 and 1e-10: most
# weights underflow to 0 (the CPU's sparse expert path, commit 46c7979)
@pytest.mark.parametrize("tau", [1.0, 1e-3, 1e-10])
@pytest.mark.parametrize("k", [3, 30])
def test_htd_at_alpha_0_is_de_given_the_same_noise(tau, k):
    """Identical initialisation and identical (explicit) Gumbel noise: equal loss and equal
    gradients, bit for bit: 0 * (entity + group) adds exactly 0 to each gradient and
    (1 - 0) * L_GA is L_GA."""
    tu, ti, users, items, su, si = problem(k)
    de, htd = build_pair(tu, ti, su.shape[1], k, seed=5)
    assert_same_parameters(de, htd)
    de.temperature = htd.assignment.temperature = tau
    g = torch.Generator().manual_seed(11)
    noise = {"user": -torch.empty(len(users), k).exponential_(generator=g).log(),
             "item": -torch.empty(len(items), k).exponential_(generator=g).log()}
    loss_de, grads_de = step(de, users, items, su, si, noise)
    loss_htd, grads_htd = step(htd, users, items, su, si, noise)
    assert torch.equal(loss_de, loss_htd)
    assert len(grads_de) == len(grads_htd)
    for i, (a, b) in enumerate(zip(grads_de, grads_htd)):
        assert torch.equal(a, b), f"gradient #{i}"
    assert any(g.abs().sum() > 0 for g in grads_de[2:])      # not trivially zero


@pytest.mark.parametrize("balance_weight", [0.0, 1.0])
def test_htd_at_alpha_0_draws_de_noise_from_the_same_generator(balance_weight):
    """Through forward (noise drawn inside, from the generator given): DE and HTD(alpha=0)
    built from one seed draw the same noise, give the same loss and gradients, and leave
    their generators in the same state, call after call."""
    tu, ti, users, items, su, si = problem(3)
    de, htd = build_pair(tu, ti, su.shape[1], 8, seed=7, balance_weight=balance_weight)
    for tau in (1.0, 1e-2, 1e-10):
        de.temperature = htd.assignment.temperature = tau
        loss_de, grads_de = step(de, users, items, su, si)
        loss_htd, grads_htd = step(htd, users, items, su, si)
        assert torch.equal(loss_de, loss_htd), tau
        for i, (a, b) in enumerate(zip(grads_de, grads_htd)):
            assert torch.equal(a, b), f"tau {tau}, gradient #{i}"
        assert torch.equal(de.generator.get_state(), htd.assignment.generator.get_state())


def test_htd_at_alpha_0_with_the_dense_entity_level_is_de(monkeypatch):
    """The GPU path of the entity level (one masked N x N product, chosen on CUDA) gives the
    same: at alpha = 0 the entity and group levels contribute exact zeros whichever way
    they are computed."""
    from htdviz.distill import htd as htd_module

    original = htd_module.within_group_error
    monkeypatch.setattr(htd_module, "within_group_error",
                        lambda t, s, labels, positive: original(t, s, labels, positive,
                                                                method="dense"))
    tu, ti, users, items, su, si = problem(4)
    de, htd = build_pair(tu, ti, su.shape[1], 5, seed=1)
    loss_de, grads_de = step(de, users, items, su, si)
    loss_htd, grads_htd = step(htd, users, items, su, si)
    assert torch.equal(loss_de, loss_htd)
    for a, b in zip(grads_de, grads_htd):
        assert torch.equal(a, b)


def test_make_distiller_builds_de_and_htd_alpha_0_from_the_same_stream():
    """student_run's path: the model from Generator(seed), the distiller from
    Generator(seed + 1). DE and HTD(alpha=0) take the same number of draws in the same
    order, so their parameters and the generator left for the Gumbel noise are equal."""
    tu, ti, *_ = problem(0, d_t=12)
    seed = 4
    built = {}
    for method, extra in (("de", {}), ("htd", {"alpha": 0.0})):
        config = StudentConfig(method=method, dim=5, n_groups=7, **extra)
        generator = torch.Generator().manual_seed(seed + 1)
        built[method] = (experiment.make_distiller(config, tu, ti, generator), generator)
    (de, g_de), (htd, g_htd) = built["de"], built["htd"]
    assert_same_parameters(de, htd)
    assert torch.equal(g_de.get_state(), g_htd.get_state())
    assert de.generator is g_de and htd.assignment.generator is g_htd


def test_de_and_htd_alpha_0_train_the_same_student(small_synthetic):
    """Whole runs through train.fit (BPR-MF student, as student_run builds it): same seed,
    same history and bit-equal embeddings for DE and HTD(alpha=0), over epochs whose
    temperature falls far enough for the CPU's sparse expert path."""
    ds = small_synthetic
    rng = np.random.default_rng(0)
    tu = rng.standard_normal((ds.n_users, 16)).astype(np.float32)
    ti = rng.standard_normal((ds.n_items, 16)).astype(np.float32)
    out = {}
    for method, extra in (("de", {}), ("htd", {"alpha": 0.0})):
        config = StudentConfig(method=method, dim=4, n_groups=6, **extra)
        model = models.BPRMF(ds.n_users, ds.n_items, 4,
                             generator=torch.Generator().manual_seed(0))
        distiller = experiment.make_distiller(config, tu, ti,
                                              torch.Generator().manual_seed(1))
        result = fit(model, ds, TrainConfig(epochs=3, eval_every=1, random_state=0),
                     distiller=distiller, device="cpu", progress=False)
        out[method] = (result.history, [x.detach().clone() for x in model.representations()])
    (hist_de, emb_de), (hist_htd, emb_htd) = out["de"], out["htd"]
    for a, b in zip(emb_de, emb_htd):
        assert torch.equal(a, b)
    columns = [c for c in hist_de.columns if c.startswith(("valid_", "test_", "bpr_loss",
                                                           "distill_loss", "user_", "item_"))]
    assert "distill_loss" in columns
    # HTD's distill_loss is (1 - alpha) * L_GA + alpha * (...) = L_GA, DE's is L_GA
    np.testing.assert_array_equal(hist_de[columns].to_numpy(), hist_htd[columns].to_numpy())
    assert np.allclose(hist_htd["distill_loss"].iloc[1:], hist_htd["assignment"].iloc[1:])
