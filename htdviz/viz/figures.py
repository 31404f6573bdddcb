"""Figures of topology distillation, as plotly figures (returned, never displayed).

Every function takes plain arrays or the tables of the analysis layer
(:mod:`htdviz.topology`, :mod:`htdviz.groups`, :mod:`htdviz.capacity`) and returns a
``plotly.graph_objects.Figure``. Entity ids travel in ``customdata`` (maps) or as the axis
categories (heatmaps), so hover and selection name the entities.

Maps (docs/method.md §3: the topology is the cosine geometry of the representations)
    :func:`projection_figure` projects a teacher and a student (UMAP or PCA, the student's
    map aligned to the teacher's) and draws them side by side with :func:`map_figure`.
Heatmaps
    :func:`similarity_heatmaps` (teacher, student and their difference for a sample of
    entities ordered by group, boundaries drawn), :func:`group_heatmaps` (one group's
    within-group block, HTD's entity-level target), :func:`prototype_heatmaps` (the
    group-level topology among prototypes). At most :data:`MAX_HEATMAP_ENTITIES` entities
    are drawn per axis (sampled per group), so no heatmap exceeds 2,000 x 2,000 cells.
Curves and bars
    :func:`learning_curves`, :func:`capacity_curves`, :func:`group_sizes_figure`,
    :func:`preservation_bars`.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .._validation import check_int
from ._optional import require
from .projection import (as_points, neighbours_kept, procrustes_align, project_pair,
                         trust_sentence)

go = require("plotly.graph_objects", "htdviz figures")
_subplots = require("plotly.subplots", "htdviz figures")
_colors = require("plotly.colors", "htdviz figures")

#: Largest number of entities per heatmap axis (2,000 x 2,000 cells per panel).
MAX_HEATMAP_ENTITIES = 2000
#: Categories get distinct colours up to this many (Dark24 + Light24), then colours repeat.
PALETTE = tuple(_colors.qualitative.Dark24 + _colors.qualitative.Light24)
#: One colour per method in every figure and the report (curves, bars, capacity panels),
#: whatever order the methods come in; other names take PALETTE's colours in order.
METHOD_COLOURS = {"teacher": "#222222", "student": "#7f7f7f", "fitnet": "#bcbd22",
                  "de": "#9467bd", "ftd": "#1f77b4", "htd": "#d62728", "rrd": "#2ca02c",
                  "htd+rrd": "#ff7f0e", "de+rrd": "#8c564b"}
#: Categories listed in a legend at most; more are coloured but not listed.
MAX_LEGEND_ENTRIES = len(PALETTE)
#: Above this many points per panel, maps use WebGL (Scattergl).
WEBGL_THRESHOLD = 2000
#: Above this many entities, :func:`projection_figure` maps a stratified sample of them.
MAX_MAP_POINTS = 30_000
#: The colour scale of :func:`neighbours_kept` on the maps: grey where a point lost its
#: neighbours, dark blue where it kept them (the words of projection.trust_sentence).
TRUST_SCALE = [[0.0, "#d9d9d9"], [0.5, "#7fa7d4"], [1.0, "#08306b"]]
#: Above this many entities, a map's share of neighbours kept (its subtitle) is the mean
#: over this many sampled entities, each exact (the trust colouring still uses all).
TRUST_ROWS = 2000
#: Arguments of :func:`map_figure` that hold one value per entity.
_PER_ENTITY = ("ids", "groups", "color", "entity_tags")


# --------------------------------------------------------------------------------------
# Maps
# --------------------------------------------------------------------------------------

def projection_figure(teacher, student, method: str = "umap", align: str = "procrustes",
                      n_neighbors: int = 15, min_dist: float = 0.1,
                      n_epochs: int | None = None, init: str = "pca", random_state: int = 0,
                      cache_dir=None, parallel: bool = True,
                      max_points: int | None = MAX_MAP_POINTS, neighbours: int = 10,
                      colour_by_trust: bool = False, **map_kwargs) -> "go.Figure":
    """Teacher and student representations mapped to 2-D, side by side.

    The subtitle says how far each map can be trusted (the share of each entity's
    ``neighbours`` nearest neighbours it keeps, :func:`~htdviz.viz.projection.neighbours_kept`)
    and how much the two maps' shapes differ (the Procrustes disparity).

    Parameters
    ----------
    teacher : array or tensor of shape (n_entities, d_t)
    student : array or tensor of shape (n_entities, d_s)
        The same entities (users or items), in the same order.
    method : {"umap", "pca"}, default "umap"
    align : {"procrustes", "aligned_umap", "none"}, default "procrustes"
    n_neighbors, min_dist, n_epochs, init, random_state, cache_dir, parallel
        See :func:`htdviz.viz.projection.project_pair`; maps are cached on disk and
        seeded.
    max_points : int or None, default :data:`MAX_MAP_POINTS` (30,000)
        Larger sets are mapped from a sample of this many entities, stratified by
        ``groups`` when given (:func:`htdviz.groups.stratified_sample`, seeded by
        ``random_state``); the title says so. None maps every entity.
    neighbours : int, default 10
        k of the neighbourhoods the maps are checked against.
    colour_by_trust : bool, default False
        Colour each panel's points by the share of their neighbours that panel keeps
        (:data:`TRUST_SCALE`: grey lost, dark blue kept) instead of ``color``.
    **map_kwargs
        Passed to :func:`map_figure` (``ids``, ``groups``, ``color``, ``group_tags``, ...).

    Returns
    -------
    plotly.graph_objects.Figure
        As :func:`map_figure`; ``layout.meta`` also records the method, the alignment,
        the Procrustes disparity of the two maps (0 = the same shape) and ``n_total``,
        the number of entities before sampling, ``neighbours`` (k), ``kept_teacher``
        and ``kept_student`` (the mean shares of neighbours kept; above
        :data:`TRUST_ROWS` drawn entities, the mean over that many sampled ones unless
        ``colour_by_trust``) and ``trust`` (a sentence on them).
    """
    teacher, student = as_points(teacher, "teacher"), as_points(student, "student")
    n_total = teacher.shape[0]
    if student.shape[0] != n_total:
        raise ValueError(f"teacher and student must hold the same entities: got {n_total} "
                         f"and {student.shape[0]} rows")
    sampled = max_points is not None and n_total > check_int(max_points, "max_points", low=10)
    if sampled:
        keep = _sample_for_map(n_total, max_points, map_kwargs, random_state)
        teacher, student = teacher[keep], student[keep]
    teacher_xy, student_xy = project_pair(teacher, student, method=method, align=align,
                                          n_neighbors=n_neighbors, min_dist=min_dist,
                                          n_epochs=n_epochs, init=init,
                                          random_state=random_state, cache_dir=cache_dir,
                                          parallel=parallel)
    n_drawn = len(teacher)
    rows = None if colour_by_trust or n_drawn <= TRUST_ROWS else np.sort(
        np.random.default_rng(random_state).choice(n_drawn, TRUST_ROWS, replace=False))
    kept_t = neighbours_kept(teacher, teacher_xy, neighbours, rows)
    kept_s = neighbours_kept(student, student_xy, neighbours, rows)
    if colour_by_trust:
        map_kwargs.update(color=kept_t, student_color=kept_s, categorical=False,
                          color_name=f"share of {neighbours} neighbours kept",
                          colorscale=TRUST_SCALE, color_range=(0, 1))
    fig = map_figure(teacher_xy, student_xy, **map_kwargs)
    disparity = procrustes_align(student_xy, teacher_xy)[1]
    entity = map_kwargs.get("entity", "items")
    trust = trust_sentence(kept_t, kept_s, entity, neighbours)
    fig.layout.meta = {**(fig.layout.meta or {}), "method": method, "align": align,
                       "disparity": disparity, "n_total": n_total, "neighbours": neighbours,
                       "kept_teacher": float(kept_t.mean()),
                       "kept_student": float(kept_s.mean()), "trust": trust}
    fig.update_layout(title=_map_title(method, align, entity, n_drawn, n_total,
                                       sampled and map_kwargs.get("groups") is not None,
                                       kept_t, kept_s, neighbours, disparity,
                                       None if rows is None else len(rows)),
                      margin=dict(t=95))
    return fig


def _sample_for_map(n_total, max_points, map_kwargs, random_state) -> np.ndarray:
    """The entities a map of a large set draws (stratified by ``groups`` when given);
    ``map_kwargs``' per-entity values are narrowed to them in place."""
    from ..groups import stratified_sample

    keep = stratified_sample(n_total, max_points, map_kwargs.get("groups"), random_state)
    map_kwargs.setdefault("ids", np.arange(n_total))
    map_kwargs.update({key: _take(map_kwargs[key], keep) for key in _PER_ENTITY
                       if map_kwargs.get(key) is not None})
    if map_kwargs.get("highlight") is not None and \
            np.asarray(map_kwargs["highlight"]).dtype == bool:
        map_kwargs["highlight"] = np.asarray(map_kwargs["highlight"])[keep]
    return keep


