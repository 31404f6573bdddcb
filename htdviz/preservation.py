"""How well a student preserves its teacher's topology: discrepancy measures.

Kang et al., "Topology Distillation for Recommender System", KDD 2021 (docs/method.md §4, §9).
The topologies compared are those of :mod:`htdviz.topology` (pairwise cosines). The measures
are the distillation errors themselves (FTD's, HTD's, per group and per similarity band),
neighbourhood agreement (k-nearest-neighbour overlap, the paper's KL analysis) and
whole-matrix agreement (Spearman correlation, linear CKA).

Every public function takes plain arrays (numpy arrays or torch tensors) of shape
(n_entities, dim). Teacher and student rows must describe the same entities in the same
order; their dimensions may differ.

Conventions
-----------
- Inputs in float64 are computed in float64; every other dtype is computed in float32.
- A row of zeros has cosine 0 to every row, itself included (the convention of
  ``torch.nn.functional.normalize``).
- Error measures are *mean* squared differences per matrix entry, so that sets of
  different sizes compare; the paper's losses are the corresponding sums
  (sum = mean x number of entries).
- Large sets are processed in blocks of ``chunk_size`` rows: the N x N matrices of an
  entity set are never held in memory at once (see :func:`discrepancy` for the bound).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from ._arrays import group_means, row_blocks
from ._validation import check_int, check_labels, check_matrix
from .topology import group_members, unit_rows

#: Neighbourhood size of :func:`preservation_kl` (the paper does not publish its choice).
DEFAULT_N_NEIGHBORS = 10
#: Softmax temperature of :func:`preservation_kl` (the paper does not publish its choice).
DEFAULT_TEMPERATURE = 1.0
#: Pairs sampled for the Spearman correlation of :func:`discrepancy`.
DEFAULT_N_PAIRS = 1_000_000

#: Every measure :func:`discrepancy` can compute.
MEASURES = ("ftd_error", "htd", "knn_overlap", "spearman", "cka", "kl_most_similar",
            "kl_random")
#: Keys of :func:`discrepancy` whose values grow as the topologies agree (all others shrink).
HIGHER_IS_BETTER = ("knn_overlap", "spearman", "cka")


def _as_pair(teacher, student, teacher_name="teacher", student_name="student"):
    """Teacher and student as torch tensors of one compute dtype, same number of rows."""
    t = check_matrix(teacher, teacher_name)
    s = check_matrix(student, student_name)
    if t.shape[0] != s.shape[0]:
        raise ValueError(f"{teacher_name} and {student_name} must describe the same entities: "
                         f"got {t.shape[0]} and {s.shape[0]} rows")
    dtype = np.float64 if (t.dtype == np.float64 and s.dtype == np.float64) else np.float32
    return torch.from_numpy(t.astype(dtype, copy=False)), torch.from_numpy(s.astype(dtype,
                                                                                    copy=False))


def _rng(random_state) -> np.random.Generator:
    """A Generator as given, or a fresh one seeded by ``random_state``: each measure seeded
    by the same int draws the same sample as its standalone function."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


def _gram_sse(x: torch.Tensor, y: torch.Tensor) -> float:
    """||x x^T - y y^T||_F^2 for unit rows x (n, d_1), y (n, d_2), with no n x n matrix.

    ||A - B||^2 = ||A||^2 + ||B||^2 - 2 <A, B>; for A = x x^T and B = y y^T these are
    ||x^T x||^2, ||y^T y||^2 and ||x^T y||^2, (d x d) matrices: O(n (d_1 + d_2)^2) in all.
    Float64, so that the difference of large sums keeps its precision.
    """
    x, y = x.double(), y.double()
    value = (x.T @ x).square().sum() + (y.T @ y).square().sum() - 2 * (x.T @ y).square().sum()
    return max(float(value), 0.0)


def _row_sse(x_rows, y_rows, x, y) -> np.ndarray:
    """sum_b (<x_a, x_b> - <y_a, y_b>)^2 over all rows b of (x, y), for each row a of
    (x_rows, y_rows), through the d x d Gram matrices; shape (n_rows,)."""
    x_rows, y_rows, x, y = x_rows.double(), y_rows.double(), x.double(), y.double()
    value = ((x_rows @ (x.T @ x)) * x_rows).sum(1) + ((y_rows @ (y.T @ y)) * y_rows).sum(1) \
        - 2 * ((x_rows @ (x.T @ y)) * y_rows).sum(1)
    return value.clamp_min(0).numpy()


def _within_sse(t_unit, s_unit, labels: np.ndarray, n_groups: int) -> np.ndarray:
    """Squared error of each group's within-group block (diagonal included), shape (K,)."""
    return np.array([_gram_sse(t_unit[m], s_unit[m]) if m.size else 0.0
                     for m in map(torch.from_numpy, group_members(labels, n_groups))])


