"""htdviz.probe: tag retrieval on planted tag structure where the answer is known."""
import numpy as np
import pytest
import scipy.sparse as sp

from htdviz import probe


def _planted(n_items=600, n_groups=8, dim=16, seed=0):
    """Each item's two tags are fixed by its group; the representation shows the group."""
    rng = np.random.default_rng(seed)
    group = rng.integers(n_groups, size=n_items)
    centres = rng.standard_normal((n_groups, dim)) * 2
    informative = centres[group] + 0.3 * rng.standard_normal((n_items, dim))
    rows = np.repeat(np.arange(n_items), 2)
    cols = np.stack([2 * group, 2 * group + 1], axis=1).ravel()
    tags = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n_items, 2 * n_groups))
    return informative, rng.standard_normal((n_items, dim)), tags


def test_informative_representation_finds_the_tags_and_noise_does_not():
    informative, noise, tags = _planted()
    good = probe.tag_retrieval(informative, tags, k=2, n_repeats=2, epochs=20)
    bad = probe.tag_retrieval(noise, tags, k=2, n_repeats=2, epochs=20)
    assert good["mean"] > 0.95
    assert bad["mean"] < 0.3                  # chance: 2 of 16 tags -> 0.125
    assert good["n_items"] == 600 and good["n_tags"] == 16
    assert len(good["values"]) == 2
    assert good["std"] == pytest.approx(np.std(good["values"]))
    assert good["mean"] == pytest.approx(np.mean(good["values"]))


def test_mlp_probe_reads_what_a_linear_probe_cannot():
    # tag 0 iff x1 * x2 > 0 (XOR of signs), tag 1 otherwise: not linearly separable
    rng = np.random.default_rng(1)
    x = rng.standard_normal((800, 2))
    positive = (x[:, 0] * x[:, 1] > 0).astype(int)
    tags = sp.csr_matrix((np.ones(800), (np.arange(800), 1 - positive)), shape=(800, 2))
    linear = probe.tag_retrieval(x, tags, kind="linear", k=1, n_repeats=2, epochs=30)
    mlp = probe.tag_retrieval(x, tags, kind="mlp", k=1, n_repeats=2, epochs=30, hidden=32,
                              lr=1e-2)
    assert linear["mean"] < 0.7
    assert mlp["mean"] > 0.9


def test_seeded_and_restricted_to_frequent_tags():
    informative, _, tags = _planted(n_items=200)
    a = probe.tag_retrieval(informative, tags, k=2, n_repeats=2, epochs=3, random_state=7)
    b = probe.tag_retrieval(informative, tags, k=2, n_repeats=2, epochs=3, random_state=7)
    assert a == b
    counts = np.asarray(tags.sum(0)).ravel()
    top4 = probe.tag_retrieval(informative, tags, k=2, n_tags=4, epochs=3)
    assert top4["n_tags"] == 4
    kept = np.argsort(-counts, kind="stable")[:4]
    assert top4["n_items"] == int((tags[:, kept].sum(1) > 0).sum())


def test_recall_at_k_by_hand():
    truth = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 1, 1]]))
    top = np.array([[0, 1], [1, 3], [2, 0]])
    assert probe._recall_at_k(top, truth) == pytest.approx((1 / 2 + 1 + 2 / 4) / 3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(kind="rbf"), "kind"),
    (dict(n_repeats=0), "n_repeats"),
    (dict(test_size=1.0), "test_size"),
    (dict(k=17), "k must be at most"),
    (dict(lr=0.0), "lr"),
    (dict(item_tags=sp.csr_matrix((5, 3))), "one row per item"),
])
def test_rejects_bad_input(kwargs, match):
    informative, _, tags = _planted(n_items=50)
    args = dict(item_repr=informative, item_tags=tags, epochs=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        probe.tag_retrieval(**args)
