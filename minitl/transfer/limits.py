"""Size budget for reading a file: how many bytes a file may make minitl allocate.

A weight file's tensors are backed by its bytes, so a tensor may never be larger than the bytes
behind it, and a whole file may materialise at most

    budget(file) = max(FLOOR, RATIO * file size)        (RATIO = 8, FLOOR = 64 MiB)

bytes (the ratio leaves room for compressed ``.npz`` / ``.h5`` data and bfloat16 widened to
float32).  A file asking for more — a header claiming 10^12 elements, a deflate bomb, a
stride-0 view — is refused with :class:`SizeLimitError` *before* anything is allocated.
Set the environment variable ``MINITL_MAX_LOAD_BYTES`` (bytes; suffixes K, M, G, T allowed,
e.g. ``MINITL_MAX_LOAD_BYTES=40G``) to replace the budget for files you trust.
"""
from __future__ import annotations

import os

from .errors import SizeLimitError

ENV_VAR = "MINITL_MAX_LOAD_BYTES"
RATIO = 8
FLOOR = 64 * 1024 * 1024
_SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def max_load_bytes(file_size: int) -> int:
    """The budget for a file of ``file_size`` bytes (``MINITL_MAX_LOAD_BYTES`` if set)."""
    raw = os.environ.get(ENV_VAR, "").strip().upper().removesuffix("B").removesuffix("I")
    if raw:
        number, unit = (raw[:-1], raw[-1]) if raw[-1] in _SUFFIX else (raw, "")
        try:
            return int(float(number) * _SUFFIX[unit])
        except ValueError:
            raise SizeLimitError(f"{ENV_VAR}={os.environ[ENV_VAR]!r} is not a size such as 4000000000 or 40G") from None
    return max(FLOOR, RATIO * int(file_size))


def count_of(shape) -> int:
    """Number of elements of ``shape``, as an exact Python int (never overflows)."""
    count = 1
    for n in shape:
        count *= int(n)
    return count


class Budget:
    """Bytes a reader may still allocate for one file; :meth:`take` before each allocation."""

    def __init__(self, path, file_size: int | None = None):
        self.path = os.fspath(path)
        self.file_size = os.path.getsize(self.path) if file_size is None else int(file_size)
        self.limit = max_load_bytes(self.file_size)
        self.used = 0

    def take(self, nbytes: int, what: str) -> None:
        """Reserve ``nbytes`` for ``what``; :class:`SizeLimitError` if the file's budget would be exceeded."""
        nbytes = int(nbytes)
        if nbytes < 0 or self.used + nbytes > self.limit:
            raise SizeLimitError(
                f"{what} needs {nbytes:,} bytes, beyond what this {self.file_size:,}-byte file may allocate "
                f"({self.limit:,} bytes in all; set {ENV_VAR} to raise the limit for a file you trust)"
            )
        self.used += nbytes
