"""A JupyterLab explorer of teacher and student topologies (ipywidgets + plotly FigureWidget).

Pick a student (method, dimension, run), users or items, a colouring (HTD group, k-means
group, tag, popularity, or the share of each point's 10 nearest neighbours its map keeps)
and a projection (UMAP or PCA). Selecting points in either map
(box or lasso) or clicking one selects the group most of them belong to: the group is
highlighted in both maps and in the similarity heatmap, and the panel beside the heatmap
lists its top tags and how well the student preserves its topology.

The explorer draws from arrays and analysis results only: representations and groups of
runs (:class:`htdviz.runs.Run`, or plain mappings of arrays), :mod:`htdviz.topology` and
:mod:`htdviz.groups`. Everything it computes is cached per (run, entity, grouping); maps
are also cached on disk (:mod:`htdviz.viz.projection`).

Each map panel is ONE trace holding every entity (selection indices are per trace), with
the entity ids in ``customdata``; every update happens inside ``batch_update()``.

Example
-------
>>> from htdviz.viz import Explorer
>>> Explorer.from_folder("runs", dataset=htdviz.data.load_citeulike())    # doctest: +SKIP
"""
from __future__ import annotations

import html
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from .. import groups as groups_module
from .. import preservation
from ..runs import ENTITIES, as_run, list_runs, load_run
from .._validation import check_int
from ._optional import require
from . import figures, maps
from .projection import (neighbours_kept, procrustes_align, project, project_pair,
                         trust_sentence)

widgets = require("ipywidgets", "The explorer")
go = require("plotly.graph_objects", "The explorer")

HTD_GROUP, KMEANS_GROUP, TAG, POPULARITY = "HTD group", "k-means group", "tag", "popularity"
#: The colouring by how much of each point's neighbourhood its own map keeps.
TRUST = "neighbours kept"
#: k of the neighbourhoods the maps are checked against (projection.neighbours_kept).
TRUST_K = 10
#: Measures of :func:`htdviz.preservation.discrepancy` shown for a selected group's members.
GROUP_MEASURES = ("knn_overlap", "spearman", "cka", "kl_most_similar")
#: Tags that colour the "tag" view (the most frequent ones); other entities are "other".
N_COLOUR_TAGS = 10
#: A group's top tags are tags carried by at least this many of its members (lift alone
#: ranks a tag of 3 items above one of 300); see :func:`htdviz.groups.top_tags`.
MIN_TAG_SUPPORT = 10
#: What the panel beside the heatmap says while no group is selected.
PROMPT = "<i>Select points in a map (box or lasso) or click one to pick a group; " \
         "double-click a map to drop the selection.</i>"


