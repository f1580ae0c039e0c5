"""Feature extraction with an on-disk cache: run the frozen part of Φ once, train on its output.

The cache key is a sha256 of everything the features depend on:

    weights digest (every parameter and buffer of the backbone, bytes included)
    + dataset fingerprint (content hash of arrays, or paths/sizes/mtimes of image files)
    + preprocessing (input size, channel order, mean/std; augmentation is never cached)
    + where the network is cut (segment index and names)

so a second run with the same inputs loads ``<key>.x.npy`` / ``<key>.y.npy`` and skips the
backbone, and any change (other weights, other images, other input size) misses.  Files are
written to a temporary name and renamed, so a killed extraction leaves no half-written entry.
Large activations are memory-mapped (``mmap_mode="r"``) rather than read into memory.
"""
from __future__ import annotations

import hashlib
import json
import os
import time

import numpy

from ..data.loader import DataLoader
from ..fileio import atomic_write, remove_if_present, remove_stale_temporaries, temporary_beside
from ..tensor import no_grad
from .progress import progress_bar


def default_cache_dir() -> str:
    base = os.environ.get("MINITL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "minitl")
    return os.path.join(base, "features")


class FeatureDataset:
    """Cached activations (N, ...) and labels (N,) — what the DataLoader iterates in cached phases."""

    in_memory = True

    def __init__(self, features, labels, classes=()):
        if len(features) != len(labels):
            raise ValueError(f"FeatureDataset: {len(features)} feature rows but {len(labels)} labels")
        self.features, self.labels, self.classes = features, numpy.asarray(labels, dtype=numpy.int64), list(classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return numpy.asarray(self.features[index]), int(self.labels[index])

    @property
    def targets(self):
        return self.labels

    def get_batch(self, indices):
        indices = numpy.asarray(indices, dtype=numpy.int64)
        if isinstance(self.features, numpy.memmap) and len(indices) > 1:
            order = numpy.argsort(indices)  # read a memory map in file order, then restore
            rows = numpy.empty((len(indices),) + self.features.shape[1:], self.features.dtype)
            rows[order] = self.features[indices[order]]
            return rows, self.labels[indices]
        return numpy.asarray(self.features[indices]), self.labels[indices]


def cache_key(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:40]


class FeatureCache:
    """``<directory>/<key>.x.npy``, ``<key>.y.npy``, ``<key>.json`` (what the key was made of)."""

    def __init__(self, directory=None, enabled: bool = True):
        self.directory = os.fspath(directory) if directory else default_cache_dir()
        self.enabled = enabled

    def paths(self, key):
        base = os.path.join(self.directory, key)
        return base + ".x.npy", base + ".y.npy", base + ".json"

    def load(self, key):
        """(features memory-mapped, labels) or None on a miss (or a damaged entry, which is removed)."""
        if not self.enabled:
            return None
        x_path, y_path, _ = self.paths(key)
        if not (os.path.isfile(x_path) and os.path.isfile(y_path)):
            return None
        try:  # both memory-mapped: a header claiming 10^12 rows cannot make this allocate
            features = numpy.load(x_path, mmap_mode="r", allow_pickle=False)
            labels = numpy.load(y_path, mmap_mode="r", allow_pickle=False)
            if (features.dtype.kind != "f" or features.ndim < 1 or labels.dtype.kind not in "iu" or labels.ndim != 1
                    or len(features) != len(labels)):
                raise ValueError("not a feature-cache entry (dtype, shape or row count)")
            labels = numpy.array(labels, dtype=numpy.int64)
        except Exception:  # noqa: BLE001 - any damage (truncated, bit-flipped, foreign file) is a miss
            for path in self.paths(key):
                if os.path.exists(path):
                    os.unlink(path)
            return None
        return features, labels

    def description(self, key) -> dict:
        """What an entry was made of, and how long its extraction took (``seconds``)."""
        try:
            with open(self.paths(key)[2]) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {}

    def entry(self, key, description: dict) -> "CacheEntry":
        """A context manager writing one entry: ``allocate`` the features, fill them, ``commit(labels)``;
        an entry left without commit (an error, a kill) leaves no file behind."""
        return CacheEntry(self, key, description)


class CacheEntry:
    """One cache entry being written.  ``allocate(shape, dtype)`` returns a memory-mapped array under
    a temporary name; ``commit(labels, extra)`` writes labels and description, then renames the
    features into place last (their presence marks a complete entry) and returns them read back
    memory-mapped.  Leaving the ``with`` block without a commit removes the temporary file."""

    def __init__(self, cache: FeatureCache, key: str, description: dict):
        self.cache, self.key, self.description = cache, key, description
        self._tmp, self._array, self.committed = None, None, False

    def __enter__(self) -> "CacheEntry":
        return self

    def allocate(self, shape, dtype):
        if self._tmp is not None:
            raise RuntimeError("CacheEntry.allocate: called twice")
        remove_stale_temporaries(self.cache.directory, names=(self.key,))  # left by a killed extraction of this entry
        self._tmp = temporary_beside(self.cache.paths(self.key)[0])
        self._array = numpy.lib.format.open_memmap(self._tmp, mode="w+", dtype=dtype, shape=shape)
        return self._array

    def commit(self, labels, extra=None):
        if self._tmp is None:
            raise RuntimeError("CacheEntry.commit: nothing was allocated")
        x_path, y_path, meta_path = self.cache.paths(self.key)
        self._array.flush()
        self._array = None  # release the map before the rename
        labels = numpy.asarray(labels, dtype=numpy.int64)
        atomic_write(y_path, lambda handle: numpy.save(handle, labels))
        text = json.dumps({**self.description, **(extra or {})}, indent=1, default=str)
        atomic_write(meta_path, lambda handle: handle.write(text.encode()))
        os.replace(self._tmp, x_path)  # last: its presence marks a complete entry
        self.committed = True
        return self.cache.load(self.key)[0]

    def __exit__(self, kind, error, traceback):
        if self._tmp is not None and not self.committed:
            self._array = None
            remove_if_present(self._tmp)
        return False


class MemoryEntry:
    """What :class:`CacheEntry` offers, in memory: for runs with the cache turned off."""

    def __enter__(self) -> "MemoryEntry":
        return self

    def allocate(self, shape, dtype):
        self._array = numpy.empty(shape, dtype=dtype)
        return self._array

    def commit(self, labels, extra=None):
        return self._array

    def __exit__(self, kind, error, traceback):
        return False


def extract(model, source, start: int, stop: int, batch_size: int, to_tensor, pool: bool = False,
            desc: str = "features", show_progress: bool = True, allocate=None, prefetch: int = 1):
    """Run segments[start:stop] of ``model`` (no graph, inference mode) over ``source`` — a DataLoader of
    images (start = 0) or a FeatureDataset of activations at ``start``.  ``pool``: global-average
    pool the result (pooled features for the head).  ``allocate(shape, dtype)`` makes the output
    array (a memory map, say; default ``numpy.empty``); returns (features, labels, seconds)."""
    loader = source if isinstance(source, DataLoader) else DataLoader(source, batch_size=batch_size, prefetch=prefetch)
    loader.set_epoch(0)
    bar = progress_bar(len(loader.dataset), desc=desc, enabled=show_progress, unit="img")
    began = time.perf_counter()
    allocate = allocate or (lambda shape, dtype: numpy.empty(shape, dtype=dtype))
    rows, labels, filled = None, [], 0
    try:  # frozen layers compute in inference mode (BatchNorm: running statistics, never updated)
        with model.evaluating(), no_grad():
            for x, y in loader:
                h = model.run_segments(to_tensor(x), start, stop)
                if pool:
                    h = model.head.pool(h)
                h = h.numpy()
                if rows is None:
                    rows = allocate((len(loader.dataset),) + h.shape[1:], h.dtype)
                rows[filled:filled + len(h)] = h
                filled += len(h)
                labels.append(numpy.asarray(y))
                bar.update(len(h))
    finally:
        bar.close()
    labels = numpy.concatenate(labels) if labels else numpy.zeros(0, numpy.int64)
    return rows, labels, time.perf_counter() - began