def _row_pass(t_unit, s_unit, k_teacher: int, k_student: int, labels=None,
              chunk_size: int = 1024, rows=None):
    """Stream the two N x N topologies in blocks of rows, never more than a block of each.

    Returns the teacher's and the student's ``k_teacher`` / ``k_student`` nearest
    neighbours of every entity, itself excluded (or None where k is 0), and, given labels,
    per row the squared error and the number of same-group pairs whose TEACHER cosine is
    > 0 (the reference implementation's quirk, docs/method.md §6.1), which only an
    elementwise mask can give. ``s_unit`` may be None when only the teacher is searched.
    Given ``rows`` (entity ids), only those rows are searched, each against all N
    entities, and the outputs have one row per id.
    """
    ids = torch.arange(t_unit.shape[0]) if rows is None else torch.from_numpy(rows)
    n = ids.numel()
    t_top = np.empty((n, k_teacher), dtype=np.int64) if k_teacher else None
    s_top = np.empty((n, k_student), dtype=np.int64) if k_student else None
    sse = np.empty(n) if labels is not None else None
    count = np.empty(n, dtype=np.int64) if labels is not None else None
    label_t = torch.from_numpy(labels) if labels is not None else None
    for start, stop in row_blocks(n, chunk_size):
        block = ids[start:stop]
        cos_t = t_unit[block] @ t_unit.T                              # (B, N)
        cos_s = s_unit[block] @ s_unit.T if (k_student or labels is not None) else None
        if labels is not None:
            kept = (label_t[block, None] == label_t[None, :]) & (cos_t > 0)       # (B, N)
            sse[start:stop] = ((cos_t - cos_s).square_() * kept).sum(
                1, dtype=torch.float64).numpy()
            count[start:stop] = kept.sum(1).numpy()
            del kept
        within = torch.arange(stop - start)
        if k_teacher:
            cos_t[within, block] = -torch.inf                         # not its own neighbour
            t_top[start:stop] = cos_t.topk(k_teacher, dim=1).indices.numpy()
        if k_student:
            cos_s[within, block] = -torch.inf
            s_top[start:stop] = cos_s.topk(k_student, dim=1).indices.numpy()
    return t_top, s_top, sse, count


def _group_level(t: torch.Tensor, s: torch.Tensor, t_unit, s_unit, labels: np.ndarray,
                 n_groups: int):
    """Squared-error sums of the two group-level designs over the non-empty groups.

    Returns (sse_pe per group (K,), sse_pp, number of non-empty groups).
    """
    present = np.bincount(labels, minlength=n_groups) > 0
    pt = torch.from_numpy(group_means(t.numpy(), labels, n_groups)[present]).to(t.dtype)
    ps = torch.from_numpy(group_means(s.numpy(), labels, n_groups)[present]).to(s.dtype)
    pt, ps = unit_rows(pt), unit_rows(ps)
    pe = ((pt @ t_unit.T) - (ps @ s_unit.T)).square().sum(1, dtype=torch.float64)  # (K',)
    pp = ((pt @ pt.T) - (ps @ ps.T)).square().sum(dtype=torch.float64)
    sse_pe = np.full(n_groups, np.nan)
    sse_pe[present] = pe.numpy()
    return sse_pe, float(pp), int(present.sum())


def _linear_cka(t_unit: torch.Tensor, s_unit: torch.Tensor) -> float:
    """Linear CKA (Kornblith et al., ICML 2019) of the unit-length representations.

    With unit rows, the linear kernels are the two cosine topologies, so this is the CKA of
    the topologies themselves: <HC_tH, HC_sH>_F / (||HC_tH||_F ||HC_sH||_F), computed from
    the d x d cross-covariances instead of the N x N matrices.
    """
    x = t_unit.double() - t_unit.double().mean(0)
    y = s_unit.double() - s_unit.double().mean(0)
    cross = (y.T @ x).square().sum()
    norm = torch.sqrt((x.T @ x).square().sum() * (y.T @ y).square().sum())
    return float(cross / norm) if norm > 0 else float("nan")


def _sample_pairs(n: int, n_pairs: int, rng: np.random.Generator):
    """All unordered pairs i < j when there are at most n_pairs of them, else a uniform
    sample of n_pairs ordered pairs with i != j."""
    if n * (n - 1) // 2 <= n_pairs:
        return np.triu_indices(n, k=1)
    i = rng.integers(n, size=n_pairs)
    j = rng.integers(n - 1, size=n_pairs)
    j += j >= i
    return i, j


