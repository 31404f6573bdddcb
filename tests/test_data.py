"""htdviz.data: CiteULike and Foursquare loading, file parsing, splits, synthetic data,
negative sampling."""
from __future__ import annotations

import hashlib
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from htdviz import data

N_USERS, N_ITEMS, N_TRAIN = 5219, 25181, 115142


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------

def write_users_file(path: Path, rows) -> Path:
    path.write_text("\n".join(" ".join(map(str, [len(r), *r])) for r in rows) + "\n")
    return path


def random_rows(n_users=40, n_items=60, seed=0, low=2, high=12):
    rng = np.random.default_rng(seed)
    return [rng.choice(n_items, size=rng.integers(low, high), replace=False).tolist()
            for _ in range(n_users)]




def dense_train(ds: data.Dataset) -> np.ndarray:
    return ds.train.toarray().astype(bool)


def assert_same_dataset(a: data.Dataset, b: data.Dataset):
    assert a.train.shape == b.train.shape
    assert (a.train != b.train).nnz == 0
    np.testing.assert_array_equal(a.valid_items, b.valid_items)
    np.testing.assert_array_equal(a.test_items, b.test_items)
    np.testing.assert_array_equal(a.raw_item_ids, b.raw_item_ids)


# --------------------------------------------------------------------------------------
# CiteULike: the reference split
# --------------------------------------------------------------------------------------

def test_reference_split_sizes(citeulike):
    assert (citeulike.n_users, citeulike.n_items, citeulike.n_train) == (N_USERS, N_ITEMS, N_TRAIN)
    assert citeulike.valid_items.shape == citeulike.test_items.shape == (N_USERS,)
    assert citeulike.info["split"] == "reference"
    assert citeulike.info["n_users_kept"] == N_USERS
    assert citeulike.info["n_users_filtered"] == citeulike.info["n_users_in_source"] - N_USERS


def test_reference_split_partitions_each_users_items(citeulike, citeulike_dir):
    # The paper's preprocessing, written out independently of htdviz.data: keep users with
    # >= 5 items, number items in order of first appearance among the kept users' lines.
    lines = (citeulike_dir / "citeulike-t" / "users.dat").read_text().splitlines()
    new_item, expected = {}, []
    for line in lines:
        count, *items = map(int, line.split())
        if count < 5:
            continue
        expected.append(sorted(new_item.setdefault(x, len(new_item)) for x in items))
    assert len(expected) == N_USERS and len(new_item) == N_ITEMS

    train = citeulike.train
    for u in range(N_USERS):
        train_items = train.indices[train.indptr[u]:train.indptr[u + 1]].tolist()
        held_out = [int(citeulike.valid_items[u]), int(citeulike.test_items[u])]
        assert held_out[0] != held_out[1]
        assert not set(held_out) & set(train_items)
        assert sorted(train_items + held_out) == expected[u]
    # The ids map back to the raw ids of users.dat.
    assert citeulike.raw_item_ids.size == N_ITEMS
    assert sorted(new_item, key=new_item.get) == citeulike.raw_item_ids.tolist()


def test_reference_split_argument_checks(citeulike_dir):
    with pytest.raises(ValueError, match="min_items=5"):
        data.load_citeulike("reference", min_items=4, data_dir=citeulike_dir)
    with pytest.raises(ValueError, match="split"):
        data.load_citeulike("temporal", data_dir=citeulike_dir)


def test_citeulike_item_tags(citeulike):
    tags = citeulike.item_tags
    assert tags.shape == (N_ITEMS, len(citeulike.tag_names))
    assert len(citeulike.tag_names) > 50_000
    assert (np.diff(tags.indptr) > 0).all()          # every CiteULike item carries a tag
    assert set(np.unique(tags.data)) == {1.0}


