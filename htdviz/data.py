"""Data sets for htdviz: CiteULike-t, Foursquare, any users.dat-style file, pandas pairs,
planted groups.

Every loader ends in the same leave-one-out preprocessing (docs/method.md §2, §8): keep
users with at least ``min_items`` items, re-index users in input order
and items in order of first appearance, hold out one validation and one test item per user.
The published files are fetched and checked by :mod:`htdviz.published`.
"""
from __future__ import annotations

import io
import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .published import CITEULIKE_FILES, fetch_citeulike, fetch_published, file_sha256

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------
# The data set
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dataset:
    """An immutable leave-one-out recommendation data set.

    Attributes
    ----------
    name : str
    train : scipy.sparse.csr_matrix of shape (n_users, n_items)
        Binary training interactions (float32 ones).
    valid_items, test_items : ndarray of shape (n_users,)
        The one held-out validation / test item of each user.
    raw_user_ids, raw_item_ids : ndarray of shape (n_users,) / (n_items,)
        Maps from htdviz ids back to the ids of the source.
    item_tags : csr_matrix of shape (n_items, n_tags) or None
        Which tags each item carries (CiteULike), else None.
    tag_names : tuple of str or None
    user_groups, item_groups : ndarray or None
        True planted groups (synthetic data only).
    info : dict
        What preprocessing did (users kept and filtered, split, seed).
    """

    name: str
    train: sp.csr_matrix
    valid_items: np.ndarray
    test_items: np.ndarray
    raw_user_ids: np.ndarray
    raw_item_ids: np.ndarray
    item_tags: sp.csr_matrix | None = None
    tag_names: tuple[str, ...] | None = None
    user_groups: np.ndarray | None = None
    item_groups: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        for arr in (self.valid_items, self.test_items, self.raw_user_ids, self.raw_item_ids,
                    self.user_groups, self.item_groups, self.train.data, self.train.indices,
                    self.train.indptr):
            if arr is not None:
                arr.flags.writeable = False
        if self.item_tags is not None:
            for arr in (self.item_tags.data, self.item_tags.indices, self.item_tags.indptr):
                arr.flags.writeable = False

    @property
    def n_users(self) -> int:
        return self.train.shape[0]

    @property
    def n_items(self) -> int:
        return self.train.shape[1]

    @property
    def n_train(self) -> int:
        return self.train.nnz

    def train_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(users, items) of every training interaction, each of shape (n_train,), int64."""
        coo = self.train.tocoo()
        return coo.row.astype(np.int64), coo.col.astype(np.int64)

    def held_out(self, split: str) -> np.ndarray:
        """Target items of ``split`` ("valid" or "test"), shape (n_users,)."""
        if split == "valid":
            return self.valid_items
        if split == "test":
            return self.test_items
        raise ValueError(f"split must be 'valid' or 'test', got {split!r}")

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, n_users={self.n_users}, n_items={self.n_items}, "
                f"n_train={self.n_train}, split={self.info.get('split')!r})")



# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------

def _read_count_lines(path: Path) -> list[np.ndarray]:
    """Read a file of lines ``n id_1 ... id_n`` into one int64 array per line, validated."""
    path = Path(path)
    text = path.read_text()
    if not text.strip():
        raise ValueError(f"{path}: the file is empty")
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        try:
            values = np.array([int(x) for x in fields], dtype=np.int64)
        except ValueError:
            bad = next(x for x in fields if not x.lstrip("-").isdigit())
            raise ValueError(f"{path}, line {line_no}: {bad!r} is not an integer") from None
        if values.size == 0:
            raise ValueError(f"{path}, line {line_no}: empty line (expected 'n id_1 ... id_n')")
        if values[0] != values.size - 1:
            raise ValueError(f"{path}, line {line_no}: the count field says {values[0]} but the "
                             f"line holds {values.size - 1} ids")
        if (values[1:] < 0).any():
            raise ValueError(f"{path}, line {line_no}: negative id {values[1:].min()}")
        rows.append(values[1:])
    return rows


class _DictsAndIntsOnly(pickle.Unpickler):
    """Unpickler for the authors' split files: refuses every global, so no code can run."""

    def find_class(self, module, name):
        raise ValueError(f"refusing to load global {module}.{name}: split files must hold only "
                         f"dicts and ints")


