"""htdviz.evaluate: full-ranking metrics against a per-user oracle and a hand-computed case;
ranking agreement with a teacher against a per-user oracle."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from htdviz import data
from htdviz.evaluate import full_ranking, metrics_from_ranks, ranking_agreement, target_ranks

KS = (1, 5, 10, 20, 50)


def oracle_metrics(user_emb: np.ndarray, item_emb: np.ndarray, ds: data.Dataset, split: str,
                   ks=KS) -> dict[str, float]:
    """The protocol of docs/method.md §8, one user at a time with np.argsort over all items."""
    target = ds.held_out(split)
    other = ds.held_out("valid" if split == "test" else "test")
    train = ds.train.tocsr()
    recall = {k: [] for k in ks}
    ndcg = {k: [] for k in ks}
    for u in range(ds.n_users):
        excluded = set(train.indices[train.indptr[u]:train.indptr[u + 1]].tolist())
        excluded.add(int(other[u]))
        candidates = np.array([i for i in range(ds.n_items) if i not in excluded])
        scores = item_emb[candidates] @ user_emb[u]
        ranking = candidates[np.argsort(-scores, kind="stable")]
        rank = int(np.flatnonzero(ranking == target[u])[0])
        for k in ks:
            recall[k].append(1.0 if rank < k else 0.0)
            ndcg[k].append(1.0 / math.log2(rank + 2) if rank < k else 0.0)
    out = {}
    for k in ks:
        out[f"recall@{k}"] = float(np.mean(recall[k]))
        out[f"ndcg@{k}"] = float(np.mean(ndcg[k]))
    return out


def adversarial_embeddings(ds: data.Dataset, split: str, seed: int = 0, dim: int = 8):
    """Embeddings on which every masking mistake shows.

    Random factors, plus one extra dimension per item: the user's coordinate there is a
    large bonus (1e3) for its training items and its other held-out item, and a random
    bonus in [0, 4) for its target. So the excluded items would fill the top of an
    unmasked list, and the targets land at ranks spread over roughly 0..100.
    """
    rng = np.random.default_rng(seed)
    users = rng.standard_normal((ds.n_users, dim))
    items = rng.standard_normal((ds.n_items, dim))
    bonus = ds.train.toarray().astype(np.float64) * 1e3
    rows = np.arange(ds.n_users)
    bonus[rows, ds.held_out("valid" if split == "test" else "test")] = 1e3
    bonus[rows, ds.held_out(split)] = rng.uniform(0, 4, ds.n_users)
    return np.hstack([users, bonus]), np.hstack([items, np.eye(ds.n_items)])


@pytest.mark.parametrize("split", ["test", "valid"])
def test_full_ranking_matches_per_user_oracle(small_synthetic, split):
    ds = small_synthetic
    user_emb, item_emb = adversarial_embeddings(ds, split)
    expected = oracle_metrics(user_emb, item_emb, ds, split)
    # Non-trivial metrics: some targets in the top 10, some beyond 50.
    assert 0.05 < expected["recall@10"] < expected["recall@50"] < 0.95

    for batch_size in (1024, 7):                   # one batch; ragged batches
        got = full_ranking(torch.from_numpy(user_emb), torch.from_numpy(item_emb), ds, split,
                           ks=KS, batch_size=batch_size)
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, abs=1e-12), key
    # numpy input is accepted too
    got = full_ranking(user_emb, item_emb, ds, split, ks=KS)
    assert got == pytest.approx(expected, abs=1e-12)


def test_full_ranking_masks_the_right_items(small_synthetic):
    # Embeddings built for the test split but evaluated on valid: the test-split bonus puts
    # the valid items at the top (1e3), and the valid split must ignore the held-out test item.
    ds = small_synthetic
    user_emb, item_emb = adversarial_embeddings(ds, "test")
    got = full_ranking(user_emb, item_emb, ds, "valid", ks=(1,))
    assert got == pytest.approx(oracle_metrics(user_emb, item_emb, ds, "valid", ks=(1,)))
    assert got["recall@1"] == 1.0


def tiny_dataset() -> data.Dataset:
    # 3 users, 6 items. Training items: u0 {0, 3}, u1 {5}, u2 {1, 2}.
    train = sp.csr_matrix((np.ones(5, np.float32), ([0, 0, 1, 2, 2], [0, 3, 5, 1, 2])),
                          shape=(3, 6))
    return data.Dataset(name="tiny", train=train, valid_items=np.array([1, 0, 5]),
                        test_items=np.array([4, 2, 0]), raw_user_ids=np.arange(3),
                        raw_item_ids=np.arange(6))


def tiny_embeddings():
    # One dimension: item i scores 6 - i for users 0 and 2, i - 6 for user 1.
    items = torch.tensor([[6.0], [5.0], [4.0], [3.0], [2.0], [1.0]])
    users = torch.tensor([[1.0], [-1.0], [1.0]])
    return users, items


def test_hand_computed_ranks_and_metrics():
    ds = tiny_dataset()
    users, items = tiny_embeddings()
    # test:  u0 ranks {2, 4, 5} -> item 4 at 1;  u1 ranks {4, 3, 2, 1} -> item 2 at 2;
    #        u2 ranks {0, 3, 4} -> item 0 at 0.
    # valid: u0 ranks {1, 2, 5} -> item 1 at 0;  u1 ranks {4, 3, 1, 0} -> item 0 at 3;
    #        u2 ranks {3, 4, 5} -> item 5 at 2.
    np.testing.assert_array_equal(target_ranks(users, items, ds, "test", max_k=6), [1, 2, 0])
    np.testing.assert_array_equal(target_ranks(users, items, ds, "valid", max_k=6), [0, 3, 2])
    # Ranks beyond the list are reported as max_k.
    np.testing.assert_array_equal(target_ranks(users, items, ds, "valid", max_k=2), [0, 2, 2])

    test = full_ranking(users, items, ds, "test", ks=(1, 3))
    assert test["recall@1"] == pytest.approx(1 / 3)
    assert test["recall@3"] == pytest.approx(1.0)
    assert test["ndcg@1"] == pytest.approx(1 / 3)
    assert test["ndcg@3"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4) + 1) / 3)

    valid = full_ranking(users, items, ds, "valid", ks=(1, 3))
    assert valid["recall@1"] == pytest.approx(1 / 3)
    assert valid["recall@3"] == pytest.approx(2 / 3)
    assert valid["ndcg@1"] == pytest.approx(1 / 3)
    assert valid["ndcg@3"] == pytest.approx((1 + 0 + 1 / math.log2(4)) / 3)


def test_metrics_from_ranks():
    got = metrics_from_ranks(np.array([0, 1, 9, 10, 50]), ks=(1, 10))
    assert got["recall@1"] == pytest.approx(1 / 5)
    assert got["recall@10"] == pytest.approx(3 / 5)
    assert got["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(11)) / 5)


def test_input_errors(small_synthetic):
    ds = small_synthetic
    users = torch.zeros(ds.n_users, 4)
    items = torch.zeros(ds.n_items, 4)
    with pytest.raises(ValueError, match="do not fit"):
        full_ranking(users[:-1], items, ds)
    with pytest.raises(ValueError, match="do not fit"):
        full_ranking(users, items[:-1], ds)
    with pytest.raises(ValueError, match="dim"):
        full_ranking(users, torch.zeros(ds.n_items, 3), ds)
    with pytest.raises(ValueError, match="ks"):
        full_ranking(users, items, ds, ks=(0, 10))
    with pytest.raises(ValueError, match="ks"):
        full_ranking(users, items, ds, ks=())
    with pytest.raises(ValueError, match="max_k"):
        target_ranks(users, items, ds, max_k=ds.n_items + 1)
    with pytest.raises(ValueError, match="split"):
        full_ranking(users, items, ds, split="train")

# --------------------------------------------------------------------------------------
# Agreement of a student's ranking with the teacher's
# --------------------------------------------------------------------------------------

def agreement_oracle(tu, ti, su, si, exclude, k):
    """One user at a time: both full rankings, excluded items dropped."""
    overlap, ndcg = [], []
    for u in range(tu.shape[0]):
        banned = set(exclude[u].indices)
        rank = lambda scores: [i for i in np.argsort(-scores, kind="stable")
                               if i not in banned][:k]
        t_top, s_top = rank(ti @ tu[u]), rank(si @ su[u])
        hits = np.array([i in t_top for i in s_top], dtype=float)
        disc = 1 / np.log2(np.arange(k) + 2)
        overlap.append(hits.sum() / k)
        ndcg.append(hits @ disc / disc.sum())
    return np.array(overlap), np.array(ndcg)


def test_ranking_agreement_equals_a_per_user_oracle():
    rng = np.random.default_rng(3)
    tu, ti = rng.normal(size=(40, 12)), rng.normal(size=(90, 12))
    su, si = tu[:, :3] + 0.2 * rng.normal(size=(40, 3)), ti[:, :3]
    exclude = sp.random(40, 90, density=0.15, random_state=3, format="csr")
    got = ranking_agreement(tu, ti, su, si, exclude, ks=(5, 20), batch_size=13)
    for k in (5, 20):
        overlap, ndcg = agreement_oracle(tu, ti, su, si, exclude, k)
        np.testing.assert_allclose(got[f"overlap@{k}"], overlap)
        np.testing.assert_allclose(got[f"ndcg@{k}"], ndcg, rtol=1e-9)
    assert 0 < got["overlap@5"].mean() < 1


def test_a_student_equal_to_the_teacher_agrees_on_every_top_k():
    rng = np.random.default_rng(4)
    tu, ti = rng.normal(size=(30, 8)), rng.normal(size=(60, 8))
    got = ranking_agreement(tu, ti, 2 * tu, ti, ks=(10, 50))   # scaled scores, same ranking
    np.testing.assert_allclose(got.to_numpy(), 1.0, rtol=1e-12)


def test_ranking_agreement_leaves_out_excluded_items():
    """The teacher and the student disagree only on item 0, which every user has seen."""
    rng = np.random.default_rng(5)
    tu, ti = rng.normal(size=(20, 6)), rng.normal(size=(50, 6))
    si = ti.copy()
    si[0] = 100 * tu.mean(0)                  # the student ranks item 0 first for most users
    exclude = sp.csr_matrix((np.ones(20), (np.arange(20), np.zeros(20, int))), shape=(20, 50))
    np.testing.assert_allclose(ranking_agreement(tu, ti, tu, si, exclude, ks=(10,)), 1.0,
                               rtol=1e-12)
    assert ranking_agreement(tu, ti, tu, si, None, ks=(10,))["overlap@10"].mean() < 1.0