def _map_title(method, align, entity, n_drawn, n_total, stratified, kept_t, kept_s,
               neighbours, disparity, n_rows=None) -> dict:
    """projection_figure's title: what is mapped, and a subtitle on how far to trust it."""
    what = f"teacher and student {entity}" if n_drawn == n_total else (
        f"{n_drawn:,} of {n_total:,} {entity}, a sample "
        f"{'stratified by group' if stratified else 'drawn uniformly'}")
    aligned = {"procrustes": "rotated and scaled onto the teacher's",
               "aligned_umap": "laid out jointly with the teacher's (AlignedUMAP)",
               "none": "not aligned"}[align]
    return dict(text=f"{method.upper()} of {what}<br><sup>maps keep {kept_t.mean():.0%} "
                     f"(teacher) and {kept_s.mean():.0%} (student) of each "
                     f"{_singular(entity)}'s {neighbours} nearest neighbours"
                     f"{'' if n_rows is None else f' (mean of {n_rows:,} sampled)'}; "
                     f"student's map "
                     f"{aligned}; shapes differ by {disparity:.2f} (Procrustes disparity: 0 "
                     f"the same shape, 1 nothing in common)</sup>",
                x=0.01, xanchor="left", y=0.97, yanchor="top")


def figure_html(figure, div_id: str) -> str:
    """A plotly figure (a Figure or its JSON dict) as HTML for a page without a kernel: a
    div and a script that draws it with the page's plotly.js once that is loaded (a
    rendered notebook's page may load it after the outputs). The page ships plotly.js."""
    import json

    spec = figure if isinstance(figure, Mapping) else figure.to_plotly_json()
    layout = dict(spec.get("layout") or {})
    text = json.dumps({"data": spec.get("data", []), "layout": layout,
                       "config": {**(spec.get("config") or {}), "responsive": True}},
                      cls=require("plotly.utils", "htdviz figures").PlotlyJSONEncoder)
    text = text.replace("</", "<\\/")              # no "</script>" inside the script
    return (f'<div id="{div_id}" class="plotly-graph-div" '
            f'style="height:{int(layout.get("height") or 450)}px;width:100%"></div><script>'
            f'(function draw(tries) {{ if (window.Plotly) {{ var f = {text}; '
            f'Plotly.newPlot("{div_id}", f.data, f.layout, f.config); }} '
            f'else if (tries > 0) {{ setTimeout(function () {{ draw(tries - 1); }}, 100); }} '
            f'}})(100);</script>')


def method_colour(name, k: int = 0) -> str:
    """The colour of the method a curve or bar is named after (:data:`METHOD_COLOURS`):
    its registry name or display name, alone or first ("FTD", "HTD student", "student
    alone", "HTD + RRD", "htd d20 s0"); for any other name, the ``k``-th colour of
    :data:`PALETTE`."""
    text = str(name).lower().replace(" + ", "+")
    for token in re.split(r"[\s(),:/]+", text):
        if token in METHOD_COLOURS:
            return METHOD_COLOURS[token]
    return PALETTE[k % len(PALETTE)]


def _take(values, keep: np.ndarray):
    """Rows ``keep`` of a per-entity argument (array, tensor, list or pandas object)."""
    if isinstance(values, (pd.Series, pd.Index)):
        return values.to_numpy()[keep]
    return np.asarray(values, dtype=object if isinstance(values, list) else None)[keep]