def _read_split_dict(path: Path) -> dict:
    obj = _DictsAndIntsOnly(io.BytesIO(Path(path).read_bytes())).load()
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict, found {type(obj).__name__}")
    return obj


# --------------------------------------------------------------------------------------
# Preprocessing: filter, re-index, split
# --------------------------------------------------------------------------------------

def _reindex(user_rows: list[np.ndarray], min_items: int, source: str, where=None):
    """Keep users with >= min_items items; re-index users in order and items by first appearance.

    Returns the kept rows in new item ids, the raw user positions kept, the raw item ids and
    a record of what the filter did.
    """
    if min_items < 3:
        raise ValueError(f"min_items must be >= 3 so that each user keeps a training item after "
                         f"holding out two, got {min_items}")
    where = where if where is not None else [f"line {n}" for n in range(1, len(user_rows) + 1)]
    kept = []
    for raw_user, (row, place) in enumerate(zip(user_rows, where)):
        unique, counts = np.unique(row, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"{source}, {place}: item {unique[counts > 1][0]} appears "
                             f"{counts[counts > 1][0]} times")
        if row.size >= min_items:
            kept.append(raw_user)
    if not kept:
        raise ValueError(f"{source}: no user has at least min_items={min_items} items")
    flat = np.concatenate([user_rows[u] for u in kept])
    raw_item_ids, first = np.unique(flat, return_index=True)
    raw_item_ids = raw_item_ids[np.argsort(first)]          # order of first appearance
    new_id = {raw: new for new, raw in enumerate(raw_item_ids.tolist())}
    rows = [np.array([new_id[x] for x in user_rows[u].tolist()], dtype=np.int64) for u in kept]
    report = {"n_users_in_source": len(user_rows), "n_users_kept": len(kept),
              "n_users_filtered": len(user_rows) - len(kept), "min_items": min_items}
    if report["n_users_filtered"]:
        logger.info("%s: min_items=%d filter kept %d of %d users", source, min_items,
                    len(kept), len(user_rows))
    return rows, np.asarray(kept, dtype=np.int64), raw_item_ids, report


def _random_leave_two_out(rows: list[np.ndarray], seed: int):
    rng = np.random.default_rng(seed)
    train_rows, valid, test = [], np.empty(len(rows), np.int64), np.empty(len(rows), np.int64)
    for u, row in enumerate(rows):
        v, t = rng.choice(row.size, size=2, replace=False)
        valid[u], test[u] = row[v], row[t]
        train_rows.append(np.delete(row, [v, t]))
    return train_rows, valid, test


