"""Figures of topology distillation, as plotly figures (returned, never displayed): every
figure by its name, from the modules that draw them.

Every function takes plain arrays or the tables of the analysis layer
(:mod:`htdviz.topology`, :mod:`htdviz.preservation`, :mod:`htdviz.groups`,
:mod:`htdviz.capacity`, :mod:`htdviz.study`) and returns a
``plotly.graph_objects.Figure``.

Maps (:mod:`htdviz.viz.maps`)
    :func:`projection_figure` projects a teacher and a student (UMAP or PCA, the student's
    map aligned to the teacher's) and draws them side by side with :func:`map_figure`.
Heatmaps (:mod:`htdviz.viz.heatmaps`)
    :func:`similarity_heatmaps`, :func:`group_heatmaps`, :func:`prototype_heatmaps`.
Curves and bars (:mod:`htdviz.viz.curves`)
    :func:`learning_curves`, :func:`capacity_curves`, :func:`group_sizes_figure`,
    :func:`group_usage_figure`, :func:`preservation_bars`, :func:`band_error_figure`,
    :func:`sensitivity_figure`, :func:`paper_figure` (the paper's figure beside a study),
    :func:`paper_scatter` (each of its cells against the paper's value),
    :func:`spectrum_figure` (cumulative explained variance, student sizes marked).
Shared (:mod:`htdviz.viz._shared`)
    the colours (:data:`PALETTE`, :data:`METHOD_COLOURS`, :func:`method_colour`), the
    methods' names (:func:`method_name`), :func:`readable` column names,
    :func:`figure_html` for pages without a kernel.
"""
from __future__ import annotations

from ._shared import (MAX_HEATMAP_ENTITIES, MAX_LEGEND_ENTRIES, METHOD_COLOURS, METHOD_NAMES,
                      PALETTE, figure_html, method_colour, method_name, readable)
from .curves import (PAPER_SETTINGS, band_error_figure, capacity_curves, group_sizes_figure,
                     group_usage_figure, learning_curves, paper_figure, paper_scatter,
                     preservation_bars, sensitivity_figure, spectrum_figure)
from .heatmaps import group_heatmaps, prototype_heatmaps, similarity_heatmaps
from .maps import (MAX_MAP_POINTS, TRUST_ROWS, TRUST_SCALE, WEBGL_THRESHOLD, map_figure,
                   projection_figure)

__all__ = ["MAX_HEATMAP_ENTITIES", "MAX_LEGEND_ENTRIES", "MAX_MAP_POINTS", "METHOD_COLOURS",
           "METHOD_NAMES", "PALETTE", "PAPER_SETTINGS", "TRUST_ROWS", "TRUST_SCALE",
           "WEBGL_THRESHOLD",
           "band_error_figure", "capacity_curves", "figure_html", "group_heatmaps",
           "group_sizes_figure", "group_usage_figure", "learning_curves", "map_figure",
           "method_colour", "method_name", "paper_figure", "paper_scatter",
           "preservation_bars", "projection_figure", "prototype_heatmaps", "readable",
           "sensitivity_figure", "similarity_heatmaps", "spectrum_figure"]
