"""RRD (htdviz.distill.rrd) against a literal transcription of its authors' loss, and its
sampler's distributions against the exact ones."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy import stats

from htdviz.distill.rrd import RankSampler, relaxed_ranking_loss, teacher_top_items


def literal_relaxed_ranking_loss(S1, S2):
    """The authors' ``relaxed_ranking_loss`` (DE-RRD, Utils/loss.py), transcribed line by
    line: suffix sums by a flip and a cumulative sum (not flipped back), plain exp."""
    above = S1.sum(1, keepdims=True)
    below1 = S1.flip(-1).exp().cumsum(1)
    below2 = S2.exp().sum(1, keepdims=True)
    below = (below1 + below2).log().sum(1, keepdims=True)
    return -(above - below).sum()


@pytest.mark.parametrize("scale", [0.1, 3.0])
def test_loss_equals_the_authors_values_and_gradients(scale):
    generator = torch.Generator().manual_seed(0)
    s1 = (scale * torch.randn(7, 40, generator=generator, dtype=torch.float64)).requires_grad_()
    s2 = (scale * torch.randn(7, 40, generator=generator, dtype=torch.float64)).requires_grad_()
    ours, theirs = relaxed_ranking_loss(s1, s2), literal_relaxed_ranking_loss(s1, s2)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-10)
    g_ours = torch.autograd.grad(ours, [s1, s2])
    g_theirs = torch.autograd.grad(theirs, [s1, s2])
    for a, b in zip(g_ours, g_theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_loss_is_finite_where_the_literal_one_overflows():
    s1 = torch.full((2, 3), 100.0)
    s2 = torch.full((2, 4), 100.0)
    assert not torch.isfinite(literal_relaxed_ranking_loss(s1, s2))
    # every k: -(100 - log((3 - k + 4) e^100)) = log(7 - k)
    expected = 2 * sum(math.log(7 - k) for k in range(3))
    assert relaxed_ranking_loss(s1, s2).item() == pytest.approx(expected, rel=1e-5)  # float32


def test_the_order_of_the_interesting_items_matters():
    """Scores that follow the teacher's order lose less than the same scores reversed."""
    s1 = torch.tensor([[3.0, 2.0, 1.0]])
    s2 = torch.tensor([[0.0, 0.0]])
    assert relaxed_ranking_loss(s1, s2) < relaxed_ranking_loss(s1.flip(1), s2)


def test_teacher_top_items_equal_a_per_user_sort_without_training_items():
    rng = np.random.default_rng(0)
    users, items = rng.normal(size=(9, 4)), rng.normal(size=(30, 4))
    train = sp.random(9, 30, density=0.2, random_state=1, format="csr")
    top = teacher_top_items(torch.tensor(users), torch.tensor(items), train, n_top=12,
                            chunk=4)
    for u in range(9):
        scores = items @ users[u]
        ranked = [i for i in np.argsort(-scores, kind="stable") if train[u, i] == 0]
        assert top[u].tolist() == ranked[:12]
    with pytest.raises(ValueError, match="n_top"):
        teacher_top_items(torch.tensor(users), torch.tensor(items), train, n_top=29)


def successive_draw_probability(weights, chosen) -> float:
    """P(the set ``chosen``) under successive weighted draws without replacement: the sum
    over the orders in which it can be drawn."""
    total = 0.0
    for order in itertools.permutations(chosen):
        left, p = float(sum(weights)), 1.0
        for i in order:
            p *= weights[i] / left
            left -= weights[i]
        total += p
    return total


