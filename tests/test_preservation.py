"""htdviz.preservation: blockwise computations against literal dense numpy, known answers;
the band errors that locate a student's error by teacher-similarity band."""
import numpy as np
import pytest
from scipy import stats

from htdviz import preservation



def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _clustered(n=120, dim=12, n_groups=4, noise=0.6, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_groups, dim))
    labels = rng.integers(n_groups, size=n)
    return centres[labels] + noise * rng.standard_normal((n, dim)), labels


def _dense_reference(t, s, labels, k, n_neighbors, temperature):
    """Every measure, written out literally over the dense float64 matrices."""
    ct, cs = _unit(t) @ _unit(t).T, _unit(s) @ _unit(s).T
    n = len(t)
    sq = (ct - cs) ** 2
    same = labels[:, None] == labels[None, :]
    groups = np.unique(labels)
    pt = _unit(np.stack([t[labels == g].mean(0) for g in groups]))
    ps = _unit(np.stack([s[labels == g].mean(0) for g in groups]))
    pe = (pt @ _unit(t).T - ps @ _unit(s).T) ** 2
    pp = (pt @ pt.T - ps @ ps.T) ** 2
    off_t, off_s = ct.copy(), cs.copy()
    np.fill_diagonal(off_t, -np.inf)
    np.fill_diagonal(off_s, -np.inf)
    nn_t = np.argsort(-off_t, axis=1)
    nn_s = np.argsort(-off_s, axis=1)
    overlap = np.mean([len(set(nn_t[i, :k]) & set(nn_s[i, :k])) / k for i in range(n)])
    iu = np.triu_indices(n, 1)
    h = np.eye(n) - 1.0 / n
    kt, ks = h @ ct @ h, h @ cs @ h
    kl = []
    for i in range(n):
        nb = nn_t[i, :n_neighbors]
        p = np.exp(ct[i, nb] / temperature) / np.exp(ct[i, nb] / temperature).sum()
        q = np.exp(cs[i, nb] / temperature) / np.exp(cs[i, nb] / temperature).sum()
        kl.append(np.sum(p * np.log(p / q)))
    return {
        "ftd_error": sq.mean(),
        "htd_entity_error": sq[same].mean(),
        "htd_group_error": pe.mean(),
        "htd_prototype_error": pp.mean(),
        "htd_error": (sq[same].sum() + pe.sum()) / (same.sum() + pe.size),
        f"knn_overlap@{k}": overlap,
        "spearman": stats.spearmanr(ct[iu], cs[iu])[0],
        "cka": np.sum(kt * ks) / np.sqrt(np.sum(kt * kt) * np.sum(ks * ks)),
        "kl_most_similar": np.mean(kl),
    }


def test_discrepancy_chunked_equals_literal_dense_float64():
    t, labels = _clustered(n=90, dim=12, n_groups=4)
    s = t @ np.random.default_rng(2).standard_normal((12, 5)) \
        + 0.3 * np.random.default_rng(3).standard_normal((90, 5))
    expected = _dense_reference(t, s, labels, k=7, n_neighbors=6, temperature=0.2)
    got = preservation.discrepancy(t, s, labels, k=7, n_neighbors=6, temperature=0.2,
                                   chunk_size=13)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    # the standalone KL runs the same computation
    assert preservation.preservation_kl(t, s, n_neighbors=6, temperature=0.2, chunk_size=8) == \
        pytest.approx(expected["kl_most_similar"], rel=1e-9)
    # float32 gives the same numbers to float32 precision
    got32 = preservation.discrepancy(t.astype(np.float32), s.astype(np.float32), labels, k=7,
                                     n_neighbors=6, temperature=0.2, chunk_size=13)
    for key in ("ftd_error", "htd_entity_error", "htd_group_error", "spearman", "cka"):
        assert got32[key] == pytest.approx(expected[key], rel=1e-4), key


def test_kl_random_uses_distinct_random_others_and_matches_dense():
    t, _ = _clustered(n=60, dim=8)
    s = t[:, :3] + 0.2
    rng = np.random.default_rng(5)
    nb = preservation._random_neighbours(60, 5, rng)
    assert nb.shape == (60, 5)
    assert all(len(set(row)) == 5 and i not in row for i, row in enumerate(nb))
    ct, cs = _unit(t) @ _unit(t).T, _unit(s) @ _unit(s).T
    kl = []
    for i, row in enumerate(nb):
        p = np.exp(ct[i, row] / 0.5)
        q = np.exp(cs[i, row] / 0.5)
        p, q = p / p.sum(), q / q.sum()
        kl.append(np.sum(p * np.log(p / q)))
    got = preservation.preservation_kl(t, s, n_neighbors=5, temperature=0.5, mode="random",
                                       random_state=np.random.default_rng(5))
    assert got == pytest.approx(np.mean(kl), rel=1e-9)


