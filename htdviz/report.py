"""The report: one self-contained HTML page of what a teacher's students learnt.

:func:`write_report` draws the key tables and views of a teacher and its students (the
student alone, FTD and HTD at least): metrics beside the paper's, learning curves, teacher
and student maps of the items coloured by HTD group, similarity heatmaps ordered by group,
the groups' tags, topology discrepancies and the capacity diagnostics, each with a sentence
of what it shows for these runs. plotly.js is embedded once, so the file opens offline.
The demo pipeline that trains the runs and calls it is :func:`htdviz.experiment.run_demo`
(``python -m htdviz demo``).
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Callable, NamedTuple
from pathlib import Path

import numpy as np
import pandas as pd

from . import capacity, groups, preservation
from ._io import write_atomically
from .distill import display_name
from .evaluate import ranking_agreement
from .reference import FIGURE_RECALL50, figure_recall, paper_recall
from .runs import flat_metrics

#: The students the report compares (the demo trains them; more: ``run_demo(methods=...)``).
METHODS = ("student", "ftd", "htd")


def write_report(path: str | Path, dataset, teacher, students, settings: str,
                 max_heatmap: int = 400, projection: str = "umap", seed: int = 0) -> Path:
    """Draw the report of a teacher and its students and write it as one HTML page.

    Parameters
    ----------
    path : path
        The page; each view's full table is written beside it as ``<stem>.<name>.csv``.
    dataset : htdviz.data.Dataset
        The data set the runs were trained on.
    teacher : htdviz.runs.Run
    students : mapping method name -> htdviz.runs.Run
        At least :data:`METHODS` (the student alone, FTD and HTD, which the views compare);
        any other method joins the views that compare all students.
    settings : str
        The sentence under the title that says what was run.
    max_heatmap : int, default 400
        Entities shown in the similarity heatmaps.
    projection : {"umap", "pca"}, default "umap"
    seed : int, default 0
        Seeds the samples and maps.
    """
    missing = [m for m in METHODS if m not in students]
    if missing:
        raise ValueError(f"students must include {METHODS} (the views compare them); "
                         f"missing {missing}")
    sections = _sections(dataset, teacher, students, max_heatmap, projection, seed)
    return _write_html(Path(path), settings, sections)


def _display(name: str) -> str:
    """How the page names a run's method (the method's own display name)."""
    return "teacher" if name == "teacher" else display_name(name)


#: Row entities sampled for the band errors (columns stay complete, so ranks are exact).
BAND_ROWS = 1000
#: Entities whose nearest neighbours the discrepancy measures search (each against all
#: items; :func:`htdviz.preservation.discrepancy`'s ``max_rows``); all other measures are exact.
NEIGHBOUR_ROWS = 2000
#: Differences between two students' sampled nearest-neighbour measures that the page
#: calls a tie: the largest error of such a difference (both students on the same 2,000
#: rows, 5 seeds) on CiteULike's items and users was .0102 in kNN overlap@10 and about 7%
#: of the value in KL most similar (benchmarks/bench_large_analysis.py, docs/benchmarks.md).
#: kNN overlap's margin is absolute, KL's a share of the two students' mean value.
SAMPLING_MARGIN = {"knn_overlap@10": 0.01, "kl_most_similar": 0.1}
#: The measures' names on the page.
_WORDS = {"ftd_error": "full-topology error", "htd_error": "HTD-target error",
          "knn_overlap@10": "kNN overlap@10", "spearman": "Spearman", "cka": "CKA",
          "kl_most_similar": "KL most similar", "kl_random": "KL random"}
#: Entities sampled for the capacity bounds.
CAPACITY_SAMPLE = 5000


@dataclass
class Section:
    """One view of the report: a title, what it shows in general (``text``), what it shows
    for this run (``finding``, one sentence built from the run's numbers), the content (a
    figure, a table, or a list of them) and optionally the full table behind a curated one,
    written as CSV beside the report under the name ``csv``."""

    title: str
    text: str
    finding: str
    content: object
    csv: tuple[str, pd.DataFrame] | None = None


def _sections(dataset, teacher, students, max_heatmap, projection, seed) -> list[Section]:
    """The report's views, in reading order (the demo's students: student, ftd, htd); what
    several views read (recall, the agreement, the band errors, the discrepancies) is
    computed once here."""
    htd = students["htd"]
    runs = {"teacher": teacher, **students}
    recall = {name: run.metrics["final"]["test_recall@50"] for name, run in runs.items()}
    paper = _paper_values(dataset, teacher)
    on_paper_data = paper is not None and paper.from_logs
    agreement = {m: ranking_agreement(teacher.users, teacher.items, run.users, run.items,
                                      dataset.train, ks=(10, 50)).mean()
                 for m, run in students.items()}
    bands = pd.concat([preservation.band_error_table(
        teacher.users, teacher.items, run.users, run.items, max_rows=BAND_ROWS,
        random_state=seed).assign(method=_display(m)) for m, run in students.items()],
        ignore_index=True)
    measures = pd.DataFrame([{"method": name, **preservation.discrepancy(
        teacher.items, run.items, labels=htd.item_groups, random_state=seed,
        max_rows=NEIGHBOUR_ROWS)} for name, run in students.items()]).set_index("method")
    return [_accuracy(runs, recall, paper),
            _learning_curves(students, recall),
            _agreement(students, recall, agreement),
            _error_bands(bands),
            _htd_groups(dataset, htd),
            *_maps_and_heatmaps(dataset, teacher, htd, measures, max_heatmap, projection, seed),
            *_discrepancy(measures, recall, bands, agreement, dataset.n_items, on_paper_data),
            _capacity_gap(teacher, students, seed)]


def _figures():
    """htdviz.viz.figures, imported when a report is drawn (it imports plotly)."""
    from .viz import figures
    return figures


def _epochs(run) -> int:
    return int(run.metrics["final"]["epoch"])


def _searched(n_items: int) -> str:
    """How the nearest-neighbour measures were searched, in words."""
    return (f"estimated from {NEIGHBOUR_ROWS:,} sampled items, each ranked against all "
            f"{n_items:,}" if n_items > NEIGHBOUR_ROWS else "exact, all items searched")


class PaperValues(NamedTuple):
    """The paper's test Recall@50 that the accuracy view sets beside the runs."""

    column: str                                  # the table's column name
    recall: Callable[[str, int], float | None]   # (method, dim) -> value, None if none
    source: str                                  # a sentence: where the values come from
    from_logs: bool                              # the authors' logs (the reproduced setting)


