"""The main job: the quickstart pipeline on CiteULike and a self-contained HTML report.

``python -m htdviz demo`` (``make demo``) trains (or reuses) the BPR-MF teacher (d = 200),
distils d_s = 20 students alone, with FTD and with HTD, and writes one HTML file with the
key tables and views: metrics beside the paper's, learning curves, teacher and student maps
of the items coloured by HTD group, similarity heatmaps ordered by group, the groups' tags,
topology discrepancies and the capacity diagnostics. plotly.js is embedded once, so the
file opens offline.
"""
from __future__ import annotations

import html
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import capacity, experiment, groups, topology
from .data import _write_atomically
from .reference import paper_recall
from .runs import load_run

METHODS = ("student", "ftd", "htd")


def run_demo(student_dim: int = 20, epochs: int = 30, teacher_epochs: int = 100,
             runs_dir: str | Path = "runs", report: str | Path = "reports/htdviz_report.html",
             device=None, progress: bool = True, max_heatmap: int = 400,
             projection: str = "umap", seed: int = 0, dataset: str | Path = "citeulike",
             min_items: int = 5, user_col: str = "user", item_col: str = "item") -> Path:
    """Run the pipeline (reusing finished runs) and write the report; returns its path.

    Parameters
    ----------
    student_dim : int, default 20
        d_s of the students (phi = d_s / 200).
    epochs : int, default 30
        Student epochs (the paper: 100; the temperature schedule anneals over these).
    teacher_epochs : int, default 100
    runs_dir, report : path
    device : str, optional
        Default: CUDA when present.
    progress : bool, default True
        Progress bars of the runs, and one line per phase of the report on stderr.
    max_heatmap : int, default 400
        Entities shown in the similarity heatmaps.
    projection : {"umap", "pca"}, default "umap"
    seed : int, default 0
    dataset : str or Path, default "citeulike"
        A name or a data file (:func:`htdviz.experiment.load_dataset`); CiteULike uses the
        authors' reference split, a file a random one seeded by ``seed``.
    min_items, user_col, item_col
        Data-file options (:func:`htdviz.data.load_file`).
    """
    def say(message):
        if progress:
            print(f"[report {time.perf_counter() - tic:6.0f} s] {message}", file=sys.stderr,
                  flush=True)

    tic = time.perf_counter()
    teacher_dir = experiment.teacher_run(epochs=teacher_epochs, runs_dir=runs_dir,
                                         device=device, progress=progress, seed=seed,
                                         dataset=dataset, min_items=min_items,
                                         user_col=user_col, item_col=item_col)
    student_dirs = {m: experiment.student_run(teacher_dir, m, student_dim, epochs=epochs,
                                              runs_dir=runs_dir, device=device,
                                              progress=progress, seed=seed)
                    for m in METHODS}
    seconds_training = time.perf_counter() - tic
    say("runs ready; loading the data set and the runs")
    teacher = load_run(teacher_dir)
    data_set = experiment.dataset_of(teacher.config)
    students = {m: load_run(p) for m, p in student_dirs.items()}
    say(f"drawing the report ({projection.upper()} maps, heatmaps, discrepancies, capacity "
        f"diagnostics of {data_set.n_items:,} items)")
    sections = _sections(data_set, teacher, students, max_heatmap, projection, seed)
    seconds_total = time.perf_counter() - tic
    split = data_set.info.get("split")
    settings = (f"{data_set.name}, {split} split ({data_set.n_users:,} users, "
                f"{data_set.n_items:,} items, {data_set.n_train:,} training interactions); "
                f"BPR-MF teacher d_t = 200, {teacher_epochs} epochs; "
                f"students d_s = {student_dim} (phi = {student_dim / 200:g}), {epochs} epochs; "
                f"seed {seed}. Pipeline time {seconds_total / 60:.1f} min "
                f"(training {seconds_training / 60:.1f} min, finished runs reused).")
    path = _write_html(Path(report), settings, sections)
    say(f"report written: {path}")
    return path


