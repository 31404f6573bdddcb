"""The diagnostics that locate a student's error: by teacher-similarity band, agreement
with the teacher's ranking, and group usage — against dense oracles and planted answers."""
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from htdviz import groups, topology
from htdviz.evaluate import ranking_agreement


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def band_oracle(t, s, edges, tc=None, sc=None, rows=None):
    """Every pair's rank by a full argsort of the teacher cosines; float64."""
    square = tc is None
    tc, sc = (t, s) if square else (tc, sc)
    ct, cs = _unit(t) @ _unit(tc).T, _unit(s) @ _unit(sc).T
    rows = np.arange(t.shape[0]) if rows is None else rows
    out = {b: [] for b in range(len(edges) - 1)}
    for a in rows:
        order = np.argsort(-ct[a], kind="stable")
        if square:
            order = order[order != a]
        for b, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
            cols = order[lo:hi]
            out[b].append((ct[a, cols] - cs[a, cols]) ** 2)
    return [np.concatenate(v).mean() for v in out.values()]


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(120, 16))
    s = t[:, :4] + 0.3 * rng.normal(size=(120, 4))          # a noisy low-rank student
    return t, s


def test_band_errors_equal_a_dense_oracle(pair):
    t, s = pair
    got = topology.band_errors(t, s, bands=(5, 30), chunk_size=17)
    assert got["band"].tolist() == ["1-5", "6-30", "31-119"]
    assert got["n_pairs"].tolist() == [5 * 120, 25 * 120, 89 * 120]
    np.testing.assert_allclose(got["mean_sq_error"], band_oracle(t, s, [0, 5, 30, 119]),
                               rtol=1e-5)
    np.testing.assert_allclose(got["error_share"].sum(), 1.0)
    rows = np.array([3, 50, 51, 119])
    got = topology.band_errors(t, s, bands=(5,), rows=rows)
    np.testing.assert_allclose(got["mean_sq_error"], band_oracle(t, s, [0, 5, 119], rows=rows),
                               rtol=1e-5)


def test_band_errors_between_two_sets_equal_a_dense_oracle(pair):
    t, s = pair
    got = topology.band_errors(t[:40], s[:40], t[40:], s[40:], bands=(3, 10, 500))
    assert got["band"].tolist() == ["1-3", "4-10", "11-80"]      # 500 >= 80 columns: dropped
    np.testing.assert_allclose(got["mean_sq_error"],
                               band_oracle(t[:40], s[:40], [0, 3, 10, 80], t[40:], s[40:]),
                               rtol=1e-5)
    # mean cosines per band: the nearest band holds the largest teacher cosines
    assert got["teacher_cos"].is_monotonic_decreasing


def test_a_student_that_keeps_exactly_the_near_pairs_has_no_near_error():
    """Planted: 12 clusters of 11 entities with positive coordinates in their own block of
    dims, so each entity's 10 nearest teacher neighbours are its cluster mates (cosine > 0
    against 0 for everyone else). The student keeps each cluster's geometry but folds the
    12 blocks onto 3, so clusters sharing a block get spurious similarity."""
    rng = np.random.default_rng(1)
    n_clusters, size, block = 12, 11, 5
    local = rng.uniform(0.1, 1.0, size=(n_clusters, size, block))
    teacher = np.zeros((n_clusters * size, n_clusters * block))
    student = np.zeros((n_clusters * size, 3 * block))
    for c in range(n_clusters):
        teacher[c * size:(c + 1) * size, c * block:(c + 1) * block] = local[c]
        student[c * size:(c + 1) * size, (c % 3) * block:(c % 3 + 1) * block] = local[c]
    got = topology.band_errors(teacher, student, bands=(10,)).set_index("band")
    assert got.loc["1-10", "mean_sq_error"] == pytest.approx(0.0, abs=1e-10)
    assert got.loc["11-131", "mean_sq_error"] > 0.05
    assert got.loc["1-10", "error_share"] == pytest.approx(0.0, abs=1e-9)


def test_band_errors_are_zero_for_the_teacher_itself_and_rotations(pair):
    t, _ = pair
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(16, 16)))
    got = topology.band_errors(t, t @ q, bands=(5,))
    np.testing.assert_allclose(got["mean_sq_error"], 0.0, atol=1e-10)


def test_band_errors_reject_bad_input(pair):
    t, s = pair
    with pytest.raises(ValueError, match="bands must be increasing"):
        topology.band_errors(t, s, bands=(10, 5))
    with pytest.raises(ValueError, match="give both"):
        topology.band_errors(t, s, teacher_cols=t)
    with pytest.raises(ValueError, match="rows must be"):
        topology.band_errors(t, s, rows=np.array([0, 500]))


def test_band_error_table_stacks_the_three_pair_types(pair):
    t, s = pair
    table = topology.band_error_table(t[:50], t[50:], s[:50], s[50:], bands=(5,),
                                      max_rows=20, random_state=0)
    assert table["pairs"].unique().tolist() == ["user-user", "item-item", "user-item"]
    user_user = table[table["pairs"] == "user-user"]
    assert user_user["n_pairs"].tolist() == [5 * 20, 44 * 20]
    user_item = table[table["pairs"] == "user-item"]
    rows = np.sort(np.random.default_rng(0).choice(50, 20, replace=False))
    np.testing.assert_allclose(user_item["mean_sq_error"],
                               band_oracle(t[:50], s[:50], [0, 5, 70], t[50:], s[50:], rows),
                               rtol=1e-5)


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


def test_group_usage_counts_groups_and_their_entropy():
    usage = groups.group_usage([0, 0, 1, 1], n_groups=30)
    assert usage == {"used": 2, "entropy": 1.0, "effective": 2.0}
    assert groups.group_usage(np.zeros(7, int), 30) == {"used": 1, "entropy": 0.0,
                                                         "effective": 1.0}
    usage = groups.group_usage(np.repeat(np.arange(8), 3), 30)
    assert usage["used"] == 8 and usage["entropy"] == pytest.approx(3.0)
    usage = groups.group_usage([0, 0, 0, 1], 4)
    assert usage["entropy"] == pytest.approx(-(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25)))


def test_fit_records_group_usage_for_distillers_with_groups(small_synthetic):
    from htdviz import distill, models
    from htdviz.train import TrainConfig, fit

    rng = np.random.default_rng(0)
    teacher = (rng.normal(size=(small_synthetic.n_users, 16)),
               rng.normal(size=(small_synthetic.n_items, 16)))
    config = TrainConfig(epochs=2, eval_every=1, batch_size=512)
    import torch
    model = models.BPRMF(small_synthetic.n_users, small_synthetic.n_items, 4,
                         generator=torch.Generator().manual_seed(0))
    htd = distill.HTD(*teacher, 4, n_groups=6)
    history = fit(model, small_synthetic, config, distiller=htd, device="cpu",
                  progress=False).history
    assert len(history) == 3
    last = history.iloc[-1]
    for kind in ("user", "item"):
        usage = groups.group_usage(htd.hard_groups(kind).numpy(), 6)
        assert last[f"{kind}_groups_used"] == usage["used"]
        assert last[f"{kind}_group_entropy"] == pytest.approx(usage["entropy"])
    assert history["item_groups_used"].between(1, 6).all()
    model = models.BPRMF(small_synthetic.n_users, small_synthetic.n_items, 4,
                         generator=torch.Generator().manual_seed(0))
    history = fit(model, small_synthetic, config, distiller=distill.FTD(*teacher),
                  device="cpu", progress=False).history
    assert not any(c.endswith("groups_used") for c in history.columns)