def test_random_neighbours_dense_case_has_no_self_and_no_repeats():
    nb = preservation._random_neighbours(6, 4, np.random.default_rng(0))
    assert all(len(set(row)) == 4 and i not in row for i, row in enumerate(nb))


def test_hand_computed_ftd_error():
    # teacher: 3 unit vectors at 0, 90, 180 degrees; student: all the same direction
    t = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    s = np.ones((3, 1))
    # teacher cosines [[1,0,-1],[0,1,0],[-1,0,1]], student all 1:
    # squared differences 0,1,4 / 1,0,1 / 4,1,0 -> sum 12 over 9 entries
    got = preservation.discrepancy(t, s, k=1, n_neighbors=2, measures=["ftd_error"])
    assert got["ftd_error"] == pytest.approx(12 / 9)


@pytest.mark.parametrize("positive_only, expected", [(False, (0 + 0 + 4 + 4 + 0 + 0) / 6),
                                                     (True, 0.0)])
def test_positive_pairs_only_drops_non_positive_teacher_pairs(positive_only, expected):
    # group 0 = entities 0 and 2 (teacher cosine -1, student +1: squared error 4),
    # group 1 = entity 1 alone
    t = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    s = np.array([[1.0], [1.0], [1.0]])
    got = preservation.discrepancy(t, s, np.array([0, 1, 0]), k=1, n_neighbors=2,
                                   positive_pairs_only=positive_only, measures=["htd"])
    # same-group pairs: (0,0) (0,2) (2,0) (2,2) (1,1) -> 5 entries; the quirk keeps 3
    n_pairs = 3 if positive_only else 5
    assert got["htd_entity_error"] == pytest.approx(expected * 6 / n_pairs)


def test_identical_or_rotated_embeddings_have_zero_discrepancy():
    t, labels = _clustered(n=80, dim=10)
    q, _ = np.linalg.qr(np.random.default_rng(4).standard_normal((16, 16)))
    rotated = np.hstack([t, np.zeros((80, 6))]) @ q * 3.0     # other dim, rotated, rescaled
    for student in (t.copy(), rotated):
        got = preservation.discrepancy(t, student, labels, k=5)
        for key, value in got.items():
            best = 1.0 if key.startswith(preservation.HIGHER_IS_BETTER) else 0.0
            assert value == pytest.approx(best, abs=1e-5), key
        assert preservation.preservation_kl(t, student, mode="random") == pytest.approx(0, abs=1e-8)


def test_random_student_is_worse_than_the_teacher_itself_on_every_measure():
    t, labels = _clustered(n=100, dim=16)
    student = np.random.default_rng(9).standard_normal((100, 4))
    self_ = preservation.discrepancy(t, t, labels, k=5)
    random_ = preservation.discrepancy(t, student, labels, k=5)
    assert self_.keys() == random_.keys() and len(self_) == 10
    for key in self_:
        if key.startswith(preservation.HIGHER_IS_BETTER):
            assert random_[key] < self_[key] - 0.1, key
        else:
            assert random_[key] > self_[key] + 1e-3, key


def test_group_errors_add_up_to_the_overall_errors():
    t, labels = _clustered(n=70, n_groups=5)
    s = np.random.default_rng(1).standard_normal((70, 3))
    per_group = preservation.group_errors(t, s, labels, n_groups=6)
    overall = preservation.discrepancy(t, s, labels, k=3, measures=["ftd_error", "htd"])
    assert list(per_group["group"]) == list(range(6))
    assert per_group.loc[5, "size"] == 0 and np.isnan(per_group.loc[5, "entity_error"])
    g = per_group.iloc[:5]
    assert np.sum(g["ftd_error"] * g["size"]) / 70 == pytest.approx(overall["ftd_error"])
    assert g["group_error"].mean() == pytest.approx(overall["htd_group_error"])
    pairs = g["size"] ** 2
    assert np.sum(g["entity_error"] * pairs) / pairs.sum() == \
        pytest.approx(overall["htd_entity_error"])


