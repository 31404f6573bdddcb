"""htdviz.capacity: Eckart-Young bounds on planted ranks, spectra, the capacity table."""
import json

import numpy as np
import pandas as pd
import pytest

from htdviz import capacity, preservation, topology
from htdviz.runs import load_run


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _rank_r(n=150, dim=40, rank=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, rank)) @ rng.standard_normal((rank, dim))


def test_rank_r_teacher_has_zero_bound_from_r_on_and_positive_below():
    teacher = _rank_r(rank=5)
    labels = np.random.default_rng(1).integers(3, size=150)
    table = capacity.topology_error_bounds(teacher, [1, 2, 4, 5, 6, 40], labels)
    below, above = table[table["dim"] < 5], table[table["dim"] >= 5]
    for col in ("full_error", "hierarchical_error", "entity_error", "full_error_relative",
                "hierarchical_error_relative"):
        assert (above[col].abs() < 1e-10).all(), col
        assert (below[col] > 1e-4).all(), col
    assert (np.diff(table["full_error"]) <= 1e-15).all()          # more dims never hurt
    # the group part is rank <= n_groups = 3: reachable from d = 3 on
    assert table.loc[table["dim"] == 4, "group_error"].item() < 1e-10
    assert table.loc[table["dim"] == 2, "group_error"].item() > 1e-6


def test_bound_equals_dense_eckart_young_and_bounds_every_student():
    teacher = _rank_r(n=80, dim=12, rank=12, seed=3)
    labels = np.random.default_rng(2).integers(4, size=80)
    c = _unit(teacher) @ _unit(teacher).T
    eig = np.sort(np.linalg.eigvalsh(c))[::-1]
    table = capacity.topology_error_bounds(teacher, [1, 3, 6], labels)
    for d, row in zip([1, 3, 6], table.itertuples()):
        assert row.full_error == pytest.approx(np.sum(eig[d:] ** 2) / 80 ** 2, rel=1e-8)
        assert row.full_error_relative == pytest.approx(np.sum(eig[d:] ** 2) / np.sum(c ** 2),
                                                        rel=1e-8)
        # literal per-group and prototype-entity truncations
        within = sum(np.sum(np.sort(np.linalg.eigvalsh(c[np.ix_(labels == g, labels == g)]))
                            [::-1][d:] ** 2) for g in range(4))
        protos = _unit(np.stack([teacher[labels == g].mean(0) for g in range(4)]))
        sv = np.linalg.svd(protos @ _unit(teacher).T, compute_uv=False)
        n_within = np.sum(np.bincount(labels) ** 2)
        assert row.entity_error == pytest.approx(within / n_within, rel=1e-8)
        assert row.group_error == pytest.approx(np.sum(sv[d:] ** 2) / (4 * 80), rel=1e-8,
                                                abs=1e-14)
        # a lower bound: no d-dim student does better, however it is drawn
        for seed in range(5):
            student = teacher @ np.random.default_rng(seed).standard_normal((12, d))
            got = preservation.discrepancy(teacher, student, labels, measures=["ftd_error", "htd"])
            assert got["ftd_error"] >= row.full_error - 1e-12
            assert got["htd_error"] >= row.hierarchical_error - 1e-12


def test_spectrum_matches_pca_and_cosine_eigenvalues():
    x = _rank_r(n=60, dim=8, rank=8, seed=5)
    table = capacity.spectrum(x)
    centred = x - x.mean(0)
    expected = np.sort(np.linalg.eigvalsh(centred.T @ centred / 59))[::-1]
    np.testing.assert_allclose(table["explained_variance"], expected, rtol=1e-9)
    assert table["cumulative_ratio"].iloc[-1] == pytest.approx(1.0)
    assert list(table["component"]) == list(range(1, 9))
    raw = capacity.spectrum(x, normalize=True, center=False)
    cos_eig = np.sort(np.linalg.eigvalsh(_unit(x) @ _unit(x).T))[::-1][:8]
    np.testing.assert_allclose(raw["eigenvalue"], cos_eig, rtol=1e-9, atol=1e-12)