def _pair_cosines(x_unit: torch.Tensor, i: np.ndarray, j: np.ndarray,
                  chunk: int = 65536) -> np.ndarray:
    out = np.empty(i.size)
    for start, stop in row_blocks(i.size, chunk):
        a = x_unit[torch.from_numpy(i[start:stop])]
        b = x_unit[torch.from_numpy(j[start:stop])]
        out[start:stop] = (a * b).sum(1).numpy()
    return out


def _spearman(t_unit, s_unit, n_pairs: int, rng: np.random.Generator) -> float:
    i, j = _sample_pairs(t_unit.shape[0], n_pairs, rng)
    rho = stats.spearmanr(_pair_cosines(t_unit, i, j), _pair_cosines(s_unit, i, j))[0]
    return float(rho)


def _random_neighbours(n: int, n_neighbors: int, rng: np.random.Generator) -> np.ndarray:
    """(n, n_neighbors) ids: per entity, distinct other entities drawn uniformly."""
    rows = np.arange(n)[:, None]
    if 4 * n_neighbors > n - 1:                   # dense sets: a random permutation per row
        keys = rng.random((n, n))
        keys[rows[:, 0], rows[:, 0]] = np.inf
        return np.argsort(keys, axis=1)[:, :n_neighbors]
    idx = rng.integers(n - 1, size=(n, n_neighbors))
    idx += idx >= rows                            # skip the entity itself
    while True:                                   # redraw the rare rows with a repeat
        ordered = np.sort(idx, axis=1)
        bad = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
        if not bad.size:
            return idx
        redraw = rng.integers(n - 1, size=(bad.size, n_neighbors))
        idx[bad] = redraw + (redraw >= bad[:, None])


def _kl_per_entity(t_unit, s_unit, neighbours: np.ndarray, temperature: float,
                   chunk_size: int, rows=None) -> np.ndarray:
    """KL(teacher || student) of the softmax over each entity's neighbour set, shape (N,);
    given ``rows`` (entity ids), ``neighbours`` holds their sets and the output one value
    per id."""
    ids = torch.arange(t_unit.shape[0]) if rows is None else torch.from_numpy(rows)
    n = ids.numel()
    out = np.empty(n)
    neighbours = torch.from_numpy(neighbours)
    for start, stop in row_blocks(n, chunk_size):
        nb, block = neighbours[start:stop], ids[start:stop]               # (B, n_nb), (B,)
        cos_t = torch.einsum("bd,bnd->bn", t_unit[block], t_unit[nb])     # (B, n_nb)
        cos_s = torch.einsum("bd,bnd->bn", s_unit[block], s_unit[nb])
        log_p = torch.log_softmax(cos_t.double() / temperature, dim=1)
        log_q = torch.log_softmax(cos_s.double() / temperature, dim=1)
        out[start:stop] = (log_p.exp() * (log_p - log_q)).sum(1).numpy()
    return out


