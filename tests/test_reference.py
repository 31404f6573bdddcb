"""htdviz.reference holds exactly the numbers of docs/method.md §10, and every citation of
docs/method.md in the project names a section that exists.

docs/method.md is part of the repository, so these tests always run. Its tables are read
as markdown: one row per line, the first cell a label, the values as decimals.
"""
import re
from pathlib import Path

import pandas as pd
import pytest

from htdviz import capacity, reference

ROOT = Path(__file__).resolve().parents[1]
METHOD = ROOT / "docs" / "method.md"

#: column or row labels of docs/method.md -> names in htdviz.reference
METHODS = {"student alone": "student", "DE": "de", "FTD": "ftd", "HTD": "htd",
           "teacher": "teacher", "teacher (d = 200)": "teacher"}
MODELS = {"BPR-MF": "bpr", "LightGCN": "lightgcn", "NeuMF": "neumf"}


def method_text() -> str:
    return METHOD.read_text(encoding="utf-8")


def section(number: str) -> str:
    """The text of section ``number`` ("10.1") up to the next heading of any level."""
    text = method_text()
    match = re.search(rf"^#+ {re.escape(number)}\.? .*$", text, flags=re.M)
    assert match, f"docs/method.md has no section {number}"
    end = re.search(r"^#+ ", text[match.end():], flags=re.M)
    return text[match.end():match.end() + end.start() if end else None]


def tables(number: str) -> list[list[list[str]]]:
    """Every markdown table of a section: a list of rows (header first) of stripped cells."""
    found, current = [], []
    for line in section(number).splitlines() + [""]:
        line = line.strip()
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", cell) for cell in cells):
                current.append(cells)
        elif current:
            found.append(current)
            current = []
    return found


def value(cell: str) -> float | None:
    """A table cell as a number; None for an empty cell."""
    if not cell:
        return None
    assert re.fullmatch(r"\d*\.\d+", cell), f"not a decimal: {cell!r}"
    return float(cell)


def frame(rows: list[list[str]], n_labels: int = 1) -> pd.DataFrame:
    """A table as a DataFrame of its values, indexed by its first ``n_labels`` cells."""
    header, body = rows[0], rows[1:]
    index = [tuple(row[:n_labels]) if n_labels > 1 else row[0] for row in body]
    return pd.DataFrame([[value(c) for c in row[n_labels:]] for row in body],
                        index=index, columns=header[n_labels:])


def test_log_table():
    """§10.1: the authors' logs, test Recall@50 at epoch 100 by student size; the teacher."""
    students, teacher = tables("10.1")
    doc = frame(students, n_labels=2)
    ours = reference.RECALL50
    assert [int(dim) for dim, _ in doc.index] == list(ours.index)
    assert [float(phi) for _, phi in doc.index] == [dim / 200 for dim in ours.index]
    assert [METHODS[c] for c in doc.columns] == list(ours.columns)
    assert doc.to_numpy().tolist() == ours.to_numpy().tolist()
    for (dim, _), row in doc.iterrows():
        for column, number in row.items():
            assert reference.paper_recall(METHODS[column], int(dim)) == number
    assert frame(teacher).to_dict("index") == {"200": {"test Recall@50":
                                                       reference.TEACHER_RECALL50}}
    assert reference.paper_recall("teacher", 200) == reference.TEACHER_RECALL50
    assert reference.paper_recall("teacher", 20) is None
    assert reference.paper_recall("de", 20) is None and reference.paper_recall("htd", 50) is None


def test_learning_curves():
    """§10.2: the authors' logs, test Recall@50 at epochs 0, 10, ..., 100, d_s = 20."""
    (curves,) = tables("10.2")
    doc = frame(curves)
    assert sorted(METHODS[name] for name in doc.index) == sorted(reference.CURVES_D20)
    for name, row in doc.iterrows():
        ours = reference.CURVES_D20[METHODS[name]]
        assert [int(epoch) for epoch in row.index] == list(ours.index)
        assert row.tolist() == ours.tolist()


def test_paper_figure():
    """§10.3: the paper's figure, test Recall@50 by base model and phi."""
    figure = tables("10.3")[0]
    doc = frame(figure, n_labels=2)
    models = {MODELS[model] for model, _ in doc.index}
    assert set(reference.FIGURE_RECALL50) <= models
    for model, ours in reference.FIGURE_RECALL50.items():
        rows = doc[[MODELS[m] == model for m, _ in doc.index]]
        assert [float(phi) for _, phi in rows.index] == list(ours.index)
        assert [METHODS[c] for c in rows.columns] == list(ours.columns)
        assert rows.to_numpy().tolist() == ours.to_numpy().tolist()


def test_sensitivity_alpha():
    """§10.3: HTD by alpha, "over alpha = 0 / 0.1 / 0.5 / 0.9, .2615 / .2793 / ..."."""
    text = " ".join(section("10.3").split())
    match = re.search(r"over alpha = ([\d./ ]+?), ([\d./ ]+?) \(alpha = 0 is DE\)", text)
    assert match, "§10.3 no longer states the alpha sensitivity as 'over alpha = ..., ...'"
    alphas = [float(a) for a in match.group(1).split(" / ")]
    recalls = [float(r) for r in match.group(2).split(" / ")]
    assert dict(zip(alphas, recalls)) == reference.SENSITIVITY_ALPHA


def test_analyses():
    """§10.4: topology-preservation KL, tag retrieval, parameter counts."""
    kl, tags, parameters = tables("10.4")
    doc = frame(kl)
    assert list(doc.columns) == ["most similar", "random"]
    assert {METHODS[name]: tuple(row) for name, row in doc.iterrows()} == \
        reference.PRESERVATION_KL
    doc = frame(tags)
    assert list(doc.columns) == ["linear probe", "non-linear probe"]
    assert {METHODS[name]: tuple(None if pd.isna(v) else v for v in row)
            for name, row in doc.iterrows()} == reference.TAG_RECALL10
    doc = frame(parameters, n_labels=2)
    assert len(doc) == 2
    for (dim, phi), (millions,) in doc.iterrows():
        assert float(phi) == int(dim) / 200
        assert round(capacity.parameter_count(5219, 25181, int(dim)) / 1e6, 2) == millions


@pytest.mark.parametrize("number", ["10.1", "10.2", "10.3", "10.4"])
def test_tables_cite_their_source(number):
    assert "**Source:**" in section(number)


def test_citations_name_existing_sections():
    """Every "docs/method.md §N" in code, tests, notebooks and docs names a heading."""
    headings = set(re.findall(r"^#+ (\d+(?:\.\d+)?)\.? ", method_text(), flags=re.M))
    cited = {}
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if (path.suffix not in (".py", ".md", ".ipynb", ".sh") or not path.is_file()
                or parts[0] in (".venv", ".git", "runs", "data", "build")
                or parts[0].endswith(".egg-info")):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for run in re.findall(r"docs/method\.md((?:(?:,| and|-| to)?\s?§\d+(?:\.\d+)?)+)",
                              text):
            for number in re.findall(r"§(\d+(?:\.\d+)?)", run):
                cited.setdefault(number, []).append(str(path.relative_to(ROOT)))
    assert cited, "no citation of docs/method.md found"
    missing = {number: files for number, files in cited.items() if number not in headings}
    assert not missing, f"citations of sections docs/method.md does not have: {missing}"