def test_interesting_positions_follow_successive_weighted_draws():
    """Chi-square test of the sampled sets against the exact probabilities (n_top 6, K 2,
    T 2): a sampler with other weights, with replacement or unsorted output fails it."""
    n_users, n_top, k = 4000, 6, 2
    top = np.tile(np.arange(n_top), (n_users, 1))
    train = sp.csr_matrix((n_users, 20))
    sampler = RankSampler(top, train, n_interesting=k, n_uninteresting=3, temperature=2.0)
    generator = torch.Generator().manual_seed(0)
    positions = np.concatenate([sampler.interesting_positions(generator) for _ in range(5)])
    assert (np.diff(positions, axis=1) > 0).all()           # sorted, no repeats
    weights = np.exp(-np.arange(1, n_top + 1) / 2.0)
    sets = list(itertools.combinations(range(n_top), k))
    expected = np.array([successive_draw_probability(weights, s) for s in sets])
    assert expected.sum() == pytest.approx(1.0)
    index = {s: j for j, s in enumerate(sets)}
    observed = np.bincount([index[tuple(p)] for p in positions], minlength=len(sets))
    _, p_value = stats.chisquare(observed, expected * len(positions))
    assert p_value > 1e-3
    # the same test rejects uniform sets: it can fail
    uniform = np.full(len(sets), len(positions) / len(sets))
    assert stats.chisquare(observed, uniform)[1] < 1e-6


def test_uninteresting_items_are_uniform_over_the_allowed_items():
    n_users, n_items, n_top, L = 3000, 12, 3, 4
    generator = torch.Generator().manual_seed(1)
    top = np.tile([0, 1, 2], (n_users, 1))
    train = sp.csr_matrix((np.ones(n_users), (np.arange(n_users), np.full(n_users, 3))),
                          shape=(n_users, n_items))                  # item 3 trained on
    sampler = RankSampler(top, train, n_interesting=2, n_uninteresting=L)
    items = sampler.uninteresting_items(generator)
    assert items.shape == (n_users, L)
    assert (np.sort(items, axis=1)[:, 1:] != np.sort(items, axis=1)[:, :-1]).all()  # no repeats
    assert not np.isin(items, [0, 1, 2, 3]).any()            # neither listed nor trained on
    counts = np.bincount(items.ravel(), minlength=n_items)[4:]
    _, p_value = stats.chisquare(counts)                     # uniform over items 4..11
    assert p_value > 1e-3


def literal_uninteresting(sampler, generator):
    """The rejection draw user by user: each user's first L candidates that are neither
    trained on, in its list, nor taken, in the order drawn (the same candidate stream)."""
    train, top, n_wanted = sampler.train, sampler.top_items, sampler.n_uninteresting
    out = np.full((train.shape[0], n_wanted), -1, dtype=np.int64)
    todo = np.arange(train.shape[0])
    while todo.size:
        candidates = torch.randint(train.shape[1], (todo.size, n_wanted + 8),
                                   generator=generator).numpy()
        for row, user in enumerate(todo):
            taken = list(out[user][out[user] >= 0])
            banned = set(train.indices[train.indptr[user]:train.indptr[user + 1]]) | \
                set(top[user]) | set(taken)
            for item in candidates[row]:
                if len(taken) < n_wanted and item not in banned:
                    taken.append(item)
                    banned.add(item)
            out[user, :len(taken)] = taken
        todo = todo[(out[todo] < 0).any(axis=1)]
    return out


def test_uninteresting_items_equal_the_user_by_user_draw():
    """All users at once, exactly the literal draw: the same items in the same order, also
    where users need several rounds (few allowed items: most candidates rejected)."""
    rng = np.random.default_rng(3)
    for n_users, n_items, n_top, n_wanted, density in [(120, 400, 40, 40, 0.05),
                                                       (60, 90, 20, 30, 0.3)]:
        train = sp.random(n_users, n_items, density=density, format="csr", random_state=4)
        top = np.stack([rng.permutation(n_items)[:n_top] for _ in range(n_users)])
        sampler = RankSampler(top, train, n_interesting=5, n_uninteresting=n_wanted)
        fast = sampler.uninteresting_items(torch.Generator().manual_seed(7))
        slow = literal_uninteresting(sampler, torch.Generator().manual_seed(7))
        np.testing.assert_array_equal(fast, slow)


def test_without_rank_sampling_the_interesting_items_are_the_top_k():
    top = np.arange(50).reshape(2, 25)
    sampler = RankSampler(top, sp.csr_matrix((2, 100)), n_interesting=5, n_uninteresting=3,
                          rank_sampling=False)
    interesting, _ = sampler.sample(torch.Generator().manual_seed(0))
    assert interesting.tolist() == [[0, 1, 2, 3, 4], [25, 26, 27, 28, 29]]