def _paper_values(dataset, teacher) -> PaperValues | None:
    """The paper's numbers for these runs' setting; None where the paper has none (another
    data set or file, another teacher size).

    CiteULike's reference split with a BPR-MF teacher: the authors' 100-epoch logs
    (:func:`htdviz.reference.paper_recall`). CiteULike (another split) or Foursquare with
    any base model the paper has, teacher d = 200: the paper's figure, at phi = 0.1, 0.5 and
    1 (:func:`htdviz.reference.figure_recall`; its own random split and early stopping).
    """
    d_t, model = teacher.users.shape[1], teacher.config.get("model", "bpr")
    name = "citeulike" if dataset.name.startswith("citeulike") else dataset.name
    if d_t != 200 or name not in ("citeulike", "foursquare") or \
            teacher.config.get("data_file"):                 # a user's file of that name
        return None
    if name == "citeulike" and dataset.info.get("split") == "reference" and model == "bpr":
        return PaperValues("paper Recall@50 (100 epochs)", paper_recall,
                           "The paper's column is its authors' 100-epoch log", True)
    if model not in FIGURE_RECALL50 or (name == "foursquare" and model != "bpr"):
        return None
    return PaperValues("paper's figure Recall@50",
                       lambda method, dim: None if method == "teacher"
                       else figure_recall(name, model, method, dim / d_t),
                       "The paper's column is its figure (its own random split, early "
                       "stopping, phi = 0.1, 0.5, 1 only)", False)