def test_knn_overlap_is_chance_level_for_unrelated_embeddings():
    rng = np.random.default_rng(0)
    got = preservation.knn_overlap(rng.standard_normal((400, 32)), rng.standard_normal((400, 32)),
                                   k=10)
    assert got < 0.1          # chance is 10 / 399


@pytest.mark.parametrize("kwargs, match", [
    (dict(student=np.ones((4, 2))), "same entities"),
    (dict(labels=np.array([0, 1])), "labels must have shape"),
    (dict(labels=np.array([0, -1, 0, 1, 1])), "labels must be >= 0"),
    (dict(labels=np.array([0.0, 1, 0, 1, 1])), "integer group ids"),
    (dict(k=5), "k must be"),
    (dict(n_neighbors=1), "n_neighbors must be"),
    (dict(temperature=0.0), "temperature"),
    (dict(measures=["ftd"]), "measures"),
    (dict(chunk_size=0), "chunk_size"),
])
def test_discrepancy_rejects_bad_input(kwargs, match):
    args = dict(teacher=np.eye(5), student=np.eye(5)[:, :3], labels=None, k=2, n_neighbors=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        preservation.discrepancy(**args)


def test_preservation_kl_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        preservation.preservation_kl(np.eye(4), np.eye(4), n_neighbors=2, mode="nearest")


def test_positive_pairs_only_equals_literal_dense_mask():
    t, labels = _clustered(n=64, dim=6, n_groups=3, noise=1.5)
    s = np.random.default_rng(3).standard_normal((64, 3))
    ct, cs = _unit(t) @ _unit(t).T, _unit(s) @ _unit(s).T
    keep = (labels[:, None] == labels[None, :]) & (ct > 0)
    assert 0 < keep.sum() < (labels[:, None] == labels[None, :]).sum()   # the mask bites
    got = preservation.discrepancy(t, s, labels, k=3, positive_pairs_only=True, chunk_size=10,
                                   measures=["htd"])
    assert got["htd_entity_error"] == pytest.approx(((ct - cs) ** 2)[keep].mean(), rel=1e-9)
    per_group = preservation.group_errors(t, s, labels, positive_pairs_only=True, chunk_size=7)
    for g in range(3):
        block = keep & (labels[:, None] == g)
        assert per_group.loc[g, "entity_error"] == \
            pytest.approx(((ct - cs) ** 2)[block].mean(), rel=1e-9)


def test_discrepancy_kl_random_equals_the_standalone_function():
    t, labels = _clustered(n=50)
    s = np.random.default_rng(0).standard_normal((50, 3))
    got = preservation.discrepancy(t, s, labels, k=3, random_state=4)
    assert got["kl_random"] == pytest.approx(
        preservation.preservation_kl(t, s, mode="random", random_state=4), rel=1e-12)
    assert got["kl_most_similar"] == pytest.approx(preservation.preservation_kl(t, s), rel=1e-12)


def test_sampled_rows_give_the_exact_values_of_those_rows_and_leave_the_rest_exact():
    t, labels = _clustered(n=90, dim=12, n_groups=4, noise=1.5)
    s = t @ np.random.default_rng(2).standard_normal((12, 5)) \
        + 0.3 * np.random.default_rng(3).standard_normal((90, 5))
    k, n_nb, m, seed = 7, 6, 25, 5
    rows = np.sort(np.random.default_rng(seed).choice(90, m, replace=False))
    # the oracle, per row over the dense matrices: ranked against all 90, not the sample
    ct, cs = _unit(t) @ _unit(t).T, _unit(s) @ _unit(s).T
    off_t, off_s = ct.copy(), cs.copy()
    np.fill_diagonal(off_t, -np.inf)
    np.fill_diagonal(off_s, -np.inf)
    nn_t, nn_s = np.argsort(-off_t, axis=1), np.argsort(-off_s, axis=1)
    overlap = [len(set(nn_t[i, :k]) & set(nn_s[i, :k])) / k for i in rows]
    kl = []
    for i in rows:
        nb = nn_t[i, :n_nb]
        p, q = np.exp(ct[i, nb]) / np.exp(ct[i, nb]).sum(), np.exp(cs[i, nb]) / \
            np.exp(cs[i, nb]).sum()
        kl.append(np.sum(p * np.log(p / q)))
    keep = (labels[:, None] == labels[None, :]) & (ct > 0)
    sq = (ct - cs) ** 2

    exact = preservation.discrepancy(t, s, labels, k=k, n_neighbors=n_nb, random_state=seed,
                                     positive_pairs_only=True, chunk_size=11)
    got = preservation.discrepancy(t, s, labels, k=k, n_neighbors=n_nb, random_state=seed,
                                   positive_pairs_only=True, chunk_size=11, max_rows=m)
    assert got[f"knn_overlap@{k}"] == pytest.approx(np.mean(overlap), rel=1e-12)
    assert got["kl_most_similar"] == pytest.approx(np.mean(kl), rel=1e-9)
    assert got["htd_entity_error"] == pytest.approx(sq[rows][keep[rows]].mean(), rel=1e-9)
    assert got["htd_entity_error"] != pytest.approx(exact["htd_entity_error"], rel=1e-6)
    for key in ("ftd_error", "htd_group_error", "htd_prototype_error", "spearman", "cka",
                "kl_random"):
        assert got[key] == exact[key], key
    # a sample as large as the set is the exact computation
    assert preservation.discrepancy(t, s, labels, k=k, n_neighbors=n_nb, max_rows=90) == \
        preservation.discrepancy(t, s, labels, k=k, n_neighbors=n_nb)
    with pytest.raises(ValueError, match="max_rows"):
        preservation.discrepancy(t, s, max_rows=0)

# --------------------------------------------------------------------------------------
# Band errors: where a student's error lies, by teacher-similarity band
# --------------------------------------------------------------------------------------

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
    got = preservation.band_errors(t, s, bands=(5, 30), chunk_size=17)
    assert got["band"].tolist() == ["1-5", "6-30", "31-119"]
    assert got["n_pairs"].tolist() == [5 * 120, 25 * 120, 89 * 120]
    np.testing.assert_allclose(got["mean_sq_error"], band_oracle(t, s, [0, 5, 30, 119]),
                               rtol=1e-5)
    np.testing.assert_allclose(got["error_share"].sum(), 1.0)
    rows = np.array([3, 50, 51, 119])
    got = preservation.band_errors(t, s, bands=(5,), rows=rows)
    np.testing.assert_allclose(got["mean_sq_error"], band_oracle(t, s, [0, 5, 119], rows=rows),
                               rtol=1e-5)


def test_band_errors_between_two_sets_equal_a_dense_oracle(pair):
    t, s = pair
    got = preservation.band_errors(t[:40], s[:40], t[40:], s[40:], bands=(3, 10, 500))
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
    got = preservation.band_errors(teacher, student, bands=(10,)).set_index("band")
    assert got.loc["1-10", "mean_sq_error"] == pytest.approx(0.0, abs=1e-10)
    assert got.loc["11-131", "mean_sq_error"] > 0.05
    assert got.loc["1-10", "error_share"] == pytest.approx(0.0, abs=1e-9)


def test_band_errors_are_zero_for_the_teacher_itself_and_rotations(pair):
    t, _ = pair
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(16, 16)))
    got = preservation.band_errors(t, t @ q, bands=(5,))
    np.testing.assert_allclose(got["mean_sq_error"], 0.0, atol=1e-10)


def test_band_errors_reject_bad_input(pair):
    t, s = pair
    with pytest.raises(ValueError, match="bands must be increasing"):
        preservation.band_errors(t, s, bands=(10, 5))
    with pytest.raises(ValueError, match="give both"):
        preservation.band_errors(t, s, teacher_cols=t)
    with pytest.raises(ValueError, match="rows must be"):
        preservation.band_errors(t, s, rows=np.array([0, 500]))


def test_band_error_table_stacks_the_three_pair_types(pair):
    t, s = pair
    table = preservation.band_error_table(t[:50], t[50:], s[:50], s[50:], bands=(5,),
                                          max_rows=20, random_state=0)
    assert table["pairs"].unique().tolist() == ["user-user", "item-item", "user-item"]
    user_user = table[table["pairs"] == "user-user"]
    assert user_user["n_pairs"].tolist() == [5 * 20, 44 * 20]
    user_item = table[table["pairs"] == "user-item"]
    rows = np.sort(np.random.default_rng(0).choice(50, 20, replace=False))
    np.testing.assert_allclose(user_item["mean_sq_error"],
                               band_oracle(t[:50], s[:50], [0, 5, 70], t[50:], s[50:], rows),
                               rtol=1e-5)
