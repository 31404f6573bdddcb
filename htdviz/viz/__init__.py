"""Interactive views of topology distillation: maps, similarity heatmaps, curves, an explorer.

Views take analysis results (:mod:`htdviz.topology`, :mod:`htdviz.groups`,
:mod:`htdviz.capacity`) and plain arrays, never models or training code, and return plotly
figures without displaying them.

- :mod:`htdviz.viz.projection`: UMAP / PCA maps of teacher and student, aligned, cached.
- :mod:`htdviz.viz.figures`: every figure by name, drawn by :mod:`htdviz.viz.maps`,
  :mod:`htdviz.viz.heatmaps` and :mod:`htdviz.viz.curves` (learning and capacity curves,
  group sizes, topology-preservation bars).
- :mod:`htdviz.viz.explorer`: a JupyterLab explorer (ipywidgets + plotly FigureWidget).

Importing this package imports neither plotly, umap-learn nor ipywidgets; each is
imported when a view that needs it is first used (install them with
``pip install "htdviz[viz]"``). The names below are loaded from their module on first use.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "projection": ("project", "project_pair", "procrustes_align", "pca", "default_cache_dir"),
    "figures": ("projection_figure", "map_figure", "similarity_heatmaps", "group_heatmaps",
                "prototype_heatmaps", "learning_curves", "capacity_curves",
                "group_sizes_figure", "preservation_bars", "group_usage_figure",
                "band_error_figure", "sensitivity_figure", "readable",
                "MAX_HEATMAP_ENTITIES"),
    "explorer": ("Explorer", "explore"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)

def __getattr__(name: str):
    if name in _WHERE:
        module = importlib.import_module(f".{_WHERE[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
