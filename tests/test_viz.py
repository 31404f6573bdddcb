"""htdviz.viz: projections, figures and the explorer, checked on known inputs.

No browser: figures are inspected as data, and the explorer's selection callback is
called directly with point indices, as plotly would call it.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

pytest.importorskip("plotly")
pytest.importorskip("ipywidgets")

from htdviz import capacity, groups, preservation, topology  # noqa: E402
from htdviz.viz import figures, maps, projection  # noqa: E402


# --------------------------------------------------------------------------------------
# Inputs with known structure
# --------------------------------------------------------------------------------------

def planted(n=240, n_groups=4, dim=16, student_dim=4, seed=0, spread=0.3):
    """Teacher rows around group centres, a noisy low-dim student, shuffled labels."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_groups, dim))
    labels = rng.integers(n_groups, size=n)
    teacher = (centres[labels] + spread * rng.standard_normal((n, dim))).astype(np.float32)
    student = (teacher[:, :student_dim] + 0.2 * rng.standard_normal((n, student_dim))
               ).astype(np.float32)
    return teacher, student, labels


def random_rotation(dim, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return q


# --------------------------------------------------------------------------------------
# Optional dependencies
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("modules, banned", [
    # importing the views loads none of the optional libraries (and `project` is there)
    ("htdviz.viz, htdviz.viz.projection; htdviz.viz.project",
     ("plotly", "umap", "ipywidgets", "anywidget")),
    # the views never import the training code
    ("htdviz.viz.explorer, htdviz.viz.figures",
     ("htdviz.train", "htdviz.models", "htdviz.distill", "htdviz.experiment")),
], ids=["no-optional-dependency", "no-training-code"])
def test_importing_the_views_leaves_out(modules, banned):
    names, _, touch = modules.partition("; ")
    code = (f"import sys, {names}; bad = [m for m in {banned!r} if m in sys.modules]; "
            f"print(bad); assert not bad; {touch}")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_optional_dependency_says_what_to_install(monkeypatch):
    from htdviz.viz._optional import require

    monkeypatch.setitem(sys.modules, "umap", None)          # makes `import umap` fail
    with pytest.raises(ImportError, match=r'umap-learn.*pip install "htdviz\[viz\]"'):
        require("umap", "UMAP maps")
    teacher, _, _ = planted(n=20)
    with pytest.raises(ImportError, match="htdviz"):
        projection.project(teacher, method="umap", cache_dir=False)
    assert projection.project(teacher, method="pca", cache_dir=False).shape == (20, 2)


# --------------------------------------------------------------------------------------
# Projections
# --------------------------------------------------------------------------------------

def test_procrustes_recovers_a_rotated_scaled_shifted_copy():
    rng = np.random.default_rng(1)
    target = rng.standard_normal((50, 2))
    reflect = np.array([[1.0, 0.0], [0.0, -1.0]])
    source = 3.0 * target @ random_rotation(2, 2) @ reflect + np.array([5.0, -2.0])
    aligned, disparity = projection.procrustes_align(source, target)
    np.testing.assert_allclose(aligned, target, atol=1e-5)
    assert disparity < 1e-10
    # an unrelated shape keeps a large disparity
    assert projection.procrustes_align(rng.standard_normal((50, 2)), target)[1] > 0.5


def test_pca_matches_sklearn_on_unit_rows_with_fixed_signs():
    from sklearn.decomposition import PCA

    teacher, _, _ = planted()
    unit = teacher / np.linalg.norm(teacher, axis=1, keepdims=True)
    ours = projection.pca(teacher)
    theirs = PCA(2).fit_transform(unit)
    for j in range(2):
        assert np.allclose(ours[:, j], theirs[:, j], atol=1e-4) or \
            np.allclose(ours[:, j], -theirs[:, j], atol=1e-4)
    # signs follow the loadings, not the row order
    perm = np.random.default_rng(0).permutation(len(teacher))
    np.testing.assert_allclose(projection.pca(teacher[perm]), ours[perm], atol=1e-5)


def test_exact_knn_matches_brute_force():
    teacher, _, _ = planted(n=120)
    unit = teacher / np.linalg.norm(teacher, axis=1, keepdims=True)
    idx, dist = projection._exact_knn(unit, 5, chunk_size=32)
    sims = unit @ unit.T
    np.fill_diagonal(sims, np.inf)
    expected = np.argsort(-sims, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(idx, expected)
    assert (idx[:, 0] == np.arange(120)).all() and np.allclose(dist[:, 0], 0, atol=1e-6)
    np.testing.assert_allclose(dist[:, 1:], 1 - np.take_along_axis(unit @ unit.T,
                                                                    idx[:, 1:], 1), atol=1e-5)


def _kept_by_brute_force(x, xy, k):
    """neighbours_kept's oracle: every pair's cosine and map distance, one row at a time."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    kept = []
    for i in range(len(x)):
        others = np.delete(np.arange(len(x)), i)
        near = set(others[np.argsort(-(unit[others] @ unit[i]), kind="stable")[:k]])
        on_map = set(others[np.argsort(((xy[others] - xy[i]) ** 2).sum(1),
                                       kind="stable")[:k]])
        kept.append(len(near & on_map) / k)
    return np.array(kept)


@pytest.mark.parametrize("k", [1, 5, 10])
def test_neighbours_kept_equals_brute_force(k):
    rng = np.random.default_rng(k)
    x = rng.normal(size=(300, 3))
    xy = projection.pca(x) + rng.normal(scale=0.02, size=(300, 2))    # a lossy map
    kept = projection.neighbours_kept(x, xy, k=k, chunk_size=64)
    expected = _kept_by_brute_force(x, xy, k)
    assert 0.1 < kept.mean() < 0.9          # neither answer is trivial here
    np.testing.assert_array_equal(kept, expected)
    rows = np.array([5, 0, 299, 17])        # a few rows: the same shares, in that order
    np.testing.assert_array_equal(projection.neighbours_kept(x, xy, k=k, rows=rows),
                                  expected[rows])


def test_neighbours_kept_planted_answers():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    rotation = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    # an isometry of the unit rows (the geometry the maps start from) keeps every neighbour
    assert (projection.neighbours_kept(x, 3.0 * unit @ rotation + 1.0) == 1.0).all()
    # a map unrelated to the representations keeps about k / (n - 1)
    shuffled = projection.pca(x)[rng.permutation(500)]
    assert abs(projection.neighbours_kept(x, shuffled, k=10).mean() - 10 / 499) < 0.01
    sentence = projection.trust_sentence([0.31, 0.31], [0.2, 0.4], entity="users")
    assert sentence.startswith("The teacher's map keeps 31% and the student's 30% of each "
                               "user's 10 nearest neighbours")
    with pytest.raises(ValueError, match="k must be an integer in \\[1, 499\\], got 500"):
        projection.neighbours_kept(x, shuffled, k=500)
    with pytest.raises(ValueError, match="same entities: got 500 and 499"):
        projection.neighbours_kept(x, shuffled[:-1])


def test_project_pair_aligns_a_rotated_student_onto_its_teacher(tmp_path):
    teacher, _, _ = planted()
    student = teacher @ random_rotation(teacher.shape[1], 3)        # the same topology
    t_xy, s_xy = projection.project_pair(teacher, student, method="pca", cache_dir=tmp_path)
    np.testing.assert_allclose(s_xy, t_xy, atol=1e-4)
    unaligned = projection.project_pair(teacher, student, method="pca", align="none",
                                        cache_dir=tmp_path)[1]
    assert not np.allclose(unaligned, t_xy, atol=1e-2)


def test_two_maps_at_once_equal_one_after_the_other(tmp_path, monkeypatch):
    """The worker process computes the same map as this process, and caches it."""
    teacher, student, _ = planted(n=100)
    kwargs = dict(method="pca", n_components=2, cache_dir=tmp_path)
    t_xy, s_xy = projection._project_two_at_once(teacher, student, kwargs)
    np.testing.assert_array_equal(t_xy, projection.pca(teacher))
    np.testing.assert_array_equal(s_xy, projection.pca(student))
    assert len(list(tmp_path.glob("pca-*.npz"))) == 2           # the worker cached its map


def test_project_pair_maps_uncached_umap_pairs_at_once(tmp_path, monkeypatch):
    teacher, student, _ = planted(n=60)
    calls = []

    def record(t, s, kwargs):
        calls.append(kwargs)
        return projection.project(t, **kwargs), projection.project(s, **kwargs)

    monkeypatch.setattr(projection, "_project_two_at_once", record)
    monkeypatch.setattr(projection, "PARALLEL_MIN_ENTITIES", 0)
    options = dict(n_neighbors=5, n_epochs=10, cache_dir=tmp_path)
    projection.project_pair(teacher, student, parallel=False, **options)
    assert calls == []
    projection.project_pair(teacher, student, **options)          # both cached now
    assert calls == []
    projection.project_pair(teacher, student, random_state=1, **options)
    assert len(calls) == 1 and calls[0]["random_state"] == 1
    monkeypatch.setattr(projection, "PARALLEL_MIN_ENTITIES", 61)
    projection.project_pair(teacher, student, random_state=2, **options)
    assert len(calls) == 1                                         # too small to be worth it


def test_umap_is_deterministic_and_cached(tmp_path, monkeypatch):
    teacher, _, labels = planted(n=150)
    kwargs = dict(n_neighbors=10, n_epochs=30, random_state=3)
    first = projection.project(teacher, cache_dir=tmp_path, **kwargs)
    again = projection.project(teacher, cache_dir=False, **kwargs)
    np.testing.assert_array_equal(first, again)                # same seed, same map
    assert first.shape == (150, 2) and first.dtype == np.float32
    # planted groups stay apart: each point's nearest mapped neighbour shares its group
    d = ((first[:, None] - first[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (labels[d.argmin(1)] == labels).mean() > 0.9

    files = sorted(tmp_path.iterdir())
    assert [f.suffix for f in files] == [".npz"]               # no temporary file left
    with np.load(files[0], allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["map0"], first)

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a cached map")

    monkeypatch.setattr(projection, "_compute", fail)
    np.testing.assert_array_equal(projection.project(teacher, cache_dir=tmp_path, **kwargs),
                                  first)
    monkeypatch.undo()
    # the key covers the parameters and the data
    projection.project(teacher, cache_dir=tmp_path, **{**kwargs, "random_state": 4})
    projection.project(teacher[::-1], cache_dir=tmp_path, **kwargs)
    assert len(list(tmp_path.glob("*.npz"))) == 3


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HTDVIZ_CACHE_DIR", str(tmp_path / "c"))
    assert projection.default_cache_dir() == tmp_path / "c" / "projections"
    monkeypatch.delenv("HTDVIZ_CACHE_DIR")
    monkeypatch.setenv("HTDVIZ_DATA_DIR", str(tmp_path / "d"))
    assert projection.default_cache_dir() == tmp_path / "d" / "cache" / "projections"


def test_projection_validates_its_inputs():
    teacher, student, _ = planted(n=30)
    with pytest.raises(ValueError, match="method must be one of"):
        projection.project(teacher, method="tsne")
    with pytest.raises(ValueError, match=r"n_neighbors must be an integer in \[2, 29\]"):
        projection.project(teacher, n_neighbors=30, cache_dir=False)
    with pytest.raises(ValueError, match="same entities: got 30 and 29"):
        projection.project_pair(teacher, student[:29], method="pca")
    with pytest.raises(ValueError, match="non-finite"):
        projection.project(np.full((5, 2), np.nan), method="pca")
    with pytest.raises(ValueError, match="init must be one of"):
        projection.project(teacher, init="random", cache_dir=False)
    with pytest.raises(ValueError, match="align='aligned_umap' needs method='umap'"):
        projection.project_pair(teacher, student, method="pca", align="aligned_umap")


# --------------------------------------------------------------------------------------
# Maps
# --------------------------------------------------------------------------------------

def test_map_figure_one_trace_per_panel_with_ids_groups_and_tags():
    rng = np.random.default_rng(0)
    t_xy, s_xy = rng.standard_normal((10, 2)), rng.standard_normal((10, 2))
    labels = np.array([2, 0, 1, 1, 0, 2, 2, 0, 1, 0])
    ids = np.arange(100, 110)
    tags = pd.DataFrame({"group": [0, 0, 1, 2], "rank": [2, 1, 1, 1],
                         "tag": ["beta", "alpha", "gamma", "delta"]})
    fig = figures.map_figure(t_xy, s_xy, ids=ids, groups=labels, group_tags=tags)
    assert len(fig.data) == 2 + 3                    # two panels + one legend entry per group
    teacher, student = fig.data[:2]
    np.testing.assert_allclose(teacher.x, t_xy[:, 0])
    np.testing.assert_allclose(student.y, s_xy[:, 1])
    assert (teacher.xaxis, student.xaxis) == ("x", "x2")
    assert [row[0] for row in teacher.customdata] == ids.tolist()
    assert [row[1] for row in student.customdata] == [str(g) for g in labels]
    assert teacher.customdata[1][2] == "alpha, beta"            # group 0, by rank
    assert "customdata[0]" in teacher.hovertemplate and "customdata[2]" in \
        teacher.hovertemplate
    # a group has one colour, in both panels, and groups differ: codes on a stepwise scale
    codes = np.asarray(teacher.marker.color)
    np.testing.assert_array_equal(codes, labels)
    assert list(student.marker.color) == list(codes)
    scale = teacher.marker.colorscale
    assert [scale[2 * k][1] for k in range(3)] == list(figures.PALETTE[:3])
    assert (teacher.marker.cmin, teacher.marker.cmax) == (-0.5, 2.5)
    assert [t.name for t in fig.data[2:]] == ["0", "1", "2"]
    assert all(t.x == (None,) for t in fig.data[2:])


def test_map_figure_continuous_colour_and_highlight():
    rng = np.random.default_rng(0)
    xy = rng.standard_normal((6, 2))
    popularity = np.array([1.0, 5.0, 2.0, 0.0, 3.5, 9.0])
    fig = figures.map_figure(xy, xy, color=popularity, color_name="popularity",
                             highlight=[3, 5])
    assert len(fig.data) == 2
    np.testing.assert_allclose(fig.data[0].marker.color, popularity)
    assert fig.data[0].marker.coloraxis == "coloraxis"
    assert fig.layout.coloraxis.colorbar.title.text == "popularity"
    assert list(fig.data[0].selectedpoints) == [3, 5] == list(fig.data[1].selectedpoints)
    assert "popularity: %{customdata[4]}" in fig.data[0].hovertemplate
    mask = np.zeros(6, bool)
    mask[[0, 1]] = True
    assert list(figures.map_figure(xy, xy, highlight=mask).data[0].selectedpoints) == [0, 1]
    with pytest.raises(ValueError, match=r"teacher_xy and student_xy must hold the same"):
        figures.map_figure(xy, xy[:5])
    with pytest.raises(ValueError, match=r"groups must have shape \(6,\)"):
        figures.map_figure(xy, xy, groups=[0, 1])


def test_projection_figure_is_deterministic_under_a_seed(tmp_path):
    teacher, student, labels = planted(n=120)
    kwargs = dict(groups=labels, n_neighbors=8, n_epochs=25, random_state=0)
    one = projection.project_pair(teacher, student, n_neighbors=8, n_epochs=25,
                                  cache_dir=tmp_path)
    fig = figures.projection_figure(teacher, student, cache_dir=False, **kwargs)
    np.testing.assert_array_equal(fig.data[0].x, one[0][:, 0])
    np.testing.assert_array_equal(fig.data[1].y, one[1][:, 1])
    assert fig.layout.meta["method"] == "umap" and 0 <= fig.layout.meta["disparity"] <= 1
    again = figures.projection_figure(teacher, student, cache_dir=False, **kwargs)
    assert fig.to_json() == again.to_json()


def test_projection_figure_says_and_colours_where_each_map_keeps_neighbours(monkeypatch):
    teacher, student, labels = planted(n=200)
    fig = figures.projection_figure(teacher, student, method="pca", groups=labels,
                                    colour_by_trust=True, neighbours=5)
    kept_t = projection.neighbours_kept(teacher, projection.project(teacher, method="pca"), 5)
    t_xy, s_xy = projection.project_pair(teacher, student, method="pca", cache_dir=False)
    kept_s = projection.neighbours_kept(student, s_xy, 5)
    # each panel carries its own map's shares, on one grey-to-blue colour bar over [0, 1]
    np.testing.assert_array_equal(fig.data[0].marker.color, kept_t)
    np.testing.assert_array_equal(fig.data[1].marker.color, kept_s)
    assert not np.array_equal(kept_t, kept_s)
    assert fig.layout.coloraxis.cmin == 0 and fig.layout.coloraxis.cmax == 1
    assert fig.layout.coloraxis.colorscale[0][1] == figures.TRUST_SCALE[0][1]
    assert fig.data[1].customdata[:, 4].tolist() == [f"{v:.4g}" for v in kept_s]
    meta = fig.layout.meta
    assert meta["kept_teacher"] == pytest.approx(kept_t.mean())
    assert meta["kept_student"] == pytest.approx(kept_s.mean())
    note = _trust_note(fig)
    assert f"maps keep {kept_t.mean():.0%} (teacher) and {kept_s.mean():.0%} (student) of " \
           f"each item's 5 nearest neighbours" in note
    assert "Procrustes disparity: 0 the same shape" in note
    # short lines, each within the figure (a wider one is cut off), the note above the panels
    assert all(len(line) <= 100 for line in note.split("<br>"))
    trust = next(a for a in fig.layout.annotations if a.name == "trust")
    assert (trust.yref, trust.y, trust.yanchor) == ("paper", 1, "bottom")
    assert meta["trust"].startswith(f"The teacher's map keeps {kept_t.mean():.0%}")
    with pytest.raises(ValueError, match="student_color needs colours by value"):
        figures.map_figure(t_xy, s_xy, color=labels, student_color=kept_s)
    # above TRUST_ROWS entities the subtitle's shares are means over that many, each exact
    monkeypatch.setattr(maps, "TRUST_ROWS", 50)
    sampled = figures.projection_figure(teacher, student, method="pca", neighbours=5)
    rows = np.sort(np.random.default_rng(0).choice(200, 50, replace=False))
    assert sampled.layout.meta["kept_teacher"] == pytest.approx(kept_t[rows].mean())
    assert "nearest neighbours (mean of 50 sampled)" in _trust_note(sampled)
    # the title names the two maps as their panels do (two teachers, in notebook 02)
    named = figures.projection_figure(teacher, student, method="pca", neighbours=5,
                                      titles=("BPR-MF", "LightGCN"))
    assert named.layout.title.text == "PCA of items, BPR-MF and LightGCN"


def _trust_note(fig) -> str:
    """The note above a projection figure's maps on how far they can be trusted."""
    return next(a.text for a in fig.layout.annotations if a.name == "trust")


def test_projection_figure_maps_a_stratified_sample_of_a_large_set_and_says_so():
    teacher, student, labels = planted(n=400)
    labels = labels.copy()
    labels[:3] = 7                               # a group of 3 among 400 keeps its point
    tags = [f"tag{i}" for i in range(400)]
    fig = figures.projection_figure(teacher, student, method="pca", max_points=40,
                                    groups=labels, entity_tags=tags, random_state=1)
    ids = fig.data[0].customdata[:, 0].astype(int)
    assert ids.size == 40 and np.unique(ids).size == 40
    # the points are the entities they claim to be: groups, tags and map positions
    np.testing.assert_array_equal(fig.data[0].customdata[:, 1].astype(int), labels[ids])
    assert list(fig.data[0].customdata[:, 3]) == [tags[i] for i in ids]
    xy = projection.project(teacher[ids], method="pca")
    np.testing.assert_allclose(fig.data[0].x, xy[:, 0], rtol=1e-5, atol=1e-6)
    # every group keeps its share (largest remainders), the small one at least one point
    sizes, drawn = np.bincount(labels), np.bincount(labels[ids], minlength=labels.max() + 1)
    assert drawn[7] >= 1
    assert np.all(np.abs(drawn - sizes * 40 / 400) <= 1)
    assert "40 of 400 items, a sample stratified by group" in fig.layout.title.text
    assert fig.layout.meta["n_total"] == 400
    whole = figures.projection_figure(teacher, student, method="pca", max_points=None)
    assert len(whole.data[0].x) == 400 and "of 400" not in whole.layout.title.text
    with pytest.raises(ValueError, match="max_points"):
        figures.projection_figure(teacher, student, method="pca", max_points=0)


def test_stratified_sample_is_seeded_proportional_and_uniform_without_labels():
    labels = np.repeat([0, 1, 2], [900, 90, 10])
    a = groups.stratified_sample(1000, 100, labels, random_state=3)
    assert a.size == 100 and np.all(np.diff(a) > 0)
    assert np.bincount(labels[a]).tolist() == [90, 9, 1]
    np.testing.assert_array_equal(a, groups.stratified_sample(1000, 100, labels, 3))
    assert not np.array_equal(a, groups.stratified_sample(1000, 100, labels, 4))
    np.testing.assert_array_equal(groups.stratified_sample(5, 9), np.arange(5))
    u = groups.stratified_sample(1000, 100, random_state=0)
    assert u.size == 100 and np.unique(u).size == 100
    with pytest.raises(ValueError, match="labels"):
        groups.stratified_sample(1000, 100, labels[:10])


# --------------------------------------------------------------------------------------
# Heatmaps
# --------------------------------------------------------------------------------------

def test_similarity_heatmaps_order_boundaries_and_values():
    teacher, student, labels = planted(n=60)
    ids = np.arange(1000, 1060)
    fig = figures.similarity_heatmaps(teacher, student, labels, ids=ids)
    assert [t.type for t in fig.data] == ["heatmap"] * 3
    order = np.array(fig.layout.meta["ids"]) - 1000
    assert sorted(order) == list(range(60))                     # everyone, once
    assert list(fig.data[0].x) == [str(i) for i in ids[order]] == list(fig.data[2].y)
    ordered_labels = labels[order]
    assert (np.diff(ordered_labels) >= 0).all()                 # grouped, ascending
    # within a group: most typical (closest to the teacher prototype) first
    for g in range(4):
        members = order[ordered_labels == g]
        proto = teacher[labels == g].mean(0)
        cos = teacher[members] @ proto / np.linalg.norm(teacher[members], axis=1) / \
            np.linalg.norm(proto)
        assert (np.diff(cos) <= 1e-6).all()
    np.testing.assert_allclose(fig.data[0].z, topology.cosine_similarity(teacher[order]),
                               atol=1e-6)
    np.testing.assert_allclose(fig.data[2].z, topology.cosine_similarity(student[order]) -
                               topology.cosine_similarity(teacher[order]), atol=1e-6)
    # boundaries: a vertical and a horizontal line per group start, in each panel
    starts = np.flatnonzero(np.diff(ordered_labels)) + 1
    lines = [s for s in fig.layout.shapes if s.name == "boundary"]
    assert len(lines) == 3 * 2 * 3
    verticals = sorted({s.x0 for s in lines if s.x0 == s.x1 and s.xref == "x2"})
    assert verticals == [b - 0.5 for b in starts]
    assert fig.layout.meta["starts"] == [0, *starts.tolist()]
    assert fig.layout.coloraxis.cmin == -1 and fig.data[2].coloraxis == "coloraxis2"


def test_similarity_heatmaps_sample_per_group_and_highlight():
    teacher, student, labels = planted(n=400)
    sizes = np.bincount(labels)
    fig = figures.similarity_heatmaps(teacher, student, labels, max_entities=100,
                                      highlight=2, random_state=5)
    ordered = np.array(fig.layout.meta["groups"])
    assert len(ordered) == 100 and np.asarray(fig.data[0].z).shape == (100, 100)
    counts = np.bincount(ordered, minlength=4)
    assert np.abs(counts - sizes * 100 / 400).max() <= 1          # proportional
    rects = [s for s in fig.layout.shapes if s.name == "highlight"]
    start = int(np.flatnonzero(ordered == 2)[0])
    assert len(rects) == 3 and {(r.x0, r.x1, r.y0, r.y1) for r in rects} == \
        {(start - 0.5, start + counts[2] - 0.5, start - 0.5, start + counts[2] - 0.5)}
    again = figures.similarity_heatmaps(teacher, student, labels, max_entities=100,
                                        highlight=2, random_state=5)
    assert again.layout.meta["ids"] == fig.layout.meta["ids"]
    # a tiny group keeps one entity when the sample is small
    labels2 = labels.copy()
    labels2[0] = 4
    small = figures.similarity_heatmaps(teacher, student, labels2, max_entities=20)
    assert 4 in small.layout.meta["groups"] and len(small.layout.meta["ids"]) == 20


def test_heatmaps_refuse_more_than_2000_entities():
    teacher, student, labels = planted(n=30)
    with pytest.raises(ValueError, match=r"max_entities must be an integer in \[1, 2000\]"):
        figures.similarity_heatmaps(teacher, student, labels, max_entities=2001)
    with pytest.raises(ValueError, match="ids must be unique"):
        figures.similarity_heatmaps(teacher, student, labels, ids=np.zeros(30, int))
    with pytest.raises(ValueError, match="highlight must be a group"):
        figures.similarity_heatmaps(teacher, student, labels, highlight=9)


def test_group_heatmaps_show_only_the_group():
    teacher, student, labels = planted(n=100)
    fig = figures.group_heatmaps(teacher, student, labels, group=1)
    ids = fig.layout.meta["ids"]
    assert sorted(ids) == np.flatnonzero(labels == 1).tolist()
    assert not [s for s in fig.layout.shapes if s.name == "boundary"]
    np.testing.assert_allclose(fig.data[1].z, topology.cosine_similarity(student[ids]),
                               atol=1e-6)
    with pytest.raises(ValueError, match="group 7 has no members"):
        figures.group_heatmaps(teacher, student, labels, group=7)


def test_prototype_heatmaps_skip_empty_groups():
    teacher, student, labels = planted(n=80)
    labels = np.where(labels == 1, 4, labels)                    # groups 0, 2, 3, 4
    fig = figures.prototype_heatmaps(teacher, student, labels, highlight=3)
    assert list(fig.data[0].x) == ["0", "2", "3", "4"]
    protos = np.stack([teacher[labels == g].mean(0) for g in (0, 2, 3, 4)])
    np.testing.assert_allclose(fig.data[0].z, topology.cosine_similarity(protos), atol=1e-5)
    sizes = np.bincount(labels)[[0, 2, 3, 4]]
    assert [list(c) for c in fig.data[1].customdata[1]] == [[sizes[1], s] for s in sizes]
    rects = [s for s in fig.layout.shapes if s.name == "highlight"]
    assert len(rects) == 6 and {(r.x0, r.x1) for r in rects} == {(1.5, 2.5), (-0.5, 3.5)}
    # four groups: every block labelled with its group, rows on the first panel only
    assert fig.layout.xaxis.showticklabels and fig.layout.xaxis3.showticklabels
    assert fig.layout.yaxis.showticklabels and not fig.layout.yaxis2.showticklabels


# --------------------------------------------------------------------------------------
# Curves and bars
# --------------------------------------------------------------------------------------

def test_learning_curves_one_line_per_method_and_dashed_reference():
    student = pd.DataFrame({"epoch": [10, 0, 20], "test_recall@50": [0.2, 0.1, 0.3]})
    htd = pd.DataFrame({"epoch": [0, 10], "test_recall@50": [0.15, 0.25]})
    paper = {"HTD": pd.Series([0.105, 0.196], index=[0, 10])}
    fig = figures.learning_curves({"student": student, "HTD": htd}, reference=paper)
    # a built-in method by its own name ("student" is the student alone)
    assert [t.name for t in fig.data] == ["student alone", "HTD", "HTD (paper)"]
    assert list(fig.data[0].x) == [0, 10, 20] and list(fig.data[0].y) == [0.1, 0.2, 0.3]
    assert fig.data[2].line.dash == "dash" and fig.data[2].line.color == fig.data[1].line.color
    tidy = pd.concat([student.assign(method="student"), htd.assign(method="HTD")])
    assert [t.name for t in figures.learning_curves(tidy).data] == ["student alone", "HTD"]
    authors = htd.assign(schedule="reference")
    assert [t.name for t in figures.learning_curves({"HTD": authors}).data] == [
        "HTD (authors' schedule)"]
    assert fig.layout.yaxis.title.text == "test Recall@50"
    with pytest.raises(ValueError, match=r"histories\['HTD'\] lacks the columns"):
        figures.learning_curves({"HTD": htd.drop(columns="test_recall@50")})


def test_spectrum_figure_marks_student_sizes_where_they_are():
    """The dims' lines sit at d and their labels at log10(d): on a log axis plotly reads a
    label's x in log10 units, and a label at x = 100 stretched the axis to 10^100."""
    rng = np.random.default_rng(0)
    spectra = pd.concat([capacity.spectrum(rng.standard_normal((80, 30)), normalize=True)
                         .assign(teacher=t, entity=e)
                         for t in ("BPR-MF", "LightGCN") for e in ("users", "items")])
    fig = figures.spectrum_figure(spectra, dims=(10, 20), color="teacher", dash="entity")
    assert [t.name for t in fig.data] == ["BPR-MF, users", "BPR-MF, items",
                                          "LightGCN, users", "LightGCN, items"]
    assert [t.line.dash for t in fig.data] == ["solid", "dot"] * 2
    assert fig.data[0].line.color == fig.data[1].line.color != fig.data[2].line.color
    assert [shape.x0 for shape in fig.layout.shapes] == [10, 20]
    assert [a.x for a in fig.layout.annotations] == pytest.approx([1.0, np.log10(20)])
    assert fig.layout.xaxis.type == "log" and max(fig.layout.xaxis.tickvals) <= 30
    assert fig.layout.yaxis.title.text == "cumulative share of variance"
    one = figures.spectrum_figure(spectra[spectra["teacher"] == "BPR-MF"].head(30))
    assert len(one.data) == 1 and not one.layout.shapes
    with pytest.raises(ValueError, match=r"lacks the columns \['group'\]"):
        figures.spectrum_figure(spectra, color="group")


def test_capacity_curves_from_the_capacity_table():
    rng = np.random.default_rng(0)
    tu, ti = rng.standard_normal((40, 12)), rng.standard_normal((60, 12))
    runs = {(method, d): {"users": rng.standard_normal((40, d)),
                          "items": rng.standard_normal((60, d)),
                          "metrics": {"test_recall@50": 0.1 * d + (method == "HTD")}}
            for method in ("student", "HTD") for d in (6, 3)}
    table = capacity.capacity_table(tu, ti, dims=range(1, 13), runs=runs, n_groups=3)
    fig = figures.capacity_curves(table)
    names = ["rank-d bound", "student alone", "HTD"]               # the methods' own names
    assert [t.name for t in fig.data] == names * 2 + ["student alone", "HTD"]
    # a symbol per method: two methods at the same point both show
    assert fig.data[1].marker.symbol != fig.data[2].marker.symbol == fig.data[5].marker.symbol
    assert fig.data[1].marker.size > fig.data[2].marker.size           # drawn inside it
    assert [t.xaxis for t in fig.data] == ["x"] * 3 + ["x2"] * 3 + ["x3"] * 2
    # the bounds over the whole grid of dims, the runs at theirs, on one relative scale
    bound = table[table["kind"] == "bound"].sort_values("dim")
    assert list(fig.data[0].x) == list(range(1, 13))
    np.testing.assert_allclose(fig.data[0].y, bound["full_error_relative"])
    np.testing.assert_allclose(fig.data[3].y, bound["hierarchical_error_relative"])
    assert fig.data[0].line.dash == "dash"
    assert list(fig.data[1].x) == [3, 6]                          # dims, ascending
    htd = table[table["method"] == "HTD"].sort_values("dim")
    np.testing.assert_allclose(fig.data[5].y, htd["hierarchical_error_relative"])
    assert list(fig.data[7].y) == pytest.approx([1.3, 1.6])      # HTD recall
    assert fig.layout.yaxis.type == "log" and fig.layout.xaxis.type == "log"
    # every axis titled in words, no raw column keys
    assert fig.layout.xaxis.title.text == "student dimension d"
    assert fig.layout.yaxis.title.text == "error / target energy (log)"
    assert fig.layout.yaxis3.title.text == "test Recall@50"
    assert fig.layout.yaxis3.side == "right"           # clear of the middle panel's curves
    assert not fig.layout.annotations[-1].text.startswith("Runs at one size")
    # each error panel spans its values' decades (the exact 0 of the bound at d = 12 left
    # out), down to 1e-6 of the target's energy at most, unless a run is further down
    assert list(fig.layout.yaxis.range) == [-2.0, 1.0]          # .0187 .. 4.46
    tiny = table.copy()
    tiny.loc[tiny["kind"] == "bound", "full_error_relative"] *= 1e-9
    assert list(figures.capacity_curves(tiny).layout.yaxis.range) == [-6.0, 1.0]
    tiny.loc[tiny["kind"] != "bound", "full_error_relative"] = 3e-8
    assert figures.capacity_curves(tiny).layout.yaxis.range[0] == -8.0
    assert len(figures.capacity_curves(table, recall=None).data) == 6
    one_dim = table[(table["kind"] == "bound") | (table["dim"] == 6)]
    note = figures.capacity_curves(one_dim).layout.annotations[-1].text
    assert note.startswith("Runs at one size only (student dimension d = 6)")
    with pytest.raises(ValueError, match="no recall column"):
        figures.capacity_curves(table.drop(columns="test_recall@50"))
    with pytest.raises(ValueError, match="lacks the columns"):
        figures.capacity_curves(table.drop(columns="full_error_relative"))


def test_readable_names_metric_keys_in_words():
    assert figures.readable("final_test_recall@50") == "test Recall@50 (last epoch)"
    assert figures.readable("best_valid_test_ndcg@20") == \
        "test NDCG@20 (best-validation epoch)"
    assert figures.readable("valid_recall@10") == "validation Recall@10"
    assert figures.readable("dim") == "student dimension d"
    assert figures.readable("train_seconds") == "train seconds"


def test_group_usage_figure_draws_groups_in_use_and_effective_groups():
    history = pd.DataFrame({"epoch": [0, 10, 20], "user_groups_used": [30, 20, 18],
                            "item_groups_used": [30, 4, 3],
                            "user_group_entropy": [4.8, 3.0, 2.5],
                            "item_group_entropy": [4.9, 1.5, 1.0]})
    fig = figures.group_usage_figure({"HTD": history, "FTD": history[["epoch"]]},
                                     n_groups=30)
    assert [t.name for t in fig.data] == ["HTD", "HTD: effective groups (2^entropy)"] * 2
    # one legend entry per run; the legend's title says which line is which
    assert [t.showlegend for t in fig.data] == [True, False, False, False]
    assert "dashed: effective number of groups" in fig.layout.legend.title.text
    assert list(fig.data[2].y) == [30, 4, 3]                    # item panel
    np.testing.assert_allclose(fig.data[3].y, 2.0 ** np.array([4.9, 1.5, 1.0]))
    assert [s.y0 for s in fig.layout.shapes] == [30, 30]
    # "K = 30 on offer" above its line, in room kept for it: the curves start on K
    assert [a.yanchor for a in fig.layout.annotations if "on offer" in a.text] == ["bottom"] * 2
    assert fig.layout.yaxis.range[1] > 30 and fig.layout.yaxis2.range[1] > 30
    assert fig.layout.xaxis.title.text == "epoch" and fig.layout.yaxis.title.text == "groups"
    with pytest.raises(ValueError, match="no history has the columns"):
        figures.group_usage_figure({"FTD": history[["epoch"]]})


def test_band_error_figure_one_panel_per_pair_type():
    rng = np.random.default_rng(0)
    t, s = rng.normal(size=(60, 8)), rng.normal(size=(60, 3))
    table = pd.concat([preservation.band_error_table(t[:20], t[20:], s[:20], s[20:], bands=(5,))
                       .assign(method=m) for m in ("FTD", "HTD")])
    fig = figures.band_error_figure(table)
    assert [t.name for t in fig.data] == ["FTD", "HTD"] * 3
    # the panels' titles, then one x title under all three (three copies overlapped)
    assert [a.text for a in fig.layout.annotations] == [
        "user-user pairs", "item-item pairs", "user-item pairs",
        "rank among the teacher's neighbours (nearest first)"]
    assert not any(axis.title.text for axis in (fig.layout.xaxis, fig.layout.xaxis2,
                                                fig.layout.xaxis3))
    assert list(fig.data[2].x) == ["1-5", "6-39"]
    assert fig.layout.yaxis.title.text == "mean squared cosine error per pair"
    # one y scale: bars of one height in two panels are one error
    assert fig.layout.yaxis2.matches == fig.layout.yaxis3.matches == "y"
    with pytest.raises(ValueError, match="lacks the columns"):
        figures.band_error_figure(table.drop(columns="method"))


def test_group_sizes_figure_sorted_with_top_tags():
    labels = np.array([0, 1, 1, 2, 2, 2, 1, 2, 0, 3])
    tags = sp.csr_matrix(np.array([[1, 0], [0, 1], [0, 1], [1, 0], [1, 0], [1, 0], [0, 1],
                                   [1, 1], [1, 0], [0, 1]]))
    top = groups.top_tags(labels, tags, ["ml", "bio"], n_top=1, min_count=1)
    fig = figures.group_sizes_figure(labels, top_tags=top)
    bars = fig.data[0]
    assert len(fig.data) == 1
    assert list(bars.y) == ["group 2", "group 1", "group 0", "group 3"]
    assert list(bars.x) == [4, 3, 2, 1]
    assert list(bars.text) == ["ml", "bio", "ml", "bio"]
    assert [row[0] for row in bars.customdata] == [2, 1, 0, 3]
    same = figures.group_sizes_figure(groups.group_sizes(labels), top_tags=top, n_groups=30)
    assert list(same.data[0].x) == [4, 3, 2, 1]
    assert same.layout.title.text.endswith("(4 of the K = 30 groups in use)")
    assert same.layout.xaxis.range[1] > 4                    # room for the tag labels


def test_preservation_bars_one_trace_per_neighbour_set():
    results = {"student": {"most_similar": 0.0458, "random": 0.0564},
               "HTD": {"most_similar": 0.0393, "random": 0.0405}}
    fig = figures.preservation_bars(results)
    assert [t.name for t in fig.data] == ["most similar", "random"]           # in words
    assert list(fig.data[0].x) == ["student alone", "HTD"]
    assert list(fig.data[1].y) == [0.0564, 0.0405]
    tidy = pd.DataFrame({"method": ["a", "b"], "mode": ["random", "random"], "kl": [1, 2]})
    assert list(figures.preservation_bars(tidy).data[0].y) == [1, 2]
    with pytest.raises(ValueError, match="lacks the columns"):
        figures.preservation_bars(tidy.drop(columns="kl"))


def test_sensitivity_figure_draws_means_ranges_and_the_default():
    summary = pd.DataFrame({"factor": ["n_groups"] * 2 + ["alpha"], "value": [10, 30, 0.5],
                            "is_default": [False, True, True], "n": [2, 3, 3],
                            "mean": [.21, .28, .28], "min": [.20, .27, .27],
                            "max": [.22, .29, .29]})
    fig = figures.sensitivity_figure(summary)
    assert len(fig.data) == 2
    k = fig.data[0]
    assert list(k.x) == ["10", "30"] and list(k.marker.symbol) == ["circle-open", "circle"]
    assert np.allclose(k.error_y.array, [.01, .01])
    assert np.allclose(k.error_y.arrayminus, [.01, .01])
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["K, groups per entity type", "alpha (topology vs assignment)"]
    assert "Recall@50" in fig.layout.yaxis.title.text
    # one seed: no range bar (one of length 0 drew its caps across the marker)
    one = figures.sensitivity_figure(summary.assign(n=[1, 3, 3]))
    assert np.isnan(one.data[0].error_y.array[0]) and one.data[0].error_y.array[1] > 0



def test_paper_figure_draws_the_papers_values_and_ours_where_finished():
    from htdviz import reference

    alone = figures.paper_figure()
    assert [a.text for a in alone.layout.annotations] == list(figures.PAPER_SETTINGS.values())
    assert all(t.marker.symbol == "circle-open" for t in alone.data)   # the paper's only
    htd_paper = next(t for t in alone.data if t.name == "HTD, paper" and t.xaxis == "x")
    assert list(htd_paper.y) == list(reference.FIGURE_RECALL50["bpr"]["htd"])
    rrd = [t for t in alone.data if t.name == "RRD, paper"]
    assert len(rrd) == 2 and all(len(t.y) == 1 for t in rrd)   # phi = 0.1, BPR and LightGCN
    ours = pd.DataFrame({"dataset": ["citeulike", "foursquare"], "model": ["bpr", "bpr"],
                         "phi": [0.1, 0.5], "method": ["htd", "student"],
                         "mean": [.272, .25], "low": [.27, .25], "high": [.274, .25],
                         "seeds": [2, 1]})
    fig = figures.paper_figure(ours)
    filled = [t for t in fig.data if t.marker.symbol != "circle-open"]
    assert [(t.name, t.xaxis) for t in filled] == [("HTD", "x"), ("student alone", "x4")]
    assert np.allclose(filled[0].y, [.272]) and np.allclose(filled[0].error_y.array, [.002])
    assert filled[0].x[0] == htd_paper.x[0]               # beside the paper's HTD at 0.1
    with pytest.raises(ValueError, match="paper_table"):
        figures.paper_figure(ours.drop(columns="seeds"))


def test_paper_scatter_puts_each_cell_against_the_papers_value():
    ours = pd.DataFrame({"dataset": ["citeulike", "foursquare", "citeulike"],
                         "model": ["bpr", "bpr", "neumf"], "phi": [0.1, 0.5, 0.1],
                         "method": ["htd", "student", "rrd"], "mean": [.272, .25, .2],
                         "low": [.27, .25, .2], "high": [.274, .25, .2], "seeds": [2, 1, 1],
                         "paper": [.2803, .2400, np.nan]})
    fig = figures.paper_scatter(ours)
    diagonal, *points = [t for t in fig.data if t.x[0] is not None]
    assert list(diagonal.x) == list(diagonal.y) and diagonal.line.dash == "dash"
    assert diagonal.x[0] <= .24 and diagonal.x[1] >= .2803        # spans every cell
    assert [(t.name, list(t.x), list(t.y), list(t.marker.symbol)) for t in points] == [
        ("student alone", [.24], [.25], ["triangle-up"]),
        ("HTD", [.2803], [.272], ["circle"])]                   # no paper value: left out
    assert np.allclose(points[1].error_y.array, [.002])
    keys = [t.name for t in fig.data if t.x[0] is None]
    assert keys == ["CiteULike, BPR-MF", "Foursquare, BPR-MF"]   # the symbols in use
    assert fig.layout.yaxis.scaleanchor == "x"
    with pytest.raises(ValueError, match="paper_table"):
        figures.paper_scatter(ours.drop(columns="paper"))
    # no range for one seed's cell, all values on one step, or no cell: still a drawn frame
    one = figures.paper_scatter(ours.iloc[:1].assign(low=np.nan, high=np.nan, paper=.2803,
                                                     mean=.2803))
    assert list(one.layout.xaxis.range) == [.28, .30]
    empty = figures.paper_scatter(ours.iloc[:0])
    assert [a.text for a in empty.layout.annotations] == ["no finished cell yet"]
    assert np.isfinite(empty.layout.xaxis.range).all()


# --------------------------------------------------------------------------------------
# Explorer
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def explorer_runs(small_synthetic_for_viz):
    ds = small_synthetic_for_viz
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 16))

    def teacher_like(true_groups):
        return (centres[true_groups] + 0.4 * rng.standard_normal((true_groups.size, 16))
                ).astype(np.float32)

    tu, ti = teacher_like(ds.user_groups), teacher_like(ds.item_groups)
    return {
        "teacher": {"users": tu, "items": ti, "method": "teacher"},
        "htd-8": {"users": tu[:, :8], "items": ti[:, :8], "method": "htd",
                  "user_groups": ds.user_groups, "item_groups": ds.item_groups},
        "student-8": {"users": tu[:, 8:], "items": ti[:, 8:], "method": "student"},
        "student-4": {"users": tu[:, :4], "items": ti[:, :4], "method": "student"},
    }