def _accuracy(runs, recall, paper) -> Section:
    students = {m: r for m, r in runs.items() if m != "teacher"}
    dim, epochs = students["htd"].users.shape[1], _epochs(students["htd"])
    rows, full = [], []
    for name, run in runs.items():
        d = run.users.shape[1]
        rows.append({"method": _display(name), "dim": d,
                     "test Recall@50": recall[name],
                     "test NDCG@50": run.metrics["final"]["test_ndcg@50"],
                     **({paper.column: paper.recall(name, d)} if paper else {}),
                     "epochs": _epochs(run),
                     "best-valid epoch": int(run.metrics["best_valid"]["epoch"]),
                     "training (s)": round(run.metrics["train_seconds"])})
        full.append({"method": name, **flat_metrics(run.metrics)})
    order = sorted(students, key=lambda m: -recall[m])
    finding = (f"After {epochs} epochs, test Recall@50: " + ", ".join(
        f"{_display(m)} {recall[m]:.4f}" for m in order) +
        f" (teacher {recall['teacher']:.4f}).")
    if paper:
        values = {m: paper.recall(m, dim) for m in students}
        if all(v is not None for v in values.values()):
            same = sorted(values, key=lambda m: -values[m]) == order
            finding += (" The paper gives " + " / ".join(
                f"{values[m]:.4f}" for m in order) + f" in that order; the ordering "
                f"{'matches' if same else 'differs from'} the paper's.")
    return Section(
        "Accuracy",
        "Full-ranking test metrics at the last epoch (leave-one-out, all items ranked, "
        "training items excluded; docs/method.md §8)." + (
            f" {paper.source}; these students trained {epochs} epochs, and fewer epochs give "
            f"lower numbers." if paper else ""),
        finding, pd.DataFrame(rows), ("accuracy", pd.DataFrame(full)))


def _learning_curves(students, recall) -> Section:
    figures, epochs = _figures(), _epochs(students["htd"])
    order = sorted(students, key=lambda m: -recall[m])
    gains = {m: _last_gain(run.history) for m, run in students.items()}
    rising = {m: g for m, g in gains.items() if g is not None and g > 0.002}
    finding = f"{_display(order[0])} leads at the last epoch."
    if rising:
        finding += (" Over the last evaluation interval " + ", ".join(
            f"{_display(m)} still gained {g:+.4f}" for m, g in rising.items()) +
            f": {epochs} epochs are not the end of training" +
            (" (the paper trains 100)." if epochs < 100 else "."))
    else:
        finding += " The curves have levelled off (gains of at most .002 over the last " \
                   "evaluation interval)."
    return Section(
        "Learning curves", "Test Recall@50 of each student, evaluated during training.",
        finding, figures.learning_curves({_display(m): r.history for m, r in students.items()}))


def _agreement(students, recall, agreement) -> Section:
    table = pd.DataFrame([{"method": _display(m), "dim": run.users.shape[1],
                           "top-10 overlap": agreement[m]["overlap@10"],
                           "top-50 overlap": agreement[m]["overlap@50"],
                           "top-50 NDCG": agreement[m]["ndcg@50"],
                           "test Recall@50": recall[m]} for m, run in students.items()])
    ranked = sorted(students, key=lambda m: -agreement[m]["overlap@50"])
    finding = "Share of the teacher's top-50 items that a student also ranks in its top 50, " \
        "averaged over users: " + ", ".join(
            f"{_display(m)} {agreement[m]['overlap@50']:.0%}" for m in ranked) + \
        " (top 10: " + ", ".join(f"{_display(m)} {agreement[m]['overlap@10']:.0%}"
                                  for m in ranked) + ")."
    return Section(
        "Agreement with the teacher's ranking",
        "Recommendation uses one relation of the topology: how each user scores the items. "
        "Both models rank all items for every user; the overlap is the share of the "
        "teacher's top-k items that the student also puts in its top k, and the NDCG "
        "weighs them by the student's positions (1 = the same top k).", finding, table)


def _error_bands(bands) -> Section:
    figures = _figures()
    return Section(
        "Where the topology error lies",
        f"The squared difference between teacher and student cosines, averaged over the "
        f"pairs of each band: for every entity, the other entities ranked by their teacher "
        f"similarity to it, from its 10 nearest to the far rest ({BAND_ROWS:,} sampled users "
        f"and items ranked against all; htdviz.preservation.band_error_table). FTD's loss "
        f"weighs every pair alike; almost all pairs are far.",
        _band_finding(bands), figures.band_error_figure(bands), ("band_errors", bands))


