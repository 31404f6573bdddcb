"""Sphinx configuration of the tutorial site (built by docs/site/build.py, which stages the
sources: README, docs/*.md and the executed notebooks)."""
project = "htdviz"
author = "the htdviz authors"
extensions = ["myst_nb"]
html_theme = "furo"
html_title = "htdviz: topology distillation, seen and reproduced"
# plotly.js once for the whole site (build.py copies it from the plotly package); every
# figure in the pages is a div and a call of Plotly.newPlot
html_static_path = ["_static"]
html_js_files = ["plotly.min.js"]
html_css_files = ["htdviz.css"]
html_show_sourcelink = False
html_copy_source = False
# the notebooks come executed; nothing runs during the build
nb_execution_mode = "off"
# no widget manager from a CDN: the site works with no network (the explorer's output
# carries its own static picture)
nb_ipywidgets_js = {}
myst_heading_anchors = 3
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
suppress_warnings = ["myst.header"]
