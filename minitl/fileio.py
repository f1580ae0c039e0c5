"""Writing files so that a crash never leaves a half-written one: write beside, then rename.

    atomic_write(path, write)   call ``write(handle)`` on a temporary file in ``path``'s folder,
                                flush + fsync, then ``os.replace`` it over ``path``
    temporary_beside(path)      a temporary path in ``path``'s folder, for writers that need a
                                path and rename it themselves
                                (the feature cache's memory-mapped .npy)

``os.replace`` within one folder is atomic on POSIX and Windows: a reader sees the old file or
the new one, never a mixture.  A temporary is named ``.tmp-<name>-<pid>-XXXXXXXX``, so a
process killed mid-write (SIGKILL: no cleanup runs) leaves one whose owner is provably gone;
``remove_stale_temporaries(folder, names)`` removes those (a run calls it on start).  Used by the weight files (transfer/), checkpoints, the feature
cache and the run log (train/).  Knows nothing of minitl.
"""
from __future__ import annotations

import os
import re
import tempfile


def _temporary_beside(path: str) -> tuple[int, str]:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    return tempfile.mkstemp(prefix=f".tmp-{os.path.basename(path)}-{os.getpid()}-", dir=directory)


def temporary_beside(path) -> str:
    """A new empty file ``.tmp-<name>-XXXX`` in ``path``'s folder (created there, so that
    ``os.replace`` onto ``path`` stays within one file system)."""
    fd, tmp = _temporary_beside(os.fspath(path))
    os.close(fd)
    return tmp


_TEMPORARY = re.compile(r"^\.tmp-(?P<name>.+)-(?P<pid>\d+)-[A-Za-z0-9_]{8}$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid < 2 ** 31  # another user's process (or an impossible id: not ours)
    return True


def remove_stale_temporaries(directory, names=None) -> tuple[int, int]:
    """Remove ``.tmp-<name>-<pid>-*`` files in ``directory`` whose writer process no longer exists.

    ``names``: only temporaries of these target names (a tuple of names or name prefixes).
    Returns (files removed, bytes freed).  A temporary of a live process is never touched.
    """
    directory = os.fspath(directory)
    removed = freed = 0
    try:
        entries = os.listdir(directory)
    except OSError:
        return 0, 0
    for entry in entries:
        match = _TEMPORARY.match(entry)
        if match is None or (names is not None and not match["name"].startswith(tuple(names))):
            continue
        if _alive(int(match["pid"])):
            continue
        path = os.path.join(directory, entry)
        try:
            size = os.path.getsize(path)
            os.unlink(path)
        except OSError:
            continue
        removed, freed = removed + 1, freed + size
    return removed, freed


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

