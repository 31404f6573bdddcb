"""The demo report, asserted on its content: narrow tables with rounded numbers, the full
tables as CSV beside it, every axis titled in words, one finding from the run's numbers
under every view. The report is built once for the session (conftest.py's ``demo_report``;
how it looks in Chromium: tests/test_browser.py)."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("plotly", reason="the report needs plotly (pip install \"htdviz[viz]\")")

from htdviz import report  # noqa: E402


class _Page(HTMLParser):
    """The page's headings, findings, tables (as rows of cells) and links."""

    def __init__(self):
        super().__init__()
        self.h2, self.findings, self.tables, self.links = [], [], [], []
        self._in = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "h2" or (tag == "p" and attrs.get("class") == "finding"):
            self._in = tag
            (self.h2 if tag == "h2" else self.findings).append("")
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self._in = "cell"
            self.tables[-1][-1].append("")
        elif tag == "a":
            self.links.append(attrs.get("href"))

    def handle_endtag(self, tag):
        if tag in ("h2", "p", "td", "th"):
            self._in = None

    def handle_data(self, data):
        if self._in == "h2":
            self.h2[-1] += data
        elif self._in == "p":
            self.findings[-1] += data
        elif self._in == "cell":
            self.tables[-1][-1][-1] += data


@pytest.fixture(scope="module")
def demo(demo_report):
    """The session's demo report (conftest.py): its path, the page parsed, its sections."""
    path, sections = demo_report
    page = _Page()
    page.feed(path.read_text())
    return path, page, sections


def test_every_view_has_a_finding_from_the_run(demo):
    _, page, sections = demo
    assert len(page.h2) == len(sections) == len(page.findings) >= 9
    for section, finding in zip(sections, page.findings):
        assert finding == section.finding
        assert re.search(r"\d(\.\d|%)", finding), f"{section.title}: no number in {finding!r}"
        assert finding.endswith((".", ")")) and "REFERENCE" not in finding
    titles = [s.title for s in sections]
    for wanted in ("Accuracy", "Agreement with the teacher's ranking",
                   "Where the topology error lies", "HTD's groups", "Capacity gap"):
        assert wanted in titles


def test_tables_are_narrow_and_rounded_with_the_full_tables_beside(demo):
    path, page, sections = demo
    assert page.tables
    for table in page.tables:
        assert len(table[0]) <= 10
        for row in table[1:]:
            for cell in row:
                assert not re.fullmatch(r"-?\d+\.\d{5,}", cell), f"unrounded number {cell}"
    csvs = [s.csv[0] for s in sections if s.csv is not None]
    assert {"accuracy", "band_errors", "discrepancy", "capacity"} <= set(csvs)
    for name in csvs:
        file = path.with_name(f"{path.stem}.{name}.csv")
        assert file.name in page.links
        assert len(pd.read_csv(file)) > 0
    capacity_csv = pd.read_csv(path.with_name(f"{path.stem}.capacity.csv"))
    assert len(capacity_csv.columns) > 10          # the full table, behind a curated one
    # the epoch budget beside the paper's numbers is stated (synthetic: no paper column)
    accuracy = next(t for t in page.tables if t[0][:2] == ["method", "dim"])
    assert "epochs" in accuracy[0] and "paper Recall@50 (100 epochs)" not in accuracy[0]


def _figures(sections):
    for section in sections:
        for content in section.content if isinstance(section.content, list) \
                else [section.content]:
            if not isinstance(content, pd.DataFrame):
                yield section.title, content


def test_every_numeric_axis_is_titled_in_words(demo):
    _, _, sections = demo
    checked = 0
    for title, fig in _figures(sections):
        layout = fig.layout
        for name in [k for k in layout.to_plotly_json() if re.fullmatch(r"[xy]axis\d*", k)]:
            axis = layout[name]
            if axis.type == "category" or axis.showticklabels is False or \
                    axis.visible is False or (axis.matches and axis.title.text is None):
                continue
            used = [t for t in fig.data if (getattr(t, name[0] + "axis", None) or name[0]) ==
                    name.replace("axis", "")]
            values = [v for t in used for v in (() if getattr(t, name[0]) is None
                                                else getattr(t, name[0]))]
            if not values or isinstance(values[0], str):        # categories, not numbers
                continue
            text = axis.title.text
            if text is None:                  # shared axes: one title on the first panel
                first = name[0] + "axis"
                text = layout[first].title.text if name[-1].isdigit() and \
                    layout[first].title.text else None
            assert text, f"{title}: {name} has no title"
            assert "_" not in text or text.startswith("d_"), f"{title}: raw key {text!r}"
            checked += 1
    assert checked >= 10


def test_capacity_view_draws_both_bounds_over_a_grid_of_dims(demo):
    _, _, sections = demo
    section = next(s for s in sections if s.title == "Capacity gap")
    fig = section.content[0]
    bounds = [t for t in fig.data if t.name == "rank-d bound"]
    assert len(bounds) == 2 and len(bounds[0].x) > 10
    assert "Runs at one size only" in fig.layout.annotations[-1].text
    assert "no student can get below" in section.finding