def _htd_groups(dataset, htd) -> Section:
    figures = _figures()
    k = int(htd.config.get("n_groups", 30))
    usage = {kind: groups.group_usage(labels, k)
             for kind, labels in (("user", htd.user_groups), ("item", htd.item_groups))}
    has_tags = dataset.item_tags is not None
    item_tags = groups.top_tags(htd.item_groups, dataset.item_tags, dataset.tag_names,
                                n_top=3) if has_tags else None
    start = htd.history.iloc[0] if "item_groups_used" in htd.history.columns else None
    finding = (f"At the last epoch HTD's selection networks use {usage['user']['used']} of "
               f"K = {k} user groups and {usage['item']['used']} of {k} item groups "
               f"({usage['user']['effective']:.1f} and {usage['item']['effective']:.1f} "
               f"equally full groups would have the same entropy)")
    finding += (f"; before training they used {int(start['user_groups_used'])} and "
                f"{int(start['item_groups_used'])}." if start is not None else ".")
    contents = [figures.group_sizes_figure(htd.item_groups, top_tags=item_tags, n_groups=k)]
    if start is not None:
        contents.append(figures.group_usage_figure({"HTD": htd.history}, n_groups=k))
    return Section(
        "HTD's groups",
        f"Each entity's group is the argmax of a selection network over K = {k} groups "
        f"(docs/method.md §5.1). Nothing in HTD's loss spreads the entities over the "
        f"groups: an expert that reconstructs its entities well can take more of them while "
        f"others fall idle. Where few groups are in use, the hierarchy is coarser than K "
        f"suggests: the entity level then covers large groups and the group level few "
        f"prototypes. " + (
            "Item groups are labelled with their most characteristic tags (lift over the "
            "tag's overall frequency, tags on at least 3 items of the group)." if has_tags
            else "This data set has no item tags, so the groups are shown by size only."),
        finding, contents)


def _maps_and_heatmaps(dataset, teacher, htd, measures, max_heatmap, projection,
                       seed) -> list[Section]:
    figures, n_items = _figures(), dataset.n_items
    sections = []
    searched = _searched(n_items)
    overlap = measures["knn_overlap@10"]
    mapped = f"all {n_items:,} items" if n_items <= figures.MAX_MAP_POINTS else (
        f"{figures.MAX_MAP_POINTS:,} of the {n_items:,} items, a sample stratified by HTD "
        f"group (sets above {figures.MAX_MAP_POINTS:,} are sampled to keep the map quick)")
    maps = figures.projection_figure(teacher.items, htd.items, method=projection,
                                     groups=htd.item_groups, random_state=seed,
                                     max_points=figures.MAX_MAP_POINTS,
                                     titles=("teacher", "HTD student"))
    trusted = figures.projection_figure(teacher.items, htd.items, method=projection,
                                        groups=htd.item_groups, random_state=seed,
                                        max_points=figures.MAX_MAP_POINTS,
                                        colour_by_trust=True,
                                        titles=("teacher", "HTD student"))
    sections.append(Section(
        "Teacher and HTD student, mapped",
        f"{projection.upper()} of {mapped} in the teacher space and in the HTD student's "
        f"space (the student's map rotated and scaled onto the teacher's), coloured by "
        f"HTD's item group. Nearby points are items with similar representations.",
        f"Of each item's 10 nearest teacher neighbours, HTD's student keeps "
        f"{overlap['htd']:.0%} among its own 10 nearest, FTD's {overlap['ftd']:.0%}, the "
        f"student alone {overlap['student']:.0%} ({searched}).", maps))
    sections.append(Section(
        "Where the maps can be trusted",
        "The same maps, each point coloured by the share of its 10 nearest neighbours (in "
        "its own space, by cosine) that stay among its 10 nearest on its map. A 2-D map "
        "cannot keep every neighbourhood; a cluster's size and the distance between "
        "clusters are not kept at all. The Procrustes disparity noted above the maps measures "
        "how differently the two maps are shaped once rotated and scaled onto each other "
        "(0: the same shape, 1: nothing in common).",
        trusted.layout.meta["trust"], trusted))
    sections.append(Section(
        "Similarity heatmaps",
        f"Cosine similarities among {max_heatmap} items sampled in proportion to group size "
        f"and ordered by HTD group: teacher, HTD student and their difference. Same-group "
        f"blocks lie on the diagonal: HTD's entity level distils them.",
        f"Over all {n_items:,} items, HTD's student misses same-group pairs by "
        f"{measures.loc['htd', 'htd_entity_error']:.4f} (mean squared cosine difference) "
        f"and all pairs by {measures.loc['htd', 'ftd_error']:.4f}; FTD's student (not "
        f"drawn here) by {measures.loc['ftd', 'htd_entity_error']:.4f} and "
        f"{measures.loc['ftd', 'ftd_error']:.4f}.",
        figures.similarity_heatmaps(teacher.items, htd.items, groups=htd.item_groups,
                                    max_entities=max_heatmap, random_state=seed)))
    return sections


