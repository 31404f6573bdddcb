"""Optional dependencies of the views: imported when first needed, or one clear message
saying what to install."""
from __future__ import annotations

import importlib

#: import name -> the distribution that provides it
_DISTRIBUTIONS = {"plotly": "plotly", "umap": "umap-learn", "ipywidgets": "ipywidgets",
                  "anywidget": "anywidget"}


def require(module: str, purpose: str):
    """Import an optional dependency, or say what to install (umap-learn's plot.py way)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise ImportError(f"{purpose} need the optional package "
                          f"{_DISTRIBUTIONS.get(top, top)!r}, which is not installed. Install "
                          f"the views' dependencies with: pip install \"htdviz[viz]\"") from exc