@pytest.fixture(scope="module")
def small_synthetic_for_viz():
    import dataclasses

    from htdviz import data

    ds = data.synthetic(n_users=120, n_items=200, n_groups=4, dim=8, items_per_user=10,
                        seed=0)
    # a tag per planted item group, and a shared tag on every third item
    rows = np.r_[np.arange(ds.n_items), np.arange(0, ds.n_items, 3)]
    cols = np.r_[ds.item_groups, np.full(len(range(0, ds.n_items, 3)), 4)]
    tags = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(ds.n_items, 5))
    return dataclasses.replace(ds, item_tags=tags,
                               tag_names=("g0", "g1", "g2", "g3", "common"))


def points(indices, trace_index=0):
    from plotly.callbacks import Points

    return Points(point_inds=list(indices), xs=[], ys=[], trace_name="",
                  trace_index=trace_index)


def test_explorer_builds_and_reacts_to_a_selection(explorer_runs, small_synthetic_for_viz):
    from htdviz.viz import Explorer

    ds = small_synthetic_for_viz
    ex = Explorer(explorer_runs, dataset=ds, projection="pca", n_groups=4, cache_dir=False,
                  max_heatmap=80)
    assert ex.teacher_name == "teacher" and ex.run_dd.value == "htd-8"
    assert list(ex.colour_dd.options) == ["HTD group", "k-means group", "tag", "popularity",
                                         "neighbours kept"]
    assert len(ex.map_widget.data) == 2                        # one trace per panel
    assert all(len(t.x) == ds.n_items for t in ex.map_widget.data)
    assert [row[0] for row in ex.map_widget.data[1].customdata] == list(range(ds.n_items))

    # a click on a point of group 2 in the student panel
    ex.map_widget.data[0]._dispatch_on_click(points([], 0), None)
    ex.map_widget.data[1]._dispatch_on_click(
        points([np.flatnonzero(ds.item_groups == 2)[0]], 1), None)
    assert ex.selected_group == 2
    members = np.flatnonzero(ds.item_groups == 2).tolist()
    assert list(ex.map_widget.data[0].selectedpoints) == members
    assert list(ex.map_widget.data[1].selectedpoints) == members
    heat_ids = np.asarray(ex.heatmap_widget.layout.meta["ids"])
    block = np.flatnonzero(ds.item_groups[heat_ids] == 2)
    rects = [s for s in ex.heatmap_widget.layout.shapes if s.name == "highlight"]
    assert len(rects) == 3 and rects[0].x0 == block[0] - 0.5 and rects[0].x1 == block[-1] + 0.5
    assert "HTD group 2" in ex.info.value and "g2" in ex.info.value   # its top tag
    measures = ex.group_measures(2)
    assert measures["size"] == len(members) and 0 <= measures["cka"] <= 1

    # the other trace reports an empty selection: nothing changes
    ex._on_selection(ex.map_widget.data[0], points([]))
    assert ex.selected_group == 2

    ex.heat_mode_tb.value = "selected group"
    assert sorted(ex.heatmap_widget.layout.meta["ids"]) == members
    ex.heat_mode_tb.value = "prototypes"
    assert list(ex.heatmap_widget.data[0].x) == ["0", "1", "2", "3"]