def _discrepancy(measures, recall, bands, agreement, n_items, on_paper_data) -> list[Section]:
    figures = _figures()
    searched = _searched(n_items)
    sections = []
    table = measures[list(_WORDS)].rename(columns=_WORDS)
    table.insert(0, "test Recall@50", [recall[m] for m in table.index])
    table.index = [_display(m) for m in table.index]
    sections.append(Section(
        "Topology discrepancy",
        f"How far each student's item topology is from the teacher's over all "
        f"{n_items:,} items (htdviz.preservation.discrepancy; the nearest-neighbour measures, "
        f"kNN overlap and KL most similar: {searched}; "
        f"Spearman from 1,000,000 sampled pairs). Errors and KL: lower is closer; "
        f"overlap, Spearman and CKA: higher is closer. The HTD target uses HTD's item "
        f"groups.", _discrepancy_finding(measures, recall, bands, agreement,
                                         sampled=n_items > NEIGHBOUR_ROWS),
        table.reset_index(names="method"),
        ("discrepancy", measures.reset_index())))
    kl = measures[["kl_most_similar", "kl_random"]].reset_index().melt(
        id_vars="method", var_name="mode", value_name="value")
    kl["method"] = kl["method"].map(_display)
    kl["mode"] = kl["mode"].map({"kl_most_similar": "most similar", "kl_random": "random"})
    most = measures["kl_most_similar"].sort_values()
    sections.append(Section(
        "Topology preservation",
        "KL(teacher || student) of softmax distributions of each item's cosines to its 10 "
        "most similar teacher neighbours, and to 10 random items (the paper's analysis, "
        "docs/method.md §9; temperature 1). Lower = better preserved.",
        "Most-similar neighbours, from best preserved: " + ", ".join(
            f"{_display(m)} {v:.4f}" for m, v in most.items()) + "." +
        (" The paper (100 epochs, phi = 0.1, its own neighbourhood size and temperature) "
         "finds HTD < DE < student alone." if on_paper_data else ""),
        figures.preservation_bars(kl, value="value")))
    return sections