class Explorer:
    """Teacher vs student maps, heatmaps and group details, linked by selection.

    Parameters
    ----------
    runs : mapping
        name -> :class:`htdviz.runs.Run`, or name -> mapping with ``users`` (n_users, d),
        ``items`` (n_items, d) and optionally ``user_groups``, ``item_groups`` (int),
        ``method``, ``config``, ``history``. One of them is the teacher, the others are its
        students (same entities, any dims).
    teacher : str, optional
        Name of the teacher in ``runs``; default the run whose method is "teacher", else
        the first.
    dataset : htdviz.data.Dataset, optional
        Gives the tag and popularity colourings and the groups' top tags
        (``item_tags``, ``tag_names``, ``train``).
    entity : {"users", "items"}, default "items"
    projection : {"umap", "pca"}, default "umap"
    n_groups : int, default 30
        K of the k-means groups.
    max_heatmap : int, default 400
        Entities in the similarity heatmap (sampled per group, at most 2000).
    random_state : int, default 0
        Seeds maps, k-means and samples.
    cache_dir : str, Path, None or False
        Where maps are cached (see :func:`htdviz.viz.projection.project`).
    umap_kwargs : dict, optional
        Further arguments of :func:`~htdviz.viz.projection.project` (``n_epochs``, ...).
    max_points : int or None, default :data:`htdviz.viz.figures.MAX_MAP_POINTS` (30,000)
        Entity types with more entities are mapped from a sample of this many, stratified
        by the teacher's k-means groups and seeded (:meth:`map_ids`); the status line says
        so. Selections, groups and measures still cover every entity. None maps all.

    Attributes
    ----------
    widget : ipywidgets.VBox
        What a notebook displays (the explorer displays itself too).
    map_widget, heatmap_widget : plotly.graph_objects.FigureWidget
    status : ipywidgets.HTML
        What the maps show, or, while the kernel works, what it is doing (the controls
        are locked meanwhile).
    key : ipywidgets.HTML
        The maps' colour key (categorical colourings; values have a colour bar).
    info : ipywidgets.HTML
        The selected group's size, top tags (tags of at least :data:`MIN_TAG_SUPPORT`
        members) and topology measures.
    selected_group : int or None
    """

    def __init__(self, runs: Mapping, teacher: str | None = None, dataset=None,
                 entity: str = "items", projection: str = "umap", n_groups: int = 30,
                 max_heatmap: int = 400, random_state: int = 0, cache_dir=None,
                 umap_kwargs: dict | None = None,
                 max_points: int | None = figures.MAX_MAP_POINTS):
        self.runs = _as_runs(runs)
        self.teacher_name = _pick_teacher(self.runs, teacher)
        self.students = [name for name in self.runs if name != self.teacher_name]
        if not self.students:
            raise ValueError("runs must hold a teacher and at least one student")
        if entity not in ENTITIES:
            raise ValueError(f"entity must be 'users' or 'items', got {entity!r}")
        if projection not in ("umap", "pca"):
            raise ValueError(f"projection must be 'umap' or 'pca', got {projection!r}")
        # heatmaps stay responsive up to MAX_HEATMAP_ENTITIES x MAX_HEATMAP_ENTITIES cells
        self.max_heatmap = check_int(max_heatmap, "max_heatmap",
                                     high=figures.MAX_HEATMAP_ENTITIES)
        self.n_groups, self.random_state, self.cache_dir = n_groups, random_state, cache_dir
        self.umap_kwargs = dict(umap_kwargs or {})
        self.max_points = None if max_points is None else \
            check_int(max_points, "max_points (or None: every entity)", low=10)
        self.dataset = dataset
        self._check_entities()
        self._cache: dict = {}
        self.selected_group: int | None = None
        self._holding = False           # True while the student controls narrow each other
        self._selection_drawn = False   # a box or lasso is drawn in the page's maps
        self._colour_wanted = None      # the colouring the user chose last
        self._holding_colour = False    # True while the colourings offered change
        self._shown_student = None      # the run the views show
        self._summary = ""              # the status line when the kernel is idle
        self._dragmode = "lasso"        # the map tool the user chose last
        self._build_controls(entity, projection)
        self._build_views()
        # rows wrap where the notebook is narrow (a 1280 px screen with JupyterLab's file
        # browser open): the side panel moves under the heatmap instead of out of view
        def row(children):
            return widgets.HBox(children, layout=widgets.Layout(flex_flow="row wrap"))
        self.widget = widgets.VBox([
            row([self.method_dd, self.dim_dd, self.run_dd]),
            row([self.entity_tb, self.colour_dd, self.projection_tb]),
            self.status, self.key, self.map_widget,
            row([self.heatmap_widget, widgets.VBox([self.heat_mode_tb, self.info])]),
            self.curves])
        self.refresh()

    # ----------------------------------------------------------------------------------
    # Construction from run folders
    # ----------------------------------------------------------------------------------

    @classmethod
    def from_folder(cls, root: str | Path = "runs", teacher: str | None = None, names=None,
                    **kwargs) -> "Explorer":
        """An explorer of the run folders under ``root`` (see :mod:`htdviz.runs`).

        Parameters
        ----------
        root : str or Path, default "runs"
        teacher : str, optional
            Folder name of the teacher; default the only run whose role is "teacher".
        names : sequence of str, optional
            Folder names of the students; default every run distilled from the teacher
            (``config["teacher"]``) that has embeddings.
        **kwargs
            Passed to :class:`Explorer`.
        """
        table = list_runs(root)
        if table.empty:
            raise ValueError(f"{root} holds no run folders (folders with a config.json)")
        if teacher is None:
            teachers = table.loc[table["method"] == "teacher", "name"].tolist()
            if len(teachers) != 1:
                raise ValueError(f"pass teacher=<folder name>: {root} holds "
                                 f"{len(teachers)} teacher runs {teachers}")
            teacher = teachers[0]
        if names is None:
            names = table.loc[table["teacher"] == teacher, "name"].tolist()
        runs = {teacher: load_run(Path(root) / teacher)}
        for name in names:
            run = load_run(Path(root) / name)
            if run.users is not None and run.items is not None:
                runs[name] = run
        return cls(runs, teacher=teacher, **kwargs)

    # ----------------------------------------------------------------------------------
    # Widgets
    # ----------------------------------------------------------------------------------

    def _build_controls(self, entity: str, projection: str) -> None:
        methods = sorted({self.runs[n].method for n in self.students})
        self.method_dd = widgets.Dropdown(options=methods, value=methods[0],
                                          description="method")
        self.dim_dd = widgets.Dropdown(description="dim")
        self.run_dd = widgets.Dropdown(description="run")
        self.entity_tb = widgets.ToggleButtons(options=list(ENTITIES), value=entity)
        self.colour_dd = widgets.Dropdown(description="colour")
        self.projection_tb = widgets.ToggleButtons(options=["umap", "pca"], value=projection)
        self.heat_mode_tb = widgets.ToggleButtons(
            options=["groups", "selected group", "prototypes"], value="groups",
            tooltips=["a sample of entities ordered by group", "the within-group block",
                      "cosines among group prototypes"])
        self.status = widgets.HTML()
        self.key = widgets.HTML()
        self.info = widgets.HTML(layout=widgets.Layout(width="340px"))
        self._update_dim_options()
        self._update_run_options()
        self._update_colour_options()
        for control in (self.method_dd, self.dim_dd, self.run_dd):
            control.observe(self._on_student_control, names="value")
        self.entity_tb.observe(lambda change: self._on_entity(), names="value")
        self.colour_dd.observe(self._on_colour, names="value")
        self.projection_tb.observe(lambda change: self.refresh(), names="value")
        self.heat_mode_tb.observe(lambda change: self._on_heat_mode(), names="value")

    def _build_views(self) -> None:
        self.map_widget = go.FigureWidget()
        self.heatmap_widget = go.FigureWidget()
        for i in range(2):
            self.map_widget.add_trace(go.Scattergl(x=[], y=[], mode="markers"))
        for i in range(3):
            self.heatmap_widget.add_trace(go.Heatmap(z=[[0.0]]))
        for trace in self.map_widget.data:
            trace.on_selection(self._on_selection)
            trace.on_click(self._on_click)
            trace.on_deselect(lambda trace, points: self.clear_selection())
        self.map_widget.observe(self._on_page_relayout, names="_js2py_relayout")
        self.map_widget.update_layout(dragmode="lasso", height=480)
        histories = {n: r.history for n, r in self.runs.items()
                     if not r.history.empty and "test_recall@50" in r.history.columns
                     and "epoch" in r.history.columns}
        curves = [go.FigureWidget(figures.learning_curves(histories))] if histories else []
        self.curves = widgets.Accordion(children=curves, titles=("learning curves",)
                                        if curves else ())

    # ----------------------------------------------------------------------------------
    # State
    # ----------------------------------------------------------------------------------

    @property
    def student_name(self) -> str:
        return self.run_dd.value

    @property
    def entity(self) -> str:
        return self.entity_tb.value

    @property
    def grouping(self) -> str:
        """Which groups a selection picks: the colouring's, else HTD's, else k-means'."""
        if self.colour_dd.value in (HTD_GROUP, KMEANS_GROUP):
            return self.colour_dd.value
        return HTD_GROUP if self._htd_groups() is not None else KMEANS_GROUP

    def teacher_repr(self) -> np.ndarray:
        """The teacher's representations of the current entity, shape (n, d_t)."""
        return self.runs[self.teacher_name].representations(self.entity)

    def student_repr(self) -> np.ndarray:
        """The current student's representations of the current entity, shape (n, d_s)."""
        return self.runs[self.student_name].representations(self.entity)

    def labels(self) -> np.ndarray:
        """The current grouping's labels, shape (n,)."""
        return self._htd_groups() if self.grouping == HTD_GROUP else self._kmeans()

    def map_ids(self) -> np.ndarray:
        """Ids of the current entities drawn in the maps, ascending: all of them, or above
        ``max_points`` a seeded sample stratified by the teacher's k-means groups (fixed
        per entity type, whatever the student or the colouring)."""
        n = self.teacher_repr().shape[0]
        if self.max_points is None or n <= self.max_points:
            return np.arange(n)
        return self._memo(("map ids", self.entity), lambda: groups_module.stratified_sample(
            n, self.max_points, self._kmeans(), self.random_state))

    def _kmeans(self) -> np.ndarray:
        teacher = self.teacher_repr()
        return self._memo(("kmeans", self.entity), lambda: groups_module.kmeans_groups(
            teacher, min(self.n_groups, teacher.shape[0]), self.random_state))

    def _htd_groups(self):
        return self.runs[self.student_name].groups(self.entity)

    def _memo(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    # ----------------------------------------------------------------------------------
    # Reactions
    # ----------------------------------------------------------------------------------

    def _on_student_control(self, change) -> None:
        """Method, dim or run changed: narrow the choices below it, then redraw once.

        A method's dims (and a dim's runs) may be the same list as before (two methods
        with one dim each): the dim then does not change and reports nothing, so the run
        is narrowed here, not in a reaction to the dim.
        """
        if self._holding:
            return
        self._holding = True
        try:
            if change["owner"] is self.method_dd:
                self._update_dim_options()
            if change["owner"] is not self.run_dd:
                self._update_run_options()
        finally:
            self._holding = False
        if self.run_dd.value != self._shown_student:
            self.refresh()

    def _on_entity(self) -> None:
        self._update_colour_options()
        self.refresh()

    def _on_heat_mode(self) -> None:
        with self._busy("drawing the heatmap"):
            self._draw_heatmap()

    def _update_dim_options(self) -> None:
        dims = sorted({self.runs[n].dim for n in self.students
                       if self.runs[n].method == self.method_dd.value})
        keep = self.dim_dd.value
        self.dim_dd.options = dims
        self.dim_dd.value = keep if keep in dims else dims[0]

    def _update_run_options(self) -> None:
        names = [n for n in self.students if self.runs[n].method == self.method_dd.value
                 and self.runs[n].dim == self.dim_dd.value]
        keep = self.run_dd.value
        self.run_dd.options = names
        self.run_dd.value = keep if keep in names else names[0]

    def _update_colour_options(self) -> None:
        if not hasattr(self, "run_dd") or self.run_dd.value is None:
            return
        options = ([HTD_GROUP] if self._htd_groups() is not None else []) + [KMEANS_GROUP]
        if self.dataset is not None and getattr(self.dataset, "item_tags", None) is not None:
            options.append(TAG)
        if self.dataset is not None and getattr(self.dataset, "train", None) is not None:
            options.append(POPULARITY)
        options.append(TRUST)
        # the user's choice comes back when a run offers it again (HTD groups after a
        # student without them)
        wanted = self._colour_wanted or self.colour_dd.value
        self._holding_colour = True
        try:
            self.colour_dd.options = options
            self.colour_dd.value = wanted if wanted in options else options[0]
        finally:
            self._holding_colour = False
        self._colour_wanted = self._colour_wanted or self.colour_dd.value   # the default

    def _on_colour(self, change) -> None:
        if not self._holding_colour:
            self._colour_wanted = change["new"]
            self.refresh()

    def refresh(self) -> None:
        """Redraw the maps, the heatmap and the group panel for the current controls."""
        if getattr(self, "_refreshing", False):
            return
        self._refreshing = True
        try:
            with self._busy(f"computing the {self.projection_tb.value.upper()} maps and "
                            f"the heatmap of {self.student_name}"):
                before = self._selection_context()
                self._update_colour_options()
                self.selected_group = None
                self._draw_map()
                kept = before is not None and self._keeps_selection(before)
                if kept:
                    self.selected_group = before[-1]
                    self._selected_among = before[:-1]
                    self._show_highlight()
                self._draw_heatmap()
                if kept:
                    self.info.value = self._describe(
                        self.selected_group, np.flatnonzero(self.labels() == self.selected_group))
                elif before is not None:
                    self.info.value = (f"<i>{before[1]} {before[-1]} is no longer selected: "
                                       f"the groups changed (now {self.grouping}s of "
                                       f"{html.escape(self.student_name)}). </i>" + PROMPT)
                else:
                    self.info.value = PROMPT
                self._shown_student = self.student_name
        finally:
            self._refreshing = False

    def _selection_context(self):
        """What the selected group is a group of, as it was selected: (entity, grouping,
        labels, group), or None when no group is selected."""
        if self.selected_group is None:
            return None
        return (*self._selected_among, self.selected_group)

    def _keeps_selection(self, before) -> bool:
        """After a redraw: is the group selected before still the same entities (same
        entity type and the same labels: k-means groups are the teacher's, so they stay
        across students; HTD groups stay while the grouping's labels do)?"""
        entity, _, labels, _ = before
        return entity == self.entity and np.array_equal(labels, self.labels())

    @contextmanager
    def _busy(self, doing: str):
        """Say in the status line what the kernel is doing, and lock the controls meanwhile.

        An update takes seconds (maps, heatmaps, a group's measures: 5-25 s for 25,000
        items on a 2-core CPU); the widgets' messages reach the page while it runs.
        """
        controls = (self.method_dd, self.dim_dd, self.run_dd, self.entity_tb,
                    self.colour_dd, self.projection_tb, self.heat_mode_tb)
        locked = [c for c in controls if not c.disabled]
        for control in locked:
            control.disabled = True
        self.status.value = (f'<span class="htdviz-busy" style="background:#fff3cd;'
                             f'padding:2px 8px;border-radius:3px">working: {html.escape(doing)}'
                             f'&hellip;</span>')
        try:
            yield
        finally:
            for control in locked:
                control.disabled = False
            self.status.value = self._summary

    def _on_page_relayout(self, change) -> None:
        """A box or lasso drawn in a map: select the group most of the points inside are in.

        The page reports a drawn selection twice: as a selection event holding the points
        and as a relayout holding the outline (``layout.selections``). The event shares
        one slot with hover events and is lost when one follows it before the kernel has
        read it (ipywidgets merges queued updates of one attribute, and plotly.js sends
        an unhover as the mouse is released), so the group is found from the outline.
        """
        relayout = (change["new"] or {}).get("relayout_data") or {}
        if relayout.get("dragmode"):
            self._dragmode = relayout["dragmode"]     # kept across redraws
        drawn = relayout.get("selections")
        if not drawn:
            return
        self._selection_drawn = True
        outline = drawn[-1]
        panel = 1 if str(outline.get("xref")) == "x2" else 0
        trace = self.map_widget.data[panel]
        inside = np.flatnonzero(_inside(np.column_stack([trace.x, trace.y]), outline))
        if inside.size == 0:
            self._show_highlight()
            return
        values, counts = np.unique(self.labels()[self.map_ids()[inside]],
                                   return_counts=True)
        self.select_group(int(values[np.argmax(counts)]))

    def _on_selection(self, trace, points, selector=None) -> None:
        """Selection callback of the map traces: show the explorer's highlight again.

        plotly calls it for each trace in turn (teacher, then student) after setting that
        trace's ``selectedpoints`` to the points inside a drawn box or lasso (none in the
        other panel), and with no points each time the kernel removes a drawn box. Which
        group a box picks is read from its outline (:meth:`_on_page_relayout`); here the
        selected group is put back in both maps, once plotly has set both.
        """
        if trace is self.map_widget.data[-1]:
            self._show_highlight()

    def _on_click(self, trace, points, state=None) -> None:
        """A click on a point selects its group (plotly calls every trace; one has it)."""
        if points.point_inds:
            self.select_group(int(self.labels()[self.map_ids()[points.point_inds[0]]]))

    def select_group(self, group: int) -> None:
        """Highlight ``group`` in both maps and the heatmap; describe it in the panel."""
        labels = self.labels()
        if group not in set(np.unique(labels).tolist()):
            raise ValueError(f"group {group!r} has no {self.entity} in the {self.grouping}s")
        with self._busy(f"measuring {self.grouping} {group}"):
            self.selected_group = int(group)
            self._selected_among = (self.entity, self.grouping, labels)
            self._show_highlight()
            self._draw_heatmap()
            self.info.value = self._describe(group, np.flatnonzero(labels == group))

    def clear_selection(self) -> None:
        """Select no group: every point drawn plainly, no outline in the heatmap."""
        if self.selected_group is None:
            self._show_highlight()
            return
        with self._busy("dropping the selection"):
            self.selected_group = None
            self._show_highlight()
            self._draw_heatmap()
            self.info.value = PROMPT

    def _show_highlight(self) -> None:
        """The selected group as the selection of both maps (every point plain if none)."""
        members = None if self.selected_group is None else \
            np.flatnonzero(self.labels()[self.map_ids()] == self.selected_group).tolist()
        if self._selection_drawn:
            self._clear_drawn_selection()
            # removing the box also unselects the points under it in the page, which the
            # kernel does not hear of: a decoy value makes the highlight below a change,
            # so it is sent whatever the kernel's copy holds
            for trace in self.map_widget.data:
                trace.selectedpoints = [] if members is None else None
        with self.map_widget.batch_update():
            for trace in self.map_widget.data:
                trace.selectedpoints = members

    def _clear_drawn_selection(self) -> None:
        """Remove the box or lasso the user drew from the maps in the page.

        plotly.js keeps a drawn selection in ``layout.selections`` and selects what it
        covers again at every redraw: a stale box, and the points under it selected
        instead of the group (or none at all after a projection switch). The kernel never
        hears of that layout entry, so it is cleared by two relayouts, of which the second
        always differs from the kernel's copy and so always reaches the page. (Each makes
        plotly.js report an empty selection: see :meth:`_on_selection`.)
        """
        self._selection_drawn = False
        self.map_widget.plotly_relayout({"selections": None})
        self.map_widget.plotly_relayout({"selections": []})

    # ----------------------------------------------------------------------------------
    # Drawing
    # ----------------------------------------------------------------------------------

    def _maps(self) -> tuple[np.ndarray, np.ndarray]:
        """The teacher's map and the student's, aligned to it (each memoised as made)."""
        method = self.projection_tb.value
        options = dict(method=method, random_state=self.random_state, cache_dir=self.cache_dir,
                       **(self.umap_kwargs if method == "umap" else {}))
        keys = [("map", name, self.entity, method)
                for name in (self.teacher_name, self.student_name)]
        ids = self.map_ids()
        if keys[0] not in self._cache and keys[1] not in self._cache:
            # both at once: project_pair may compute them in two processes
            self._cache[keys[0]], self._cache[keys[1]] = project_pair(
                self.teacher_repr()[ids], self.student_repr()[ids], align="none", **options)
        teacher_xy = self._memo(keys[0], lambda: project(self.teacher_repr()[ids], **options))
        student_xy = self._memo(keys[1], lambda: project(self.student_repr()[ids], **options))
        return teacher_xy, procrustes_align(student_xy, teacher_xy)[0]

    def neighbours_kept(self, sample: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The share of each mapped entity's :data:`TRUST_K` nearest neighbours that the
        teacher's map keeps and that the student's map keeps
        (:func:`htdviz.viz.projection.neighbours_kept`), in :meth:`map_ids` order; with
        ``sample``, only for :data:`~htdviz.viz.maps.TRUST_ROWS` sampled entities
        (what the status line's means need)."""
        ids = self.map_ids()
        rows = None
        if sample and ids.size > maps.TRUST_ROWS:
            rows = np.sort(np.random.default_rng(self.random_state).choice(
                ids.size, maps.TRUST_ROWS, replace=False))
        teacher_xy, student_xy = self._maps()
        return tuple(self._memo(("kept", name, self.entity, self.projection_tb.value, sample),
                                lambda: neighbours_kept(repr[ids], xy, TRUST_K, rows))
                     for name, repr, xy in ((self.teacher_name, self.teacher_repr(), teacher_xy),
                                            (self.student_name, self.student_repr(),
                                             student_xy)))

    def _draw_map(self) -> None:
        teacher_xy, student_xy = self._maps()
        ids, labels = self.map_ids(), self.labels()
        # the colouring needs every point's share; the status line only the means
        kept_t, kept_s = self.neighbours_kept(sample=self.colour_dd.value != TRUST)
        by_value = {}
        if self.colour_dd.value == TRUST:
            colour, name, categorical = kept_t, f"share of {TRUST_K} neighbours kept", False
            by_value = dict(student_color=kept_s, colorscale=figures.TRUST_SCALE,
                            color_range=(0, 1))
        else:
            colour, name, categorical = self._colour()
            colour = colour[ids]
        fig = figures.map_figure(teacher_xy, student_xy, ids=ids, groups=labels[ids],
                                 color=colour, **by_value,
                                 color_name=name, categorical=categorical,
                                 group_tags=self._top_tags(), entity=self.entity,
                                 titles=(_panel_title("teacher", self.teacher_name),
                                         _panel_title(self.runs[self.student_name].method,
                                                      self.student_name)),
                                 webgl=True, legend=False)
        with self.map_widget.batch_update():
            for widget_trace, trace in zip(self.map_widget.data, fig.data[:2]):
                # coordinates as lists: plotly.js reports typed-array coordinates back as
                # changed defaults, which FigureWidget cannot compare with an array (a
                # ValueError in JupyterLab's log console at every redraw)
                widget_trace.update(x=trace.x.tolist(), y=trace.y.tolist(),
                                    marker=trace.marker.to_plotly_json(),
                                    customdata=trace.customdata, name=trace.name,
                                    hovertemplate=trace.hovertemplate, selectedpoints=None,
                                    unselected=trace.unselected.to_plotly_json(),
                                    xaxis=trace.xaxis, yaxis=trace.yaxis, showlegend=False,
                                    overwrite=True)
            _replace_layout(self.map_widget, fig.layout)
            self.map_widget.layout.dragmode = self._dragmode
            self.map_widget.layout.height = 480
        self._clear_drawn_selection()
        self.key.value = _colour_key(fig, name)
        shown = f"{len(labels):,} {self.entity}" if ids.size == len(labels) else (
            f"{ids.size:,} of {len(labels):,} {self.entity} mapped (a sample stratified by "
            f"the teacher's k-means groups: sets above {self.max_points:,} are sampled; "
            f"groups and measures use all)")
        trust = trust_sentence(kept_t, kept_s, self.entity, TRUST_K)
        if self.colour_dd.value != TRUST:             # the sentence reads dark and grey points
            trust += f" (Colour by {TRUST} to see which points are dark.)"
        self._summary = (f"{shown}; colour: {name}; a selection picks one {self.grouping}."
                         f"<br><small>{html.escape(trust)}</small>")

    def _draw_heatmap(self) -> None:
        mode = self.heat_mode_tb.value
        t, s, labels = self.teacher_repr(), self.student_repr(), self.labels()
        if mode == "selected group" and self.selected_group is None:
            self.info.value = ("<i>'selected group' shows one group's within-group block: "
                               "select a group in a map first (meanwhile the heatmap shows "
                               "all groups).</i><br>" + PROMPT)
        if mode == "selected group" and self.selected_group is not None:
            fig = figures.group_heatmaps(t, s, labels, self.selected_group,
                                         max_entities=self.max_heatmap,
                                         random_state=self.random_state, entity=self.entity)
        elif mode == "prototypes":
            fig = figures.prototype_heatmaps(t, s, labels, highlight=self.selected_group)
        else:
            # the stratified sample keeps every group while max_heatmap >= their number
            sampled_all = np.unique(labels).size <= self.max_heatmap
            fig = figures.similarity_heatmaps(t, s, labels, max_entities=self.max_heatmap,
                                              random_state=self.random_state,
                                              entity=self.entity,
                                              highlight=self.selected_group if sampled_all
                                              else None)
        with self.heatmap_widget.batch_update():
            for widget_trace, trace in zip(self.heatmap_widget.data, fig.data):
                widget_trace.update(trace.to_plotly_json(), overwrite=True)
            _replace_layout(self.heatmap_widget, fig.layout)
            self.heatmap_widget.layout.height = 440

    def _colour(self):
        """(values, name, categorical) of the current colouring."""
        choice = self.colour_dd.value
        if choice == HTD_GROUP:
            return self._htd_groups(), HTD_GROUP, True
        if choice == KMEANS_GROUP:
            return self._kmeans(), KMEANS_GROUP, True
        if choice == TAG:
            return self._memo(("tag colour", self.entity), self._dominant_tags), TAG, True
        counts = np.asarray(self.dataset.train.sum(axis=1 if self.entity == "users" else 0))
        return np.log10(1 + counts.ravel()), "log10(1 + interactions)", False

    def _entity_tags(self):
        """Tag matrix of the current entity: items' own, users' through their items."""
        item_tags = self.dataset.item_tags
        if self.entity == "items":
            return item_tags
        return self._memo("user tags", lambda: (self.dataset.train @ item_tags).tocsr())

    def _dominant_tags(self) -> np.ndarray:
        """Each entity's most frequent tag among the N_COLOUR_TAGS most frequent tags."""
        tags = self._entity_tags()
        presence = (tags != 0).astype(np.float64).tocsr()
        frequent = np.argsort(-np.asarray(presence.sum(0)).ravel(), kind="stable")
        frequent = frequent[:N_COLOUR_TAGS]
        counts = tags[:, frequent].toarray()                     # (n, N_COLOUR_TAGS)
        names = np.array([self.dataset.tag_names[j] for j in frequent] + ["other"],
                         dtype=object)
        best = np.where(counts.max(1) > 0, counts.argmax(1), len(frequent))
        return names[best]

    def _top_tags(self):
        if self.dataset is None or getattr(self.dataset, "item_tags", None) is None:
            return None
        return self._memo(("top tags", self.student_name if self.grouping == HTD_GROUP
                           else None, self.entity, self.grouping),
                          lambda: groups_module.top_tags(self.labels(), self._entity_tags(),
                                                         self.dataset.tag_names,
                                                         min_count=MIN_TAG_SUPPORT))

    def _group_errors(self) -> pd.DataFrame:
        return self._memo(("group errors", self.student_name, self.entity, self.grouping),
                          lambda: preservation.group_errors(self.teacher_repr(),
                                                            self.student_repr(), self.labels()))

    def group_measures(self, group: int) -> dict:
        """How well the current student preserves one group's topology.

        Returns
        -------
        dict
            ``size``; from :func:`htdviz.preservation.group_errors` (all members):
            ``entity_error`` (same-group pairs), ``group_error`` (prototype-entity pairs),
            ``ftd_error`` (the group's rows of the full topology); and, from
            :func:`htdviz.preservation.discrepancy` on the members (at most ``max_heatmap``,
            sampled; groups of 4 or more): ``knn_overlap@k`` (k = min(10, size - 1)),
            ``spearman``, ``cka``, ``kl_most_similar``.
        """
        labels = self.labels()
        members = np.flatnonzero(labels == group)
        if members.size == 0:
            raise ValueError(f"group {group!r} has no {self.entity} in the {self.grouping}s")
        if members.size > self.max_heatmap:
            rng = np.random.default_rng(self.random_state)
            members = np.sort(rng.choice(members, self.max_heatmap, replace=False))
        row = self._group_errors().set_index("group").loc[group]
        out = {"size": int(row["size"]), "entity_error": float(row["entity_error"]),
               "group_error": float(row["group_error"]), "ftd_error": float(row["ftd_error"])}
        if members.size >= 4:
            k = min(10, members.size - 1)
            out.update(preservation.discrepancy(self.teacher_repr()[members],
                                                self.student_repr()[members], k=k,
                                                n_neighbors=max(2, k), measures=GROUP_MEASURES,
                                                random_state=self.random_state))
        return out

    def _describe(self, group: int, members: np.ndarray) -> str:
        measures = self.group_measures(group)
        errors = self._group_errors()
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td>"
                       f"<td>{_typical(errors, k)}</td></tr>"
                       for k, v in measures.items() if k != "size")
        tags = self._top_tags()
        tag_text = ""
        if tags is not None:
            mine = tags[tags["group"] == group]
            tag_text = "<br>".join(f"{html.escape(str(tag))} <small>(lift {lift:.1f}, "
                                   f"{count} of {size})</small>" for tag, lift, count, size in
                                   zip(mine["tag"], mine["lift"], mine["count"],
                                       mine["group_size"]))
            tag_text = f"<b>top tags</b><br>{tag_text or '<i>none</i>'}<br>"
        return (f"<b>{self.grouping} {group}</b>: {members.size:,} {self.entity}<br>"
                f"{tag_text}<b>topology of the group</b>"
                f"<table><tr><th>measure</th><th>value</th><th>median group</th></tr>{rows}"
                f"</table><small>errors: mean squared cosine differences (lower is better); "
                f"knn_overlap, spearman, cka: higher is better</small>")

    # ----------------------------------------------------------------------------------
    # Display
    # ----------------------------------------------------------------------------------

    def _check_entities(self) -> None:
        teacher = self.runs[self.teacher_name]
        for name in self.students:
            for entity in ENTITIES:
                t, s = getattr(teacher, entity), getattr(self.runs[name], entity)
                if t is None or s is None:
                    raise ValueError(f"runs {self.teacher_name!r} and {name!r} must both "
                                     f"have {entity} representations")
                if t.shape[0] != s.shape[0]:
                    raise ValueError(f"run {name!r} has {s.shape[0]} {entity}, the teacher "
                                     f"{self.teacher_name!r} {t.shape[0]}")

    def _repr_mimebundle_(self, **kwargs):
        """The live widget, and for pages with no kernel (a rendered notebook) a static
        picture of it (:meth:`static_html`); JupyterLab shows the widget."""
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, tuple):                 # (data, metadata)
            bundle[0]["text/html"] = self.static_html()
        elif isinstance(bundle, dict):
            bundle["text/html"] = self.static_html()
        return bundle

    def static_html(self) -> str:
        """The explorer as drawn now, for a page without a kernel: its status line, the
        maps with their colour key and the heatmap as plain plotly figures (positions
        and colours; no hover text), drawn by the page's plotly.js once it is there, and
        a line saying that selections and switches need the notebook running."""
        parts = [f'<div class="htdviz-explorer-static"><p><b>A picture of the explorer</b> '
                 f'(selections, switches and group details need the notebook running in '
                 f'Jupyter): {self.student_name}, {self.entity}.</p>'
                 f'<p>{self._summary}</p>', self.key.value]
        for k, widget in enumerate((self.map_widget, self.heatmap_widget)):
            figure = go.Figure(widget)
            for trace in figure.data:
                if "customdata" in trace:
                    trace.customdata, trace.hovertemplate = None, None
            parts.append(figures.figure_html(figure, f"htdviz-explorer-{id(self)}-{k}"))
        return "".join(parts) + "</div>"


def explore(runs, **kwargs) -> Explorer:
    """An :class:`Explorer` of a mapping of runs, or of the run folders under a path."""
    if isinstance(runs, (str, Path)):
        return Explorer.from_folder(runs, **kwargs)
    return Explorer(runs, **kwargs)


def _panel_title(method: str, name: str) -> str:
    """A map panel's title, named for what it shows and which run: "teacher", "HTD
    student (htd-8)", "student alone (student-4)"."""
    from ..distill import display_name

    if method == "teacher":
        return "teacher" if name == "teacher" else f"teacher ({name})"
    shown = display_name(method) if method == "student" else f"{display_name(method)} student"
    return f"{shown} ({name})"


def _replace_layout(widget, layout) -> None:
    """Give a FigureWidget a new layout, in the kernel and in the page.

    Assigning ``widget.layout`` sends the page only the keys of the new layout, so a key
    only the old one had (the previous heatmap mode's shapes: group lines, highlight
    marks) would stay drawn in the browser. Those keys are removed first, in a relayout of
    their own; the keys both have are replaced whole (``shapes`` as one tuple).
    """
    keys = set(layout.to_plotly_json())
    stale = {key: None for key in widget.layout.to_plotly_json() if key not in keys}
    if stale:
        widget.plotly_relayout(stale)
    widget.layout = layout


def _inside(xy: np.ndarray, outline: Mapping) -> np.ndarray:
    """Which points of ``xy`` (n, 2) lie inside a drawn selection (plotly's
    ``layout.selections`` entry: a "rect" with x0, x1, y0, y1, or a lasso "path"
    "M x,y L x,y ... Z"), as a bool array of shape (n,)."""
    x, y = xy[:, 0], xy[:, 1]
    if outline.get("path"):
        corners = np.array([[float(v) for v in point.split(",")] for point in
                            str(outline["path"]).strip("Z").lstrip("M").split("L")])
        inside = np.zeros(len(xy), dtype=bool)
        for (x0, y0), (x1, y1) in zip(corners, np.roll(corners, -1, axis=0)):
            # even-odd rule: a ray to the right crosses the edge (x0, y0)-(x1, y1)
            crosses = (y0 > y) != (y1 > y)
            with np.errstate(divide="ignore", invalid="ignore"):
                at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
            inside ^= crosses & (x < at)
        return inside
    x0, x1 = sorted((float(outline["x0"]), float(outline["x1"])))
    y0, y1 = sorted((float(outline["y0"]), float(outline["y1"])))
    return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def _colour_key(fig, name: str) -> str:
    """HTML swatches of a map's categorical colours (the maps carry no legend traces, so
    that each panel stays one trace); empty for colours by value, which have a colour bar."""
    marker = fig.data[0].marker
    if marker.coloraxis is not None or marker.colorscale is None:
        return ""
    codes = np.asarray(marker.color)
    names = pd.Series([row[4] or row[1] for row in fig.data[0].customdata]).groupby(
        codes).first()
    colours = figures.PALETTE
    shown = names.iloc[:figures.MAX_LEGEND_ENTRIES]
    swatches = "".join(
        f'<span style="white-space:nowrap;margin-right:10px"><span style="display:inline-'
        f'block;width:10px;height:10px;border-radius:5px;background:'
        f'{colours[int(code) % len(colours)]};margin-right:3px"></span>'
        f'{html.escape(str(value))}</span> ' for code, value in shown.items())
    more = f" … and {len(names) - len(shown)} more" if len(names) > len(shown) else ""
    return (f'<div class="htdviz-colour-key" style="line-height:1.6"><b>{html.escape(name)}'
            f'</b>: {swatches}{more}</div>')


def _typical(errors: pd.DataFrame, key: str) -> str:
    if key in errors.columns:
        return f"{errors[key].median():.4g}"
    return ""


def _as_runs(runs) -> dict:
    if not isinstance(runs, Mapping) or not runs:
        raise ValueError("runs must be a non-empty mapping name -> Run (or a run folder, or "
                         "a mapping of arrays)")
    return {name: as_run(name, run) for name, run in runs.items()}


def _pick_teacher(runs: dict, teacher):
    if teacher is not None:
        if teacher not in runs:
            raise ValueError(f"teacher {teacher!r} is not one of the runs {list(runs)}")
        return teacher
    return next((n for n, r in runs.items() if r.method == "teacher"), next(iter(runs)))