def test_a_large_set_switches_to_sampled_views_and_says_so(demo, monkeypatch):
    """Above the thresholds the map shows a stratified sample and the nearest-neighbour
    measures come from sampled rows; the page says so (thresholds lowered to the synthetic
    set's size instead of training on 100,000 items)."""
    from htdviz import experiment
    from htdviz.runs import list_runs, load_run
    from htdviz.viz import figures

    path, _, sections = demo
    runs = path.parent / "runs"
    table = list_runs(runs)
    teacher = load_run(runs / table.loc[table["method"] == "teacher", "name"].iloc[0])
    students = {m: load_run(runs / table.loc[table["method"] == m, "name"].iloc[0])
                for m in report.METHODS}
    dataset = experiment.dataset_of(teacher.config)
    n = dataset.n_items
    monkeypatch.setattr(figures, "MAX_MAP_POINTS", n // 2)
    monkeypatch.setattr(report, "NEIGHBOUR_ROWS", n // 4)
    large = {s.title: s for s in report._sections(dataset, teacher, students, 100, "pca", 0)}
    small = {s.title: s for s in sections}

    mapped = large["Teacher and HTD student, mapped"]
    assert len(mapped.content.data[0].x) == n // 2
    assert f"{n // 2:,} of the {n:,} items, a sample stratified by HTD group" in mapped.text
    assert f"{n // 2:,} of {n:,} items, a sample stratified by group" in \
        mapped.content.layout.title.text
    assert f"estimated from {n // 4:,} sampled items, each ranked against all {n:,}" in \
        mapped.finding
    assert "sampled" not in small["Teacher and HTD student, mapped"].text
    assert "exact, all items searched" in small["Topology discrepancy"].text
    assert f"estimated from {n // 4:,} sampled items" in large["Topology discrepancy"].text
    # only the nearest-neighbour measures change; the exact ones stay as they were
    before = pd.read_csv(path.with_name(f"{path.stem}.discrepancy.csv")).set_index("method")
    after = large["Topology discrepancy"].csv[1].set_index("method")
    for key in ("ftd_error", "htd_error", "cka", "spearman", "kl_random"):
        pd.testing.assert_series_equal(after[key], before[key], check_exact=False, rtol=1e-9)
    assert not after["knn_overlap@10"].equals(before["knn_overlap@10"])


def test_sampled_differences_within_the_margin_are_ties_not_wins():
    measures = pd.DataFrame({
        "ftd_error": [0.02, 0.03], "htd_error": [0.025, 0.024],
        "knn_overlap@10": [0.466, 0.468], "spearman": [0.8, 0.6], "cka": [0.83, 0.69],
        "kl_most_similar": [0.00140, 0.00170], "kl_random": [0.009, 0.013]},
        index=pd.Index(["ftd", "htd"], name="method"))
    bands = pd.DataFrame({"pairs": "item-item", "method": ["HTD", "FTD", "HTD", "FTD"],
                          "band": ["1-10", "1-10", "11-99", "11-99"],
                          "mean_sq_error": [0.008, 0.011, 0.03, 0.02],
                          "n_pairs": [10, 10, 90, 90]})
    recall = {"htd": 0.27, "ftd": 0.25}
    agreement = {"htd": {"overlap@50": 0.63}, "ftd": {"overlap@50": 0.64}}
    exact = report._discrepancy_finding(measures, recall, bands, agreement, sampled=False)
    # HTD is closer on htd_error and (by .002) on kNN overlap; FTD on the other 5
    assert exact.startswith("FTD's student is closer to the teacher than HTD's on 5 of 7 ")
    sampled = report._discrepancy_finding(measures, recall, bands, agreement, sampled=True)
    assert sampled.startswith("FTD's student is closer to the teacher than HTD's on 5 of 7 "
                              "measures (kNN overlap@10: a tie")
    measures.loc["htd", "knn_overlap@10"] = 0.43        # beyond the margin: FTD's win
    assert "on 6 of 7 measures;" in report._discrepancy_finding(measures, recall, bands,
                                                               agreement, sampled=True)


def test_the_accuracy_view_sets_the_papers_numbers_beside_every_setting_the_paper_has():
    from types import SimpleNamespace

    def values(name, split, model, d_t=200, data_file=None):
        dataset = SimpleNamespace(name=name, info={"split": split})
        teacher = SimpleNamespace(users=np.zeros((3, d_t)),
                                  config={"model": model, "data_file": data_file})
        return report._paper_values(dataset, teacher)

    logs = values("citeulike-t", "reference", "bpr")
    assert logs.column == "paper Recall@50 (100 epochs)" and logs.from_logs
    assert logs.recall("htd", 20) == .2744 and logs.recall("teacher", 200) == .3123
    figure = values("citeulike-t", "random", "lightgcn")
    assert figure.column == "paper's figure Recall@50" and not figure.from_logs
    assert figure.recall("htd", 20) == .2847 and figure.recall("de", 100) == .3249
    assert figure.recall("htd", 30) is None and figure.recall("teacher", 200) is None
    assert values("citeulike-t", "reference", "neumf").recall("ftd", 200) == .2991
    assert values("foursquare", "random", "bpr").recall("student", 20) == .2164
    for unmatched in (values("foursquare", "random", "lightgcn"),
                      values("synthetic", "random", "bpr"),
                      values("citeulike-t", "reference", "bpr", d_t=100),
                      values("foursquare", "random", "bpr", data_file="/d/foursquare.csv")):
        assert unmatched is None
