"""What the figures share: plotly, the colours of categories and methods, the checks of
per-entity arguments, readable words for column names, and a figure as HTML for pages
without a kernel. The figures themselves are in :mod:`htdviz.viz.maps`,
:mod:`htdviz.viz.heatmaps` and :mod:`htdviz.viz.curves` (all named in
:mod:`htdviz.viz.figures`)."""
from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ._optional import require


go = require("plotly.graph_objects", "htdviz figures")
subplots = require("plotly.subplots", "htdviz figures")
colors = require("plotly.colors", "htdviz figures")

#: Largest number of entities per heatmap axis (2,000 x 2,000 cells per panel).
MAX_HEATMAP_ENTITIES = 2000
#: Categories get distinct colours up to this many (Dark24 + Light24), then colours repeat.
PALETTE = tuple(colors.qualitative.Dark24 + colors.qualitative.Light24)
#: One colour per method in every figure and the report (curves, bars, capacity panels),
#: whatever order the methods come in; other names take PALETTE's colours in order.
METHOD_COLOURS = {"teacher": "#222222", "student": "#7f7f7f", "fitnet": "#bcbd22",
                  "de": "#9467bd", "ftd": "#1f77b4", "htd": "#d62728", "rrd": "#2ca02c",
                  "htd+rrd": "#ff7f0e", "de+rrd": "#8c564b"}


#: Categories listed in a legend at most; more are coloured but not listed.
MAX_LEGEND_ENTRIES = len(PALETTE)


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


#: The names htdviz.distill.display_name gives the built-in methods, written out (this
#: package does not import torch); figures write methods by these names.
METHOD_NAMES = {"student": "student alone", "de": "DE", "ftd": "FTD", "htd": "HTD",
                "fitnet": "FitNet", "rrd": "RRD", "de+rrd": "DE + RRD", "htd+rrd": "HTD + RRD"}


def method_name(name) -> str:
    """A method's name as figures write it: a built-in method's registry name (any case)
    as :data:`METHOD_NAMES` has it, anything else as it is."""
    return METHOD_NAMES.get(str(name).lower(), str(name))


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


#: Words for the column keys that figures put on axes (see :func:`readable`).
WORDS = {"epoch": "epoch", "dim": "student dimension d", "phi": "capacity phi = d_s / d_t",
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
    if key in WORDS:
        return WORDS[key]
    when = ""
    for prefix, words in (("final_", " (last epoch)"), ("best_valid_", " (best-validation "
                                                                      "epoch)")):
        if key.startswith(prefix):
            key, when = key[len(prefix):], words
    split, _, metric = key.partition("_")
    name, at, k = metric.partition("@")
    if split in ("test", "valid") and name in ("recall", "ndcg"):
        return f"{WORDS[split]} {WORDS[name]}{at}{k}{when}"
    return key.replace("_", " ") + when


def as_xy(xy, name: str) -> np.ndarray:
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n_entities, 2), got {xy.shape}")
    return xy


def as_ids(ids, n: int) -> np.ndarray:
    if ids is None:
        return np.arange(n)
    ids = np.asarray(ids)
    if ids.shape != (n,):
        raise ValueError(f"ids must have shape ({n},), got {ids.shape}")
    return ids


def as_vector(values, n: int, name: str):
    if values is None:
        return None
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    values = np.asarray(values)
    if values.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one value per entity), got "
                         f"{values.shape}")
    return values


def same_rows(t: np.ndarray, s: np.ndarray) -> None:
    if t.shape[0] != s.shape[0]:
        raise ValueError(f"teacher and student must describe the same entities: got "
                         f"{t.shape[0]} and {s.shape[0]} rows")


def is_categorical(color: np.ndarray, categorical: bool | None) -> bool:
    if categorical is not None:
        return bool(categorical)
    return color.dtype.kind in "iubOUS"


def stepwise(n_colours: int) -> list:
    """A colour scale on which code k (of cmin=-0.5, cmax=n_colours-0.5) gets PALETTE[k]."""
    scale = []
    for k in range(max(n_colours, 1)):
        scale += [[k / max(n_colours, 1), PALETTE[k]], [(k + 1) / max(n_colours, 1), PALETTE[k]]]
    return scale


def highlight_points(highlight, ids: np.ndarray):
    if highlight is None:
        return None
    highlight = np.asarray(highlight)
    if highlight.dtype == bool:
        if highlight.shape != ids.shape:
            raise ValueError(f"a boolean highlight must have shape {ids.shape}, got "
                             f"{highlight.shape}")
        return np.flatnonzero(highlight).tolist()
    return np.flatnonzero(np.isin(ids, highlight)).tolist()


def tags_by_group(group_tags, n_tags: int = 3) -> dict:
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


def as_curves(histories, metric: str, x: str) -> dict:
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


def singular(entity: str) -> str:
    return entity[:-1] if entity.endswith("s") else entity
