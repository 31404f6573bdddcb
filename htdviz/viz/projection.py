"""2-D maps of representations: UMAP or PCA, teacher and student aligned, cached on disk.

Topology distillation is about cosine similarities (docs/method.md §3), so every projection
here starts from unit-length rows: the map shows the geometry the distillation losses see,
not the norms of the embeddings.

- :func:`project` maps one set of representations. UMAP (McInnes et al. 2018, umap-learn)
  runs on an exact cosine k-nearest-neighbour graph computed here by blocked matrix
  products (deterministic, and much faster on a few cores than UMAP's own seeded,
  single-threaded approximate search); PCA is the fast fallback.
- :func:`project_pair` maps a teacher and a student and aligns the student's map to the
  teacher's, so that an entity sits in about the same place in both panels: by
  Procrustes (:func:`procrustes_align`: rotation, reflection, scale and shift, the shape
  is untouched), or by umap-learn's ``AlignedUMAP``, which lays both out jointly.
- :func:`neighbours_kept` says where a map can be trusted: the share of each entity's k
  nearest neighbours in the representation space (cosine) that stay among its k nearest
  on the map. A 2-D map cannot keep every neighbourhood; sizes of clusters and distances
  between them are not preserved either, so a map is read for who sits next to whom, and
  only where this share is high.
- Maps are cached as ``.npz`` files keyed by a hash of the input bytes and every
  parameter, written atomically (temporary file, then ``os.replace``), read without
  pickle. The cache folder is ``cache_dir``, else ``$HTDVIZ_CACHE_DIR/projections``, else
  ``<data folder>/cache/projections`` (the data folder of
  :func:`htdviz.published.default_data_dir`).

Only NumPy is needed to import this module; umap-learn is imported when a UMAP map is
computed (``pip install "htdviz[viz]"``).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .._arrays import unit_rows
from .._io import write_atomically
from .._validation import check_choice, check_int, check_matrix
from ._optional import require

METHODS = ("umap", "pca")
ALIGNMENTS = ("procrustes", "aligned_umap", "none")
_CACHE_VERSION = 1          # bump when the computation changes, so old files are not reused
#: project_pair computes two UMAP maps at once from this many entities on (below, starting
#: a worker process costs more than it saves).
PARALLEL_MIN_ENTITIES = 5000


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------

def default_cache_dir() -> Path:
    """``$HTDVIZ_CACHE_DIR/projections``, else ``<data folder>/cache/projections``."""
    if os.environ.get("HTDVIZ_CACHE_DIR"):
        return Path(os.environ["HTDVIZ_CACHE_DIR"]) / "projections"
    from ..published import default_data_dir

    return default_data_dir() / "cache" / "projections"


def project(repr, method: str = "umap", n_components: int = 2, n_neighbors: int = 15,
            min_dist: float = 0.1, n_epochs: int | None = None, init: str = "pca",
            random_state: int = 0, cache_dir: str | Path | None | bool = None) -> np.ndarray:
    """A low-dimensional map of one set of representations.

    Parameters
    ----------
    repr : array or tensor of shape (n_entities, dim)
        Rows are scaled to unit length first (cosine geometry).
    method : {"umap", "pca"}, default "umap"
    n_components : int, default 2
    n_neighbors : int, default 15
        UMAP's neighbourhood size, in [2, n_entities - 1].
    min_dist : float, default 0.1
        UMAP's minimum distance between mapped points.
    n_epochs : int, optional
        UMAP's optimisation epochs; default umap-learn's (200 for more than 10,000
        entities, else 500).
    init : {"pca", "spectral"}, default "pca"
        UMAP's starting layout. "spectral" (umap-learn's default) embeds the neighbour
        graph's Laplacian eigenvectors; on the 25,181 CiteULike items that costs 5 to 13 s
        per map on two cores, and a disconnected graph gets a patchwork start. "pca"
        starts from the principal axes of the unit rows (:func:`pca`): fast, and teacher
        and student start from comparable layouts.
    random_state : int, default 0
        Seeds UMAP (its optimisation then runs on one thread); equal seeds give equal maps.
    cache_dir : str, Path, None or False, default None
        Where maps are cached; None: :func:`default_cache_dir`; False: no cache.

    Returns
    -------
    float32 ndarray of shape (n_entities, n_components)
    """
    x = as_points(repr, "repr")
    method = check_choice(method, METHODS, "method")
    params = _check_params(x.shape[0], method, n_components, n_neighbors, min_dist, n_epochs,
                           init, random_state)
    return _cached(lambda: _compute(x, method, params), [x], {"method": method, **params},
                   cache_dir, n_outputs=1)[0]


def project_pair(teacher, student, method: str = "umap", align: str = "procrustes",
                 n_components: int = 2, n_neighbors: int = 15, min_dist: float = 0.1,
                 n_epochs: int | None = None, init: str = "pca", random_state: int = 0,
                 cache_dir: str | Path | None | bool = None,
                 parallel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Maps of a teacher and a student, the student's aligned to the teacher's.

    Parameters
    ----------
    teacher : array or tensor of shape (n_entities, d_t)
    student : array or tensor of shape (n_entities, d_s)
        The same entities, in the same order.
    method : {"umap", "pca"}, default "umap"
    align : {"procrustes", "aligned_umap", "none"}, default "procrustes"
        "procrustes": each map is made on its own (and cached on its own, so one teacher
        map serves every student), then the student's is rotated, reflected, scaled and
        shifted onto the teacher's. "aligned_umap": umap-learn's AlignedUMAP lays both
        out jointly, with each entity tied to itself (slower; UMAP only). "none": as made.
    n_components, n_neighbors, min_dist, n_epochs, init, random_state, cache_dir
        See :func:`project`.
    parallel : bool, default True
        When both UMAP maps must be computed (not cached) for at least
        :data:`PARALLEL_MIN_ENTITIES` entities, compute the teacher's in a worker process
        (a fresh Python) while this one computes the student's. Seeded UMAP runs on
        one thread, so on two or more cores this nearly halves the time; the maps are the
        same either way. Falls back to one process if a worker cannot be started.

    Returns
    -------
    teacher_xy, student_xy : float32 ndarrays of shape (n_entities, n_components)
    """
    t = as_points(teacher, "teacher")
    s = as_points(student, "student")
    if t.shape[0] != s.shape[0]:
        raise ValueError(f"teacher and student must describe the same entities: got "
                         f"{t.shape[0]} and {s.shape[0]} rows")
    method = check_choice(method, METHODS, "method")
    align = check_choice(align, ALIGNMENTS, "align")
    params = _check_params(t.shape[0], method, n_components, n_neighbors, min_dist, n_epochs,
                           init, random_state)
    if align == "aligned_umap":
        if method != "umap":
            raise ValueError(f"align='aligned_umap' needs method='umap', got {method!r}")
        return tuple(_cached(lambda: _aligned_umap(t, s, params), [t, s],
                             {"method": "aligned_umap", **params}, cache_dir, n_outputs=2))
    kwargs = dict(method=method, cache_dir=cache_dir, **params)
    if parallel and method == "umap" and (os.cpu_count() or 1) > 1 and \
            t.shape[0] >= PARALLEL_MIN_ENTITIES and \
            not _is_cached(t, method, params, cache_dir) and \
            not _is_cached(s, method, params, cache_dir):
        teacher_xy, student_xy = _project_two_at_once(t, s, kwargs)
    else:
        teacher_xy, student_xy = project(t, **kwargs), project(s, **kwargs)
    if align == "procrustes":
        student_xy = procrustes_align(student_xy, teacher_xy)[0]
    return teacher_xy, student_xy