def _check_kl_params(n: int, n_neighbors, temperature, mode=None):
    if n < 3:
        raise ValueError(f"the topology KL needs at least 3 entities, got {n}")
    n_neighbors = check_int(n_neighbors, "n_neighbors", low=2, high=n - 1)
    if not (isinstance(temperature, (int, float, np.floating)) and np.isfinite(temperature)
            and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if mode is not None and mode not in ("most_similar", "random"):
        raise ValueError(f"mode must be 'most_similar' or 'random', got {mode!r}")
    return n_neighbors, float(temperature)


def preservation_kl_per_entity(teacher, student, n_neighbors: int = DEFAULT_N_NEIGHBORS,
                               temperature: float = DEFAULT_TEMPERATURE,
                               mode: str = "most_similar", random_state=0,
                               chunk_size: int = 1024) -> np.ndarray:
    """Per-entity topology-preservation KL; :func:`preservation_kl` is its mean.

    Parameters and neighbour sets are those of :func:`preservation_kl`.

    Returns
    -------
    ndarray of shape (n_entities,)
    """
    t, s = _as_pair(teacher, student)
    n_neighbors, temperature = _check_kl_params(t.shape[0], n_neighbors, temperature, mode)
    chunk_size = check_int(chunk_size, "chunk_size")
    t_unit, s_unit = unit_rows(t), unit_rows(s)
    if mode == "most_similar":
        neighbours = _row_pass(t_unit, None, n_neighbors, 0, chunk_size=chunk_size)[0]
    else:
        neighbours = _random_neighbours(t.shape[0], n_neighbors, _rng(random_state))
    return _kl_per_entity(t_unit, s_unit, neighbours, temperature, chunk_size)


def preservation_kl(teacher, student, n_neighbors: int = DEFAULT_N_NEIGHBORS,
                    temperature: float = DEFAULT_TEMPERATURE, mode: str = "most_similar",
                    random_state=0, chunk_size: int = 1024) -> float:
    """Topology preservation, the paper's KL analysis (docs/method.md §9). Lower is better.

    For each entity e take a neighbour set N(e): its ``n_neighbors`` most similar other
    entities in the TEACHER space (``mode="most_similar"``), or ``n_neighbors`` distinct
    other entities drawn uniformly at random (``mode="random"``). Turn e's cosine
    similarities to N(e) into p_e = softmax(cos_t(e, N(e)) / temperature) in the teacher
    space and q_e likewise in the student space; return the mean over entities of
    KL(p_e || q_e).

    Parameters
    ----------
    teacher : array or tensor of shape (n_entities, d_t)
    student : array or tensor of shape (n_entities, d_s)
    n_neighbors : int, default 10
        Size of each neighbour set, in [2, n_entities - 1].
    temperature : float, default 1.0
        Softmax temperature. The default is the literal reading of the paper (a softmax of
        the cosine similarities themselves). Cosines lie in [-1, 1], so at 1 the
        distributions over close neighbours are flat and the KLs small (BPR on CiteULike,
        items, d_t = 200 vs d_s = 20 after 30 epochs: 0.0025 most-similar, 0.033 random);
        a lower temperature sharpens them (0.2: 0.053 / 0.47). The paper publishes neither
        value; these defaults are htdviz's.
    mode : {"most_similar", "random"}, default "most_similar"
    random_state : int or numpy Generator, default 0
        Seeds the random neighbour sets (unused for "most_similar").
    chunk_size : int, default 1024
        Rows per block when searching the teacher's nearest neighbours.

    Returns
    -------
    float
        0 when the student's topology equals the teacher's on every neighbour set.
    """
    return float(preservation_kl_per_entity(teacher, student, n_neighbors, temperature, mode,
                                            random_state, chunk_size).mean())


def discrepancy(teacher, student, labels=None, k: int = 10,
                n_neighbors: int = DEFAULT_N_NEIGHBORS,
                temperature: float = DEFAULT_TEMPERATURE, n_pairs: int = DEFAULT_N_PAIRS,
                positive_pairs_only: bool = False, measures=None, random_state=0,
                chunk_size: int = 1024, max_rows: int | None = None) -> dict[str, float]:
    """How far a student's topology is from its teacher's, by several measures.

    Parameters
    ----------
    teacher : array or tensor of shape (n_entities, d_t)
    student : array or tensor of shape (n_entities, d_s)
        The same entities in the same order (users, items, or both stacked, see
        :func:`stack_entities`).
    labels : int array of shape (n_entities,), optional
        Group of each entity; needed for the HTD measures.
    k : int, default 10
        Neighbourhood of the k-nearest-neighbour overlap, in [1, n_entities - 1].
    n_neighbors, temperature
        Of the topology-preservation KL, see :func:`preservation_kl`.
    n_pairs : int, default 1,000,000
        Pairs for the Spearman correlation: all unordered pairs when there are at most
        this many, else a seeded uniform sample of this many.
    positive_pairs_only : bool, default False
        Count only same-group pairs whose teacher cosine is > 0 in the entity-level error
        (the reference implementation's quirk, docs/method.md §6.1); the paper keeps all.
    measures : iterable of str, optional
        A subset of :data:`MEASURES`; default all (the HTD measures only with labels).
        The nearest-neighbour searches ("knn_overlap", "kl_most_similar") cost the most.
    random_state : int or numpy Generator, default 0
        Seeds the Spearman pair sample and the random neighbour sets of "kl_random"
        (an int seeds each afresh, so "kl_random" equals :func:`preservation_kl` with
        ``mode="random"`` and the same ``random_state``).
    chunk_size : int, default 1024
        Rows of the two topologies computed at a time.
    max_rows : int, optional
        The sampled mode, for large sets: the measures that need each entity's nearest
        neighbours ("knn_overlap", "kl_most_similar", and the entity-level error with
        ``positive_pairs_only``) are computed for a seeded uniform sample of this many
        entities (seeded by ``random_state``), each still ranked against ALL entities, so
        every sampled value is exact and the mean an unbiased estimate of the full one.
        All other measures stay exact over the whole set. Cost: O(max_rows x n_entities)
        instead of O(n_entities^2). Default: every entity (exact). The estimates' error
        against the exact values on CiteULike is in docs/benchmarks.md ("Analysis of large
        sets").

    Returns
    -------
    dict of str to float
        ``ftd_error``: mean over all ordered pairs (a, b), diagonal included, of
        (cos_t(a, b) - cos_s(a, b))^2: the FTD loss (docs/method.md §4) per entry, over the
        whole set. With labels: ``htd_entity_error``, the same mean over same-group pairs
        (diagonal included; see ``positive_pairs_only``); ``htd_group_error``, mean over non-empty
        groups g and entities e of (cos(Pt_g, t_e) - cos(Ps_g, s_e))^2 (Group(P,e), the
        design of the reference numbers); ``htd_prototype_error``, mean over pairs of
        non-empty groups of (cos(Pt_g, Pt_h) - cos(Ps_g, Ps_h))^2 (Group(P,P)); and
        ``htd_error``, the mean over all entries of the hierarchical target (same-group
        pairs and prototype-entity pairs together). Prototypes are means over the whole
        set (:func:`prototypes`), not over a batch as in training.
        ``knn_overlap@{k}``: mean over entities of |kNN_t ∩ kNN_s| / k, self excluded.
        ``spearman``: rank correlation of teacher and student cosines over the pairs
        (see ``n_pairs``). ``cka``: linear CKA of the unit-length representations, i.e.
        of the two cosine topologies. ``kl_most_similar``, ``kl_random``: see
        :func:`preservation_kl`. :data:`HIGHER_IS_BETTER` lists the keys that reach their
        best (1) when the topologies agree; all others reach 0.

    Notes
    -----
    The squared errors need no N x N matrix: ||C_t - C_s||_F^2 = ||T^T T||^2 +
    ||S^T S||^2 - 2 ||T^T S||^2 for the unit-length rows T, S, so "ftd_error" and (without
    ``positive_pairs_only``) "htd" cost O(n_entities (d_t + d_s)^2), exactly. The neighbour
    searches ("knn_overlap", "kl_most_similar") and the ``positive_pairs_only`` mask
    stream both topologies in blocks of ``chunk_size`` rows.

    Memory: the unit-length inputs and their float64 copies (``n_entities * (d_t + d_s)``
    values each), a few ``(n_entities, k)`` index arrays, and for the streamed measures
    one ``chunk_size x n_entities`` block of each topology in float32: 8 bytes per block
    entry (two cosine blocks), up to about 17 with ``positive_pairs_only`` (their squared
    difference and a mask besides), i.e. about 200 MB (430 MB) for 25,181 items at the
    default chunk size; twice as much per entry for float64 inputs. No
    ``n_entities x n_entities`` matrix is ever formed. Time and peak memory on CiteULike's
    items: docs/benchmarks.md ("Analysis", benchmarks/bench_analysis.py).
    """
    t, s = _as_pair(teacher, student)
    n = t.shape[0]
    if n < 3:
        raise ValueError(f"teacher and student need at least 3 entities, got {n}")
    wanted = _wanted_measures(measures, labels is not None)
    if labels is not None:
        labels, n_groups = check_labels(labels, n)
    k = check_int(k, "k", high=n - 1)
    n_neighbors, temperature = _check_kl_params(n, n_neighbors, temperature)
    n_pairs = check_int(n_pairs, "n_pairs")
    chunk_size = check_int(chunk_size, "chunk_size")
    rows = None
    if max_rows is not None and check_int(max_rows, "max_rows") < n:
        rows = np.sort(_rng(random_state).choice(n, max_rows, replace=False))
    t_unit, s_unit = unit_rows(t), unit_rows(s)

    out: dict[str, float] = {}
    if "ftd_error" in wanted:
        out["ftd_error"] = _gram_sse(t_unit, s_unit) / n ** 2
    k_teacher = max(k if "knn_overlap" in wanted else 0,
                    n_neighbors if "kl_most_similar" in wanted else 0)
    k_student = k if "knn_overlap" in wanted else 0
    quirk_labels = labels if ("htd" in wanted and positive_pairs_only) else None
    if k_teacher or quirk_labels is not None:
        t_top, s_top, quirk_sse, quirk_count = _row_pass(t_unit, s_unit, k_teacher, k_student,
                                                         quirk_labels, chunk_size, rows)
    if "htd" in wanted:
        if positive_pairs_only:            # sampled rows stand for all: scale both sums
            scale = 1.0 if rows is None else n / rows.size
            entity_sse, entity_pairs = scale * quirk_sse.sum(), scale * quirk_count.sum()
        else:
            entity_sse = float(_within_sse(t_unit, s_unit, labels, n_groups).sum())
            entity_pairs = int(np.sum(np.bincount(labels) ** 2))
        out.update(_htd_errors(t, s, t_unit, s_unit, labels, n_groups, entity_sse,
                               entity_pairs))
    if "knn_overlap" in wanted:
        out[f"knn_overlap@{k}"] = _knn_overlap(t_top[:, :k], s_top)
    if "spearman" in wanted:
        out["spearman"] = _spearman(t_unit, s_unit, n_pairs, _rng(random_state))
    if "cka" in wanted:
        out["cka"] = _linear_cka(t_unit, s_unit)
    if "kl_most_similar" in wanted:
        out["kl_most_similar"] = float(_kl_per_entity(
            t_unit, s_unit, np.ascontiguousarray(t_top[:, :n_neighbors]),
            temperature, chunk_size, rows).mean())
    if "kl_random" in wanted:
        out["kl_random"] = float(_kl_per_entity(
            t_unit, s_unit, _random_neighbours(n, n_neighbors, _rng(random_state)), temperature,
            chunk_size).mean())
    return out


def _wanted_measures(measures, have_labels: bool) -> set:
    """The measures asked for (default: all, the HTD ones only with labels), checked."""
    if measures is None:
        return set(MEASURES) - (set() if have_labels else {"htd"})
    wanted = set([measures] if isinstance(measures, str) else measures)
    unknown = wanted - set(MEASURES)
    if unknown:
        raise ValueError(f"measures must be a subset of {MEASURES}, got unknown "
                         f"{sorted(unknown)}")
    if "htd" in wanted and not have_labels:
        raise ValueError("measures includes 'htd', which needs labels")
    return wanted


def _htd_errors(t, s, t_unit, s_unit, labels, n_groups, entity_sse, entity_pairs) -> dict:
    """The HTD measures of :func:`discrepancy` from the entity level's squared errors."""
    n = t.shape[0]
    sse_pe, sse_pp, n_present = _group_level(t, s, t_unit, s_unit, labels, n_groups)
    return {"htd_entity_error": entity_sse / entity_pairs if entity_pairs else float("nan"),
            "htd_group_error": float(np.nansum(sse_pe) / (n_present * n)),
            "htd_prototype_error": sse_pp / n_present ** 2,
            "htd_error": (entity_sse + float(np.nansum(sse_pe))) / (entity_pairs +
                                                                   n_present * n)}


def _knn_overlap(teacher_top: np.ndarray, student_top: np.ndarray) -> float:
    """Mean over rows of |teacher_top[i] ∩ student_top[i]| / k (rows hold distinct ids)."""
    k = teacher_top.shape[1]
    both = np.sort(np.concatenate([teacher_top, student_top], axis=1), axis=1)
    shared = (both[:, 1:] == both[:, :-1]).sum(1)
    return float(shared.mean() / k)


def knn_overlap(teacher, student, k: int = 10, chunk_size: int = 1024) -> float:
    """Mean over entities of the share of its k teacher-nearest neighbours that are also
    among its k student-nearest neighbours (cosine; the entity itself excluded).

    Parameters
    ----------
    teacher : array or tensor of shape (n_entities, d_t)
    student : array or tensor of shape (n_entities, d_s)
    k : int, default 10
        In [1, n_entities - 1].
    chunk_size : int, default 1024

    Returns
    -------
    float in [0, 1]
        1 when every neighbourhood is preserved; about k / (n_entities - 1) by chance.
    """
    return discrepancy(teacher, student, k=k, measures=["knn_overlap"],
                       chunk_size=chunk_size)[f"knn_overlap@{k}"]


def group_errors(teacher, student, labels, n_groups: int | None = None,
                 positive_pairs_only: bool = False, chunk_size: int = 1024):
    """The topology errors of :func:`discrepancy`, per group.

    Parameters
    ----------
    teacher : array or tensor of shape (n_entities, d_t)
    student : array or tensor of shape (n_entities, d_s)
    labels : int array of shape (n_entities,)
    n_groups : int, optional
        Default ``labels.max() + 1``.
    positive_pairs_only : bool, default False
        See :func:`discrepancy`.
    chunk_size : int, default 1024

    Returns
    -------
    pandas.DataFrame
        One row per group 0..n_groups-1: ``group``, ``size``, ``entity_error`` (mean over
        same-group pairs of the group), ``group_error`` (mean over all entities e of the
        group's prototype-entity squared difference), ``ftd_error`` (mean over the group's
        rows of the full topology, all columns). Empty groups have size 0 and NaN errors.
    """
    import pandas as pd

    t, s = _as_pair(teacher, student)
    n = t.shape[0]
    labels, n_groups = check_labels(labels, n, n_groups=n_groups)
    chunk_size = check_int(chunk_size, "chunk_size")
    t_unit, s_unit = unit_rows(t), unit_rows(s)
    size = np.bincount(labels, minlength=n_groups)
    if positive_pairs_only:
        _, _, row_sse, row_count = _row_pass(t_unit, s_unit, 0, 0, labels, chunk_size)
        within_sse = np.bincount(labels, weights=row_sse, minlength=n_groups)
        within_n = np.bincount(labels, weights=row_count, minlength=n_groups)
    else:
        within_sse = _within_sse(t_unit, s_unit, labels, n_groups)
        within_n = size.astype(np.float64) ** 2
    full_sse = np.bincount(labels, weights=_row_sse(t_unit, s_unit, t_unit, s_unit),
                           minlength=n_groups)
    sse_pe, _, _ = _group_level(t, s, t_unit, s_unit, labels, n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame({
            "group": np.arange(n_groups), "size": size,
            "entity_error": np.where(within_n > 0, within_sse / within_n, np.nan),
            "group_error": sse_pe / n,
            "ftd_error": np.where(size > 0, full_sse / (size * n), np.nan),
        })


# --------------------------------------------------------------------------------------
# Where the error lives: by teacher-similarity band
# --------------------------------------------------------------------------------------

#: Nearest-neighbour rank bands of :func:`band_errors`: ranks 1-10, 11-100, 101-1000, rest.
DEFAULT_BANDS = (10, 100, 1000)


def band_errors(teacher, student, teacher_cols=None, student_cols=None,
                bands=DEFAULT_BANDS, rows=None, chunk_size: int = 1024):
    """The squared cosine error, split by how near each pair is in the teacher's topology.

    For every row entity a, the column entities are ranked by their teacher cosine to a
    (rank 1 = the nearest); the pairs (a, b) are then grouped into rank bands (by default
    ranks 1-10, 11-100, 101-1000 and the rest) and the error (cos_t(a, b) - cos_s(a, b))^2
    is summed per band. It says whether a student keeps an entity's near relations and
    gives up the far ones, or the reverse: the FTD loss weighs every pair alike, and almost
    all pairs are far.

    Parameters
    ----------
    teacher : array or tensor of shape (n_entities, d_t)
    student : array or tensor of shape (n_entities, d_s)
        The row entities (e.g. users) in the two spaces.
    teacher_cols : array or tensor of shape (n_cols, d_t), optional
    student_cols : array or tensor of shape (n_cols, d_s), optional
        The column entities (e.g. items, for user-item pairs); give both or neither.
        Default: the row entities themselves (user-user or item-item pairs), each entity's
        pair with itself left out.
    bands : sequence of int, default (10, 100, 1000)
        Increasing upper ranks of the near bands; the last band holds every rank beyond.
        Bounds at or above the number of columns are dropped.
    rows : int array, optional
        Rank the neighbours of these row entities only (e.g. a seeded sample); the columns
        stay complete, so the ranks are exact. Default: every row entity.
    chunk_size : int, default 1024
        Rows ranked at a time.

    Returns
    -------
    pandas.DataFrame
        One row per band, nearest first: ``band`` ("1-10", ..., "1001-25180"),
        ``rank_from``, ``rank_to``, ``n_pairs``, ``mean_sq_error`` (mean of the squared
        difference over the band's pairs), ``error_share`` (the band's share of the total
        squared error), ``teacher_cos`` and ``student_cos`` (mean cosines over the band).

    Notes
    -----
    Only the near bands need ranks: per block of rows, one ``topk(max(bands))`` of the
    teacher cosines; the last band is the row's total minus the near bands. Memory: a
    ``chunk_size x n_cols`` block of each topology in float32 (about 200 MB for 25,181
    columns at the default chunk size) and the top-k indices of one block.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.random.default_rng(0).normal(size=(50, 8))
    >>> band_errors(t, t, bands=(5,))["mean_sq_error"].tolist()
    [0.0, 0.0]
    """
    import pandas as pd

    t, s, tc, sc, rows, edges = _band_inputs(teacher, student, teacher_cols, student_cols,
                                             bands, rows)
    square = teacher_cols is None
    chunk_size = check_int(chunk_size, "chunk_size")
    n_near, n_bands = edges[-2], len(edges) - 1
    t_unit, s_unit = unit_rows(t), unit_rows(s)
    tc_unit, sc_unit = (t_unit, s_unit) if square else (unit_rows(tc), unit_rows(sc))
    rows_t = torch.from_numpy(rows.astype(np.int64))

    sums = np.zeros((3, n_bands))              # squared error, teacher cosine, student cosine
    for start, stop in row_blocks(rows.size, chunk_size):
        ids = rows_t[start:stop]
        cos_t = t_unit[ids] @ tc_unit.T                                   # (B, M)
        cos_s = s_unit[ids] @ sc_unit.T
        if square:                                          # the pair (a, a) is not a pair
            block = torch.arange(stop - start)
            cos_t[block, ids] = torch.nan
            cos_s[block, ids] = torch.nan
        err = (cos_t - cos_s).square()
        totals = [x.nansum(dtype=torch.float64) for x in (err, cos_t, cos_s)]
        near = [0.0, 0.0, 0.0]
        if n_near:
            top = cos_t.nan_to_num(nan=-torch.inf).topk(n_near, dim=1).indices  # (B, near)
            gathered = [x.gather(1, top) for x in (err, cos_t, cos_s)]
            for b in range(n_bands - 1):
                for m, x in enumerate(gathered):
                    sums[m, b] += float(x[:, edges[b]:edges[b + 1]].sum(dtype=torch.float64))
            near = [float(x.sum(dtype=torch.float64)) for x in gathered]
        for m in range(3):
            sums[m, -1] += float(totals[m]) - near[m]
    n_pairs = np.diff(edges) * rows.size
    sse = np.maximum(sums[0], 0.0)
    return pd.DataFrame({
        "band": [f"{lo + 1}-{hi}" for lo, hi in zip(edges[:-1], edges[1:])],
        "rank_from": np.array(edges[:-1]) + 1, "rank_to": edges[1:], "n_pairs": n_pairs,
        "mean_sq_error": sse / n_pairs,
        "error_share": sse / sse.sum() if sse.sum() > 0 else np.zeros(n_bands),
        "teacher_cos": sums[1] / n_pairs, "student_cos": sums[2] / n_pairs,
    })


def _band_inputs(teacher, student, teacher_cols, student_cols, bands, rows):
    """The checked arguments of :func:`band_errors`: the row and column entities in both
    spaces (tensors), the row ids, and the band edges [0, b_1, ..., n_cols]."""
    if (teacher_cols is None) != (student_cols is None):
        raise ValueError("give both teacher_cols and student_cols, or neither")
    square = teacher_cols is None
    t, s = _as_pair(teacher, student)
    if square:
        tc, sc = t, s
    else:
        tc, sc = _as_pair(teacher_cols, student_cols, "teacher_cols", "student_cols")
        if tc.shape[1] != t.shape[1] or sc.shape[1] != s.shape[1]:
            raise ValueError(f"teacher_cols / student_cols must have the dims of teacher / "
                             f"student ({t.shape[1]}, {s.shape[1]}), got {tc.shape[1]}, "
                             f"{sc.shape[1]}")
        tc, sc = tc.to(t.dtype), sc.to(s.dtype)
    if rows is None:
        rows = np.arange(t.shape[0])
    else:
        rows = np.asarray(rows)
        if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer) or rows.size == 0 or \
                rows.min() < 0 or rows.max() >= t.shape[0]:
            raise ValueError(f"rows must be a non-empty 1-D array of ints in [0, "
                             f"{t.shape[0]}), got {rows!r:.80}")
    n_cols = tc.shape[0] - (1 if square else 0)
    if n_cols < 1:
        raise ValueError("band_errors needs at least two entities (or one column)")
    bands = [int(b) for b in np.atleast_1d(bands)]
    if not bands or bands[0] < 1 or sorted(set(bands)) != bands:
        raise ValueError(f"bands must be increasing positive ranks, got {bands}")
    edges = [0] + [b for b in bands if b < n_cols] + [n_cols]
    return t, s, tc, sc, rows, edges


def band_error_table(teacher_users, teacher_items, student_users, student_items,
                     bands=DEFAULT_BANDS, max_rows: int | None = None, random_state=0,
                     chunk_size: int = 1024):
    """:func:`band_errors` for user-user, item-item and user-item pairs, in one table.

    Parameters
    ----------
    teacher_users : array or tensor of shape (n_users, d_t)
    teacher_items : array or tensor of shape (n_items, d_t)
    student_users : array or tensor of shape (n_users, d_s)
    student_items : array or tensor of shape (n_items, d_s)
    bands : sequence of int, default (10, 100, 1000)
    max_rows : int, optional
        Rank the neighbours of a seeded uniform sample of at most this many row entities
        (users; items for item-item pairs); the columns stay complete, so the ranks are
        exact. Default: every entity.
    random_state : int, default 0
    chunk_size : int, default 1024

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`band_errors` after a first column ``pairs``
        ("user-user", "item-item", "user-item"; the user-item bands rank each user's
        items by teacher cosine).
    """
    import pandas as pd

    if max_rows is not None:
        max_rows = check_int(max_rows, "max_rows")

    def sample(n):
        if max_rows is None or max_rows >= n:
            return None
        return np.sort(_rng(random_state).choice(n, max_rows, replace=False))

    tu, ti = check_matrix(teacher_users, "teacher_users"), check_matrix(teacher_items,
                                                                   "teacher_items")
    su, si = check_matrix(student_users, "student_users"), check_matrix(student_items,
                                                                   "student_items")
    users, items = sample(tu.shape[0]), sample(ti.shape[0])
    parts = []
    for pairs, args, rows in (("user-user", (tu, su), users), ("item-item", (ti, si), items),
                              ("user-item", (tu, su, ti, si), users)):
        table = band_errors(*args, bands=bands, rows=rows, chunk_size=chunk_size)
        table.insert(0, "pairs", pairs)
        parts.append(table)
    return pd.concat(parts, ignore_index=True)