def test_explorer_maps_a_stratified_sample_of_a_large_set_and_picks_by_entity_id(
        explorer_runs, small_synthetic_for_viz):
    from htdviz.viz import Explorer

    ds = small_synthetic_for_viz
    ex = Explorer(explorer_runs, dataset=ds, projection="pca", n_groups=4, cache_dir=False,
                  max_heatmap=80, max_points=50)
    ids = ex.map_ids()
    assert ids.size == 50 and np.all(np.diff(ids) > 0)
    # stratified by the teacher's k-means groups: each keeps its share
    kmeans = ex._kmeans()
    assert np.all(np.abs(np.bincount(kmeans[ids], minlength=4) -
                         np.bincount(kmeans, minlength=4) * 50 / ds.n_items) <= 1)
    for trace in ex.map_widget.data:
        assert len(trace.x) == 50
        assert [int(row[0]) for row in trace.customdata] == ids.tolist()
    assert f"50 of {ds.n_items:,} items mapped" in ex._summary
    # a click on the 8th point selects the group of entity ids[7], and the highlight
    # marks the points of that group's members that are on the map
    ex.map_widget.data[1]._dispatch_on_click(points([7], 1), None)
    group = ds.item_groups[ids[7]]
    assert ex.selected_group == group
    expected = np.flatnonzero(ds.item_groups[ids] == group).tolist()
    assert list(ex.map_widget.data[0].selectedpoints) == expected
    # the panel still measures the whole group
    assert f"{(ds.item_groups == group).sum():,} items" in ex.info.value
    ex.entity_tb.value = "users"                          # 120 users: a sample of 50 too
    assert len(ex.map_widget.data[0].x) == 50 and ex.map_ids().max() < ds.n_users
    assert len(Explorer(explorer_runs, projection="pca", cache_dir=False,
                        max_points=None).map_widget.data[0].x) == ds.n_items