def neighbours_kept(repr, xy, k: int = 10, rows=None, chunk_size: int = 2048) -> np.ndarray:
    """The share of each entity's k nearest neighbours that its map keeps.

    For entity i: N_k(i), its k nearest other entities by cosine similarity of ``repr``
    (the geometry the maps start from), and M_k(i), its k nearest other entities by
    Euclidean distance on the map ``xy``; the result is |N_k(i) ∩ M_k(i)| / k. An
    isometry of the unit rows keeps every neighbour (1.0); a map unrelated to ``repr``
    keeps about k / (n - 1). Exact: every pair's cosine is compared (in blocks of
    ``chunk_size`` rows), the map's neighbours come from a k-d tree; tied neighbours
    are taken in either's own order.

    Parameters
    ----------
    repr : array or tensor of shape (n_entities, dim)
    xy : array of shape (n_entities, n_components)
        A map of the same entities, in the same order (:func:`project`,
        :func:`project_pair`; an aligned map gives the same answer as the unaligned one).
    k : int, default 10
        Neighbours per entity, in [1, n_entities - 1].
    rows : int array, optional
        Only these entities' shares (each still exact: its neighbours are searched among
        all entities); default every entity. A few thousand sampled rows estimate the
        mean share of a large map in a fraction of the time.

    Returns
    -------
    float64 ndarray of shape (n_entities,) (or of ``rows``), values in {0, 1/k, ..., 1}
    """
    x = as_points(repr, "repr")
    y = as_points(xy, "xy")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"repr and xy must hold the same entities: got {x.shape[0]} and "
                         f"{y.shape[0]} rows")
    k = check_int(k, "k", 1, x.shape[0] - 1)
    if rows is not None:
        rows = np.asarray(rows)
        if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer) or \
                (rows.size and (rows.min() < 0 or rows.max() >= x.shape[0])):
            raise ValueError(f"rows must be a 1-D array of entity indices in [0, "
                             f"{x.shape[0] - 1}]")
    original = _exact_knn(unit_rows(x), k + 1, chunk_size, rows)[0][:, 1:]
    mapped = _nearest_on_map(y.astype(np.float64), k, rows)
    # each row of both lists holds distinct ids: the shared ones appear twice when joined
    joined = np.sort(np.concatenate([original, mapped], axis=1), axis=1)
    return (joined[:, 1:] == joined[:, :-1]).sum(1) / k


