"""Curves and bars: learning curves, capacity curves, group sizes and usage, topology
preservation, error bands and the sensitivity study, each from the tables of the analysis
layer (:mod:`htdviz.topology`, :mod:`htdviz.preservation`, :mod:`htdviz.groups`,
:mod:`htdviz.capacity`) or a run's history.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..reference import figure_recall
from .._validation import check_labels
from ._shared import (PALETTE, as_curves, go, method_colour, method_name, readable, subplots,
                      tags_by_group)


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
    curves = as_curves(histories, metric, x)
    fig = go.Figure()
    colours = {}
    for k, (name, frame) in enumerate(curves.items()):
        colours[name] = method_colour(name, k)
        frame = frame.sort_values(x)
        # the authors' loop labels epoch e after e + 1 epochs (docs/method.md §6.3)
        authors = "schedule" in frame.columns and (frame["schedule"] == "reference").any()
        label = f"{method_name(name)} (authors' schedule)" if authors else method_name(name)
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
    errors = {"full_error_relative": "Full topology (FTD)"}
    if "hierarchical_error_relative" in table.columns and \
            table["hierarchical_error_relative"].notna().any():
        errors["hierarchical_error_relative"] = "Hierarchy (HTD)"
    panels = list(errors.values()) + ([readable(recall)] if recall else [])
    fig = subplots.make_subplots(rows=1, cols=len(panels), subplot_titles=panels,
                                  horizontal_spacing=0.08)
    achieved = table[table["kind"] != "bound"]
    bound = table[table["kind"] == "bound"].sort_values(x)
    methods = list(dict.fromkeys(achieved["method"]))
    colour = {m: method_colour(m, k) for k, m in enumerate(methods)}
    name = {m: method_name(m) for m in methods}
    # a symbol each, smaller for each later method, so that methods at one point all show
    symbol = {m: SYMBOLS[k % len(SYMBOLS)] for k, m in enumerate(methods)}
    size = {m: max(14 - 3 * k, 6) for k, m in enumerate(methods)}
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
                x=rows[x], y=rows[column], mode="lines+markers", name=name[method],
                legendgroup=str(method), showlegend=col == 1,
                marker=dict(size=size[method], color=colour[method], symbol=symbol[method]),
                line=dict(color=colour[method]),
                hovertemplate=f"{name[method]}<br>{x_words} %{{x}}<br>%{{y:.3g}} of the "
                              f"target's energy<extra></extra>"), row=1, col=col)
        fig.update_yaxes(type="log", dtick=1, exponentformat="power",  # one tick per decade
                         range=_decades(table[column], achieved[column]), row=1, col=col,
                         title_text="error / target energy (log)" if col == 1 else None)
    if recall:
        col = len(panels)
        for method in methods:
            rows = achieved[achieved["method"] == method].sort_values(x)
            fig.add_trace(go.Scatter(
                x=rows[x], y=rows[recall], mode="lines+markers", name=name[method],
                legendgroup=str(method), showlegend=False,
                marker=dict(size=size[method], color=colour[method], symbol=symbol[method]),
                line=dict(color=colour[method]),
                hovertemplate=f"{name[method]}<br>{x_words} %{{x}}<br>{readable(recall)} "
                              f"%{{y:.4f}}<extra></extra>"), row=1, col=col)
        # on the right: between two panels its ticks and title would run into the middle one
        fig.update_yaxes(title_text=readable(recall), side="right", row=1, col=col)
    fig.update_xaxes(type="log", dtick=1, title_text=x_words)        # decades only
    fig.update_layout(template="plotly_white", height=430, margin=dict(t=110, r=70),
                      title="Capacity: what a student of each size can keep, and keeps",
                      legend=dict(orientation="h", y=-0.22, x=0))
    dims = achieved[x].dropna().unique()
    if len(dims) == 1:
        fig.add_annotation(text=f"Runs at one size only ({x_words} = {dims[0]:g}): markers "
                                f"are single points; the dashed lines are the bounds at "
                                f"every size.", xref="paper", yref="paper", x=0, y=1.2,
                           showarrow=False, xanchor="left", font=dict(size=12, color="#555"))
    return fig


def spectrum_figure(spectra: pd.DataFrame, dims=(), color: str | None = None,
                    dash: str | None = None, title: str | None = None) -> "go.Figure":
    """Cumulative explained variance by component on a log axis, with the student sizes
    ``dims`` marked: what share of a representation's variance a d-dimensional student
    could hold at most.

    Parameters
    ----------
    spectra : pandas.DataFrame
        :func:`htdviz.capacity.spectrum` tables (``component``, ``cumulative_ratio``),
        stacked, with the columns ``color`` and ``dash`` telling the curves apart.
    dims : sequence of int
        Student sizes, each a dotted vertical line labelled "d_s = d".
    color, dash : str, optional
        Columns of ``spectra`` whose values get a colour / a line style each.
    title : str, optional

    Returns
    -------
    plotly.graph_objects.Figure
        One line per (color, dash) pair; axis ticks written out (1, 2, 5, 10, ...).
    """
    missing = {"component", "cumulative_ratio", *filter(None, (color, dash))} - \
        set(spectra.columns)
    if missing:
        raise ValueError(f"spectra lacks the columns {sorted(missing)}; it has "
                         f"{list(spectra.columns)}")
    keys = [c for c in (color, dash) if c]
    curves = spectra.groupby(keys, sort=False) if keys else [((), spectra)]
    colours = {v: PALETTE[i % len(PALETTE)] for i, v in
               enumerate(dict.fromkeys(spectra[color]))} if color else {}
    styles = {v: style for v, style in zip(dict.fromkeys(spectra[dash]),
                                           ("solid", "dot", "dash", "dashdot"))} if dash else {}
    fig = go.Figure()
    for key, rows in curves:
        key = key if isinstance(key, tuple) else (key,)
        values = dict(zip(keys, key))
        name = ", ".join(str(v) for v in key) or "spectrum"
        fig.add_trace(go.Scatter(
            x=rows["component"], y=rows["cumulative_ratio"], mode="lines", name=name,
            line=dict(color=colours.get(values.get(color)),
                      dash=styles.get(values.get(dash), "solid")),
            hovertemplate=f"{name}<br>%{{x}} components: %{{y:.1%}} of the variance"
                          f"<extra></extra>"))
    largest = int(spectra["component"].max())
    ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if t <= largest]
    for d in dims:
        # a line's x is in data units; on a log axis its label's x is in log10 units
        fig.add_vline(x=d, line_dash="dot", line_color="grey", annotation_text=f"d_s = {d}",
                      annotation_x=float(np.log10(d)), annotation_position="bottom right")
    fig.update_xaxes(type="log", tickvals=ticks, title_text="component (log)")
    fig.update_yaxes(title_text="cumulative share of variance", tickformat=".0%",
                     range=[0, 1.02])
    fig.update_layout(template="plotly_white", title=title,
                      legend_title_text=" / ".join(keys) or None)
    return fig


#: Marker symbols, one per method where points of several methods may coincide.
SYMBOLS = ("circle", "diamond", "square", "triangle-up", "cross", "x")

#: Errors below this share of a target's energy are nothing a reader needs told apart: the
#: error panels stop there (a bound that falls further leaves the panel at its foot).
SMALLEST_SHARE = 1e-6


def _decades(values: pd.Series, achieved: pd.Series) -> list[float]:
    """A log axis's range (log10 units) over the positive ``values``, from a whole decade
    down to :data:`SMALLEST_SHARE` at most but always below every ``achieved`` value, to the
    decade above them (or a little more where the highest sits at its top)."""
    positive = values[values > 0]
    if positive.empty:
        return [-1.0, 0.0]
    low = max(float(positive.min()), SMALLEST_SHARE)
    if (achieved > 0).any():
        low = min(low, float(achieved[achieved > 0].min()))
    high = np.log10(float(positive.max()))
    # whole decades, with room above the highest marker for its own size
    return [float(np.floor(np.log10(low))), float(max(np.ceil(high), high + 0.15))]


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

        sizes = groups_module.group_sizes(check_labels(groups, None, "groups")[0])
    sizes = sizes[sizes > 0]
    order = sorted(sizes.index, key=lambda g: (-sizes[g], g))
    tags = tags_by_group(top_tags, n_tags)
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
        :func:`htdviz.preservation.preservation_kl`).
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
        fig.add_trace(go.Bar(x=[method_name(m) for m in methods], y=rows[value],
                             name=str(mode).replace("_", " "),
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
    fig = subplots.make_subplots(rows=1, cols=2, subplot_titles=("User groups", "Item groups"),
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
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="groups", rangemode="tozero", row=1, col=1)
    if n_groups is not None:
        # the label above the line, in room kept for it: curves often run along K itself
        fig.update_yaxes(range=[0, n_groups * 1.15])
        for col in (1, 2):
            fig.add_hline(y=n_groups, line=dict(color="grey", dash="dot"), row=1, col=col,
                          annotation_text=f"K = {n_groups} on offer",
                          annotation_position="top right")
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
        :func:`htdviz.preservation.band_error_table` output with a ``method`` column added
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
                         f"htdviz.preservation.band_error_table and add a 'method' column")
    pair_types = list(dict.fromkeys(table["pairs"]))
    methods = list(dict.fromkeys(table["method"]))
    # one x title under all panels: three copies of it run into each other
    # one y scale for all panels: bars of one height mean one error
    fig = subplots.make_subplots(rows=1, cols=len(pair_types), subplot_titles=[
        f"{p} pairs" for p in pair_types], horizontal_spacing=0.06, shared_yaxes=True,
        x_title="rank among the teacher's neighbours (nearest first)")
    words = {"mean_sq_error": "mean squared cosine error per pair",
             "error_share": "share of the student's error"}.get(value, readable(value))
    for col, pairs in enumerate(pair_types, start=1):
        rows = table[table["pairs"] == pairs]
        for k, method in enumerate(methods):
            part = rows[rows["method"] == method]
            fig.add_trace(go.Bar(
                x=[_band_name(b) for b in part["band"]], y=part[value],
                name=method_name(method),
                legendgroup=str(method), showlegend=col == 1,
                marker_color=method_colour(method, k),
                hovertemplate=f"{method}<br>{pairs}, teacher-neighbour ranks %{{x}}<br>"
                              f"{words} %{{y:.4f}}<extra></extra>"), row=1, col=col)
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
    fig = subplots.make_subplots(rows=1, cols=len(factors), subplot_titles=titles,
                                  shared_yaxes=True, horizontal_spacing=0.04)
    for col, factor in enumerate(factors, start=1):
        part = summary[summary["factor"] == factor]
        labels = [f"{v:g}" if isinstance(v, (int, float)) else str(v) for v in part["value"]]
        fig.add_trace(go.Scatter(
            x=labels, y=part["mean"], mode="markers",
            # no bar for one seed: a bar of length 0 drew its caps across the open marker
            error_y=dict(type="data", symmetric=False,
                         array=(part["max"] - part["mean"]).where(part["n"] > 1),
                         arrayminus=(part["mean"] - part["min"]).where(part["n"] > 1),
                         thickness=1.5, width=6),
            marker=dict(size=11, color=PALETTE[0], line=dict(width=2, color=PALETTE[0]),
                        symbol=["circle" if d else "circle-open" for d in part["is_default"]]),
            customdata=np.stack([part["n"], part["min"], part["max"]], axis=1),
            hovertemplate=f"{titles[col - 1]} = %{{x}}<br>mean %{{y:.4f}} over %{{customdata[0]}}"
                          f" seeds<br>range %{{customdata[1]:.4f}} to %{{customdata[2]:.4f}}"
                          f"<extra></extra>", showlegend=False), row=1, col=col)
        fig.update_xaxes(type="category", title_text="value (filled: the default)", row=1,
                         col=col)
        if reference is not None:
            fig.add_hline(y=reference, line=dict(dash="dot", color="grey"), row=1, col=col)
    # the metric alone: longer, it ran past the panels' height (the hover says mean and range)
    fig.update_yaxes(title_text=readable(metric), row=1, col=1)
    fig.update_layout(height=400, margin=dict(l=70, r=20, t=80, b=60), template="plotly_white")
    return fig


#: The settings of the paper's figures: (data set, base model) -> panel title, on two lines
#: so that four panels fit side by side in a notebook's width.
PAPER_SETTINGS = {("citeulike", "bpr"): "CiteULike<br>BPR-MF",
                  ("citeulike", "lightgcn"): "CiteULike<br>LightGCN",
                  ("citeulike", "neumf"): "CiteULike<br>NeuMF",
                  ("foursquare", "bpr"): "Foursquare<br>BPR-MF"}
_PAPER_METHODS = ("student", "de", "ftd", "htd", "rrd", "de+rrd", "htd+rrd")


def paper_figure(table: pd.DataFrame | None = None) -> "go.Figure":
    """The paper's whole evaluation, its figure's values beside a reproduction: one panel per
    data set and base model, test Recall@50 against the capacity phi, one colour per method.

    Parameters
    ----------
    table : pandas.DataFrame, optional
        :func:`htdviz.study.paper_table`'s table (``dataset``, ``model``, ``phi``,
        ``method``, ``mean``, ``low``, ``high``, ``seeds``): drawn filled, with the range
        over seeds. Default: none, only the paper's values.

    Returns
    -------
    plotly.graph_objects.Figure
        The paper's values open (:func:`htdviz.reference.figure_recall`; its own split and
        early stopping), the reproduction's filled; the methods side by side at each phi.
    """
    needed = {"dataset", "model", "phi", "method", "mean", "low", "high", "seeds"}
    ours = _paper_table(table, needed) if table is not None else \
        pd.DataFrame(columns=sorted(needed))
    phis = (0.1, 0.5, 1.0)
    fig = subplots.make_subplots(rows=1, cols=len(PAPER_SETTINGS), shared_yaxes=True,
                                  subplot_titles=list(PAPER_SETTINGS.values()),
                                  horizontal_spacing=0.03)
    shown = set()
    for col, (dataset, model) in enumerate(PAPER_SETTINGS, start=1):
        for k, method in enumerate(_PAPER_METHODS):
            name = method_name(method)
            x = (k - (len(_PAPER_METHODS) - 1) / 2) * 0.09     # side by side at each phi
            paper = [(i + x, figure_recall(dataset, model, method, phi))
                     for i, phi in enumerate(phis)]
            paper = [(xi, v) for xi, v in paper if v is not None]
            colour = method_colour(method, k)
            if paper:
                fig.add_trace(go.Scatter(
                    x=[p[0] for p in paper], y=[p[1] for p in paper], mode="markers",
                    name=f"{name}, paper", legendgroup=method,
                    showlegend=(method, "paper") not in shown,
                    marker=dict(symbol="circle-open", size=9, color=colour,
                                line=dict(width=2)),
                    hovertemplate=f"{name}, the paper's figure<br>%{{y:.4f}}<extra></extra>"),
                    row=1, col=col)
                shown.add((method, "paper"))
            mine = ours[(ours["dataset"] == dataset) & (ours["model"] == model)
                        & (ours["method"] == method)]
            if len(mine):
                xs = [phis.index(phi) + x for phi in mine["phi"]]
                fig.add_trace(go.Scatter(
                    x=xs, y=mine["mean"], mode="markers", name=name, legendgroup=method,
                    showlegend=(method, "ours") not in shown,
                    marker=dict(size=9, color=colour),
                    error_y=dict(type="data", symmetric=False,
                                 array=mine["high"] - mine["mean"],
                                 arrayminus=mine["mean"] - mine["low"], thickness=1.5,
                                 width=4),
                    customdata=np.stack([mine["seeds"], mine["low"], mine["high"]], axis=1),
                    hovertemplate=f"{name}<br>%{{y:.4f}}, mean of %{{customdata[0]}} seed(s)"
                                  f"<br>range %{{customdata[1]:.4f}} to %{{customdata[2]:.4f}}"
                                  f"<extra></extra>"), row=1, col=col)
                shown.add((method, "ours"))
        fig.update_xaxes(tickvals=list(range(len(phis))), ticktext=[f"{p:g}" for p in phis],
                         range=[-0.5, len(phis) - 0.5], title_text="phi = d_s / d_t",
                         row=1, col=col)
    fig.update_yaxes(title_text="test Recall@50", row=1, col=1)
    fig.update_layout(height=460, template="plotly_white",
                      title="The paper's figure (open) and this reproduction (filled: mean "
                            "and range over seeds)",
                      legend=dict(orientation="h", y=-0.22), margin=dict(t=110, b=120))
    return fig


def _paper_table(table, needed: set) -> pd.DataFrame:
    """``table`` if it is :func:`htdviz.study.paper_table`'s, with the columns ``needed``."""
    if not isinstance(table, pd.DataFrame) or not needed <= set(table.columns):
        raise ValueError(f"table must be a DataFrame with columns {sorted(needed)} "
                         f"(htdviz.study.paper_table)")
    return table