def _csr(rows: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    indptr = np.concatenate([[0], np.cumsum([r.size for r in rows])])
    indices = np.concatenate(rows) if rows else np.empty(0, np.int64)
    m = sp.csr_matrix((np.ones(indices.size, np.float32), indices, indptr),
                      shape=(len(rows), n_items))
    m.sort_indices()
    return m


def _build(name, rows, raw_user_ids, raw_item_ids, report, split, seed, **extra) -> Dataset:
    train_rows, valid, test = _random_leave_two_out(rows, seed)
    info = dict(report, split=split, seed=seed)
    return Dataset(name=name, train=_csr(train_rows, raw_item_ids.size), valid_items=valid,
                   test_items=test, raw_user_ids=raw_user_ids, raw_item_ids=raw_item_ids,
                   info=info, **extra)


# --------------------------------------------------------------------------------------
# Public loaders
# --------------------------------------------------------------------------------------

def load_users_file(path: str | Path, min_items: int = 5, seed: int = 0,
                    name: str | None = None) -> Dataset:
    """Load any file in the users.dat format (line u: ``n item_1 ... item_n``).

    Users with fewer than ``min_items`` items are filtered (reported in ``info``); then a
    seeded random leave-one-out split holds out one validation and one test item per user.
    """
    path = Path(path)
    rows, kept, raw_items, report = _reindex(_read_count_lines(path), min_items, str(path))
    return _build(name or path.stem, rows, kept, raw_items, report, "random", seed)


def from_pairs(pairs, user_col: str = "user", item_col: str = "item", min_items: int = 5,
               seed: int = 0, name: str = "pairs") -> Dataset:
    """Build a data set from a pandas DataFrame of (user, item) interactions.

    Users are re-indexed in order of first appearance; duplicate pairs raise ValueError.
    """
    return _from_pairs(pairs, user_col, item_col, min_items, seed, name, source="pairs")


def _from_pairs(pairs, user_col, item_col, min_items, seed, name, source) -> Dataset:
    """:func:`from_pairs`, with errors naming ``source`` (the DataFrame or the file)."""
    for col in (user_col, item_col):
        if col not in pairs.columns:
            raise ValueError(f"{source} has no column {col!r} (columns: "
                             f"{list(pairs.columns)})")
    if len(pairs) == 0:
        raise ValueError(f"{source} is empty")
    dup = pairs.duplicated([user_col, item_col])
    if dup.any():
        row = pairs[dup].iloc[0]
        user, item = (v.item() if isinstance(v, np.generic) else v
                      for v in (row[user_col], row[item_col]))
        raise ValueError(f"{source}: duplicate interaction user={user!r}, "
                         f"item={item!r} (row {pairs.index[dup][0]})")
    users = pairs[user_col].to_numpy()
    raw_user_ids, first = np.unique(users, return_index=True)
    raw_user_ids = raw_user_ids[np.argsort(first)]
    item_codes, raw_item_table = _factorize(pairs[item_col].to_numpy())
    user_codes, _ = _factorize(users)
    order = np.argsort(user_codes, kind="stable")
    bounds = np.cumsum(np.bincount(user_codes, minlength=raw_user_ids.size))[:-1]
    user_rows = np.split(item_codes[order], bounds)
    rows, kept, raw_items, report = _reindex(user_rows, min_items, source,
                                             where=[f"user {u!r}" for u in raw_user_ids])
    return _build(name, rows, raw_user_ids[kept], raw_item_table[raw_items], report,
                  "random", seed)


#: Suffixes of the (user, item) pair tables :func:`load_file` reads with pandas.
PAIR_TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet",
                       ".pq": "parquet"}