def trust_sentence(kept_teacher, kept_student=None, entity: str = "items",
                   k: int = 10) -> str:
    """One sentence on how much of the neighbourhoods the maps keep (:func:`neighbours_kept`)."""
    singular = {"items": "item", "users": "user"}.get(entity, entity)
    said = f"The teacher's map keeps {np.mean(kept_teacher):.0%}"
    if kept_student is not None:
        said += f" and the student's {np.mean(kept_student):.0%}"
    return (f"{said} of each {singular}'s {k} nearest neighbours; read a map for who sits "
            f"next to whom where points are dark, not where they are grey (they lost most "
            f"of theirs), and never for cluster sizes or the distances between clusters.")


def procrustes_align(source, target, scale: bool = True) -> tuple[np.ndarray, float]:
    """Move ``source`` onto ``target`` by rotation, reflection, scaling and translation.

    Orthogonal Procrustes: centre both, take the orthogonal R minimising
    ||(S - mean S) R s - (T - mean T)||_F (from the SVD of S_c^T T_c), the best scale s,
    then add the target's mean. Distances within ``source`` change by the factor s only.

    Parameters
    ----------
    source : array of shape (n_points, n_components)
    target : array of shape (n_points, n_components)
        Row i of both is the same entity.
    scale : bool, default True

    Returns
    -------
    aligned : float32 ndarray of shape (n_points, n_components)
    disparity : float
        Remaining squared error relative to the centred target's sum of squares, in
        [0, 1] with scaling (0 = identical shapes).
    """
    s = np.asarray(source, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if s.ndim != 2 or s.shape != t.shape:
        raise ValueError(f"source and target must be 2-D arrays of one shape, got "
                         f"{s.shape} and {t.shape}")
    s_c, t_c = s - s.mean(0), t - t.mean(0)
    u, sigma, vt = np.linalg.svd(s_c.T @ t_c)
    rotation = u @ vt
    s_norm = (s_c ** 2).sum()
    factor = sigma.sum() / s_norm if scale and s_norm > 0 else 1.0
    aligned = factor * s_c @ rotation + t.mean(0)
    t_norm = (t_c ** 2).sum()
    disparity = float(((aligned - t) ** 2).sum() / t_norm) if t_norm > 0 else 0.0
    return aligned.astype(np.float32), disparity


def pca(repr, n_components: int = 2) -> np.ndarray:
    """Principal components of the unit-length rows (the fast fallback of :func:`project`).

    Parameters
    ----------
    repr : array or tensor of shape (n_entities, dim)
    n_components : int, default 2

    Returns
    -------
    float32 ndarray of shape (n_entities, n_components)
        Signs fixed so that each component's largest loading is positive (deterministic).
        Columns beyond ``min(n_entities, dim)`` are zero.
    """
    x = as_points(repr, "repr")
    n_components = check_int(n_components, "n_components", 1)
    return _pca(unit_rows(x), n_components)


# --------------------------------------------------------------------------------------
# Computation
# --------------------------------------------------------------------------------------

def _compute(x: np.ndarray, method: str, params: dict) -> list[np.ndarray]:
    unit = unit_rows(x)
    if method == "pca":
        return [_pca(unit, params["n_components"])]
    return [_umap(unit, params)]


def _pca(unit: np.ndarray, n_components: int) -> np.ndarray:
    centred = unit.astype(np.float64) - unit.mean(0)
    # the principal axes are the top eigenvectors of the (dim, dim) scatter matrix: much
    # cheaper than an SVD of the (n, dim) data when n >> dim
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)
    vt = eigenvectors[:, ::-1][:, :min(n_components, centred.shape[0])].T
    signs = np.sign(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(1)])
    out = np.zeros((unit.shape[0], n_components), dtype=np.float32)
    out[:, :vt.shape[0]] = centred @ (vt * signs[:, None]).T
    return out