def map_figure(teacher_xy, student_xy, ids=None, groups=None, color=None,
               color_name: str | None = None, categorical: bool | None = None,
               group_tags=None, entity_tags=None, entity: str = "items",
               titles=("teacher", "student"), highlight=None,
               marker_size: float | None = None, webgl: bool | None = None,
               legend: bool = True, student_color=None, colorscale="Viridis",
               color_range: tuple[float, float] | None = None) -> "go.Figure":
    """Draw two 2-D maps of the same entities side by side, one trace per panel.

    Parameters
    ----------
    teacher_xy : array of shape (n_entities, 2)
    student_xy : array of shape (n_entities, 2)
    ids : array of shape (n_entities,), optional
        Entity ids shown on hover and carried in ``customdata[:, 0]``; default 0..n-1.
    groups : int array of shape (n_entities,), optional
        Group of each entity (HTD or k-means), shown on hover; the default colouring.
    color : array of shape (n_entities,), optional
        What colours the points: group ids, tag names, popularity, ... Default ``groups``.
    color_name : str, optional
        Its name in the legend, colour bar and hover; default "group".
    categorical : bool, optional
        Colour by category (legend) or by value (colour bar). Default: categories for
        integers, booleans and strings, values for floats.
    group_tags : pandas.DataFrame or mapping, optional
        Top tags per group, shown on hover: the table of :func:`htdviz.groups.top_tags`
        (columns ``group``, ``tag``, optionally ``rank``) or a mapping group -> tags.
    entity_tags : sequence of str of length n_entities, optional
        Per-entity text shown on hover (e.g. an item's own tags).
    entity : str, default "items"
        What the points are ("users", "items"); used in the hover text.
    titles : (str, str), default ("teacher", "student")
    highlight : array of ids or bool mask of shape (n_entities,), optional
        Entities shown selected (the others faded) in both panels.
    marker_size : float, optional
        Default 6 below 2,000 entities, 4 below 10,000, else 3.
    webgl : bool, optional
        Draw with Scattergl; default above :data:`WEBGL_THRESHOLD` entities.
    legend : bool, default True
        Add the legend traces of categorical colours.
    student_color : array of shape (n_entities,), optional
        Values that colour the student panel when they differ from the teacher panel's
        (``color``), e.g. each map's own share of neighbours kept; by value only, on the
        same colour bar.
    colorscale : str or list, default "Viridis"
        The colour bar's scale, for colours by value.
    color_range : (float, float), optional
        The colour bar's ends; default the values' range.

    Returns
    -------
    plotly.graph_objects.Figure
        ``data[0]`` is the teacher panel and ``data[1]`` the student panel, each holding
        every entity in input order (Scattergl, see ``webgl``),
        ``customdata`` columns (id, group, group's top tags, entity text, colour value).
        With categorical colours, further traces without points (one per category, at
        most :data:`MAX_LEGEND_ENTRIES`) make the legend. Axes of the two panels are
        linked (zooming one zooms both).
    """
    t_xy = _as_xy(teacher_xy, "teacher_xy")
    s_xy = _as_xy(student_xy, "student_xy")
    n = t_xy.shape[0]
    if s_xy.shape[0] != n:
        raise ValueError(f"teacher_xy and student_xy must hold the same entities: got {n} and "
                         f"{s_xy.shape[0]} rows")
    ids = _as_ids(ids, n)
    groups = _as_vector(groups, n, "groups")
    color = groups if color is None else _as_vector(color, n, "color")
    color_name = color_name or "group"
    if student_color is not None:
        student_color = _as_vector(student_color, n, "student_color")
        if color is None or _is_categorical(color, categorical) or \
                _is_categorical(student_color, categorical):
            raise ValueError("student_color needs colours by value in both color and "
                             "student_color (categorical=False)")
    tags_of_group = _group_tag_text(group_tags)
    group_text = np.full(n, "", dtype=object) if groups is None else \
        groups.astype(str).astype(object)
    group_tag_text = np.array([tags_of_group.get(g, "") for g in groups], dtype=object) \
        if groups is not None else np.full(n, "", dtype=object)
    entity_text = np.full(n, "", dtype=object) if entity_tags is None else \
        np.asarray(_as_vector(entity_tags, n, "entity_tags"), dtype=object)
    def hover_data(values):
        text = np.full(n, "", dtype=object) if values is None else np.array(
            [f"{c:.4g}" if isinstance(c, (float, np.floating)) else str(c) for c in values],
            dtype=object)
        return np.stack([ids.astype(object), group_text, group_tag_text, entity_text, text],
                        axis=1)

    customdata = hover_data(color)
    student_data = customdata if student_color is None else hover_data(student_color)

    hover = f"<b>{_singular(entity)} %{{customdata[0]}}</b>"
    if groups is not None:
        hover += "<br>group %{customdata[1]}"
        if tags_of_group:
            hover += "<br><i>%{customdata[2]}</i>"
    if entity_tags is not None:
        hover += "<br>%{customdata[3]}"
    if color is not None and color is not groups:
        hover += f"<br>{color_name}: %{{customdata[4]}}"

    size = marker_size or (6 if n < 2000 else 4 if n < 10000 else 3)
    marker = dict(size=size, opacity=0.8, line=dict(width=0))
    legend_traces = []
    webgl = n > WEBGL_THRESHOLD if webgl is None else bool(webgl)
    scatter = go.Scattergl if webgl else go.Scatter
    if color is None:
        marker["color"] = PALETTE[0]
    elif _is_categorical(color, categorical):
        codes, names = pd.factorize(pd.Series(color), sort=True)
        # numeric codes on a stepwise colour scale: plotly validates numbers in bulk but
        # colour strings one by one (seconds for 25,000 points)
        n_colours = min(len(names), len(PALETTE))
        marker.update(color=codes % len(PALETTE), colorscale=_stepwise(n_colours),
                      cmin=-0.5, cmax=n_colours - 0.5, showscale=False)
        if legend and len(names) <= MAX_LEGEND_ENTRIES:
            legend_traces = [scatter(x=[None], y=[None], mode="markers", name=str(name),
                                     marker=dict(color=PALETTE[k % len(PALETTE)], size=8),
                                     legendgroup=str(name), showlegend=True, hoverinfo="skip")
                             for k, name in enumerate(names)]
    else:
        values = np.asarray(color, dtype=np.float64)
        marker.update(color=values, coloraxis="coloraxis")

    fig = _subplots.make_subplots(rows=1, cols=2, subplot_titles=list(titles),
                                  horizontal_spacing=0.03)
    selected = _highlight_points(highlight, ids)
    student_marker = marker if student_color is None else \
        {**marker, "color": np.asarray(student_color, dtype=np.float64)}
    for col, (xy, name, marks, data) in enumerate(
            ((t_xy, titles[0], marker, customdata), (s_xy, titles[1], student_marker,
                                                     student_data)), start=1):
        fig.add_trace(scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", name=name,
                              marker=marks, customdata=data, hovertemplate=hover +
                              f"<extra>{name}</extra>", showlegend=False,
                              selectedpoints=selected, unselected=dict(marker=dict(
                                  opacity=0.12))), row=1, col=col)
    for trace in legend_traces:
        fig.add_trace(trace, row=1, col=1)
    if "coloraxis" in marker:
        low, high = color_range or (None, None)
        fig.update_layout(coloraxis=dict(colorscale=colorscale, cmin=low, cmax=high,
                                         colorbar=dict(title=dict(text=color_name))))
    axis = dict(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_xaxes(**axis)
    fig.update_yaxes(**axis)
    fig.update_xaxes(matches="x", row=1, col=2)
    fig.update_yaxes(matches="y", row=1, col=2)
    fig.update_yaxes(scaleanchor="x", scaleratio=1, row=1, col=1)
    fig.update_layout(legend=dict(title=dict(text=color_name), itemsizing="constant"),
                      template="plotly_white", margin=dict(l=20, r=20, t=60, b=20),
                      meta={"entity": entity, "n_entities": n, "color_name": color_name})
    return fig


# --------------------------------------------------------------------------------------
# Heatmaps
# --------------------------------------------------------------------------------------

def similarity_heatmaps(teacher, student, groups=None, ids=None, max_entities: int = 500,
                        random_state: int = 0, entity: str = "items", highlight=None,
                        titles=("teacher", "student", "student − teacher")) -> "go.Figure":
    """Teacher, student and difference cosine-similarity heatmaps, entities ordered by group.

    Parameters
    ----------
    teacher : array or tensor of shape (n_entities, d_t)
    student : array or tensor of shape (n_entities, d_s)
    groups : int array of shape (n_entities,), optional
        Rows and columns are ordered by group (ascending) and, within a group, by the
        teacher cosine to the group's teacher prototype (most typical first, then id);
        the group boundaries are drawn. Without groups, entities are ordered by id.
    ids : array of shape (n_entities,), optional
        Entity ids (unique), the axis categories shown on hover; default 0..n-1.
    max_entities : int, default 500
        At most this many entities (<= :data:`MAX_HEATMAP_ENTITIES` = 2000) are drawn; more
        are sampled, stratified by group (every non-empty group keeps at least one entity
        while ``max_entities`` allows, the rest in proportion to group size), seeded by
        ``random_state``.
    random_state : int, default 0
    entity : str, default "items"
    highlight : int, optional
        A group whose block is outlined in every panel.
    titles : three str

    Returns
    -------
    plotly.graph_objects.Figure
        Three Heatmap traces (teacher, student, student - teacher) over the same
        categorical axes (the sampled ids, as strings). Teacher and student share a colour
        axis on [-1, 1]; the difference has its own, symmetric about 0. Group boundaries
        are line shapes named "boundary" (at positions ``b - 0.5`` for each group start
        b > 0); the highlight is a rectangle named "highlight". ``layout.meta`` holds the
        ordered ``ids``, their ``groups`` and the block ``starts``.
    """
    t = as_points(teacher, "teacher")
    s = as_points(student, "student")
    _same_rows(t, s)
    n = t.shape[0]
    ids = _as_ids(ids, n)
    labels = None if groups is None else _as_labels(groups, n, "groups")
    max_entities = check_int(max_entities, "max_entities", high=MAX_HEATMAP_ENTITIES)
    order = _ordered_sample(t, labels, max_entities, np.random.default_rng(random_state))
    return _similarity_triptych(t[order], s[order], ids[order],
                                None if labels is None else labels[order], entity, highlight,
                                titles)


def group_heatmaps(teacher, student, groups, group: int, ids=None, max_entities: int = 500,
                   random_state: int = 0, entity: str = "items",
                   titles=None) -> "go.Figure":
    """One group's within-group block (HTD's entity-level target), teacher vs student.

    Parameters
    ----------
    teacher : array or tensor of shape (n_entities, d_t)
    student : array or tensor of shape (n_entities, d_s)
    groups : int array of shape (n_entities,)
    group : int
        The group to show (must have members).
    ids, max_entities, random_state, entity
        See :func:`similarity_heatmaps`; members beyond ``max_entities`` are sampled.
    titles : three str, optional
        Default "teacher, group g" etc.

    Returns
    -------
    plotly.graph_objects.Figure
        As :func:`similarity_heatmaps`, over the group's members only (ordered by teacher
        cosine to the group's prototype, most typical first), without boundaries.
    """
    t = as_points(teacher, "teacher")
    s = as_points(student, "student")
    _same_rows(t, s)
    n = t.shape[0]
    ids = _as_ids(ids, n)
    labels = _as_labels(groups, n, "groups")
    members = np.flatnonzero(labels == group)
    if members.size == 0:
        raise ValueError(f"group {group!r} has no members (groups present: "
                         f"{np.unique(labels).tolist()[:20]}...)")
    max_entities = check_int(max_entities, "max_entities", high=MAX_HEATMAP_ENTITIES)
    rng = np.random.default_rng(random_state)
    if members.size > max_entities:
        members = np.sort(rng.choice(members, max_entities, replace=False))
    order = members[_typical_first(t, labels, members)]
    titles = titles or (f"teacher, group {group}", f"student, group {group}",
                        "student − teacher")
    return _similarity_triptych(t[order], s[order], ids[order], None, entity, None, titles)


def prototype_heatmaps(teacher, student, groups, n_groups: int | None = None,
                       group_names=None, highlight=None,
                       titles=("teacher", "student", "student − teacher")) -> "go.Figure":
    """The group-level topology: cosines among group prototypes (Group(P,P), docs/method.md §5.4).

    Parameters
    ----------
    teacher : array or tensor of shape (n_entities, d_t)
    student : array or tensor of shape (n_entities, d_s)
    groups : int array of shape (n_entities,)
    n_groups : int, optional
        Default ``groups.max() + 1``; empty groups are left out.
    group_names : sequence of str of length n_groups, optional
        Axis labels; default the group ids.
    highlight : int, optional
        A group whose row and column are outlined.
    titles : three str

    Returns
    -------
    plotly.graph_objects.Figure
        Three Heatmap traces (teacher, student, difference) of shape
        (n_present, n_present), groups in ascending order; ``customdata[i][j]`` holds the
        sizes of groups i and j. Prototypes are the means of the raw representations
        (:func:`htdviz.topology.prototypes`).
    """
    from .. import topology

    t = as_points(teacher, "teacher")
    s = as_points(student, "student")
    _same_rows(t, s)
    labels = _as_labels(groups, t.shape[0], "groups")
    n_groups = int(labels.max()) + 1 if n_groups is None else int(n_groups)
    if n_groups <= labels.max():
        raise ValueError(f"n_groups must exceed the largest group id {labels.max()}, got "
                         f"{n_groups}")
    if group_names is not None and len(group_names) != n_groups:
        raise ValueError(f"group_names must have one name per group ({n_groups}), got "
                         f"{len(group_names)}")
    sizes = np.bincount(labels, minlength=n_groups)
    present = np.flatnonzero(sizes)
    names = [str(group_names[g]) if group_names is not None else str(g) for g in present]
    t_sim = topology.cosine_similarity(topology.prototypes(t, labels, n_groups)[present])
    s_sim = topology.cosine_similarity(topology.prototypes(s, labels, n_groups)[present])
    sizes_pair = np.stack(np.broadcast_arrays(sizes[present][:, None],
                                              sizes[present][None, :]), axis=-1)
    hover = ("group %{y} · group %{x}<br>cos %{z:.3f}<br>sizes %{customdata[0]} · "
             "%{customdata[1]}")
    fig = _triptych(t_sim, s_sim, names, titles, hover, customdata=sizes_pair,
                    axis_title="group")
    if highlight is not None:
        if highlight not in present:
            raise ValueError(f"highlight must be a non-empty group, got {highlight!r}")
        pos = int(np.searchsorted(present, highlight))
        k = len(present)
        fig.update_layout(shapes=[
            shape for panel in range(3) for shape in
            (_rect(panel, pos - 0.5, pos + 0.5, -0.5, k - 0.5),
             _rect(panel, -0.5, k - 0.5, pos - 0.5, pos + 0.5))])
    fig.layout.meta = {"groups": present.tolist(), "sizes": sizes[present].tolist()}
    return fig


def _similarity_triptych(t, s, ids, labels, entity, highlight, titles):
    from .. import topology

    names = [str(i) for i in ids]
    if len(set(names)) != len(names):
        raise ValueError("ids must be unique (they name the heatmap rows and columns)")
    label = _singular(entity)
    hover = f"{label} %{{y}} · {label} %{{x}}<br>cos %{{z:.3f}}"
    fig = _triptych(topology.cosine_similarity(t), topology.cosine_similarity(s), names,
                    titles, hover, axis_title=entity)
    meta = {"ids": ids.tolist(), "entity": entity}
    if labels is not None:
        starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
        ends = np.r_[starts[1:], labels.size]
        k = labels.size
        # shapes are set once: each add_shape copies every shape before it
        shapes = [line for panel in range(3) for b in starts[1:] for line in
                  (_line(panel, b - 0.5, b - 0.5, -0.5, k - 0.5),
                   _line(panel, -0.5, k - 0.5, b - 0.5, b - 0.5))]
        block_groups = labels[starts]
        if len(starts) <= 40:          # a tick per group, at the middle of its block
            # blocks under 4% of the axis go unlabelled: their labels would overlap
            wide = (ends - starts) >= 0.04 * k
            centres = [names[(a + e - 1) // 2] for a, e in zip(starts[wide], ends[wide])]
            ticks = dict(tickmode="array", tickvals=centres, tickangle=0,
                         ticktext=[str(g) for g in block_groups[wide]], showticklabels=True)
            fig.update_xaxes(**ticks)
            fig.update_yaxes(**ticks)
        if highlight is not None:
            if highlight not in block_groups:
                raise ValueError(f"highlight must be a group present in the sample, got "
                                 f"{highlight!r}")
            b = int(np.flatnonzero(block_groups == highlight)[0])
            shapes += [_rect(panel, starts[b] - 0.5, ends[b] - 0.5, starts[b] - 0.5,
                             ends[b] - 0.5) for panel in range(3)]
        fig.update_layout(shapes=shapes)
        meta.update(groups=labels.tolist(), starts=starts.tolist())
    fig.layout.meta = meta
    return fig


def _triptych(t_sim, s_sim, names, titles, hover, customdata=None, axis_title=""):
    """Three heatmaps on shared categorical axes: teacher, student, student - teacher."""
    diff = s_sim - t_sim
    bound = float(np.nanmax(np.abs(diff))) if diff.size and np.isfinite(diff).any() else 1.0
    bound = bound or 1.0
    fig = _subplots.make_subplots(rows=1, cols=3, subplot_titles=list(titles),
                                  horizontal_spacing=0.04)
    for col, (z, axis) in enumerate(((t_sim, "coloraxis"), (s_sim, "coloraxis"),
                                     (diff, "coloraxis2")), start=1):
        fig.add_trace(go.Heatmap(z=z.astype(np.float32), x=names, y=names, coloraxis=axis,
                                 customdata=customdata, name=titles[col - 1],
                                 hovertemplate=hover + f"<extra>{titles[col - 1]}</extra>"),
                      row=1, col=col)
    fig.update_xaxes(type="category", showticklabels=False, showgrid=False, title=axis_title,
                     constrain="domain")
    fig.update_yaxes(type="category", showticklabels=False, showgrid=False,
                     autorange="reversed", constrain="domain")
    for col in (1, 2, 3):
        fig.update_yaxes(scaleanchor=f"x{'' if col == 1 else col}", row=1, col=col)
    # the colour bars sit at the bottom edge of the figure (container coordinates), below
    # the axis titles whatever the figure's height: placed in plot coordinates they
    # overlapped the titles
    # (a title on top of a horizontal bar is drawn over it: "right" puts it beside)
    bar = dict(orientation="h", yref="container", y=0.01, yanchor="bottom", thickness=12,
               title=dict(side="right"))
    fig.update_layout(
        coloraxis=dict(colorscale="RdBu_r", cmin=-1, cmax=1,
                       colorbar=dict(bar, title_text="cosine similarity", x=0.34, len=0.5)),
        coloraxis2=dict(colorscale="PuOr_r", cmin=-bound, cmax=bound,
                        colorbar=dict(bar, title_text="Δ cosine", x=0.86, len=0.3)),
        template="plotly_white", margin=dict(l=40, r=20, t=60, b=130))
    return fig


def _line(panel, x0, x1, y0, y1) -> dict:
    """A group boundary in heatmap panel 0, 1 or 2 (category positions)."""
    suffix = "" if panel == 0 else str(panel + 1)
    return dict(type="line", x0=x0, x1=x1, y0=y0, y1=y1, xref=f"x{suffix}",
                yref=f"y{suffix}", line=dict(color="black", width=0.7), name="boundary")


def _rect(panel, x0, x1, y0, y1) -> dict:
    """A highlight rectangle in heatmap panel 0, 1 or 2."""
    suffix = "" if panel == 0 else str(panel + 1)
    return dict(type="rect", x0=x0, x1=x1, y0=y0, y1=y1, xref=f"x{suffix}",
                yref=f"y{suffix}", line=dict(color="#00cc96", width=2.5), name="highlight")


def _ordered_sample(t: np.ndarray, labels, max_entities: int, rng) -> np.ndarray:
    """Positions of at most ``max_entities`` entities: by group, typical first, then id."""
    from ..groups import stratified_sample

    chosen = stratified_sample(t.shape[0], max_entities, labels, rng)
    return chosen if labels is None else chosen[_typical_first(t, labels, chosen)]


def _typical_first(t: np.ndarray, labels: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Order of ``chosen``: group ascending, teacher cosine to the group's (full) teacher
    prototype descending, position ascending."""
    from .. import topology

    protos = topology.prototypes(t, labels)                       # (n_groups, d_t)
    unit = t[chosen] / np.maximum(np.linalg.norm(t[chosen], axis=1, keepdims=True), 1e-12)
    p = protos[labels[chosen]]
    p = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    typicality = (unit * p).sum(1)
    return np.lexsort((chosen, -typicality, labels[chosen]))


# --------------------------------------------------------------------------------------
# Curves and bars
# --------------------------------------------------------------------------------------

def learning_curves(histories, metric: str = "test_recall@50", reference=None,
                    x: str = "epoch") -> "go.Figure":
    """A metric against epochs, one line per method (docs/method.md §10.2: learning curves).

    Parameters
    ----------
    histories : mapping or pandas.DataFrame
        name -> history DataFrame (or anything with a ``.history`` DataFrame, such as a
        :class:`htdviz.runs.Run`), each with columns ``x`` and ``metric``; or one tidy
        DataFrame with a ``method`` column.
    metric : str, default "test_recall@50"
    reference : mapping, optional
        name -> pandas.Series of the metric indexed by epoch (e.g. the paper's logs),
        drawn dashed in the colour of the method of the same name.
    x : str, default "epoch"

    Returns
    -------
    plotly.graph_objects.Figure
        One Scatter trace per method in the given order, then one per reference curve
        (named "<name> (paper)"); points sorted by ``x``. A history trained with the
        authors' schedule (column ``schedule`` = "reference", whose epoch e is after e + 1
        epochs) is named "<name> (authors' schedule)".
    """
    curves = _as_curves(histories, metric, x)
    fig = go.Figure()
    colours = {}
    for k, (name, frame) in enumerate(curves.items()):
        colours[name] = method_colour(name, k)
        frame = frame.sort_values(x)
        # the authors' loop labels epoch e after e + 1 epochs (docs/method.md §6.3)
        authors = "schedule" in frame.columns and (frame["schedule"] == "reference").any()
        label = f"{name} (authors' schedule)" if authors else str(name)
        fig.add_trace(go.Scatter(x=frame[x], y=frame[metric], mode="lines+markers",
                                 name=label, line=dict(color=colours[name]),
                                 hovertemplate=f"{name}<br>{x} %{{x}}<br>{metric} "
                                               f"%{{y:.4f}}<extra></extra>"))
    for k, (name, series) in enumerate((reference or {}).items()):
        series = pd.Series(series).sort_index()
        colour = colours.get(name) or method_colour(name, len(curves) + k)
        fig.add_trace(go.Scatter(x=series.index, y=series.values, mode="lines",
                                 name=f"{name} (paper)", line=dict(color=colour, dash="dash"),
                                 hovertemplate=f"{name} (paper)<br>{x} %{{x}}<br>{metric} "
                                               f"%{{y:.4f}}<extra></extra>"))
    words = readable(metric)
    fig.update_layout(xaxis_title=readable(x), yaxis_title=words, template="plotly_white",
                      title=f"{words[:1].upper()}{words[1:]} during training",
                      legend_title_text="method")
    return fig


def capacity_curves(table: pd.DataFrame, recall: str | None = "auto",
                    x: str = "dim") -> "go.Figure":
    """What a student of each size can and does keep of the teacher's topology.

    Two (or three) panels over the student dimension d: the full topology (FTD's target)
    and HTD's hierarchical target, each with its rank-d bound as a dashed line and the
    students' achieved errors as markers, on one relative log scale (error energy as a
    share of the target's energy: 1 = as far off as a student whose cosines were all 0);
    then, optionally, the students' accuracy.

    Parameters
    ----------
    table : pandas.DataFrame
        As :func:`htdviz.capacity.capacity_table` returns: columns ``method``, ``kind``
        ("bound" / "achieved"), ``x``, ``full_error_relative`` and, for the second panel,
        ``hierarchical_error_relative``. Give the table a grid of dims (e.g.
        ``dims=range(1, 201)``) to draw the bounds as curves, not only at the runs' dims.
    recall : str or None, default "auto"
        The accuracy column of the last panel; "auto" takes the first of
        "test_recall@50", "final_test_recall@50", "recall@50" present; None leaves it out.
    x : {"dim", "phi"}, default "dim"

    Returns
    -------
    plotly.graph_objects.Figure
        Traces: per error panel the bound ("rank-d bound", dashed), then one per method
        (markers, joined by lines across dims); then one per method in the recall panel.
        Methods keep one colour throughout; when every run has the same dim, a note in the
        figure says that the markers are single points, not curves.
    """
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    missing = {"method", "kind", x, "full_error_relative"} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks the columns {sorted(missing)}; it has "
                         f"{list(table.columns)}")
    if recall == "auto":
        recall = next((c for c in ("test_recall@50", "final_test_recall@50", "recall@50")
                       if c in table.columns), None)
        if recall is None:
            raise ValueError(f"no recall column found in {list(table.columns)}; pass "
                             f"recall=<column> or recall=None")
    elif recall is not None and recall not in table.columns:
        raise ValueError(f"recall column {recall!r} is not in the table; it has "
                         f"{list(table.columns)}")
    errors = {"full_error_relative": "Full topology (FTD's target)"}
    if "hierarchical_error_relative" in table.columns and \
            table["hierarchical_error_relative"].notna().any():
        errors["hierarchical_error_relative"] = "Hierarchical target (HTD's)"
    panels = list(errors.values()) + ([readable(recall)] if recall else [])
    fig = _subplots.make_subplots(rows=1, cols=len(panels), subplot_titles=panels,
                                  horizontal_spacing=0.08)
    achieved = table[table["kind"] != "bound"]
    bound = table[table["kind"] == "bound"].sort_values(x)
    methods = list(dict.fromkeys(achieved["method"]))
    colour = {m: method_colour(m, k) for k, m in enumerate(methods)}
    x_words = readable(x)
    for col, column in enumerate(errors, start=1):
        if len(bound) and bound[column].notna().any():
            fig.add_trace(go.Scatter(
                x=bound[x], y=bound[column], mode="lines", name="rank-d bound",
                legendgroup="bound", showlegend=col == 1,
                line=dict(color="grey", dash="dash"),
                hovertemplate=f"rank-d bound<br>{x_words} %{{x}}<br>%{{y:.3g}} of the "
                              f"target's energy<extra></extra>"), row=1, col=col)
        for method in methods:
            rows = achieved[achieved["method"] == method].sort_values(x)
            fig.add_trace(go.Scatter(
                x=rows[x], y=rows[column], mode="lines+markers", name=str(method),
                legendgroup=str(method), showlegend=col == 1,
                marker=dict(size=10, color=colour[method]), line=dict(color=colour[method]),
                hovertemplate=f"{method}<br>{x_words} %{{x}}<br>%{{y:.3g}} of the target's "
                              f"energy<extra></extra>"), row=1, col=col)
        fig.update_yaxes(type="log", dtick=1, row=1, col=col,          # one tick per decade
                         title_text="error / target energy (log)" if col == 1 else None)
    if recall:
        col = len(panels)
        for method in methods:
            rows = achieved[achieved["method"] == method].sort_values(x)
            fig.add_trace(go.Scatter(
                x=rows[x], y=rows[recall], mode="lines+markers", name=str(method),
                legendgroup=str(method), showlegend=False,
                marker=dict(size=10, color=colour[method]), line=dict(color=colour[method]),
                hovertemplate=f"{method}<br>{x_words} %{{x}}<br>{readable(recall)} "
                              f"%{{y:.4f}}<extra></extra>"), row=1, col=col)
        fig.update_yaxes(title_text=readable(recall), row=1, col=col)
    fig.update_xaxes(type="log", dtick=1, title_text=x_words)        # decades only
    fig.update_layout(template="plotly_white", height=430, margin=dict(t=110),
                      title="Capacity: what a student of each size can keep, and keeps",
                      legend=dict(orientation="h", y=-0.22, x=0))
    dims = achieved[x].dropna().unique()
    if len(dims) == 1:
        fig.add_annotation(text=f"Runs at one size only ({x_words} = {dims[0]:g}): markers "
                                f"are single points; the dashed lines are the bounds at "
                                f"every size.", xref="paper", yref="paper", x=0, y=1.2,
                           showarrow=False, xanchor="left", font=dict(size=12, color="#555"))
    return fig


def group_sizes_figure(groups, top_tags=None, n_tags: int = 3, group_names=None,
                       entity: str = "items", n_groups: int | None = None) -> "go.Figure":
    """Group sizes as horizontal bars (largest on top), each labelled with its top tags.

    Parameters
    ----------
    groups : int array of shape (n_entities,) or pandas.Series
        Group labels, or sizes indexed by group (:func:`htdviz.groups.group_sizes`).
    top_tags : pandas.DataFrame or mapping, optional
        :func:`htdviz.groups.top_tags` output, or a mapping group -> tags.
    n_tags : int, default 3
        Tags shown per group.
    group_names : mapping group -> str, optional
    entity : str, default "items"
    n_groups : int, optional
        K, the groups on offer; the title then says how many are in use.

    Returns
    -------
    plotly.graph_objects.Figure
        One Bar trace; bars ordered by size descending (ties by group id), ``customdata``
        columns (group, size, tags); empty groups are left out.
    """
    if isinstance(groups, pd.Series):
        sizes = groups.astype(np.int64)
    else:
        from .. import groups as groups_module

        sizes = groups_module.group_sizes(_as_labels(groups, None, "groups"))
    sizes = sizes[sizes > 0]
    order = sorted(sizes.index, key=lambda g: (-sizes[g], g))
    tags = _group_tag_text(top_tags, n_tags)
    names = [str(group_names[g]) if group_names is not None else f"group {g}" for g in order]
    text = [tags.get(g, "") for g in order]
    customdata = np.array([[g, int(sizes[g]), tags.get(g, "")] for g in order], dtype=object)
    fig = go.Figure(go.Bar(x=[int(sizes[g]) for g in order], y=names, orientation="h",
                           text=text, textposition="outside", customdata=customdata,
                           cliponaxis=False,
                           hovertemplate="group %{customdata[0]}: %{customdata[1]} "
                                         f"{entity}<br>%{{customdata[2]}}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    largest = max((int(sizes[g]) for g in order), default=1)
    longest = max((len(t) for t in text), default=0)
    # room for the tag labels beyond the longest bar, so none is cut at the right edge
    fig.update_xaxes(range=[0, largest * (1.15 + 0.012 * longest)])
    title = "Group sizes and their most characteristic tags" if tags else "Group sizes"
    if n_groups is not None:
        title += f" ({len(order)} of the K = {n_groups} groups in use)"
    fig.update_layout(template="plotly_white", xaxis_title=f"{entity} in group",
                      title=title, height=max(300, 22 * len(order) + 120),
                      margin=dict(r=40))
    return fig


def preservation_bars(results, value: str = "kl") -> "go.Figure":
    """Topology-preservation KL per method and neighbour set (docs/method.md §9), as bars.

    Parameters
    ----------
    results : pandas.DataFrame or mapping
        Tidy DataFrame with columns ``method``, ``mode`` ("most_similar" / "random") and
        ``value``; or a mapping method -> {mode: KL} (e.g. from
        :func:`htdviz.topology.preservation_kl`).
    value : str, default "kl"

    Returns
    -------
    plotly.graph_objects.Figure
        One Bar trace per mode (in order of first appearance), methods along x in order of
        first appearance; lower bars = topology better preserved.
    """
    if isinstance(results, Mapping):
        frame = pd.DataFrame([{"method": m, "mode": mode, value: kl}
                              for m, by_mode in results.items() for mode, kl in
                              by_mode.items()])
    elif isinstance(results, pd.DataFrame):
        missing = {"method", "mode", value} - set(results.columns)
        if missing:
            raise ValueError(f"results lacks the columns {sorted(missing)}; it has "
                             f"{list(results.columns)}")
        frame = results
    else:
        raise ValueError(f"results must be a DataFrame or a mapping, got "
                         f"{type(results).__name__}")
    methods = list(dict.fromkeys(frame["method"]))
    fig = go.Figure()
    for k, mode in enumerate(dict.fromkeys(frame["mode"])):
        rows = frame[frame["mode"] == mode].set_index("method").reindex(methods)
        fig.add_trace(go.Bar(x=methods, y=rows[value], name=str(mode),
                             marker_color=PALETTE[k % len(PALETTE)],
                             texttemplate="%{y:.4f}", textposition="outside",
                             hovertemplate=f"%{{x}} · {mode}<br>KL %{{y:.4f}}<extra></extra>"))
    fig.update_layout(barmode="group", template="plotly_white",
                      yaxis_title="KL(teacher || student)",
                      title="Topology preservation (lower is better)",
                      legend_title_text="neighbours")
    return fig


def group_usage_figure(histories, n_groups: int | None = None) -> "go.Figure":
    """How many groups a distiller's assignment uses, over training (users and items).

    Parameters
    ----------
    histories : mapping or pandas.DataFrame
        name -> history DataFrame (or a :class:`htdviz.runs.Run`) with columns ``epoch``,
        ``user_groups_used``, ``item_groups_used`` and optionally
        ``user_group_entropy``, ``item_group_entropy`` (bits), as :func:`htdviz.train.fit`
        records for HTD and DE; histories without them are skipped.
    n_groups : int, optional
        K, the groups on offer, drawn as a dotted line.

    Returns
    -------
    plotly.graph_objects.Figure
        Two panels (users, items); per method a solid line of the groups in use and, with
        the entropies, a dashed line of the effective number of groups 2^entropy (as many
        equally full groups would have the same entropy).
    """
    curves = {}
    for name, frame in (histories.items() if isinstance(histories, Mapping)
                        else [("run", histories)]):
        frame = getattr(frame, "history", frame)
        if isinstance(frame, pd.DataFrame) and {"epoch", "user_groups_used",
                                                "item_groups_used"} <= set(frame.columns):
            curves[name] = frame.dropna(subset=["user_groups_used"]).sort_values("epoch")
    if not curves:
        raise ValueError("no history has the columns epoch, user_groups_used and "
                         "item_groups_used (recorded by htdviz.train.fit for HTD and DE)")
    entropy = any(f"{kind}_group_entropy" in frame.columns for frame in curves.values()
                  for kind in ("user", "item"))
    legend_title = ("solid: groups in use; dashed: effective number of groups (2^entropy)"
                    if entropy else "groups in use")
    fig = _subplots.make_subplots(rows=1, cols=2, subplot_titles=("User groups", "Item groups"),
                                  shared_yaxes=True, horizontal_spacing=0.06)
    for k, (name, frame) in enumerate(curves.items()):
        colour = method_colour(name, k)
        for col, kind in enumerate(("user", "item"), start=1):
            fig.add_trace(go.Scatter(
                x=frame["epoch"], y=frame[f"{kind}_groups_used"], mode="lines+markers",
                name=name, legendgroup=name, showlegend=col == 1, line=dict(color=colour),
                hovertemplate=f"{name}<br>epoch %{{x}}<br>%{{y}} {kind} groups in use"
                              f"<extra></extra>"), row=1, col=col)
            if f"{kind}_group_entropy" in frame.columns:
                fig.add_trace(go.Scatter(
                    x=frame["epoch"], y=2.0 ** frame[f"{kind}_group_entropy"], mode="lines",
                    name=f"{name}: effective groups (2^entropy)", legendgroup=name,
                    showlegend=False,
                    line=dict(color=colour, dash="dash"),
                    hovertemplate=f"{name}<br>epoch %{{x}}<br>%{{y:.1f}} effective {kind} "
                                  f"groups<extra></extra>"), row=1, col=col)
    if n_groups is not None:
        for col in (1, 2):
            fig.add_hline(y=n_groups, line=dict(color="grey", dash="dot"), row=1, col=col,
                          annotation_text=f"K = {n_groups} on offer",
                          annotation_position="bottom right")
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="groups", rangemode="tozero", row=1, col=1)
    fig.update_layout(template="plotly_white", height=380,
                      title="Groups in use during training",
                      legend=dict(orientation="h", yanchor="top", y=-0.3, x=0,
                                  title=dict(text=legend_title, side="top")))
    return fig


def band_error_figure(table: pd.DataFrame, value: str = "mean_sq_error") -> "go.Figure":
    """Each student's topology error by teacher-similarity band, one panel per pair type.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`htdviz.topology.band_error_table` output with a ``method`` column added
        (several students stacked): columns ``method``, ``pairs``, ``band`` and ``value``.
    value : {"mean_sq_error", "error_share"}, default "mean_sq_error"
        The mean squared cosine error per pair of the band, or the band's share of the
        student's total error.

    Returns
    -------
    plotly.graph_objects.Figure
        One panel per pair type (in order of appearance), bands along x nearest first, one
        Bar trace per method and panel (legend once per method).
    """
    missing = {"method", "pairs", "band", value} - set(getattr(table, "columns", []))
    if missing:
        raise ValueError(f"table lacks the columns {sorted(missing)}; build it with "
                         f"htdviz.topology.band_error_table and add a 'method' column")
    pair_types = list(dict.fromkeys(table["pairs"]))
    methods = list(dict.fromkeys(table["method"]))
    fig = _subplots.make_subplots(rows=1, cols=len(pair_types), subplot_titles=[
        f"{p} pairs" for p in pair_types], horizontal_spacing=0.06)
    words = {"mean_sq_error": "mean squared cosine error per pair",
             "error_share": "share of the student's error"}.get(value, readable(value))
    for col, pairs in enumerate(pair_types, start=1):
        rows = table[table["pairs"] == pairs]
        for k, method in enumerate(methods):
            part = rows[rows["method"] == method]
            fig.add_trace(go.Bar(
                x=[_band_name(b) for b in part["band"]], y=part[value], name=str(method),
                legendgroup=str(method), showlegend=col == 1,
                marker_color=method_colour(method, k),
                hovertemplate=f"{method}<br>{pairs}, teacher-neighbour ranks %{{x}}<br>"
                              f"{words} %{{y:.4f}}<extra></extra>"), row=1, col=col)
    fig.update_xaxes(title_text="rank among the teacher's neighbours")
    fig.update_yaxes(title_text=words, row=1, col=1)
    fig.update_layout(template="plotly_white", barmode="group", height=400,
                      title="Where the topology error lies: near or far relations",
                      legend_title_text="method")
    return fig


def sensitivity_figure(summary: pd.DataFrame, metric: str = "final_test_recall@50",
                       reference: float | None = None) -> "go.Figure":
    """A sensitivity study: one panel per factor, the metric's mean over seeds and its
    range (min to max) at each value; the default value drawn filled, the others open.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`htdviz.study.sensitivity_table`'s table (``factor``, ``value``,
        ``is_default``, ``n``, ``mean``, ``min``, ``max``).
    metric : str
        What the table summarises (the y-axis title).
    reference : float, optional
        A value to draw as a dotted line in every panel (e.g. the paper's).

    Returns
    -------
    plotly.graph_objects.Figure
    """
    needed = {"factor", "value", "is_default", "n", "mean", "min", "max"}
    if not isinstance(summary, pd.DataFrame) or not needed <= set(summary.columns):
        raise ValueError(f"summary must be a DataFrame with columns {sorted(needed)} "
                         f"(htdviz.study.sensitivity_table)")
    factors = list(dict.fromkeys(summary["factor"]))
    if not factors:
        raise ValueError("summary has no rows: no finished run of the study")
    titles = [_FACTOR_WORDS.get(f, f.replace("_", " ")) for f in factors]
    fig = _subplots.make_subplots(rows=1, cols=len(factors), subplot_titles=titles,
                                  shared_yaxes=True, horizontal_spacing=0.04)
    for col, factor in enumerate(factors, start=1):
        part = summary[summary["factor"] == factor]
        labels = [f"{v:g}" if isinstance(v, (int, float)) else str(v) for v in part["value"]]
        fig.add_trace(go.Scatter(
            x=labels, y=part["mean"], mode="markers",
            error_y=dict(type="data", symmetric=False, array=part["max"] - part["mean"],
                         arrayminus=part["mean"] - part["min"], thickness=1.5, width=6),
            marker=dict(size=11, color=PALETTE[0], line=dict(width=2, color=PALETTE[0]),
                        symbol=["circle" if d else "circle-open" for d in part["is_default"]]),
            customdata=np.stack([part["n"], part["min"], part["max"]], axis=1),
            hovertemplate=f"{titles[col - 1]} = %{{x}}<br>mean %{{y:.4f}} over %{{customdata[0]}}"
                          f" seeds<br>range %{{customdata[1]:.4f}} to %{{customdata[2]:.4f}}"
                          f"<extra></extra>", showlegend=False), row=1, col=col)
        fig.update_xaxes(type="category", title_text="value (filled: default)", row=1,
                         col=col)
        if reference is not None:
            fig.add_hline(y=reference, line=dict(dash="dot", color="grey"), row=1, col=col)
    fig.update_yaxes(title_text=f"{readable(metric)}, mean and range over seeds", row=1,
                     col=1)
    fig.update_layout(height=400, margin=dict(l=70, r=20, t=80, b=60), template="plotly_white")
    return fig


#: Words for a study's factors (panel titles).
_FACTOR_WORDS = {"n_groups": "K, groups per entity type", "alpha": "alpha (topology vs "
                 "assignment)", "distill_weight": "lambda, distillation weight",
                 "balance_weight": "load-balancing weight", "dim": "student dimension d"}


def _band_name(band: str) -> str:
    """"1001-25180" -> "1001+": the last band's upper end is just the set's size."""
    lo, _, hi = str(band).partition("-")
    return f"{lo}+" if hi and int(hi) > 1000 and int(lo) > 1 else str(band)


#: Words for the column keys that figures put on axes (see :func:`readable`).
_WORDS = {"epoch": "epoch", "dim": "student dimension d", "phi": "capacity phi = d_s / d_t",
          "recall": "Recall", "ndcg": "NDCG", "valid": "validation", "test": "test",
          "full_error_relative": "full-topology error / its energy",
          "hierarchical_error_relative": "hierarchical-target error / its energy",
          "full_error": "full-topology error per entry",
          "hierarchical_error": "hierarchical-target error per entry",
          "bpr_loss": "BPR loss per batch", "distill_loss": "distillation loss per batch"}


def readable(key: str) -> str:
    """A column key in words: "final_test_recall@50" -> "test Recall@50 (last epoch)",
    "valid_ndcg@20" -> "validation NDCG@20", "dim" -> "student dimension d"."""
    key = str(key)
    if key in _WORDS:
        return _WORDS[key]
    when = ""
    for prefix, words in (("final_", " (last epoch)"), ("best_valid_", " (best-validation "
                                                                      "epoch)")):
        if key.startswith(prefix):
            key, when = key[len(prefix):], words
    split, _, metric = key.partition("_")
    name, at, k = metric.partition("@")
    if split in ("test", "valid") and name in ("recall", "ndcg"):
        return f"{_WORDS[split]} {_WORDS[name]}{at}{k}{when}"
    return key.replace("_", " ") + when


# --------------------------------------------------------------------------------------
# Validation and small helpers
# --------------------------------------------------------------------------------------

def _as_xy(xy, name: str) -> np.ndarray:
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n_entities, 2), got {xy.shape}")
    return xy


def _as_ids(ids, n: int) -> np.ndarray:
    if ids is None:
        return np.arange(n)
    ids = np.asarray(ids)
    if ids.shape != (n,):
        raise ValueError(f"ids must have shape ({n},), got {ids.shape}")
    return ids


def _as_vector(values, n: int, name: str):
    if values is None:
        return None
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    values = np.asarray(values)
    if values.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one value per entity), got "
                         f"{values.shape}")
    return values


def _as_labels(groups, n, name: str) -> np.ndarray:
    groups = np.asarray(groups.detach().cpu().numpy() if hasattr(groups, "detach") else groups)
    if groups.ndim != 1 or (n is not None and groups.shape[0] != n) or \
            not np.issubdtype(groups.dtype, np.integer) or (groups.size and groups.min() < 0):
        raise ValueError(f"{name} must be int group ids >= 0 of shape "
                         f"({n if n is not None else 'n_entities'},), got shape "
                         f"{groups.shape} and dtype {groups.dtype}")
    return groups.astype(np.int64)


def _same_rows(t: np.ndarray, s: np.ndarray) -> None:
    if t.shape[0] != s.shape[0]:
        raise ValueError(f"teacher and student must describe the same entities: got "
                         f"{t.shape[0]} and {s.shape[0]} rows")


def _is_categorical(color: np.ndarray, categorical: bool | None) -> bool:
    if categorical is not None:
        return bool(categorical)
    return color.dtype.kind in "iubOUS"


def _stepwise(n_colours: int) -> list:
    """A colour scale on which code k (of cmin=-0.5, cmax=n_colours-0.5) gets PALETTE[k]."""
    scale = []
    for k in range(max(n_colours, 1)):
        scale += [[k / max(n_colours, 1), PALETTE[k]], [(k + 1) / max(n_colours, 1), PALETTE[k]]]
    return scale


def _highlight_points(highlight, ids: np.ndarray):
    if highlight is None:
        return None
    highlight = np.asarray(highlight)
    if highlight.dtype == bool:
        if highlight.shape != ids.shape:
            raise ValueError(f"a boolean highlight must have shape {ids.shape}, got "
                             f"{highlight.shape}")
        return np.flatnonzero(highlight).tolist()
    return np.flatnonzero(np.isin(ids, highlight)).tolist()


def _group_tag_text(group_tags, n_tags: int = 3) -> dict:
    """group -> "tag, tag, tag" from a top_tags table or a mapping."""
    if group_tags is None:
        return {}
    if isinstance(group_tags, pd.DataFrame):
        if not {"group", "tag"} <= set(group_tags.columns):
            raise ValueError(f"group_tags must have columns 'group' and 'tag' (the table of "
                             f"htdviz.groups.top_tags), got {list(group_tags.columns)}")
        frame = group_tags.sort_values(["group", "rank"]) if "rank" in group_tags.columns \
            else group_tags
        return {int(g): ", ".join(map(str, rows["tag"].head(n_tags)))
                for g, rows in frame.groupby("group", sort=False)}
    if isinstance(group_tags, Mapping):
        return {int(g): tags if isinstance(tags, str) else ", ".join(map(str,
                                                                         list(tags)[:n_tags]))
                for g, tags in group_tags.items()}
    raise ValueError(f"group_tags must be a DataFrame (htdviz.groups.top_tags) or a mapping "
                     f"group -> tags, got {type(group_tags).__name__}")


def _as_curves(histories, metric: str, x: str) -> dict:
    if isinstance(histories, pd.DataFrame):
        if "method" not in histories.columns:
            raise ValueError("a single histories DataFrame must have a 'method' column "
                             "(or pass a mapping name -> DataFrame)")
        histories = {m: rows for m, rows in histories.groupby("method", sort=False)}
    if not isinstance(histories, Mapping) or not histories:
        raise ValueError("histories must be a non-empty mapping name -> history DataFrame "
                         "or a tidy DataFrame with a 'method' column")
    curves = {}
    for name, frame in histories.items():
        frame = getattr(frame, "history", frame)
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"histories[{name!r}] must be a DataFrame, got "
                             f"{type(frame).__name__}")
        missing = {x, metric} - set(frame.columns)
        if missing:
            raise ValueError(f"histories[{name!r}] lacks the columns {sorted(missing)}; it "
                             f"has {list(frame.columns)}")
        curves[name] = frame
    return curves


def _singular(entity: str) -> str:
    return entity[:-1] if entity.endswith("s") else entity