def _capacity_gap(teacher, students, seed) -> Section:
    figures, htd = _figures(), students["htd"]
    dim, d_t = htd.users.shape[1], teacher.users.shape[1]
    grid = sorted(set(np.unique(np.geomspace(1, d_t, 25).round().astype(int)).tolist()) |
                  {dim, d_t})
    cap = capacity.capacity_table(teacher.users, teacher.items, dims=grid,
                                  runs={_display(m): r for m, r in students.items()},
                                  user_labels=htd.user_groups, item_labels=htd.item_groups,
                                  max_entities=CAPACITY_SAMPLE, random_state=seed)
    cap["test_recall@50"] = cap.pop("final_test_recall@50") \
        if "final_test_recall@50" in cap.columns else np.nan
    achieved = cap[cap["kind"] == "achieved"]
    bound = cap[(cap["kind"] == "bound") & (cap["dim"] == dim)].iloc[0]
    finding = (f"At d = {dim}, no student can get below {bound['full_error_relative']:.1%} "
               f"of the full topology's energy, or {bound['hierarchical_error_relative']:.1%}"
               f" of the hierarchical target's (dashed lines). The trained students sit at "
               f"{achieved['full_error_relative'].min():.2f}-"
               f"{achieved['full_error_relative'].max():.2f} times the full topology's "
               f"energy and {achieved['hierarchical_error_relative'].min():.2f}-"
               f"{achieved['hierarchical_error_relative'].max():.2f} times the "
               f"hierarchical target's: far above either bound, so the bounds say what is "
               f"reachable at this size, not what these students reach.")
    curated = achieved[["method", "dim", "full_error_relative",
                        "hierarchical_error_relative", "test_recall@50"]].rename(columns={
                            "full_error_relative": "full error / energy",
                            "hierarchical_error_relative": "HTD-target error / energy",
                            "test_recall@50": "test Recall@50"})
    return Section(
        "Capacity gap",
        "The smallest topology error any d-dimensional representation can reach (rank-d "
        "bounds, htdviz.capacity) on the full topology and on HTD's hierarchical target "
        f"(HTD's groups; users and items together, {CAPACITY_SAMPLE:,} sampled), as a "
        f"share of the "
        "target's energy, beside what the students reached. A value of 1 is as far off as "
        "a student whose cosines were all 0.", finding,
        [figures.capacity_curves(cap), curated], ("capacity", cap))


def _last_gain(history: pd.DataFrame) -> float | None:
    """Test Recall@50 gained between the last two evaluations."""
    values = history.sort_values("epoch")["test_recall@50"].to_numpy()
    return float(values[-1] - values[-2]) if values.size >= 2 else None


def _band_finding(bands: pd.DataFrame) -> str:
    """FTD's and HTD's item-item errors in the nearest and the farthest band, compared."""
    items = bands[bands["pairs"] == "item-item"]
    near, far = items["band"].iloc[0], items["band"].iloc[-1]
    err = items.set_index(["method", "band"])["mean_sq_error"]
    share = items[items["band"] == far]["n_pairs"].iloc[0] / \
        items.groupby("method")["n_pairs"].sum().iloc[0]
    htd_near, ftd_near = err[("HTD", near)], err[("FTD", near)]
    htd_far, ftd_far = err[("HTD", far)], err[("FTD", far)]
    text = (f"Item-item pairs: among each item's nearest teacher neighbours (ranks {near}) "
            f"HTD's student errs by {htd_near:.4f} and FTD's by {ftd_near:.4f}; among the "
            f"far ones (ranks {far}, {share:.0%} of all pairs) HTD's by {htd_far:.4f} and "
            f"FTD's by {ftd_far:.4f}")
    if htd_near < ftd_near and ftd_far < htd_far:
        return text + ": HTD keeps the near relations better and gives up far ones, which " \
                      "dominate every all-pairs measure."
    if htd_near < ftd_near and htd_far <= ftd_far:
        return text + ": HTD is closer in both."
    if htd_near >= ftd_near and ftd_far < htd_far:
        return text + ": FTD is closer in both, HTD's advantage is not in these cosines."
    return text + ": HTD is closer among the far pairs, FTD among the near ones."