def load_file(path: str | Path, user_col: str = "user", item_col: str = "item",
              min_items: int = 5, seed: int = 0, name: str | None = None) -> Dataset:
    """Load a data set from a file: a table of (user, item) pairs or the users.dat format.

    Parameters
    ----------
    path : str or Path
        ``.csv``, ``.tsv`` / ``.tab`` or ``.parquet`` / ``.pq``: one interaction per row,
        read with pandas (parquet needs pyarrow); any other suffix (``.dat``, ``.txt``):
        the users.dat format, line u ``n item_1 ... item_n`` (:func:`load_users_file`).
    user_col, item_col : str, default "user", "item"
        The columns of a table holding user and item ids (any hashable values).
    min_items : int, default 5
        Users with fewer items are dropped (at least 3: two are held out).
    seed : int, default 0
        Seed of the random leave-one-out split.
    name : str, optional
        Default: the file's stem.

    Returns
    -------
    Dataset
        Without tags (``item_tags`` None). ``info`` records the file and its sha256.

    Examples
    --------
    >>> import pandas as pd, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "clicks.csv")
    >>> pd.DataFrame({"user": [1] * 5 + [2] * 5, "item": list("abcde") * 2}).to_csv(path)
    >>> load_file(path).n_users
    2
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    kind = PAIR_TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        dataset = load_users_file(path, min_items=min_items, seed=seed, name=name)
    else:
        import pandas as pd

        try:
            if kind == "parquet":
                pairs = pd.read_parquet(path, columns=[user_col, item_col])
            else:
                pairs = pd.read_csv(path, sep="\t" if kind == "tsv" else ",",
                                    usecols=lambda c: c in (user_col, item_col))
        except ImportError as exc:
            raise ImportError(f"reading {path} needs a parquet engine: pip install pyarrow "
                              f"({exc})") from None
        except (ValueError, pd.errors.ParserError, OSError) as exc:
            raise ValueError(f"data file {path}: cannot read the columns "
                             f"user_col={user_col!r}, item_col={item_col!r} ({exc})") from None
        missing = [c for c in (user_col, item_col) if c not in pairs.columns]
        if missing:
            header = pd.read_csv(path, sep="\t" if kind == "tsv" else ",", nrows=0).columns \
                if kind != "parquet" else pd.read_parquet(path).columns
            what = " and ".join(f"{'user_col' if c == user_col else 'item_col'}={c!r}"
                                for c in missing)
            raise ValueError(f"data file {path} has no column {what} (columns: "
                             f"{list(header)}); pass --user-col / --item-col")
        dataset = _from_pairs(pairs, user_col, item_col, min_items, seed,
                              name or path.stem, source=f"data file {path}")
    dataset.info.update(file=str(path.resolve()), sha256=file_sha256(path))
    return dataset


def _factorize(values: np.ndarray):
    """Codes in order of first appearance, and the table of distinct values."""
    table, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse].astype(np.int64), table[order]


def load_citeulike(split: str = "reference", seed: int = 0, min_items: int = 5,
                   data_dir: str | Path | None = None) -> Dataset:
    """CiteULike-t (Wang et al., IJCAI 2013), the first data set of the paper.

    Parameters
    ----------
    split : {"reference", "random"}
        "reference" is the authors' exact split (their Train/Valid/Test files, read with an
        unpickler that refuses every global); "random" a seeded leave-one-out split made by
        the same preprocessing rule.
    seed : int, default 0
        Seed of the random split (ignored for "reference").
    min_items : int, default 5
        Users with fewer items are filtered (the paper's rule; "reference" needs 5).
    data_dir : path, optional
        Download cache; default :func:`default_data_dir`.
    """
    if split not in ("reference", "random"):
        raise ValueError(f"split must be 'reference' or 'random', got {split!r}")
    if split == "reference" and min_items != 5:
        raise ValueError(f"the reference split was made with min_items=5, got {min_items}")
    needed = tuple(CITEULIKE_FILES) if split == "reference" else ("users.dat", "tags.dat",
                                                                    "tag-item.dat")
    folder = fetch_citeulike(data_dir, needed)
    rows, kept, raw_items, report = _reindex(_read_count_lines(folder / "users.dat"),
                                             min_items, str(folder / "users.dat"))
    tags = _item_tags(folder, raw_items)
    if split == "random":
        return _build("citeulike-t", rows, kept, raw_items, report, "random", seed, **tags)

    train_rows, valid, test = _reference_split(folder, rows)
    return Dataset(name="citeulike-t", train=_csr(train_rows, raw_items.size),
                   valid_items=valid, test_items=test, raw_user_ids=kept,
                   raw_item_ids=raw_items, info=dict(report, split="reference", seed=None),
                   **tags)


def load_foursquare(seed: int = 0, min_items: int = 5,
                    data_dir: str | Path | None = None) -> Dataset:
    """Foursquare check-ins (users x venues), the second data set of the paper.

    24,941 users, 28,593 items and 717,086 interactions in the published file. It has no
    published split: a seeded random leave-one-out split holds out one validation and one
    test item per user (docs/method.md §8).

    Parameters
    ----------
    seed : int, default 0
        Seed of the random split.
    min_items : int, default 5
        Users with fewer items are filtered (the published file has none).
    data_dir : path, optional
        Download cache; default :func:`default_data_dir`.
    """
    folder = fetch_published("foursquare", data_dir)
    rows, kept, raw_items, report = _reindex(_read_count_lines(folder / "users.dat"),
                                             min_items, str(folder / "users.dat"))
    return _build("foursquare", rows, kept, raw_items, report, "random", seed)


def _reference_split(folder: Path, rows: list[np.ndarray]):
    """Read the authors' Train/Valid/Test and check they partition each user's items."""
    train = _read_split_dict(folder / "Train")
    valid = _read_split_dict(folder / "Valid")
    test = _read_split_dict(folder / "Test")
    n_users = len(rows)
    for name, d in (("Train", train), ("Valid", valid), ("Test", test)):
        if sorted(d) != list(range(n_users)):
            raise ValueError(f"{folder / name}: expected users 0..{n_users - 1}, "
                             f"found {len(d)} keys")
    train_rows = [np.array(sorted(train[u]), dtype=np.int64) for u in range(n_users)]
    valid_items = np.array([valid[u] for u in range(n_users)], dtype=np.int64)
    test_items = np.array([test[u] for u in range(n_users)], dtype=np.int64)
    for u in range(n_users):
        together = np.sort(np.concatenate([train_rows[u], [valid_items[u], test_items[u]]]))
        if not np.array_equal(together, np.sort(rows[u])):
            raise ValueError(f"{folder}: the reference split of user {u} does not match "
                             f"users.dat after preprocessing")
    return train_rows, valid_items, test_items


def _item_tags(folder: Path, raw_items: np.ndarray) -> dict:
    names = tuple((folder / "tags.dat").read_text().splitlines())
    tag_rows = _read_count_lines(folder / "tag-item.dat")
    if len(names) != len(tag_rows):
        raise ValueError(f"{folder}: tags.dat has {len(names)} lines but tag-item.dat "
                         f"{len(tag_rows)}")
    lookup = np.full(max(raw_items.max(), max(r.max(initial=0) for r in tag_rows)) + 1, -1)
    lookup[raw_items] = np.arange(raw_items.size)
    tag_ids = np.repeat(np.arange(len(tag_rows)), [r.size for r in tag_rows])
    items = lookup[np.concatenate(tag_rows)]
    present = items >= 0       # tags of items that belong to no kept user are not part of this set
    item_tags = sp.csr_matrix((np.ones(present.sum(), np.float32),
                               (items[present], tag_ids[present])),
                              shape=(raw_items.size, len(names)))
    item_tags.sum_duplicates()
    item_tags.data[:] = 1.0
    return {"item_tags": item_tags, "tag_names": names}


def synthetic(n_users: int = 600, n_items: int = 1200, n_groups: int = 6, dim: int = 16,
              items_per_user: int = 20, spread: float = 0.35, temperature: float = 0.1,
              seed: int = 0) -> Dataset:
    """A seeded data set with planted preference groups, for tests and teaching.

    Group centres are random unit vectors in ``dim`` dimensions; each user and item is its
    group's centre plus Gaussian noise of scale ``spread``, normalised. A user's interactions
    are ``items_per_user`` distinct items drawn with probability proportional to
    exp(cos(user, item) / temperature), so users mostly pick items of their own group.
    The true groups are returned in ``user_groups`` and ``item_groups``.
    """
    if items_per_user < 3 or items_per_user > n_items:
        raise ValueError(f"items_per_user must be in [3, n_items={n_items}], got {items_per_user}")
    if n_groups < 1:
        raise ValueError(f"n_groups must be >= 1, got {n_groups}")
    rng = np.random.default_rng(seed)

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    centres = unit(rng.standard_normal((n_groups, dim)))
    user_groups = rng.integers(n_groups, size=n_users)
    item_groups = rng.integers(n_groups, size=n_items)
    users = unit(centres[user_groups] + spread * rng.standard_normal((n_users, dim)))
    items = unit(centres[item_groups] + spread * rng.standard_normal((n_items, dim)))
    logits = users @ items.T / temperature
    # Gumbel top-k draws items_per_user distinct items per user, proportional to exp(logits).
    keys = logits + rng.gumbel(size=logits.shape)
    chosen = np.argsort(-keys, axis=1)[:, :items_per_user]
    rows, kept, raw_items, report = _reindex(list(chosen), 3, "synthetic")
    return _build("synthetic", rows, kept, raw_items, report, "random", seed,
                  user_groups=user_groups[kept], item_groups=item_groups[raw_items])


def synthetic_large(n_users: int = 138_000, n_items: int = 27_000,
                    n_interactions: int = 20_000_000, n_groups: int = 20,
                    in_group: float = 0.7, popularity: float = 0.8, seed: int = 0,
                    chunk_users: int = 10_000) -> Dataset:
    """A seeded data set of any size (MovieLens-20M-like by default), drawn in chunks.

    For scale benchmarks: no user x item matrix is formed. Items have Zipf-like popularity
    (weight (rank + 1) ** -popularity, ranks shuffled) and one of ``n_groups`` groups, as do
    users. Each user draws about ``n_interactions / n_users`` items (geometric around that
    mean, at least 5): a share ``in_group`` from its own group's items, the rest from all
    items, both by popularity. Repeated draws count once: the first chunk measures the share
    of distinct draws and later chunks draw that much more, so the data set has about the
    interactions asked (``info["n_interactions"]``); a user left with fewer than 3 gets 3
    uniform ones more. Then the usual seeded random leave-one-out split. The true groups are
    in ``user_groups`` and ``item_groups``.

    Parameters
    ----------
    n_users, n_items, n_interactions, n_groups : int
    in_group : float in [0, 1], default 0.7
    popularity : float >= 0, default 0.8
    seed : int, default 0
    chunk_users : int, default 10,000
        Users drawn at a time (memory: about 3 x chunk_users x mean items x 8 bytes).
    """
    for name, value, low in (("n_users", n_users, 1), ("n_items", n_items, 5),
                             ("n_groups", n_groups, 1), ("chunk_users", chunk_users, 1)):
        if int(value) < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    if not 5 * n_users <= n_interactions <= n_users * n_items // 2:
        raise ValueError(f"n_interactions must be in [5 * n_users, n_users * n_items / 2] = "
                         f"[{5 * n_users}, {n_users * n_items // 2}], got {n_interactions}")
    if not 0 <= in_group <= 1:
        raise ValueError(f"in_group must be in [0, 1], got {in_group}")
    rng = np.random.default_rng(seed)
    weights = (np.arange(n_items) + 1.0) ** -float(popularity)
    weights = weights[rng.permutation(n_items)]
    item_groups = rng.integers(n_groups, size=n_items)
    user_groups = rng.integers(n_groups, size=n_users)
    all_cdf = np.cumsum(weights) / weights.sum()
    members = [np.flatnonzero(item_groups == g) for g in range(n_groups)]
    group_cdf = [np.cumsum(weights[m]) / weights[m].sum() if m.size else None
                 for m in members]
    mean = n_interactions / n_users
    counts = np.maximum(5, rng.geometric(1.0 / (mean - 4), size=n_users) + 4)
    counts = np.minimum(counts, n_items // 2)
    keys, kept = [], 1.0
    for start in range(0, n_users, chunk_users):
        users = np.arange(start, min(start + chunk_users, n_users))
        # repeated draws count once: draw more, by the share the chunks so far kept
        wanted = np.minimum(np.round(counts[users] / kept).astype(np.int64), n_items // 2)
        user_of = np.repeat(users, wanted)                                 # one per draw
        items = np.searchsorted(all_cdf, rng.random(user_of.size))
        own = rng.random(user_of.size) < in_group
        for g in range(n_groups):
            pick = own & (user_groups[user_of] == g)
            if group_cdf[g] is not None and pick.any():
                draws = np.searchsorted(group_cdf[g], rng.random(int(pick.sum())))
                items[pick] = members[g][np.minimum(draws, members[g].size - 1)]
        items = np.minimum(items, n_items - 1)
        keys.append(_sorted_unique(user_of.astype(np.int64) * n_items + items))
        drawn = sum(k.size for k in keys)
        kept = drawn / counts[:users[-1] + 1].sum() * kept if start == 0 else kept
    keys = np.concatenate(keys)                                            # sorted by user
    per_user = np.bincount(keys // n_items, minlength=n_users)
    short = np.flatnonzero(per_user < 3)      # repeats left < 3 items: add uniform ones
    if short.size:
        extra = [u * n_items + rng.choice(n_items, 3, replace=False) for u in short]
        keys = _sorted_unique(np.concatenate([keys, *extra]))
        per_user = np.bincount(keys // n_items, minlength=n_users)
    users, items = keys // n_items, keys % n_items
    # seeded leave-one-out: a random order within each user; first valid, second test
    order = np.lexsort((rng.random(users.size), users))
    users, items = users[order], items[order]
    starts = np.concatenate([[0], np.cumsum(per_user)[:-1]])
    valid, test = items[starts], items[starts + 1]
    train = np.ones(users.size, dtype=bool)
    train[starts] = train[starts + 1] = False
    matrix = sp.csr_matrix((np.ones(int(train.sum()), np.float32),
                            (users[train], items[train])), shape=(n_users, n_items))
    matrix.sort_indices()
    info = {"n_interactions": int(keys.size), "split": "random", "seed": seed,
            "generator": "synthetic_large"}
    return Dataset(name="synthetic_large", train=matrix, valid_items=valid.astype(np.int64),
                   test_items=test.astype(np.int64), raw_user_ids=np.arange(n_users),
                   raw_item_ids=np.arange(n_items), user_groups=user_groups,
                   item_groups=item_groups, info=info)


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """``np.unique(keys)`` by sorting: numpy 2.4's hash-based unique takes seconds on a
    million distinct int64 keys where a sort takes a fraction of one."""
    keys = np.sort(keys)
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if keys.size else keys


# --------------------------------------------------------------------------------------
# Negative sampling
# --------------------------------------------------------------------------------------

class NegativeSampler:
    """Uniform negatives that are never a training positive of their user (vectorised).

    Each draw samples all negatives at once, then re-draws only the collisions until none
    is left; membership is a binary search in the user's own sorted row of the training
    matrix (compiled, ``htdviz._kernels``: a search among all pairs' keys missed the cache at
    every step and took 40 s per epoch at 19M pairs).
    """

    def __init__(self, train: sp.csr_matrix):
        train = train.tocsr().sorted_indices()
        self.n_items = train.shape[1]
        if (np.diff(train.indptr) >= self.n_items).any():
            raise ValueError("a user has interacted with every item; no negative exists")
        self._indptr, self._indices = train.indptr, train.indices

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (user, item) is a training pair; arrays of the same shape."""
        from ._kernels import stored_in_rows, use_torch_threads   # numba: on first use

        users, items = np.asarray(users), np.asarray(items)
        use_torch_threads()
        flat = stored_in_rows(self._indptr, self._indices, users.ravel(), items.ravel())
        return flat.reshape(users.shape)

    def sample(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One negative item per entry of ``users`` (int64 array), shape like ``users``."""
        items = rng.integers(self.n_items, size=users.shape)
        bad = np.flatnonzero(self.is_positive(users, items))
        while bad.size:
            items[bad] = rng.integers(self.n_items, size=bad.size)
            bad = bad[self.is_positive(users[bad], items[bad])]
        return items