def test_parameter_counts_of_the_paper():
    # BPR on CiteULike: 5,219 users and 25,181 items (docs/method.md §10.4)
    assert capacity.parameter_count(5219, 25181, 20) == 608_000
    assert capacity.parameter_count(5219, 25181, 200) == 6_080_000
    with pytest.raises(ValueError, match="dim"):
        capacity.parameter_count(10, 10, 0)


def test_capacity_table_bounds_runs_and_metrics(tmp_path):
    rng = np.random.default_rng(0)
    users, items = _rank_r(n=40, dim=16, rank=16, seed=1), _rank_r(n=60, dim=16, rank=16,
                                                                   seed=2)
    folder = tmp_path / "student-d4"
    folder.mkdir()
    np.savez(folder / "embeddings.npz", users=users[:, :4], items=items[:, :4])
    (folder / "metrics.json").write_text(json.dumps({"final": {"test_recall@50": 0.2},
                                                     "device": "cpu", "seconds": 3}))
    runs = {"teacher copy": (users, items, {"test_recall@50": 0.3}),
            ("student", 4): load_run(folder),
            "random": {"users": rng.standard_normal((40, 4)),
                       "items": rng.standard_normal((60, 4))}}
    user_labels, item_labels = rng.integers(3, size=40), rng.integers(3, size=60)
    table = capacity.capacity_table(users, items, dims=[4, 16], runs=runs,
                                    user_labels=user_labels, item_labels=item_labels)
    assert list(table.columns[:5]) == ["method", "kind", "dim", "phi", "n_params"]
    bounds = table[table["kind"] == "bound"]
    assert list(bounds["dim"]) == [4, 16] and (bounds["method"] == "rank-d bound").all()
    assert bounds.loc[bounds["dim"] == 16, "full_error"].item() < 1e-10
    achieved = table[table["kind"] == "achieved"].set_index("method")
    assert list(achieved.index) == ["teacher copy", "student", "random"]
    assert achieved.loc["teacher copy", "full_error"] < 1e-10
    assert achieved.loc["teacher copy", "test_recall@50"] == 0.3
    assert achieved.loc["student", "final_test_recall@50"] == 0.2
    assert achieved.loc["student", "n_params"] == 100 * 4
    assert achieved.loc["student", "phi"] == 0.25
    bound4 = bounds[bounds["dim"] == 4].iloc[0]
    for method in ("student", "random"):
        for col in ("full_error", "hierarchical_error", "full_error_relative",
                    "hierarchical_error_relative"):
            assert achieved.loc[method, col] >= bound4[col] - 1e-12, (method, col)
    # the same numbers as the discrepancy of the stacked sets
    joint_t, joint_labels = topology.stack_entities(users, items, user_labels, item_labels)
    joint_s, _ = topology.stack_entities(users[:, :4], items[:, :4])
    direct = preservation.discrepancy(joint_t, joint_s, joint_labels, measures=["ftd_error", "htd"])
    assert achieved.loc["student", "full_error"] == pytest.approx(direct["ftd_error"])
    assert achieved.loc["student", "hierarchical_error"] == pytest.approx(direct["htd_error"])
    assert table["teacher_variance_ratio"].between(0, 1 + 1e-12).all()


def test_capacity_table_defaults_without_runs():
    rng = np.random.default_rng(0)
    table = capacity.capacity_table(rng.standard_normal((50, 20)),
                                    rng.standard_normal((70, 20)), n_groups=4,
                                    entities="items")
    assert list(table["dim"]) == [1, 2, 5, 10, 20]
    assert isinstance(table, pd.DataFrame) and (table["kind"] == "bound").all()
    assert table["hierarchical_error"].notna().all()


def test_bad_input():
    with pytest.raises(ValueError, match="dims"):
        capacity.topology_error_bounds(np.eye(4), [0])
    with pytest.raises(ValueError, match="entities"):
        capacity.capacity_table(np.eye(4), np.eye(4), entities="all")
    with pytest.raises(ValueError, match="is a path.*load_run"):
        capacity.capacity_table(np.eye(4), np.eye(4), runs={"x": "/nonexistent/folder"})
    with pytest.raises(ValueError, match="has 3 users"):
        capacity.capacity_table(np.eye(4), np.eye(4), runs={"x": (np.ones((3, 4)), np.eye(4))})
