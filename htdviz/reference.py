"""The paper's numbers (docs/method.md §10) as data, for tables and figures that compare.

CiteULike-t, teacher d_t = 200. docs/method.md §10.1, §10.2: reference split, BPR-MF, test
Recall@50 at epoch 100 from the authors' published logs (one run each; three seeds of
htdviz's d_s = 20 cells span .0017 to .0115 by method, docs/results.md "Seed spread").
docs/method.md §10.3, §10.4: the paper's own figures (another random split, early stopping)
and analyses.
"""
from __future__ import annotations

import pandas as pd

#: Test Recall@50 at epoch 100; index d_s, columns the methods.
RECALL50 = pd.DataFrame({"student": [.1788, .2276, .2976, .3152],
                         "ftd": [.2112, .2516, .3116, .3175],
                         "htd": [.2282, .2744, .3116, .3200]},
                        index=pd.Index([10, 20, 100, 200], name="dim"))
TEACHER_RECALL50 = .3123

#: Test Recall@50 at epochs 0, 10, ..., 100, d_s = 20 (and the teacher).
CURVES_D20 = {name: pd.Series(values, index=pd.Index(range(0, 101, 10), name="epoch"))
              for name, values in {
    "student": [.0374, .1255, .1508, .1700, .1857, .1941, .2077, .2129, .2171, .2226, .2276],
    "ftd": [.1295, .1774, .1874, .2094, .2255, .2353, .2407, .2441, .2500, .2502, .2516],
    "htd": [.1050, .1962, .2240, .2418, .2504, .2552, .2596, .2700, .2686, .2732, .2744],
    "teacher": [.0918, .2198, .2543, .2681, .2884, .2974, .3002, .3116, .3066, .3062, .3123],
}.items()}


#: docs/method.md §10.3, the paper's figure: test Recall@50 by base model; index phi.
FIGURE_RECALL50 = {
    model: pd.DataFrame(values, index=pd.Index([0.1, 0.5, 1.0], name="phi"))
    for model, values in {
        "bpr": {"student": [.2347, .2955, .3253], "de": [.2615, .3008, .3242],
                "ftd": [.2624, .3116, .3290], "htd": [.2803, .3152, .3244]},
        "lightgcn": {"student": [.2512, .3063, .3326], "de": [.2680, .3249, .3329],
                     "ftd": [.2542, .3303, .3356], "htd": [.2847, .3326, .3328]},
        "neumf": {"student": [.1970, .2648, .2993], "de": [.2089, .2732, .2994],
                  "ftd": [.2069, .2721, .2991], "htd": [.2148, .2815, .2999]},
    }.items()}

#: The same figure on Foursquare (BPR-MF; its own random split and early stopping).
FOURSQUARE_FIGURE_RECALL50 = pd.DataFrame(
    {"student": [.2164, .2400, .2732], "de": [.2322, .2628, .2721],
     "ftd": [.2262, .2667, .2740], "htd": [.2438, .2657, .2757]},
    index=pd.Index([0.1, 0.5, 1.0], name="phi"))

#: docs/method.md §10.3, CiteULike at phi = 0.1: the prediction-level RRD and its
#: combinations, test Recall@50 by base model.
RRD_RECALL50 = {"bpr": {"rrd": .2516, "de+rrd": .2654, "htd+rrd": .2842},
                "lightgcn": {"rrd": .2604, "de+rrd": .2696, "htd+rrd": .2877}}


def figure_recall(dataset: str, model: str, method: str, phi: float) -> float | None:
    """The paper's figure value (test Recall@50) of ``method`` on ``dataset``
    ("citeulike", "foursquare") with base ``model`` at capacity ``phi``; None where the
    paper has no such cell."""
    if dataset == "foursquare":
        table = FOURSQUARE_FIGURE_RECALL50 if model == "bpr" else None
    else:
        table = FIGURE_RECALL50.get(model)
    if table is not None and method in table.columns and phi in table.index:
        return float(table.loc[phi, method])
    if dataset != "foursquare" and phi == 0.1:
        return RRD_RECALL50.get(model, {}).get(method)
    return None

#: docs/method.md §10.3, BPR-MF, phi = 0.1: HTD's test Recall@50 by alpha (the paper's
#: sensitivity study; alpha = 0 is DE).
SENSITIVITY_ALPHA = {0.0: .2615, 0.1: .2793, 0.5: .2803, 0.9: .2801}

#: docs/method.md §10.4, BPR-MF, phi = 0.1: topology-preservation KL(teacher || student),
#: (most similar, random).
PRESERVATION_KL = {"student": (.0458, .0564), "de": (.0435, .0511), "htd": (.0393, .0405)}

#: docs/method.md §10.4, BPR-MF, phi = 0.1: tag retrieval Recall@10, (linear, non-linear
#: probe).
TAG_RECALL10 = {"teacher": (.312, None), "student": (.242, .270), "de": (.254, .281),
                "htd": (.264, .291)}


def paper_recall(method: str, dim: int) -> float | None:
    """The paper's test Recall@50 for ``method`` ("teacher", "student", "ftd", "htd") at
    student dim ``dim``; None where the paper has no such cell."""
    if method == "teacher":
        return TEACHER_RECALL50 if dim == 200 else None
    if method in RECALL50.columns and dim in RECALL50.index:
        return float(RECALL50.loc[dim, method])
    return None
