"""The published data sets htdviz reads (CiteULike-t, Foursquare): where each file comes
from, its sha256, and how it is made available.

Each file is resolved in this order:

1. the data folder (``HTDVIZ_DATA_DIR``, else the project's ``data/`` folder when htdviz runs
   from a checkout, else ``~/.cache/htdviz``), sha256-checked;
2. a download from the public source, sha256-checked and written atomically;
3. offline, the mirror folder named by ``HTDVIZ_DATA_MIRROR`` (files under ``citeulike-t/``
   and ``foursquare/``), copied into the data folder, sha256-checked. The mirror is only
   read, never written.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from ._io import write_atomically

logger = logging.getLogger(__name__)

_COLLMETRIC = "https://raw.githubusercontent.com/changun/CollMetric/master/citeulike-t/"
_AUTHORS = "https://raw.githubusercontent.com/SeongKu-Kang/Topology_Distillation_KDD21/main/dataset/"

#: file name -> (public URL, sha256) of every CiteULike-t file htdviz reads.
CITEULIKE_FILES = {
    "users.dat": (_COLLMETRIC + "users.dat",
                  "02d5d429b2c0362e0ed79f6ef204666b4092563d21493abf4dfb521e8a7078bf"),
    "tags.dat": (_COLLMETRIC + "tags.dat",
                 "2f1e6dd94fe216a4453caf67e337c45f73938373b21d2aa3b6d2696387449e76"),
    "tag-item.dat": (_COLLMETRIC + "tag-item.dat",
                     "e2b80fc0e023780b63c00a397a2d0934eff6dbaf8a1b918778698361dae7ce6b"),
    "Train": (_AUTHORS + "Train", "4ff316eb275346131c38b218f281d944552c1de61d7bf7008134ba82262bf16b"),
    "Valid": (_AUTHORS + "Valid", "9f7920c83158f69c69e5887b1a01f7346087f3690fb54e8930861ba0765b93b9"),
    "Test": (_AUTHORS + "Test", "b1375faa9e1fcccf7f8e481d9e350c11604be41f330b3fd4c663576ce71175c5"),
}

#: The Foursquare check-ins of the paper's second data set (Dingqi Yang's data, every user
#: with >= 5 venues), as the same line of distillation work publishes them, pinned to a commit.
FOURSQUARE_FILES = {
    "users.dat": ("https://raw.githubusercontent.com/hieunm44/hyperkdma/"
                  "2b4c38b881549d3b09e551a2ba77c695e22cf55d/datasets/Foursquare/users.dat",
                  "808c42ee414bdef5990e4f61143e2e02f1d266c59b303f37b4050a99d2536c78"),
}

#: Published data sets by folder name: file name -> (public URL, sha256).
PUBLISHED = {"citeulike-t": CITEULIKE_FILES, "foursquare": FOURSQUARE_FILES}


def default_data_dir() -> Path:
    """The download cache: ``HTDVIZ_DATA_DIR``, else the project's ``data/`` folder."""
    if os.environ.get("HTDVIZ_DATA_DIR"):
        return Path(os.environ["HTDVIZ_DATA_DIR"])
    project_data = Path(__file__).resolve().parent.parent / "data"
    if project_data.is_dir():
        return project_data
    return Path.home() / ".cache" / "htdviz"


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes (hex), read in 1 MiB blocks."""
    return _sha256(Path(path))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch_verified(target: Path, source, sha256: str, where: str) -> None:
    """Copy ``source`` (a readable binary stream) to ``target``; keep it only if its hash fits."""
    def write(f):
        digest = hashlib.sha256()
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
            f.write(block)
        if digest.hexdigest() != sha256:
            raise ValueError(f"{where}: sha256 {digest.hexdigest()} does not match the expected "
                             f"{sha256}; the file was not kept")
    write_atomically(target, write)


def fetch_citeulike(data_dir: str | Path | None = None, files=tuple(CITEULIKE_FILES)) -> Path:
    """Make the CiteULike-t files available in ``data_dir/citeulike-t`` and return that folder."""
    return fetch_published("citeulike-t", data_dir, files)


def fetch_published(name: str, data_dir: str | Path | None = None, files=None) -> Path:
    """Make the files of published data set ``name`` (a key of :data:`PUBLISHED`) available
    in ``data_dir/<name>`` and return that folder.

    Each file comes from the data folder if it is there (sha256-checked), else is
    downloaded from its public source, else copied from the mirror folder
    ``$HTDVIZ_DATA_MIRROR/<name>/``; a copy is kept only if its sha256 is the published one,
    and is written atomically. ``files`` defaults to all of the set's files.
    """
    if name not in PUBLISHED:
        raise ValueError(f"name must be one of {sorted(PUBLISHED)}, got {name!r}")
    folder = Path(data_dir or default_data_dir()) / name
    mirror = os.environ.get("HTDVIZ_DATA_MIRROR")
    for file in files or PUBLISHED[name]:
        url, sha256 = PUBLISHED[name][file]
        target = folder / file
        if target.exists():
            if _sha256(target) == sha256:
                continue
            raise ValueError(f"{target}: sha256 does not match the published {sha256}; "
                             f"delete the file to download it again")
        errors = []
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                _fetch_verified(target, response, sha256, url)
            logger.info("downloaded %s", url)
            continue
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            errors.append(f"download {url}: {exc}")
        if mirror:
            source = Path(mirror) / name / file
            if source.exists():
                with open(source, "rb") as f:
                    _fetch_verified(target, f, sha256, str(source))
                logger.info("copied %s from the mirror %s", file, mirror)
                continue
            errors.append(f"mirror: {source} does not exist")
        else:
            errors.append("mirror: HTDVIZ_DATA_MIRROR is not set")
        raise FileNotFoundError(
            f"{name} file {file!r} is not in {folder} and could not be fetched "
            f"({'; '.join(errors)}). Fix: connect to the internet, or put the file (sha256 "
            f"{sha256}) into {folder}, or set HTDVIZ_DATA_MIRROR to a folder holding "
            f"{name}/{file}.")
    return folder