def test_explorer_controls_switch_run_entity_and_colour(explorer_runs,
                                                        small_synthetic_for_viz):
    from htdviz.viz import Explorer

    ds = small_synthetic_for_viz
    ex = Explorer(explorer_runs, dataset=ds, projection="pca", n_groups=4, cache_dir=False,
                  max_heatmap=60)
    ex.method_dd.value = "student"
    assert list(ex.dim_dd.options) == [4, 8]
    ex.dim_dd.value = 8
    assert ex.run_dd.value == "student-8"
    assert "HTD group" not in ex.colour_dd.options and ex.grouping == "k-means group"
    np.testing.assert_allclose(ex.map_widget.data[0].x, projection.pca(
        explorer_runs["teacher"]["items"])[:, 0], atol=1e-5)
    ex.entity_tb.value = "users"
    assert len(ex.map_widget.data[0].x) == ds.n_users
    ex.colour_dd.value = "popularity"
    activity = np.asarray(ds.train.sum(1)).ravel()
    np.testing.assert_allclose(ex.map_widget.data[0].marker.color, np.log10(1 + activity))
    ex.entity_tb.value = "items"
    ex.colour_dd.value = "tag"
    # items off every third carry only their group's tag; the others also "common", the
    # most frequent tag, which wins
    tag_of = np.array([f"g{g}" for g in ds.item_groups], dtype=object)
    tag_of[::3] = "common"
    names = sorted(set(tag_of))
    np.testing.assert_array_equal(ex.map_widget.data[0].marker.color,
                                  [names.index(t) for t in tag_of])
    assert [row[4] for row in ex.map_widget.data[0].customdata] == list(tag_of)
    ex.entity_tb.value = "users"
    ex.select_group(1)
    assert ex.selected_group == 1 and "k-means group 1" in ex.info.value
    with pytest.raises(ValueError, match="group 9 has no users"):
        ex.select_group(9)


