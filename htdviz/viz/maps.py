"""Maps of teacher and student, side by side (docs/method.md §3: the topology is the cosine
geometry of the representations).

:func:`projection_figure` projects a teacher and a student (UMAP or PCA, the student's map
aligned to the teacher's) and draws them side by side with :func:`map_figure`. Entity ids
travel in ``customdata``, so hover and selection name the entities; above
:data:`MAX_MAP_POINTS` entities a stratified sample is drawn, and each map can be coloured
by the share of its neighbours it keeps (:data:`TRUST_SCALE`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .._validation import check_int
from .projection import as_points, neighbours_kept, procrustes_align, project_pair, trust_sentence
from ._shared import (MAX_LEGEND_ENTRIES, PALETTE, as_ids, as_vector, as_xy, go, highlight_points,
                      is_categorical, singular, stepwise, subplots, tags_by_group)


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
    title, note = _map_title(method, align, entity, n_drawn, n_total,
                             sampled and map_kwargs.get("groups") is not None, kept_t, kept_s,
                             neighbours, disparity, None if rows is None else len(rows),
                             map_kwargs.get("titles", ("teacher", "student")))
    fig.update_layout(title=title, margin=dict(t=135))
    fig.add_annotation(**note)
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
               neighbours, disparity, n_rows=None, titles=("teacher", "student")) -> dict:
    """projection_figure's title (what is mapped, the two maps named by their panels'
    ``titles``) and the note under it on how far to trust the maps (an annotation's
    keywords)."""
    what = f"{entity}, {titles[0]} and {titles[1]}" if n_drawn == n_total else (
        f"{n_drawn:,} of {n_total:,} {entity}, a sample "
        f"{'stratified by group' if stratified else 'drawn uniformly'}")
    aligned = {"procrustes": "rotated and scaled onto the teacher's",
               "aligned_umap": "laid out jointly with the teacher's (AlignedUMAP)",
               "none": "not aligned"}[align]
    # one short line each (a line wider than the figure is cut off, not wrapped), as a note
    # anchored by its foot above the panels: plotly places a title of several lines badly
    lines = [f"maps keep {kept_t.mean():.0%} (teacher) and {kept_s.mean():.0%} (student) of "
             f"each {singular(entity)}'s {neighbours} nearest neighbours"
             f"{'' if n_rows is None else f' (mean of {n_rows:,} sampled)'}",
             f"student's map {aligned}; shapes differ by {disparity:.2f}",
             "(Procrustes disparity: 0 the same shape, 1 nothing in common)"]
    return (dict(text=f"{method.upper()} of {what}", x=0.01, xanchor="left", y=0.98,
                 yanchor="top"),
            dict(text="<br>".join(lines), xref="paper", yref="paper", x=0, y=1, yshift=30,
                 xanchor="left", yanchor="bottom", align="left", showarrow=False,
                 font=dict(size=11, color="#555"), name="trust"))


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

    Long because it takes eighteen arguments, most of them per-entity colourings and
    labels: the body checks each, then draws the two panels from them.

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
    t_xy = as_xy(teacher_xy, "teacher_xy")
    s_xy = as_xy(student_xy, "student_xy")
    n = t_xy.shape[0]
    if s_xy.shape[0] != n:
        raise ValueError(f"teacher_xy and student_xy must hold the same entities: got {n} and "
                         f"{s_xy.shape[0]} rows")
    ids = as_ids(ids, n)
    groups = as_vector(groups, n, "groups")
    color = groups if color is None else as_vector(color, n, "color")
    color_name = color_name or "group"
    if student_color is not None:
        student_color = as_vector(student_color, n, "student_color")
        if color is None or is_categorical(color, categorical) or \
                is_categorical(student_color, categorical):
            raise ValueError("student_color needs colours by value in both color and "
                             "student_color (categorical=False)")
    tags_of_group = tags_by_group(group_tags)
    group_text = np.full(n, "", dtype=object) if groups is None else \
        groups.astype(str).astype(object)
    group_tag_text = np.array([tags_of_group.get(g, "") for g in groups], dtype=object) \
        if groups is not None else np.full(n, "", dtype=object)
    entity_text = np.full(n, "", dtype=object) if entity_tags is None else \
        np.asarray(as_vector(entity_tags, n, "entity_tags"), dtype=object)
    def hover_data(values):
        text = np.full(n, "", dtype=object) if values is None else np.array(
            [f"{c:.4g}" if isinstance(c, (float, np.floating)) else str(c) for c in values],
            dtype=object)
        return np.stack([ids.astype(object), group_text, group_tag_text, entity_text, text],
                        axis=1)

    customdata = hover_data(color)
    student_data = customdata if student_color is None else hover_data(student_color)

    hover = f"<b>{singular(entity)} %{{customdata[0]}}</b>"
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
    elif is_categorical(color, categorical):
        codes, names = pd.factorize(pd.Series(color), sort=True)
        # numeric codes on a stepwise colour scale: plotly validates numbers in bulk but
        # colour strings one by one (seconds for 25,000 points)
        n_colours = min(len(names), len(PALETTE))
        marker.update(color=codes % len(PALETTE), colorscale=stepwise(n_colours),
                      cmin=-0.5, cmax=n_colours - 0.5, showscale=False)
        if legend and len(names) <= MAX_LEGEND_ENTRIES:
            legend_traces = [scatter(x=[None], y=[None], mode="markers", name=str(name),
                                     marker=dict(color=PALETTE[k % len(PALETTE)], size=8),
                                     legendgroup=str(name), showlegend=True, hoverinfo="skip")
                             for k, name in enumerate(names)]
    else:
        values = np.asarray(color, dtype=np.float64)
        marker.update(color=values, coloraxis="coloraxis")

    fig = subplots.make_subplots(rows=1, cols=2, subplot_titles=list(titles),
                                  horizontal_spacing=0.03)
    selected = highlight_points(highlight, ids)
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
