"""Files written whole or not at all (caches, run files, checkpoints, reports)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(target: Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``target``, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)          # mkstemp makes it private; a cache file is not secret
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