def test_explorer_from_run_folders(tmp_path, explorer_runs):
    from htdviz.viz import Explorer, explore

    for name, run in explorer_runs.items():
        folder = tmp_path / name
        folder.mkdir()
        config = {"role": "teacher"} if name == "teacher" else \
            {"role": "student", "method": run["method"], "teacher": "teacher"}
        (folder / "config.json").write_text(json.dumps(config))
        pd.DataFrame({"epoch": [0, 10], "test_recall@50": [0.1, 0.2]}).to_csv(
            folder / "history.csv", index=False)
        np.savez(folder / "embeddings.npz", users=run["users"], items=run["items"])
        if "item_groups" in run:
            np.savez(folder / "groups.npz", users=run["user_groups"],
                     items=run["item_groups"])
    ex = explore(tmp_path, projection="pca", n_groups=4, cache_dir=False)
    assert isinstance(ex, Explorer) and ex.teacher_name == "teacher"
    assert sorted(ex.students) == ["htd-8", "student-4", "student-8"]
    assert ex.grouping == "HTD group"
    curves = ex.curves.children[0]
    assert len(curves.data) == 4                     # one learning curve per run
    ex.map_widget.data[0]._dispatch_on_click(points([0]), None)      # a click on item 0
    ex.map_widget.data[1]._dispatch_on_click(points([], 1), None)
    assert ex.selected_group == explorer_runs["htd-8"]["item_groups"][0]