#: A symbol per setting of the paper's evaluation in :func:`paper_scatter`.
PAPER_SYMBOLS = dict(zip(PAPER_SETTINGS, ("circle", "square", "diamond", "triangle-up")))


def paper_scatter(table: pd.DataFrame) -> "go.Figure":
    """Every finished cell of the paper's evaluation as one point: the paper's figure value
    (x) against the reproduction's (y: mean, with the range over seeds), the diagonal
    y = x dashed. Colour: the method; symbol: the data set and base model.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`htdviz.study.paper_table`'s table (``dataset``, ``model``, ``phi``,
        ``method``, ``mean``, ``low``, ``high``, ``seeds``, ``paper``); cells the paper has
        no value for are left out.

    Returns
    -------
    plotly.graph_objects.Figure
        Below the diagonal, a cell is lower than the paper's (which comes from its own split
        with early stopping, so a little higher is expected).
    """
    needed = {"dataset", "model", "phi", "method", "mean", "low", "high", "seeds", "paper"}
    cells = _paper_table(table, needed).dropna(subset=["paper", "mean"])
    values = np.r_[cells["paper"], cells["mean"], cells["low"], cells["high"]]
    values = values[np.isfinite(values)] if len(cells) else np.array([0.2, 0.3])
    ends = [np.floor(values.min() * 50) / 50, np.ceil(values.max() * 50) / 50]  # steps of .02
    if ends[0] == ends[1]:                                  # every value on one step
        ends[1] += 0.02
    fig = go.Figure(go.Scatter(x=ends, y=ends, mode="lines", name="ours = the paper's",
                               line=dict(color="grey", dash="dash", width=1),
                               hoverinfo="skip"))
    if not len(cells):
        fig.add_annotation(text="no finished cell yet", x=0.5, y=0.5, xref="paper",
                           yref="paper", showarrow=False, font=dict(size=14, color="grey"))
    settings = {key: title.replace("<br>", ", ") for key, title in PAPER_SETTINGS.items()}
    for k, method in enumerate(_PAPER_METHODS):
        rows = cells[cells["method"] == method]
        if not len(rows):
            continue
        keys = list(zip(rows["dataset"], rows["model"]))
        fig.add_trace(go.Scatter(
            x=rows["paper"], y=rows["mean"], mode="markers", name=method_name(method),
            legendgroup="method", legendgrouptitle_text="method",
            marker=dict(color=method_colour(method, k), size=11,
                        line=dict(width=1, color="white"),
                        symbol=[PAPER_SYMBOLS.get(key, "circle") for key in keys]),
            error_y=dict(type="data", symmetric=False, array=rows["high"] - rows["mean"],
                         arrayminus=rows["mean"] - rows["low"], thickness=1.5, width=3),
            customdata=np.stack([[settings.get(key, "/".join(key)) for key in keys],
                                 rows["phi"], rows["seeds"]], axis=1),
            hovertemplate=f"{method_name(method)}, %{{customdata[0]}}, phi = "
                          f"%{{customdata[1]}}<br>ours %{{y:.4f}} (%{{customdata[2]}} seed(s)),"
                          f" the paper's %{{x:.4f}}<extra></extra>"))
    drawn = set(zip(cells["dataset"], cells["model"]))
    for key, symbol in PAPER_SYMBOLS.items():           # the symbols' key, in grey
        if key in drawn:
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=settings[key],
                                     legendgroup="setting", legendgrouptitle_text="setting",
                                     marker=dict(color="grey", size=11, symbol=symbol)))
    fig.update_xaxes(title_text="the paper's figure, test Recall@50", range=ends,
                     constrain="domain")
    fig.update_yaxes(title_text="ours, test Recall@50", range=ends, scaleanchor="x",
                     scaleratio=1)
    fig.update_layout(height=520, template="plotly_white",
                      title="Each finished cell against the paper's value (below the dashed "
                            "line: ours lower)", legend=dict(groupclick="toggleitem"))
    return fig


#: Words for a study's factors (panel titles).
_FACTOR_WORDS = {"n_groups": "K, groups per entity type", "alpha": "alpha (topology vs "
                 "assignment)", "distill_weight": "lambda, distillation weight",
                 "balance_weight": "load-balancing weight", "dim": "student dimension d"}


def _band_name(band: str) -> str:
    """"1001-25180" -> "1001+": the last band's upper end is just the set's size."""
    lo, _, hi = str(band).partition("-")
    return f"{lo}+" if hi and int(hi) > 1000 and int(lo) > 1 else str(band)
