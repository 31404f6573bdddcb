"""Similarity heatmaps: teacher, student and their difference.

:func:`similarity_heatmaps` (a sample of entities ordered by group, boundaries drawn),
:func:`group_heatmaps` (one group's within-group block, HTD's entity-level target),
:func:`prototype_heatmaps` (the group-level topology among prototypes). Entity ids are the
axis categories; at most :data:`~htdviz.viz.figures.MAX_HEATMAP_ENTITIES` entities are
drawn per axis (sampled per group), so no heatmap exceeds 2,000 x 2,000 cells.
"""
from __future__ import annotations

import numpy as np

from .._arrays import unit_rows
from .._validation import check_int, check_labels
from .projection import as_points
from ._shared import MAX_HEATMAP_ENTITIES, as_ids, go, same_rows, singular, subplots


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
    same_rows(t, s)
    n = t.shape[0]
    ids = as_ids(ids, n)
    labels = None if groups is None else check_labels(groups, n, "groups")[0]
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
    same_rows(t, s)
    n = t.shape[0]
    ids = as_ids(ids, n)
    labels = check_labels(groups, n, "groups")[0]
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


#: Up to this many groups, the prototype heatmaps label their rows and columns.
LABELLED_GROUPS = 12


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
    same_rows(t, s)
    labels = check_labels(groups, t.shape[0], "groups")[0]
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
    if len(present) <= LABELLED_GROUPS:           # few enough to say which block is which
        fig.update_xaxes(showticklabels=True, tickangle=0)
        fig.update_yaxes(showticklabels=True, row=1, col=1)
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
    label = singular(entity)
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
    fig = subplots.make_subplots(rows=1, cols=3, subplot_titles=list(titles),
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
    unit = unit_rows(t[chosen])
    p = protos[labels[chosen]]
    p = unit_rows(p)
    typicality = (unit * p).sum(1)
    return np.lexsort((chosen, -typicality, labels[chosen]))
