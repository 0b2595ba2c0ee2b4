"""Atomic file writes shared by every writer (records, scores, feature cache, memos).

A reader never sees a half-written file: the content goes to a temporary file in the same
folder, then os.replace swaps it in. tempfile creates files with mode 0600; the final file
gets the mode a plain open() would have given (0666 minus the umask), so results stay
readable to the group on a shared filesystem.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call write(tmp_path), then move the finished file to `path` with umask permissions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