def test_explorer_validates_runs(explorer_runs):
    from htdviz.viz import Explorer

    with pytest.raises(ValueError, match="at least one student"):
        Explorer({"teacher": explorer_runs["teacher"]}, projection="pca")
    bad = {**explorer_runs, "short": {"users": np.zeros((3, 2)), "items": np.zeros((3, 2))}}
    with pytest.raises(ValueError, match="run 'short' has 3 users"):
        Explorer(bad, projection="pca")
    with pytest.raises(ValueError, match="teacher 'x' is not one of the runs"):
        Explorer(explorer_runs, teacher="x")


def _messages(widget) -> list:
    """Record the relayout and update messages a FigureWidget sends to the page."""
    sent = []
    relayout, update = widget._send_relayout_msg, widget._send_update_msg

    def on_relayout(layout_data, **kwargs):
        sent.append(("relayout", dict(layout_data)))
        return relayout(layout_data, **kwargs)

    def on_update(*args, **kwargs):
        sent.append(("update", dict(kwargs.get("relayout_data") or {})))
        return update(*args, **kwargs)

    widget._send_relayout_msg, widget._send_update_msg = on_relayout, on_update
    return sent


def _box_around(xy) -> dict:
    """A drawn box selection (a layout.selections entry) around the points ``xy``."""
    return {"type": "rect", "xref": "x", "yref": "y", "x0": xy[:, 0].min() - 1e-9,
            "x1": xy[:, 0].max() + 1e-9, "y0": xy[:, 1].min() - 1e-9,
            "y1": xy[:, 1].max() + 1e-9}


