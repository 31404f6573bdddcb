"""htdviz.reference holds exactly the numbers of the spec (REFERENCE.md §4-4c).

The spec lives beside the clone (``../shared/REFERENCE.md``, the parent of the data mirror);
the test is skipped where it is absent (a user's machine).
"""
import os
import re
from pathlib import Path

import pytest

from htdviz import reference


def spec_text() -> str:
    mirror = os.environ.get("HTDVIZ_DATA_MIRROR")
    candidates = [Path(mirror).parent / "REFERENCE.md"] if mirror else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "REFERENCE.md")
    for path in candidates:
        if path.is_file():
            return " ".join(path.read_text().split())        # one line, single spaces
    pytest.skip("REFERENCE.md not found beside the clone")


def numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"\d*\.\d+", text)]


def test_log_table_and_curves():
    text = spec_text()
    for dim, phi in ((10, "0.05"), (20, "0.1"), (100, "0.5"), (200, "1.0")):
        row = re.search(rf"\| {dim} \({phi}\) \|([^|]+)\|([^|]+)\|([^|]+)\|", text)
        assert numbers("".join(row.groups())) == list(reference.RECALL50.loc[dim])
        for method in ("student", "ftd", "htd"):
            assert reference.paper_recall(method, dim) == reference.RECALL50.loc[dim, method]
    assert numbers(re.search(r"\| teacher \(d = 200\) \|([^|]+)\|", text).group(1)) == [
        reference.TEACHER_RECALL50]
    for name, label in (("student", "student"), ("ftd", "FTD"), ("htd", "HTD"),
                        ("teacher", "teacher")):
        curve = re.search(rf"- {label}: ((?:\.\d+ ?){{11}})", text).group(1)
        assert numbers(curve) == list(reference.CURVES_D20[name])
    assert reference.paper_recall("de", 20) is None and reference.paper_recall("htd", 50) is None


def test_figure_kl_and_tags():
    text = spec_text()
    for model, label in (("bpr", "BPR"), ("lightgcn", "LightGCN")):
        row = re.search(rf"\| CiteULike, {label} +\|([^|]+)\|([^|]+)\|([^|]+)\|([^|]+)\|", text)
        cells = [numbers(cell) for cell in row.groups()]
        figure = reference.FIGURE_RECALL50[model]
        assert cells == [list(figure[m]) for m in ("student", "de", "ftd", "htd")]
    kl = re.search(r"student (\.\d+) / (\.\d+), DE (\.\d+) / (\.\d+), HTD (\.\d+) / (\.\d+)",
                   text)
    assert numbers(" ".join(kl.groups())) == [v for m in ("student", "de", "htd")
                                              for v in reference.PRESERVATION_KL[m]]
    tags = re.search(r"Recall@10 \(BPR: teacher (\.\d+), student (\.\d+) / (\.\d+), "
                     r"DE (\.\d+) / (\.\d+), HTD (\.\d+) / (\.\d+)", text)
    want = [reference.TAG_RECALL10["teacher"][0]] + [
        v for m in ("student", "de", "htd") for v in reference.TAG_RECALL10[m]]
    assert numbers(" ".join(tags.groups())) == want
