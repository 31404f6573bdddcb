"""htdviz.published: the published files fetched, checked and cached atomically; the
mirror only read."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from htdviz import published


def make_mirror(root: Path, source_dir: Path, names) -> Path:
    """A throw-away mirror folder holding copies of ``names`` from ``source_dir``."""
    (root / "citeulike-t").mkdir(parents=True)
    for name in names:
        shutil.copyfile(source_dir / "citeulike-t" / name, root / "citeulike-t" / name)
    return root


def test_mirror_is_used_when_download_fails(tmp_path, citeulike_dir, urlopen, monkeypatch):
    mirror = make_mirror(tmp_path / "mirror", citeulike_dir, ["Valid", "Test"])
    monkeypatch.setenv("HTDVIZ_DATA_MIRROR", str(mirror))
    folder = published.fetch_citeulike(tmp_path / "cache", files=("Valid", "Test"))
    assert folder == tmp_path / "cache" / "citeulike-t"
    assert len(urlopen.urls) == 2                       # a download was tried first
    for name in ("Valid", "Test"):
        assert (folder / name).read_bytes() == (mirror / "citeulike-t" / name).read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == ["Test", "Valid"]   # no leftovers


def test_mirror_checksum_mismatch_raises_and_keeps_nothing(tmp_path, citeulike_dir, urlopen,
                                                          monkeypatch):
    mirror = make_mirror(tmp_path / "mirror", citeulike_dir, ["Valid"])
    corrupt = mirror / "citeulike-t" / "Valid"
    content = bytearray(corrupt.read_bytes())
    content[len(content) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(content))
    monkeypatch.setenv("HTDVIZ_DATA_MIRROR", str(mirror))
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="sha256"):
        published.fetch_citeulike(cache, files=("Valid",))
    assert list((cache / "citeulike-t").iterdir()) == []   # neither the file nor a .part
    assert corrupt.read_bytes() == bytes(content)          # the mirror is only read


def test_nothing_available_names_the_fix(tmp_path, urlopen, monkeypatch):
    monkeypatch.delenv("HTDVIZ_DATA_MIRROR", raising=False)
    with pytest.raises(FileNotFoundError, match="HTDVIZ_DATA_MIRROR") as err:
        published.fetch_citeulike(tmp_path / "cache", files=("Valid",))
    assert "Valid" in str(err.value) and "is not set" in str(err.value)
    # A mirror that lacks the file: the message names the path that was looked for.
    (tmp_path / "empty_mirror").mkdir()
    monkeypatch.setenv("HTDVIZ_DATA_MIRROR", str(tmp_path / "empty_mirror"))
    with pytest.raises(FileNotFoundError, match="does not exist") as err:
        published.fetch_citeulike(tmp_path / "cache", files=("Valid",))
    assert str(tmp_path / "empty_mirror" / "citeulike-t" / "Valid") in str(err.value)


def test_cached_files_are_reused(tmp_path, citeulike_dir, urlopen, monkeypatch):
    mirror = make_mirror(tmp_path / "mirror", citeulike_dir, ["Valid"])
    monkeypatch.setenv("HTDVIZ_DATA_MIRROR", str(mirror))
    cache = tmp_path / "cache"
    published.fetch_citeulike(cache, files=("Valid",))
    calls = len(urlopen.urls)
    shutil.rmtree(mirror)
    monkeypatch.delenv("HTDVIZ_DATA_MIRROR")
    published.fetch_citeulike(cache, files=("Valid",))          # neither network nor mirror needed
    assert len(urlopen.urls) == calls


def test_corrupt_cached_file_is_not_used(tmp_path, citeulike_dir, urlopen):
    folder = tmp_path / "cache" / "citeulike-t"
    folder.mkdir(parents=True)
    (folder / "Valid").write_bytes((citeulike_dir / "citeulike-t" / "Valid").read_bytes()[:-1])
    with pytest.raises(ValueError, match="delete the file"):
        published.fetch_citeulike(tmp_path / "cache", files=("Valid",))


def test_data_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HTDVIZ_DATA_DIR", str(tmp_path / "somewhere"))
    assert published.default_data_dir() == tmp_path / "somewhere"