def _sections(dataset, teacher, students, max_heatmap, projection, seed):
    from .viz import figures

    htd = students["htd"]
    item_groups = htd.item_groups
    sections = []

    rows = []
    for name, run in [("teacher", teacher), *students.items()]:
        final = run.metrics["final"]
        rows.append({"method": name, "dim": run.users.shape[1],
                     "test Recall@50": final["test_recall@50"],
                     "test NDCG@50": final["test_ndcg@50"],
                     "paper Recall@50 (100 epochs)": paper_recall(name, run.users.shape[1]),
                     "best-valid epoch": run.metrics["best_valid"]["epoch"],
                     "train s": run.metrics["train_seconds"]})
    sections.append(("Accuracy", "Full-ranking test metrics at the last epoch (REFERENCE.md "
                     "§3). The paper's column is its 100-epoch log; fewer epochs give lower "
                     "numbers.", pd.DataFrame(rows)))

    sections.append(("Learning curves", "Test Recall@50 against epochs.",
                     figures.learning_curves({m: r.history for m, r in students.items()})))

    item_tags = groups.top_tags(item_groups, dataset.item_tags, dataset.tag_names, n_top=3)
    sections.append(("HTD's item groups", "Item groups chosen by HTD's selection network "
                     "(argmax over K = 30), labelled with their most characteristic tags "
                     "(lift over the global tag frequency).",
                     figures.group_sizes_figure(item_groups, top_tags=item_tags)))

    sections.append(("Teacher and HTD student, mapped", f"{projection.upper()} of all items "
                     "in the teacher space and in the student space (student aligned to the "
                     "teacher by Procrustes), coloured by HTD group.",
                     figures.projection_figure(teacher.items, htd.items, method=projection,
                                               groups=item_groups, random_state=seed)))

    sections.append(("Similarity heatmaps", f"Cosine similarities among {max_heatmap} items "
                     "sampled in proportion to group size and ordered by HTD group: teacher, "
                     "HTD student and their difference.",
                     figures.similarity_heatmaps(teacher.items, htd.items, groups=item_groups,
                                                 max_entities=max_heatmap,
                                                 random_state=seed)))

    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(dataset.n_items, size=min(5000, dataset.n_items),
                                replace=False))
    rows = []
    for name, run in students.items():
        measures = topology.discrepancy(teacher.items[sample], run.items[sample],
                                        labels=item_groups[sample], random_state=seed)
        rows.append({"method": name, **measures})
    table = pd.DataFrame(rows)
    sections.append(("Topology discrepancy", "How far each student's item topology is from "
                     "the teacher's, on 5,000 sampled items (htdviz.topology.discrepancy; "
                     "lower error / KL and higher overlap, Spearman and CKA are better).",
                     table))
    kl = table.melt(id_vars="method", value_vars=["kl_most_similar", "kl_random"],
                    var_name="mode", value_name="value")
    kl["mode"] = kl["mode"].str.replace("kl_", "")
    sections.append(("Topology preservation", "KL(teacher || student) of softmax similarity "
                     "distributions over each item's most similar and random neighbours "
                     "(REFERENCE.md §4c).", figures.preservation_bars(kl, value="value")))

    cap = capacity.capacity_table(teacher.users, teacher.items,
                                  dims=(10, 20, 50, 100, 200),
                                  runs={m: r for m, r in students.items()},
                                  user_labels=htd.user_groups, item_labels=item_groups,
                                  max_entities=5000, random_state=seed)
    sections.append(("Capacity gap", "The smallest topology error any d-dimensional "
                     "representation can reach on the full topology vs on HTD's hierarchical "
                     "target (rank-d bounds, htdviz.capacity), beside the students' errors.",
                     figures.capacity_curves(cap)))
    sections.append(("Capacity table", "", cap))
    return sections


def _write_html(path: Path, settings: str, sections) -> Path:
    parts, plotly_included = [], False
    for title, text, content in sections:
        parts.append(f"<h2>{html.escape(title)}</h2><p>{html.escape(text)}</p>")
        if isinstance(content, pd.DataFrame):
            parts.append(content.to_html(index=False, float_format=lambda v: f"{v:.4f}",
                                         na_rep="", border=0, classes="table"))
        else:
            parts.append(content.to_html(full_html=False,
                                         include_plotlyjs=not plotly_included))
            plotly_included = True
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>htdviz report</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}}
.table{{border-collapse:collapse}} .table td,.table th{{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}}</style>
</head><body>
<h1>htdviz: topology distillation on CiteULike</h1>
<p>{html.escape(settings)}</p>
{''.join(parts)}
</body></html>"""
    _write_atomically(path, lambda f: f.write(page.encode("utf-8")))
    return path