def test_sampler_rejects_impossible_settings():
    top = np.tile(np.arange(5), (2, 1))
    with pytest.raises(ValueError, match="n_interesting"):
        RankSampler(top, sp.csr_matrix((2, 10)), n_interesting=6)
    with pytest.raises(ValueError, match="n_uninteresting"):
        RankSampler(top, sp.csr_matrix((2, 10)), n_interesting=2, n_uninteresting=6)


@pytest.fixture(scope="module")
def synthetic_teacher(tmp_path_factory):
    from htdviz import experiment
    return experiment.teacher_run(dataset="synthetic", dim=16, epochs=2, eval_every=1,
                                  runs_dir=tmp_path_factory.mktemp("runs"), device="cpu",
                                  progress=False)


@pytest.mark.parametrize("method", ["rrd", "htd+rrd"])
def test_rrd_and_its_combinations_train_through_student_run(synthetic_teacher, method):
    """Each trains, records its method and every part's options, and logs every part's
    loss; a changed RRD option is a new run."""
    import pandas as pd

    from htdviz import experiment
    from htdviz.runs import load_run

    options = dict(n_top=50, n_groups=4) if method != "rrd" else dict(n_top=50)
    path = experiment.student_run(synthetic_teacher, method, 4, epochs=2, eval_every=1,
                                  progress=False, device="cpu", **options)
    run = load_run(path, embeddings=False)
    assert run.config["method"] == method and run.config["n_top"] == 50
    assert run.config["n_interesting"] == 40 and run.config["rank_sampling"] is True
    history = pd.read_csv(path / "history.csv")
    assert np.isfinite(history["distill_loss"].dropna()).all()
    if "+" in method:
        assert {f"{part}_loss" for part in method.split("+")} <= set(history.columns)
        assert run.config[f"{method.split('+')[0]}_weight"] == 1.0
    if method == "rrd":
        other = experiment.student_run(synthetic_teacher, method, 4, epochs=1, eval_every=1,
                                       progress=False, device="cpu", rank_sampling=False,
                                       **options)
        assert other.name != path.name and "topk" in other.name


def test_combination_loss_is_the_weighted_sum_of_its_parts():
    from htdviz.distill import HTD, combine

    teacher_users, teacher_items = torch.randn(30, 8), torch.randn(40, 8)
    train = sp.random(30, 40, density=0.1, random_state=0, format="csr")
    both = combine("htd", "rrd")(teacher_users, teacher_items, 3,
                                 generator=torch.Generator().manual_seed(0), n_groups=3,
                                 n_top=10, n_interesting=4, n_uninteresting=4, rrd_weight=0.5)
    alone = HTD(teacher_users, teacher_items, 3, generator=torch.Generator().manual_seed(0),
                n_groups=3)
    # the first part starts exactly as the method alone
    for (name, a), (_, b) in zip(both.parts["htd"].named_parameters(),
                                 alone.named_parameters()):
        assert torch.equal(a, b), name
    both.prepare(type("D", (), {"train": train})())
    both.start_epoch(0, 10)
    users, items = torch.arange(5), torch.arange(12)
    student_users, student_items = torch.randn(30, 3), torch.randn(40, 3)

    def scores(ids, item_ids):
        return torch.bmm(student_items[item_ids], student_users[ids][:, :, None]).squeeze(2)

    out = both(users, items, student_users[users], student_items[items], scores=scores)
    assert out["loss"].item() == pytest.approx(
        out["htd_loss"].item() + 0.5 * out["rrd_loss"].item(), rel=1e-6)
    rrd = both.parts["rrd"]
    expected = relaxed_ranking_loss(scores(users, rrd.interesting[users]),
                                     scores(users, rrd.uninteresting[users]))
    assert out["rrd_loss"].item() == pytest.approx(expected.item(), rel=1e-6)