def test_inside_a_drawn_box_or_lasso():
    from htdviz.viz.explorer import _inside

    xy = np.array([[0.2, 0.2], [2.0, 2.0], [0.1, 0.5], [0.9, 0.9], [-0.1, 0.1]])
    np.testing.assert_array_equal(
        _inside(xy, {"type": "rect", "x0": 1.0, "x1": -0.5, "y0": 0.0, "y1": 1.0}),
        [True, False, True, True, True])
    np.testing.assert_array_equal(       # the triangle x, y >= 0, x + y <= 1
        _inside(xy, {"type": "path", "path": "M0,0L1,0L0,1Z"}),
        [True, False, True, False, False])


def test_explorer_selection_in_one_map_selects_the_group_in_both(explorer_runs,
                                                                 small_synthetic_for_viz):
    from plotly.callbacks import BoxSelector

    from htdviz.viz import Explorer
    from htdviz.viz.explorer import _inside

    ds = small_synthetic_for_viz
    ex = Explorer(explorer_runs, dataset=ds, projection="pca", n_groups=4, cache_dir=False,
                  max_heatmap=80)
    sent = _messages(ex.map_widget)
    members = np.flatnonzero(ds.item_groups == 3).tolist()
    # plotly's order for a box drawn on the teacher's map: trace 0 gets the points inside,
    # then trace 1 gets none; each dispatch first sets the trace's selectedpoints to them
    # a box drawn on the teacher's map around 6 points of group 3 and 2 of group 0, as the
    # page reports it: the points (plotly sets each trace's selectedpoints to its own),
    # then the outline
    xy = np.column_stack([ex.map_widget.data[0].x, ex.map_widget.data[0].y])
    chosen = np.r_[members[:6], np.flatnonzero(ds.item_groups == 0)[:2]]
    inside = [int(i) for i in np.flatnonzero(_inside(xy, _box_around(xy[chosen])))]
    box = BoxSelector(xrange=[0, 1], yrange=[0, 1])
    ex.map_widget.data[0]._dispatch_on_selection(points(inside, 0), box)
    ex.map_widget.data[1]._dispatch_on_selection(points([], 1), box)
    ex.map_widget._js2py_relayout = {"relayout_data": {"selections": [_box_around(xy[chosen])]},
                                     "source_view_id": "page"}
    picked = np.bincount(ds.item_groups[inside]).argmax()
    assert ex.selected_group == picked
    members = np.flatnonzero(ds.item_groups == picked).tolist()
    assert [list(t.selectedpoints) for t in ex.map_widget.data] == [members, members]
    # the drawn box is removed from the page (the kernel never knew of it)
    assert ("relayout", {"selections": []}) in sent
    # removing it makes plotly.js report an empty selection without a selector: the
    # highlight is put back, and nothing is sent that would start the exchange again
    sent.clear()
    for trace in ex.map_widget.data:
        trace._dispatch_on_selection(points([], 0), None)
    assert [list(t.selectedpoints) for t in ex.map_widget.data] == [members, members]
    assert not [data for kind, data in sent if "selections" in data]

    ex.clear_selection()                       # what a double click in a map does
    assert ex.selected_group is None
    assert [t.selectedpoints for t in ex.map_widget.data] == [None, None]
    assert not [s for s in ex.heatmap_widget.layout.shapes if s.name == "highlight"]


def test_explorer_method_switch_with_one_dim_per_method(explorer_runs,
                                                        small_synthetic_for_viz):
    from htdviz.viz import Explorer

    runs = {name: run for name, run in explorer_runs.items() if name != "student-4"}
    ex = Explorer(runs, dataset=small_synthetic_for_viz, projection="pca", n_groups=4,
                  cache_dir=False, max_heatmap=60)
    assert ex.run_dd.value == "htd-8" and list(ex.dim_dd.options) == [8]
    ex.method_dd.value = "student"             # the dims stay [8]: nothing else reports
    assert ex.run_dd.value == "student-8" and ex.student_name == "student-8"
    assert ex.map_widget.data[1].name == "student alone (student-8)"
    np.testing.assert_allclose(ex.map_widget.data[1].customdata[:, 0].astype(int),
                               np.arange(small_synthetic_for_viz.n_items))
    ex.method_dd.value = "htd"
    assert ex.map_widget.data[1].name == "HTD student (htd-8)"
    assert ex.map_widget.data[0].name == "teacher"


