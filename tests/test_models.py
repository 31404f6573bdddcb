"""htdviz.models: BPR-MF and LightGCN against obvious dense versions; safetensors save/load."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from htdviz import data
from htdviz.models import BPRMF, LightGCN, load, save


def dataset_with_isolated_item() -> data.Dataset:
    # 3 users, 6 items; item 4 is only a held-out item, so it has no edge in the graph.
    train = sp.csr_matrix((np.ones(5, np.float32), ([0, 0, 1, 2, 2], [0, 3, 5, 1, 2])),
                          shape=(3, 6))
    return data.Dataset(name="tiny", train=train, valid_items=np.array([1, 0, 5]),
                        test_items=np.array([4, 2, 0]), raw_user_ids=np.arange(3),
                        raw_item_ids=np.arange(6))


def dense_lightgcn(ds: data.Dataset, user_emb: torch.Tensor, item_emb: torch.Tensor,
                   n_layers: int):
    """LightGCN written out densely: A = [[0, R], [R^T, 0]], A_hat = D^-1/2 A D^-1/2 (rows of
    isolated nodes stay 0), final = mean of E, A_hat E, ..., A_hat^L E."""
    r = torch.tensor(ds.train.toarray(), dtype=torch.float64)
    n_users, n_items = r.shape
    adj = torch.zeros(n_users + n_items, n_users + n_items, dtype=torch.float64)
    adj[:n_users, n_users:] = r
    adj[n_users:, :n_users] = r.T
    degree = adj.sum(1)
    inv_sqrt = torch.where(degree > 0, degree.clamp(min=1e-12) ** -0.5, torch.zeros_like(degree))
    a_hat = inv_sqrt[:, None] * adj * inv_sqrt[None, :]
    layer = torch.cat([user_emb, item_emb]).double()
    layers = [layer]
    for _ in range(n_layers):
        layer = a_hat @ layer
        layers.append(layer)
    final = torch.stack(layers).mean(0)
    return final[:n_users], final[n_users:]


# --------------------------------------------------------------------------------------
# BPR-MF
# --------------------------------------------------------------------------------------

def test_bprmf_shapes_and_scores():
    model = BPRMF(7, 11, 5, generator=torch.Generator().manual_seed(0))
    users, items = model()
    assert users.shape == (7, 5) and items.shape == (11, 5)
    assert users.requires_grad
    reprs = model.representations()
    assert not reprs[0].requires_grad and reprs[1].shape == (11, 5)
    batch = torch.tensor([3, 0, 3])
    scores = model.score(batch)
    assert scores.shape == (3, 11)
    torch.testing.assert_close(scores[1], items.detach() @ users.detach()[0])
    torch.testing.assert_close(scores[0], scores[2])


def test_bprmf_init_is_seeded_gaussian():
    a = BPRMF(500, 400, 40, generator=torch.Generator().manual_seed(1))
    b = BPRMF(500, 400, 40, generator=torch.Generator().manual_seed(1))
    c = BPRMF(500, 400, 40, init_std=0.1, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a.user_emb, b.user_emb) and torch.equal(a.item_emb, b.item_emb)
    assert not torch.equal(a.user_emb, c.user_emb)
    assert a.user_emb.std().item() == pytest.approx(0.01, rel=0.03)
    assert c.item_emb.std().item() == pytest.approx(0.1, rel=0.03)
    assert abs(a.item_emb.mean().item()) < 1e-3


@pytest.mark.parametrize("kwargs, name", [
    (dict(n_users=0, n_items=3, dim=2), "n_users"),
    (dict(n_users=3, n_items=0, dim=2), "n_items"),
    (dict(n_users=3, n_items=3, dim=0), "dim"),
])
def test_bprmf_rejects_bad_sizes(kwargs, name):
    with pytest.raises(ValueError, match=name):
        BPRMF(**kwargs)


# --------------------------------------------------------------------------------------
# LightGCN
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_layers", [0, 1, 3])
def test_lightgcn_equals_dense_transcription(small_synthetic, n_layers):
    ds = small_synthetic
    model = LightGCN(ds, 6, n_layers=n_layers, init_std=1.0,
                     generator=torch.Generator().manual_seed(0))
    users, items = model()
    assert users.shape == (ds.n_users, 6) and items.shape == (ds.n_items, 6)
    want_users, want_items = dense_lightgcn(ds, model.user_emb.detach(),
                                            model.item_emb.detach(), n_layers)
    torch.testing.assert_close(users.detach().double(), want_users, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(items.detach().double(), want_items, atol=1e-5, rtol=1e-5)
    if n_layers == 0:
        assert torch.equal(users, model.user_emb)


def test_lightgcn_isolated_node_and_gradient():
    ds = dataset_with_isolated_item()
    model = LightGCN(ds, 4, n_layers=2, init_std=1.0, generator=torch.Generator().manual_seed(3))
    users, items = model()
    want_users, want_items = dense_lightgcn(ds, model.user_emb.detach(),
                                            model.item_emb.detach(), 2)
    torch.testing.assert_close(items.detach().double(), want_items, atol=1e-6, rtol=1e-6)
    # An item without training edges keeps 1/(L+1) of its own embedding.
    torch.testing.assert_close(items[4].detach(), model.item_emb[4].detach() / 3)

    # Gradients through the sparse propagation equal those of the dense version.
    weights = torch.randn(3 + 6, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    (torch.cat([users, items]).double() * weights).sum().backward()
    user_leaf = model.user_emb.detach().double().requires_grad_()
    item_leaf = model.item_emb.detach().double().requires_grad_()
    dense_u, dense_i = dense_lightgcn(ds, user_leaf, item_leaf, 2)
    (torch.cat([dense_u, dense_i]) * weights).sum().backward()
    torch.testing.assert_close(model.user_emb.grad.double(), user_leaf.grad, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(model.item_emb.grad.double(), item_leaf.grad, atol=1e-6, rtol=1e-6)


def test_lightgcn_rejects_bad_arguments(small_synthetic):
    with pytest.raises(ValueError, match="n_layers"):
        LightGCN(small_synthetic, 4, n_layers=-1)
    with pytest.raises(ValueError, match="dim"):
        LightGCN(small_synthetic, 0)


# --------------------------------------------------------------------------------------
# save / load
# --------------------------------------------------------------------------------------

def test_save_load_roundtrip_bprmf(tmp_path):
    model = BPRMF(13, 17, 6, init_std=0.2, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "bpr.safetensors"
    save(model, path)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:          # a safetensors file, no pickle
        assert f.metadata()["class"] == "BPRMF"
        assert sorted(f.keys()) == ["item_emb", "user_emb"]
    loaded = load(path)
    assert isinstance(loaded, BPRMF) and loaded.config() == model.config()
    for a, b in zip(model.representations(), loaded.representations()):
        assert torch.equal(a, b)


def test_save_load_roundtrip_lightgcn(tmp_path, small_synthetic):
    model = LightGCN(small_synthetic, 5, n_layers=3, init_std=0.3,
                     generator=torch.Generator().manual_seed(0))
    path = tmp_path / "lgcn.safetensors"
    save(model, path)
    loaded = load(path, dataset=small_synthetic)
    assert isinstance(loaded, LightGCN) and loaded.config() == model.config()
    assert loaded.n_layers == 3
    for a, b in zip(model.representations(), loaded.representations()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="dataset="):
        load(path)


def test_load_rejects_unknown_class(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"class": "Evil", "config": "{}"})
    with pytest.raises(ValueError, match="unknown model class 'Evil'"):
        load(path)