def test_citeulike_item_tags_match_tag_item_file(citeulike, citeulike_dir):
    # Re-derive the tags of a few items straight from tag-item.dat.
    lines = (citeulike_dir / "citeulike-t" / "tag-item.dat").read_text().splitlines()
    wanted = {int(citeulike.raw_item_ids[i]): i for i in (0, 1, 777, N_ITEMS - 1)}
    expected = {i: set() for i in wanted.values()}
    for tag, line in enumerate(lines):
        for raw in map(int, line.split()[1:]):
            if raw in wanted:
                expected[wanted[raw]].add(tag)
    for item, tag_set in expected.items():
        row = citeulike.item_tags[item]
        assert set(row.indices.tolist()) == tag_set
    names = (citeulike_dir / "citeulike-t" / "tags.dat").read_text().splitlines()
    assert citeulike.tag_names == tuple(names)


def test_citeulike_random_split_is_seeded(citeulike_dir):
    a = data.load_citeulike("random", seed=0, data_dir=citeulike_dir)
    b = data.load_citeulike("random", seed=0, data_dir=citeulike_dir)
    c = data.load_citeulike("random", seed=1, data_dir=citeulike_dir)
    assert (a.n_users, a.n_items, a.n_train) == (N_USERS, N_ITEMS, N_TRAIN)
    assert_same_dataset(a, b)
    assert (a.test_items != c.test_items).mean() > 0.5
    users = np.arange(a.n_users)
    for ds in (a, c):
        assert not np.asarray(ds.train[users, ds.valid_items]).any()
        assert not np.asarray(ds.train[users, ds.test_items]).any()
        assert (ds.valid_items != ds.test_items).all()


# --------------------------------------------------------------------------------------
# Files: safe unpickling, checksums, the resolution order
# --------------------------------------------------------------------------------------