def test_explorer_heatmap_mode_switch_clears_the_old_shapes_in_the_page(
        explorer_runs, small_synthetic_for_viz):
    from htdviz.viz import Explorer

    ex = Explorer(explorer_runs, dataset=small_synthetic_for_viz, projection="pca",
                  n_groups=4, cache_dir=False, max_heatmap=60)
    assert len(ex.heatmap_widget.layout.shapes) == 3 * 2 * 3     # 3 panels x 2 x 3 lines
    sent = _messages(ex.heatmap_widget)
    ex.heat_mode_tb.value = "prototypes"      # a figure without shapes
    assert ex.heatmap_widget.layout.shapes == ()
    # assigning a layout sends only its keys: the old shapes are removed explicitly
    assert any(kind == "relayout" and "shapes" in data and data["shapes"] is None
               for kind, data in sent), sent
    sent.clear()
    ex.heat_mode_tb.value = "groups"
    shapes = [s for kind, data in sent for s in data.get("shapes") or []]
    assert len(shapes) == 18


def test_explorer_colour_key_busy_sign_and_tag_support(explorer_runs,
                                                       small_synthetic_for_viz):
    import dataclasses

    from htdviz.viz import Explorer
    from htdviz.viz.explorer import MIN_TAG_SUPPORT

    ds = small_synthetic_for_viz
    # a tag on 3 items of group 1 only: the largest lift, but too little support
    in_one = np.flatnonzero(ds.item_groups == 1)[:3]
    tags = sp.hstack([ds.item_tags, sp.csr_matrix((np.ones(3), (in_one, np.zeros(3))),
                                                  shape=(ds.n_items, 1))]).tocsr()
    ds = dataclasses.replace(ds, item_tags=tags, tag_names=ds.tag_names + ("rare",))
    ex = Explorer(explorer_runs, dataset=ds, projection="pca", n_groups=4, cache_dir=False,
                  max_heatmap=60)
    top = ex._top_tags()
    assert "rare" not in set(top["tag"]) and (top["count"] >= MIN_TAG_SUPPORT).all()
    assert "g1" in set(top.loc[top["group"] == 1, "tag"])

    for group in range(4):                    # one swatch per HTD group
        assert f"</span>{group}</span>" in ex.key.value
    seen = []
    ex.status.observe(lambda change: seen.append((change["new"], ex.method_dd.disabled)),
                      names="value")
    ex.colour_dd.value = "popularity"
    assert ex.key.value == ""                 # values: a colour bar instead
    assert ex.map_widget.layout.coloraxis.colorbar.title.text == "log10(1 + interactions)"
    busy = [disabled for value, disabled in seen if "htdviz-busy" in value]
    assert busy and all(busy), "no busy sign (with the controls locked) during the update"
    assert "htdviz-busy" not in ex.status.value and not ex.method_dd.disabled


def test_explorer_colouring_comes_back_with_a_run_that_offers_it(explorer_runs,
                                                                 small_synthetic_for_viz):
    from htdviz.viz import Explorer

    ex = Explorer(explorer_runs, dataset=small_synthetic_for_viz, projection="pca",
                  n_groups=4, cache_dir=False, max_heatmap=60)
    assert ex.colour_dd.value == "HTD group"
    ex.method_dd.value = "student"          # no HTD groups: k-means instead
    assert ex.colour_dd.value == "k-means group"
    ex.method_dd.value = "htd"
    assert ex.colour_dd.value == "HTD group" and ex.grouping == "HTD group"
    ex.colour_dd.value = "tag"              # a choice of the user's stays
    ex.method_dd.value = "student"
    assert ex.colour_dd.value == "tag"


def test_similarity_heatmaps_label_only_blocks_wide_enough_to_read():
    teacher, student, _ = planted(n=100)
    groups = np.r_[np.zeros(80, int), np.full(15, 1), np.full(3, 4), np.full(2, 10)]
    fig = figures.similarity_heatmaps(teacher, student, groups, max_entities=100)
    # blocks of 3 and 2 of 100 entities (< 4%) would print "4" and "10" on top of each other
    assert fig.layout.xaxis.ticktext == ("0", "1") and fig.layout.yaxis.ticktext == ("0", "1")
    assert len(fig.layout.shapes) == 3 * 2 * 3            # every boundary still drawn


def test_explorer_colours_each_map_by_the_neighbours_it_keeps(explorer_runs,
                                                              small_synthetic_for_viz):
    from htdviz.viz import Explorer

    ex = Explorer(explorer_runs, dataset=small_synthetic_for_viz, projection="pca",
                  n_groups=4, cache_dir=False, max_heatmap=60)
    teacher_xy, student_xy = ex._maps()
    kept_t = projection.neighbours_kept(ex.teacher_repr(), teacher_xy, 10)
    kept_s = projection.neighbours_kept(ex.student_repr(), student_xy, 10)
    assert f"maps keeps {kept_t.mean():.0%}" not in ex._summary     # (the sentence's words)
    assert f"The teacher&#x27;s map keeps {kept_t.mean():.0%} and the student&#x27;s " \
           f"{kept_s.mean():.0%} of each item&#x27;s 10 nearest neighbours" in ex._summary
    # coloured by group, the sentence's dark and grey points are one switch away, and the
    # page's still picture carries the groups' colour key
    assert "(Colour by neighbours kept to see which points are dark.)" in ex._summary
    static = ex.static_html()
    assert ex.key.value.startswith('<div class="htdviz-colour-key"') and ex.key.value in static
    ex.colour_dd.value = "neighbours kept"
    assert "Colour by" not in ex._summary
    np.testing.assert_array_equal(ex.map_widget.data[0].marker.color, kept_t)
    np.testing.assert_array_equal(ex.map_widget.data[1].marker.color, kept_s)
    assert ex.map_widget.layout.coloraxis.cmax == 1
    assert ex.key.value == ""                                # a colour bar, no swatches


def test_explorer_keeps_the_selection_and_the_map_tool_while_the_groups_stay(
        explorer_runs, small_synthetic_for_viz):
    from htdviz.viz import Explorer

    ex = Explorer(explorer_runs, dataset=small_synthetic_for_viz, projection="pca",
                  n_groups=3, cache_dir=False, max_heatmap=60)
    ex.map_widget._js2py_relayout = {"relayout_data": {"dragmode": "select"},
                                     "source_view_id": "page"}
    ex.select_group(2)
    ex.colour_dd.value = "tag"               # still HTD's groups: the selection stays
    assert ex.selected_group == 2 and ex.grouping == "HTD group"
    assert "HTD group 2</b>" in ex.info.value
    assert list(ex.map_widget.data[0].selectedpoints) == \
        np.flatnonzero(small_synthetic_for_viz.item_groups == 2).tolist()
    assert ex.map_widget.layout.dragmode == "select"           # the user's tool, not lasso
    ex.method_dd.value = "student"           # no HTD groups: 3 k-means ones, other labels
    assert ex.selected_group is None
    assert "HTD group 2 is no longer selected: the groups changed" in ex.info.value
    ex.select_group(1)                       # k-means groups are the teacher's ...
    ex.dim_dd.value = 4                      # ... so they stay across students
    assert ex.run_dd.value == "student-4" and ex.selected_group == 1
    ex.clear_selection()
    ex.heat_mode_tb.value = "selected group"
    assert "select a group in a map first" in ex.info.value


def test_a_method_has_one_colour_in_every_figure_whatever_the_order():
    history = pd.DataFrame({"epoch": [0, 1], "test_recall@50": [0.1, 0.2]})
    one = figures.learning_curves({"FTD": history, "HTD": history, "student alone": history})
    other = figures.learning_curves({"HTD student": history, "student": history,
                                     "ftd d20 s0": history})
    colour = {t.name: t.line.color for t in one.data}
    other_colour = {t.name: t.line.color for t in other.data}
    assert colour["FTD"] == other_colour["ftd d20 s0"] == figures.METHOD_COLOURS["ftd"]
    assert colour["HTD"] == other_colour["HTD student"] == figures.METHOD_COLOURS["htd"]
    assert colour["student alone"] == other_colour["student alone"] == \
        figures.METHOD_COLOURS["student"]
    assert figures.method_colour("HTD + RRD") == figures.METHOD_COLOURS["htd+rrd"]
    # a name that is no method takes the palette's colours in order
    assert figures.method_colour("my loss", 2) == figures.PALETTE[2]
    assert len(set(figures.METHOD_COLOURS.values())) == len(figures.METHOD_COLOURS)


def test_figures_name_methods_as_the_registry_does():
    """figures.METHOD_NAMES writes out distill.display_name (htdviz.viz does not import
    torch): the two must not drift apart."""
    from htdviz.distill import display_name

    assert {m: display_name(m) for m in figures.METHOD_NAMES} == figures.METHOD_NAMES
