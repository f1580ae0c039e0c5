"""Writing files so that a crash never leaves a half-written one: write beside, then rename.

    atomic_write(path, write)   call ``write(handle)`` on a temporary file in ``path``'s folder,
                                flush + fsync, then ``os.replace`` it over ``path``
    temporary_beside(path)      a temporary path in ``path``'s folder, for writers that need a
                                path and rename it themselves
                                (the feature cache's memory-mapped .npy)

``os.replace`` within one folder is atomic on POSIX and Windows: a reader sees the old file or
the new one, never a mixture.  Used by the weight files (transfer/), checkpoints, the feature
cache and the run log (train/).  Knows nothing of minitl.
"""
from __future__ import annotations

import os
import tempfile


def _temporary_beside(path: str) -> tuple[int, str]:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    return tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + "-", dir=directory)


def temporary_beside(path) -> str:
    """A new empty file ``.tmp-<name>-XXXX`` in ``path``'s folder (created there, so that
    ``os.replace`` onto ``path`` stays within one file system)."""
    fd, tmp = _temporary_beside(os.fspath(path))
    os.close(fd)
    return tmp


def remove_if_present(path) -> None:
    if os.path.exists(path):
        os.unlink(path)


def atomic_write(path, write) -> str:
    """Call ``write(handle)`` on a temporary file next to ``path``, fsync, then rename over ``path``."""
    path = os.fspath(path)
    fd, tmp = _temporary_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        remove_if_present(tmp)
        raise
    return path