def _exact_knn(unit: np.ndarray, k: int, chunk_size: int = 2048, rows=None):
    """Each row's (or each of ``rows``') k most cosine-similar rows (itself first), and
    cosine distances.

    Blocked matrix products with torch (multithreaded BLAS and top-k), never more than
    ``chunk_size x n`` similarities at once. Returns int64 (m, k) and float32 (m, k).
    """
    import torch

    table = torch.from_numpy(np.ascontiguousarray(unit, dtype=np.float32))
    queries = torch.arange(table.shape[0]) if rows is None else torch.as_tensor(rows)
    m = queries.shape[0]
    indices = np.empty((m, k), dtype=np.int64)
    distances = np.empty((m, k), dtype=np.float32)
    for start in range(0, m, chunk_size):
        block = queries[start:start + chunk_size]
        sims = table[block] @ table.T                                        # (B, n)
        sims[torch.arange(block.shape[0]), block] = 2.0   # each point its own nearest (UMAP)
        top, idx = torch.topk(sims, k, dim=1)
        indices[start:start + block.shape[0]] = idx.numpy()
        distances[start:start + block.shape[0]] = \
            (1.0 - top.clamp(max=1.0)).clamp(min=0).numpy()
    return indices, distances


def _nearest_on_map(xy: np.ndarray, k: int, rows=None) -> np.ndarray:
    """Each point's (or each of ``rows``') k nearest other points on a map (Euclidean,
    exact: a k-d tree), int64 (n or len(rows), k)."""
    from sklearn.neighbors import NearestNeighbors

    if rows is None:
        # without a query, scikit-learn leaves each point out of its own neighbours
        found = NearestNeighbors(n_neighbors=k).fit(xy).kneighbors(return_distance=False)
        return found.astype(np.int64)
    found = NearestNeighbors(n_neighbors=k + 1).fit(xy).kneighbors(
        xy[rows], return_distance=False)
    # drop the point itself (first, unless a duplicate point came first), keep the order
    others = np.argsort(found == rows[:, None], axis=1, kind="stable")[:, :k]
    return np.take_along_axis(found, others, axis=1).astype(np.int64)


def _umap(unit: np.ndarray, params: dict) -> np.ndarray:
    umap = require("umap", "UMAP maps")
    knn = _exact_knn(unit, params["n_neighbors"])
    model = umap.UMAP(n_neighbors=params["n_neighbors"], n_components=params["n_components"],
                      min_dist=params["min_dist"], n_epochs=params["n_epochs"],
                      init=_pca(unit, params["n_components"]).astype(np.float64)
                      if params["init"] == "pca" else "spectral",
                      metric="cosine", random_state=params["random_state"],
                      precomputed_knn=(*knn, None))
    with warnings.catch_warnings():
        # "n_jobs overridden by random_state" and "no search index: no transform" are
        # both expected here.
        warnings.simplefilter("ignore", UserWarning)
        return model.fit_transform(unit).astype(np.float32)