def _discrepancy_finding(measures: pd.DataFrame, recall: dict, bands: pd.DataFrame,
                         agreement: dict, sampled: bool) -> str:
    """How many measures put FTD's student closer than HTD's, and what else says so;
    with ``sampled`` neighbour rows, differences within :data:`SAMPLING_MARGIN` are ties."""
    from .preservation import HIGHER_IS_BETTER

    keys = list(_WORDS)
    ftd, htd = measures.loc["ftd"], measures.loc["htd"]
    ties = [k for k in keys if sampled and k in SAMPLING_MARGIN and
            abs(ftd[k] - htd[k]) < SAMPLING_MARGIN[k] * (1 if k.startswith("knn") else
                                                         (ftd[k] + htd[k]) / 2)]
    closer = sum((ftd[k] > htd[k]) if k.startswith(HIGHER_IS_BETTER) else (ftd[k] < htd[k])
                 for k in keys if k not in ties)
    better = "HTD" if recall["htd"] > recall["ftd"] else "FTD"
    text = (f"FTD's student is closer to the teacher than HTD's on {closer} of {len(keys)} "
            f"measures" + (f" ({' and '.join(_WORDS.get(k, k) for k in ties)}: a tie, the "
                           f"two differ by less than "
                           f"the sampling error of the sampled rows)" if ties else "") +
            f"; {better}'s ranks better (test Recall@50 HTD {recall['htd']:.4f}, "
            f"FTD {recall['ftd']:.4f}).")
    items = bands[bands["pairs"] == "item-item"]
    far_share = items["n_pairs"].iloc[-1] / items[items["method"] == "HTD"]["n_pairs"].sum()
    near = items[items["band"] == items["band"].iloc[0]].set_index("method")["mean_sq_error"]
    text += (f" These measures average over all pairs, {far_share:.0%} of them beyond each "
             f"item's 1,000 nearest teacher neighbours; among its 10 nearest the closer "
             f"student is {'HTD' if near['HTD'] < near['FTD'] else 'FTD'}'s "
             f"(HTD's {near['HTD']:.4f}, FTD's {near['FTD']:.4f}).")
    overlap = {m: agreement[m]["overlap@50"] for m in ("htd", "ftd")}
    if better == "HTD" and abs(overlap["htd"] - overlap["ftd"]) < 0.02:
        text += (f" Both share about as much of each user's top-50 items with the teacher "
                 f"(HTD {overlap['htd']:.0%}, FTD {overlap['ftd']:.0%}), so HTD's lead is not "
                 f"closer imitation of the teacher's ranking.")
    else:
        text += (f" Of each user's top-50 items, HTD's student shares {overlap['htd']:.0%} "
                 f"with the teacher, FTD's {overlap['ftd']:.0%}.")
    return text


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1180px;margin:auto;padding:1em;color:#222}
h2{margin-top:2em;border-bottom:1px solid #ddd}
p.finding{background:#f4f7fb;border-left:4px solid #4a78b5;padding:.5em .8em}
.table-wrap{overflow-x:auto;max-width:100%}
.table{border-collapse:collapse;font-size:14px}
.table td,.table th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}
.table td:first-child,.table th:first-child{text-align:left}
.plotly-graph-div{max-width:100%}
"""


def _write_html(path: Path, settings: str, sections: list[Section]) -> Path:
    """The report as one self-contained page (plotly.js embedded once), and each section's
    full table as ``<report stem>.<name>.csv`` beside it, linked from the section."""
    path = Path(path)
    parts, plotly_included = [], False
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>"
                     f"<p>{html.escape(section.text)}</p>"
                     f"<p class='finding'>{html.escape(section.finding)}</p>")
        contents = section.content if isinstance(section.content, list) else [section.content]
        for content in contents:
            if isinstance(content, pd.DataFrame):
                parts.append("<div class='table-wrap'>" + content.to_html(
                    index=False, float_format=_number, na_rep="", border=0,
                    classes="table") + "</div>")
            else:
                parts.append(content.to_html(full_html=False,
                                             include_plotlyjs=not plotly_included,
                                             default_width="100%",
                                             config={"responsive": True}))
                plotly_included = True
        if section.csv is not None:
            name, table = section.csv
            csv = path.with_name(f"{path.stem}.{name}.csv")
            write_atomically(csv, lambda f, t=table: f.write(
                t.to_csv(index=False).encode("utf-8")))
            parts.append(f"<p><a href='{html.escape(csv.name)}'>The full table "
                         f"({html.escape(csv.name)})</a></p>")
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>htdviz report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{_STYLE}</style>
</head><body>
<h1>htdviz: what topology distillation transferred</h1>
<p>{html.escape(settings)}</p>
{''.join(parts)}
</body></html>"""
    write_atomically(path, lambda f: f.write(page.encode("utf-8")))
    return path


def _number(value: float) -> str:
    """Four significant decimals for metrics; integers stay integers."""
    if float(value).is_integer() and abs(value) >= 1:
        return f"{value:.0f}"
    return f"{value:.4f}"