class _OpensAFile:
    """Unpickled with plain pickle, this would create the file ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_split_unpickler_refuses_globals(tmp_path):
    marker = tmp_path / "created_by_pickle"
    evil = tmp_path / "Train"
    evil.write_bytes(pickle.dumps({0: _OpensAFile(str(marker))}))
    with pytest.raises(ValueError, match="refusing to load global"):
        data._read_split_dict(evil)
    assert not marker.exists()

    system = tmp_path / "Valid"
    system.write_bytes(pickle.dumps(os.system))
    with pytest.raises(ValueError, match="system"):
        data._read_split_dict(system)


def test_split_unpickler_reads_plain_dicts_and_rejects_other_types(tmp_path):
    ok = tmp_path / "ok"
    ok.write_bytes(pickle.dumps({0: {5: 1, 7: 1}, 1: {3: 1}}))
    assert data._read_split_dict(ok) == {0: {5: 1, 7: 1}, 1: {3: 1}}
    not_dict = tmp_path / "list"
    not_dict.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ValueError, match="expected a dict"):
        data._read_split_dict(not_dict)




def foursquare_mirror() -> Path:
    mirror = os.environ.get("HTDVIZ_DATA_MIRROR")
    if not mirror or not (Path(mirror) / "foursquare" / "users.dat").exists():
        pytest.skip("Foursquare is not available offline: set HTDVIZ_DATA_MIRROR to a folder "
                    "holding foursquare/users.dat (e.g. ../shared/data)")
    return Path(mirror)


def test_foursquare_loads_from_the_mirror_with_a_seeded_random_split(tmp_path, urlopen):
    foursquare_mirror()
    dataset = data.load_foursquare(seed=3, data_dir=tmp_path)
    assert urlopen.urls and "hieunm44/hyperkdma" in urlopen.urls[0]   # a download came first
    assert (dataset.n_users, dataset.n_items) == (24_941, 28_593)
    # every interaction of the file: training pairs plus one validation and one test item
    assert dataset.n_train + 2 * dataset.n_users == 717_086
    assert dataset.info["split"] == "random" and dataset.info["seed"] == 3
    again = data.load_foursquare(seed=3, data_dir=tmp_path)           # from the cache
    assert np.array_equal(again.test_items, dataset.test_items)
    other = data.load_foursquare(seed=4, data_dir=tmp_path)
    assert not np.array_equal(other.test_items, dataset.test_items)


@pytest.mark.parametrize("damage", ["changed", "missing"])
def test_foursquare_changed_or_missing_is_one_clear_error(tmp_path, urlopen, monkeypatch,
                                                          damage):
    source = foursquare_mirror() / "foursquare" / "users.dat"
    mirror = tmp_path / "mirror" / "foursquare"
    mirror.mkdir(parents=True)
    if damage == "changed":
        content = bytearray(source.read_bytes())
        content[-2] = ord("7") if content[-2] != ord("7") else ord("8")
        (mirror / "users.dat").write_bytes(bytes(content))
    monkeypatch.setenv("HTDVIZ_DATA_MIRROR", str(tmp_path / "mirror"))
    error = ValueError if damage == "changed" else FileNotFoundError
    with pytest.raises(error) as err:
        data.load_foursquare(data_dir=tmp_path / "cache")
    message = str(err.value)
    assert "\n" not in message and str(mirror / "users.dat") in message
    assert ("sha256" in message) if damage == "changed" else ("does not exist" in message)
    assert not list((tmp_path / "cache").rglob("*.dat"))                # nothing kept



# --------------------------------------------------------------------------------------
# users.dat-style files and pandas pairs
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, line, what", [
    ("3 1 2 3\n4 1 2 3\n", 2, "count field says 4"),
    ("3 1 2 3\n3 1 x 3\n", 2, "'x' is not an integer"),
    ("3 1 2 3\n3 1 2.5 3\n", 2, "'2.5' is not an integer"),
    ("3 1 -2 3\n3 1 2 3\n", 1, "negative id"),
    ("3 1 2 3\n\n3 4 5 6\n", 2, "empty line"),
    ("3 1 2 3\n3 4 5 6\n4 7 8 7 9\n", 3, "appears 2 times"),
])
def test_load_users_file_rejects_malformed_lines(tmp_path, text, line, what):
    path = tmp_path / "users.dat"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        data.load_users_file(path, min_items=3)
    message = str(err.value)
    assert str(path) in message and f"line {line}" in message and what in message


@pytest.mark.parametrize("text", ["", "  \n\n"])
def test_load_users_file_rejects_empty_file(tmp_path, text):
    path = tmp_path / "users.dat"
    path.write_text(text)
    with pytest.raises(ValueError, match="empty") as err:
        data.load_users_file(path)
    assert str(path) in str(err.value)


def test_min_items_below_three_rejected(tmp_path):
    path = write_users_file(tmp_path / "u.dat", random_rows())
    with pytest.raises(ValueError, match="min_items"):
        data.load_users_file(path, min_items=2)
    pairs = pd.DataFrame({"user": [0, 0, 0], "item": [1, 2, 3]})
    with pytest.raises(ValueError, match="min_items"):
        data.from_pairs(pairs, min_items=2)


def test_min_items_filter_is_applied_and_reported(tmp_path):
    rows = random_rows(n_users=50, low=2, high=12)
    path = write_users_file(tmp_path / "u.dat", rows)
    ds = data.load_users_file(path, min_items=6)
    kept = [u for u, r in enumerate(rows) if len(r) >= 6]
    assert 0 < len(kept) < len(rows)
    assert ds.n_users == len(kept)
    np.testing.assert_array_equal(ds.raw_user_ids, kept)
    assert ds.info["n_users_in_source"] == len(rows)
    assert ds.info["n_users_kept"] == len(kept)
    assert ds.info["n_users_filtered"] == len(rows) - len(kept)
    assert ds.info["min_items"] == 6
    # Each kept user's items, mapped back to raw ids, are exactly its line.
    for u, raw_user in enumerate(kept):
        mine = ds.train.indices[ds.train.indptr[u]:ds.train.indptr[u + 1]].tolist()
        mine += [int(ds.valid_items[u]), int(ds.test_items[u])]
        assert sorted(ds.raw_item_ids[mine].tolist()) == sorted(rows[raw_user])
    with pytest.raises(ValueError, match="no user has at least"):
        data.load_users_file(path, min_items=100)


def test_random_split_seeded_and_disjoint_from_train(tmp_path):
    path = write_users_file(tmp_path / "u.dat", random_rows(n_users=80, low=3, high=15))
    a, b = data.load_users_file(path, seed=3, min_items=3), data.load_users_file(path, seed=3,
                                                                                 min_items=3)
    c = data.load_users_file(path, seed=4, min_items=3)
    assert_same_dataset(a, b)
    assert (a.test_items != c.test_items).any() or (a.valid_items != c.valid_items).any()
    assert a.info["seed"] == 3 and a.info["split"] == "random"
    for ds in (a, c):
        train = dense_train(ds)
        users = np.arange(ds.n_users)
        assert not train[users, ds.valid_items].any()
        assert not train[users, ds.test_items].any()
        assert (ds.valid_items != ds.test_items).all()


def test_from_pairs_matches_load_users_file(tmp_path):
    rows = random_rows(n_users=60, n_items=90, low=3, high=14, seed=5)
    path = write_users_file(tmp_path / "u.dat", rows)
    from_file = data.load_users_file(path, min_items=5, seed=7)
    pairs = pd.DataFrame([(u, i) for u, r in enumerate(rows) for i in r], columns=["u", "i"])
    from_frame = data.from_pairs(pairs, user_col="u", item_col="i", min_items=5, seed=7)
    assert_same_dataset(from_file, from_frame)
    np.testing.assert_array_equal(from_file.raw_user_ids, from_frame.raw_user_ids)
    assert from_file.info["n_users_filtered"] == from_frame.info["n_users_filtered"] > 0


def test_from_pairs_with_string_ids_and_shuffled_rows():
    rng = np.random.default_rng(0)
    records = [(f"user{u}", f"paper{i}") for u in range(30)
               for i in rng.choice(50, size=6, replace=False)]
    pairs = pd.DataFrame(records, columns=["user", "item"])
    ds = data.from_pairs(pairs)
    assert ds.n_users == 30 and ds.n_train == 30 * 4
    assert ds.raw_user_ids[0] == "user0"
    # Every training pair, mapped back to raw ids, is one of the input pairs.
    users, items = ds.train_pairs()
    given = set(records)
    assert all((ds.raw_user_ids[u], ds.raw_item_ids[i]) in given for u, i in zip(users, items))
    assert all((ds.raw_user_ids[u], ds.raw_item_ids[ds.test_items[u]]) in given
               for u in range(ds.n_users))


def test_from_pairs_errors():
    with pytest.raises(ValueError, match="no column 'item'"):
        data.from_pairs(pd.DataFrame({"user": [1], "thing": [2]}))
    with pytest.raises(ValueError, match="empty"):
        data.from_pairs(pd.DataFrame({"user": [], "item": []}))
    dup = pd.DataFrame({"user": [0, 0, 0, 0], "item": [1, 2, 2, 3]})
    with pytest.raises(ValueError, match="duplicate interaction user=0, item=2"):
        data.from_pairs(dup, min_items=3)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".dat", ".parquet"])
def test_load_file_reads_every_format_to_the_same_data_set(tmp_path, suffix):
    """users.dat, CSV, TSV and Parquet files of the same interactions give one data set;
    the file and its sha256 are recorded."""
    rows = random_rows(n_users=40, n_items=70, low=3, high=12, seed=2)
    expected = data.load_users_file(write_users_file(tmp_path / "ref.dat", rows), seed=3)
    pairs = pd.DataFrame([(u, i) for u, r in enumerate(rows) for i in r],
                         columns=["uid", "iid"])
    path = tmp_path / f"clicks{suffix}"
    if suffix == ".dat":
        write_users_file(path, rows)
    elif suffix == ".parquet":
        pytest.importorskip("pyarrow")
        pairs.to_parquet(path)
    else:
        pairs.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    ds = data.load_file(path, user_col="uid", item_col="iid", seed=3)
    assert_same_dataset(expected, ds)
    assert ds.name == "clicks" and ds.item_tags is None
    assert ds.info["file"] == str(path.resolve())
    assert ds.info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_parquet_without_an_engine_says_what_to_install(tmp_path, monkeypatch):
    for module in ("pyarrow", "pyarrow.parquet", "fastparquet"):    # as if neither were
        monkeypatch.setitem(sys.modules, module, None)               # installed
    path = tmp_path / "clicks.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(ImportError, match="clicks.parquet needs a parquet engine: pip install "
                                          "pyarrow"):
        data.load_file(path)


def test_load_file_errors_name_the_file_and_the_parameter(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.csv does not exist"):
        data.load_file(tmp_path / "nothing.csv")
    path = tmp_path / "pairs.csv"
    pd.DataFrame({"uid": [1, 1, 1], "item": [1, 2, 3]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"pairs.csv has no column user_col='user' \(columns: "
                                         r"\['uid', 'item'\]\)"):
        data.load_file(path)
    with pytest.raises(ValueError, match="pairs.csv: no user has at least min_items=5"):
        data.load_file(path, user_col="uid")
    dup = tmp_path / "dup.tsv"
    dup.write_text("user\titem\n1\t2\n1\t2\n")
    with pytest.raises(ValueError, match="dup.tsv: duplicate interaction user=1, item=2"):
        data.load_file(dup)
    dat = tmp_path / "users.txt"
    dat.write_text("2 1 2\n3 1 x 2\n")
    with pytest.raises(ValueError, match="users.txt, line 2: 'x' is not an integer"):
        data.load_file(dat)


# --------------------------------------------------------------------------------------
# Synthetic planted groups
# --------------------------------------------------------------------------------------

def test_synthetic_groups_shapes_and_planted_structure():
    ds = data.synthetic(n_users=300, n_items=500, n_groups=5, items_per_user=10, seed=1)
    assert ds.n_users == 300 and ds.n_items <= 500
    assert ds.user_groups.shape == (ds.n_users,) and ds.item_groups.shape == (ds.n_items,)
    assert set(np.unique(ds.user_groups)) <= set(range(5))
    assert set(np.unique(ds.item_groups)) <= set(range(5))
    assert (np.diff(ds.train.indptr) == 8).all()       # 10 items, minus valid and test
    users, items = ds.train_pairs()
    same_group = (ds.user_groups[users] == ds.item_groups[items]).mean()
    assert same_group > 0.6                             # chance would be ~0.2


def test_synthetic_is_seeded():
    a, b, c = data.synthetic(seed=2), data.synthetic(seed=2), data.synthetic(seed=3)
    assert_same_dataset(a, b)
    np.testing.assert_array_equal(a.user_groups, b.user_groups)
    np.testing.assert_array_equal(a.item_groups, b.item_groups)
    assert a.train.shape != c.train.shape or (a.train != c.train).nnz > 0


def test_synthetic_argument_checks():
    with pytest.raises(ValueError, match="items_per_user"):
        data.synthetic(items_per_user=2)
    with pytest.raises(ValueError, match="n_groups"):
        data.synthetic(n_groups=0)


# --------------------------------------------------------------------------------------
# The Dataset object
# --------------------------------------------------------------------------------------

def test_dataset_arrays_are_read_only(small_synthetic):
    arrays = [small_synthetic.valid_items, small_synthetic.test_items,
              small_synthetic.raw_user_ids, small_synthetic.raw_item_ids,
              small_synthetic.user_groups, small_synthetic.item_groups,
              small_synthetic.train.data, small_synthetic.train.indices,
              small_synthetic.train.indptr]
    for array in arrays:
        with pytest.raises(ValueError, match="read-only"):
            array[0] = array[0]
    with pytest.raises(AttributeError):
        small_synthetic.name = "other"


def test_citeulike_arrays_are_read_only(citeulike):
    for array in (citeulike.train.indices, citeulike.test_items, citeulike.item_tags.data,
                  citeulike.item_tags.indices, citeulike.item_tags.indptr):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = array[0]


def test_dataset_helpers(small_synthetic):
    users, items = small_synthetic.train_pairs()
    assert users.dtype == items.dtype == np.int64
    assert users.size == small_synthetic.n_train
    assert dense_train(small_synthetic)[users, items].all()
    assert small_synthetic.held_out("valid") is small_synthetic.valid_items
    assert small_synthetic.held_out("test") is small_synthetic.test_items
    with pytest.raises(ValueError, match="split"):
        small_synthetic.held_out("train")


# --------------------------------------------------------------------------------------
# Negative sampling
# --------------------------------------------------------------------------------------

def test_negative_sampler_never_returns_a_positive(citeulike):
    sampler = data.NegativeSampler(citeulike.train)
    users, items = citeulike.train_pairs()
    assert sampler.is_positive(users, items).all()
    rng = np.random.default_rng(0)
    for _ in range(3):
        negatives = sampler.sample(users, rng)
        assert negatives.shape == users.shape
        assert ((negatives >= 0) & (negatives < citeulike.n_items)).all()
        assert not np.asarray(citeulike.train[users, negatives]).any()
        assert not sampler.is_positive(users, negatives).any()


def test_negative_sampler_is_uniform_over_non_positives():
    import scipy.sparse as sp

    # User 0 owns items 0..5 of 10, user 1 only item 9: dense collisions to re-draw.
    train = sp.csr_matrix((np.ones(7, np.float32), ([0] * 6 + [1], [0, 1, 2, 3, 4, 5, 9])),
                          shape=(2, 10))
    sampler = data.NegativeSampler(train)
    n = 40_000
    users = np.repeat([0, 1], n)
    negatives = sampler.sample(users, np.random.default_rng(1))
    counts0 = np.bincount(negatives[:n], minlength=10)
    counts1 = np.bincount(negatives[n:], minlength=10)
    assert counts0[:6].sum() == 0 and counts1[9] == 0
    np.testing.assert_allclose(counts0[6:] / n, 1 / 4, atol=0.015)
    np.testing.assert_allclose(counts1[:9] / n, 1 / 9, atol=0.01)
    # Seeded: the same generator state gives the same negatives.
    again = sampler.sample(users, np.random.default_rng(1))
    np.testing.assert_array_equal(negatives, again)


def test_negative_sampler_rejects_user_with_every_item():
    import scipy.sparse as sp

    with pytest.raises(ValueError, match="every item"):
        data.NegativeSampler(sp.csr_matrix(np.ones((2, 3), np.float32)))


def test_synthetic_large_is_seeded_sized_and_split():
    ds = data.synthetic_large(n_users=2000, n_items=3000, n_interactions=60_000, n_groups=5,
                              seed=3, chunk_users=500)
    again = data.synthetic_large(n_users=2000, n_items=3000, n_interactions=60_000,
                                 n_groups=5, seed=3, chunk_users=500)
    assert (ds.train != again.train).nnz == 0
    assert np.array_equal(ds.test_items, again.test_items)
    assert (ds.n_users, ds.n_items) == (2000, 3000)
    # repeated draws are made up for after the first chunk: close to what was asked
    assert 0.85 * 60_000 <= ds.info["n_interactions"] <= 1.05 * 60_000
    assert ds.info["n_interactions"] == ds.n_train + 2 * ds.n_users
    train = ds.train.tocsr()
    for u in range(0, 2000, 97):             # held-out items are not training items
        row = set(train.indices[train.indptr[u]:train.indptr[u + 1]])
        assert ds.valid_items[u] not in row and ds.test_items[u] not in row
        assert ds.valid_items[u] != ds.test_items[u] and len(row) >= 1
    # users mostly pick items of their own planted group (in_group = 0.7 plus chance)
    users, items = ds.train_pairs()
    same = (ds.user_groups[users] == ds.item_groups[items]).mean()
    assert 0.6 < same < 0.9
    with pytest.raises(ValueError, match="n_interactions must be in"):
        data.synthetic_large(n_users=100, n_items=50, n_interactions=100)