def _project_two_at_once(t: np.ndarray, s: np.ndarray, kwargs: dict):
    """``project`` of t in a worker process and of s in this one, at the same time.

    The worker is a fresh ``python -c`` process (not multiprocessing, whose "spawn" start
    re-runs the caller's main script and whose "fork" start can deadlock a process with
    running BLAS threads); arrays go through temporary .npy files.
    """
    import subprocess
    import sys

    with tempfile.TemporaryDirectory(prefix="htdviz-map-") as tmp:
        source, result = Path(tmp) / "repr.npy", Path(tmp) / "map.npy"
        np.save(source, t)
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [package_root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        code = ("import json, sys, numpy as np; from htdviz.viz.projection import project; "
                "np.save(sys.argv[2], project(np.load(sys.argv[1]), **json.loads(sys.argv[3])))")
        options = {**kwargs, "cache_dir": None if kwargs["cache_dir"] in (None, True) else
                   kwargs["cache_dir"] if kwargs["cache_dir"] is False else
                   str(kwargs["cache_dir"])}
        try:
            worker = subprocess.Popen([sys.executable, "-c", code, str(source), str(result),
                                       json.dumps(options)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except OSError:
            return project(t, **kwargs), project(s, **kwargs)
        student_xy = project(s, **kwargs)
        _, errors = worker.communicate()
        if worker.returncode != 0 or not result.is_file():
            warnings.warn(f"the map worker process failed ({errors.decode()[-300:]!r}); "
                          f"computing the teacher's map here", RuntimeWarning)
            return project(t, **kwargs), student_xy
        return np.load(result, allow_pickle=False), student_xy


def _aligned_umap(t: np.ndarray, s: np.ndarray, params: dict) -> list[np.ndarray]:
    umap = require("umap", "AlignedUMAP maps")
    identity = {i: i for i in range(t.shape[0])}
    model = umap.AlignedUMAP(n_neighbors=params["n_neighbors"],
                             n_components=params["n_components"],
                             min_dist=params["min_dist"], n_epochs=params["n_epochs"] or 200,
                             metric="cosine", random_state=params["random_state"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.fit([unit_rows(t), unit_rows(s)], relations=[identity])
    return [np.asarray(e, dtype=np.float32) for e in model.embeddings_]


# --------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------

def _cache_key(arrays, params: dict) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps({"version": _CACHE_VERSION, **params}, sort_keys=True).encode())
    if params["method"] in ("umap", "aligned_umap"):
        from importlib.metadata import version

        digest.update(version("umap-learn").encode())
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        digest.update(f"{arr.dtype.str}{arr.shape}".encode())
        digest.update(memoryview(arr).cast("B"))
    return digest.hexdigest()[:40]


def _cache_file(arrays, params: dict, cache_dir) -> Path | None:
    if cache_dir is False:
        return None
    folder = Path(cache_dir) if cache_dir not in (None, True) else default_cache_dir()
    return folder / f"{params['method']}-{_cache_key(arrays, params)}.npz"


def _is_cached(x: np.ndarray, method: str, params: dict, cache_dir) -> bool:
    target = _cache_file([x], {"method": method, **params}, cache_dir)
    return target is not None and target.is_file()


def _cached(compute, arrays, params: dict, cache_dir, n_outputs: int) -> list[np.ndarray]:
    target = _cache_file(arrays, params, cache_dir)
    if target is None:
        return compute()
    expected = (arrays[0].shape[0], params["n_components"])
    if target.is_file():
        try:
            with np.load(target, allow_pickle=False) as npz:
                maps = [npz[f"map{i}"] for i in range(n_outputs)]
            if all(m.shape == expected for m in maps):
                return maps
        except (OSError, KeyError, ValueError):
            pass                               # unreadable or stale: compute it again
    maps = compute()
    write_atomically(target, lambda f: np.savez(f, **{f"map{i}": m for i, m in enumerate(maps)}))
    return maps


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------

def as_points(x, name: str) -> np.ndarray:
    """Representations to map: a float32 (n_entities, dim) array with at least 2 rows."""
    return check_matrix(x, name, min_rows=2, dtype=np.float32)


def _check_params(n: int, method: str, n_components, n_neighbors, min_dist, n_epochs, init,
                  random_state) -> dict:
    params = {"n_components": check_int(n_components, "n_components", 1)}
    if method == "umap":
        params["n_neighbors"] = check_int(n_neighbors, "n_neighbors", 2, n - 1)
        if not isinstance(min_dist, (int, float)) or not 0 <= min_dist:
            raise ValueError(f"min_dist must be a number >= 0, got {min_dist!r}")
        params["min_dist"] = float(min_dist)
        params["n_epochs"] = None if n_epochs is None else check_int(n_epochs, "n_epochs", 1)
        params["init"] = check_choice(init, ("pca", "spectral"), "init")
        params["random_state"] = check_int(random_state, "random_state", 0)
    return params
