"""The feature store: activations at a cut of the network, for a split, computed at most once.

``FeatureStore.get(split, cut)`` answers from, in this order:

    memory        what this run already holds
    disk cache    ``FeatureCache`` under a key of weights, data, preprocessing and cut
    a lower cut   the held activations at an earlier segment, run through segments[lower:cut]
    the images    segments[0:cut] over the split, in inference mode, without a graph

and keeps the time it spent: extraction of the training split counts as training time, that of
the held-out split as evaluation time, and ``cold_extract_seconds`` is what the deepest training
entry costs from the images (a cache hit reads it from the entry's description).

Several ranks (``comm``): extraction from the images is split into contiguous, disjoint shards,
one per rank; rank 0 gathers the rows in order, writes the cache entry once and sends the
features to every rank, so ``features`` mode extracts R times faster on R nodes.
"""
from __future__ import annotations

import time

import numpy

from ..data.datasets import MirroredDataset, Subset
from ..distributed import Communicator
from ..data.loader import DataLoader
from .features import FeatureDataset, MemoryEntry, cache_key, extract


class FeatureStore:
    """Features of ``splits`` (train, test) through ``model``'s segments.

    pipeline: the plain (non-augmenting) image pipeline;  mirror: store every training image and
    its mirror;  weights_id: a function returning the backbone's weights digest (the cache key);
    to_tensor: batch -> Tensor on the device;  log: a function taking one line of text;
    make_loader: dataset -> the loader extraction reads (default: a DataLoader through ``pipeline``;
    text passes length-sorted batches of token ids).
    """

    def __init__(self, model, splits, pipeline, cache, weights_id, to_tensor, batch_size: int, prefetch: int,
                 mirror: bool, log, show_progress: bool = True, make_loader=None, comm=None):
        self.comm = comm or Communicator()
        self.model, self.splits, self.pipeline, self.cache = model, splits, pipeline, cache
        self.make_loader = make_loader
        self.weights_id, self.to_tensor, self.log = weights_id, to_tensor, log
        self.batch_size, self.prefetch, self.mirror, self.show_progress = batch_size, prefetch, mirror, show_progress
        self.held: dict = {}  # (split, cut) -> FeatureDataset
        self._cold: dict = {}  # (split, cut) -> seconds to compute that entry from the images
        self.report: dict = {}  # "split@cut" -> hit, key, shape, seconds
        self.extract_seconds = 0.0  # training split, this run
        self.eval_extract_seconds = 0.0  # held-out split, this run
        self.cold_extract_seconds = 0.0  # what extraction of the training split costs without the cache

    def dataset(self, split: str):
        """The images behind a split's features (the training split mirrored when ``mirror``)."""
        dataset = self.splits.train if split == "train" else self.splits.test
        return MirroredDataset(dataset) if split == "train" and self.mirror else dataset

    def cache_parts(self, split: str, dataset, cut: int, pooled: bool) -> dict:
        """Everything the features depend on: the cache key is a digest of this."""
        return dict(weights=self.weights_id(), data=dataset.fingerprint(), preprocessing=self.pipeline.config(),
                    cut=cut, segments=self.model.segment_names[:cut], pooled=pooled, split=split,
                    dtype="float32", version=1)

    def cut_name(self, cut: int) -> str:
        names = self.model.segment_names
        return "pooled features" if cut == len(names) else f"input of {names[cut]}"

    def get(self, split: str, cut: int) -> FeatureDataset:
        """Activations at the input of segment ``cut`` (pooled when cut = all segments) for a split."""
        if (split, cut) not in self.held:
            dataset = self.dataset(split)
            parts = self.cache_parts(split, dataset, cut, pooled=cut == len(self.model.segments))
            key = cache_key(**parts)
            found = self._from_cache(split, cut, key, dataset)
            result, cold = found if found is not None else self._compute(split, cut, key, parts, dataset)
            self.held[(split, cut)] = result
            self._cold[(split, cut)] = cold
            if split == "train":  # an uncached run computes the deepest cache it needs from the images once
                self.cold_extract_seconds = max(self.cold_extract_seconds, cold)
        return self.held[(split, cut)]

    def _from_cache(self, split, cut, key, dataset):
        hit = self.cache.load(key)
        if hit is None:
            return None
        description = self.cache.description(key)
        cold = float(description.get("seconds_from_images", description.get("seconds", 0.0)))
        self.report[f"{split}@{cut}"] = {"hit": True, "key": key, "shape": list(hit[0].shape),
                                         "seconds_from_images": cold}
        self.log(f"feature cache hit: {split} split at '{self.cut_name(cut)}' {tuple(hit[0].shape)} "
                 f"({self.cache.paths(key)[0]})")
        return FeatureDataset(hit[0], hit[1], dataset.classes), cold

    def _compute(self, split, cut, key, parts, dataset):
        lower = [k for (s, k) in self.held if s == split and k < cut]
        start = max(lower) if lower else 0
        if lower:
            source = self.held[(split, start)]
        elif self.make_loader is not None:
            source = self.make_loader(dataset)
        else:
            source = DataLoader(dataset, batch_size=self.batch_size, shuffle=False, transform=self.pipeline,
                                seed=0, prefetch=self.prefetch)
        count = (f"{len(dataset) // 2} images and their mirrors" if isinstance(dataset, MirroredDataset)
                 else f"{len(dataset)} {getattr(self.splits, 'unit', 'images')}")
        self.log(f"extracting features: {split} split ({count}) through "
                 f"{', '.join(self.model.segment_names[start:cut])}"
                 + (f" on {self.comm.size} ranks" if self.comm.distributed and not lower else ""))
        if self.comm.distributed and not lower and len(dataset) >= self.comm.size:
            rows, labels, seconds, cold = self._compute_sharded(split, cut, key, parts, dataset)
        else:
            rows, labels, seconds, cold = self._compute_here(source, start, split, cut, key, parts)
        if split == "train":  # extraction of the training split is training time
            self.extract_seconds += seconds
        else:  # the held-out split's is evaluation time (scratch evaluates through the network too)
            self.eval_extract_seconds += seconds
        self.report[f"{split}@{cut}"] = {"hit": False, "key": key, "shape": list(rows.shape),
                                         "seconds": round(seconds, 3),
                                         "images_per_s": round(len(labels) / seconds, 2) if seconds else None}
        self.log(f"  {len(labels)} x {tuple(rows.shape[1:])} in {seconds:.1f}s "
                 f"({len(labels) / max(seconds, 1e-9):.1f} img/s)"
                 + (f", cached as {self.cache.paths(key)[0]}" if self.cache.enabled else ""))
        return FeatureDataset(rows, labels, dataset.classes), cold

    def _compute_here(self, source, start, split, cut, key, parts):
        """(rows, labels, seconds, seconds from the images) computed by this process alone."""
        with self.cache.entry(key, parts) if self.cache.enabled else MemoryEntry() as entry:
            rows, labels, seconds = extract(
                self.model, source, start, cut, self.batch_size, self.to_tensor, pool=parts["pooled"],
                desc=f"features {split}", show_progress=self.show_progress, allocate=entry.allocate,
                prefetch=self.prefetch)
            # what this entry costs from the images: its own time plus that of the entry it started from
            cold = seconds + (self._cold.get((split, start), 0.0) if start else 0.0)
            rows = entry.commit(labels, {"seconds": seconds, "seconds_from_images": cold, "images": int(len(labels))})
        return rows, labels, seconds, cold

    def _compute_sharded(self, split, cut, key, parts, dataset):
        """Each rank extracts rows [a_r, b_r) of the split; rank 0 assembles, caches and shares them."""
        comm, began = self.comm, time.perf_counter()
        mine = numpy.array_split(numpy.arange(len(dataset)), comm.size)[comm.rank]
        shard = Subset(dataset, mine)
        loader = self.make_loader(shard) if self.make_loader is not None else DataLoader(
            shard, batch_size=self.batch_size, shuffle=False, transform=self.pipeline, seed=0, prefetch=self.prefetch)
        rows, labels, seconds = extract(self.model, loader, 0, cut, self.batch_size, self.to_tensor,
                                        pool=parts["pooled"], desc=f"features {split}",
                                        show_progress=self.show_progress, prefetch=self.prefetch)
        all_rows, all_labels = comm.gather_rows(rows), comm.gather_rows(labels.astype(numpy.int64))
        if comm.is_root:
            with self.cache.entry(key, parts) if self.cache.enabled else MemoryEntry() as entry:
                target = entry.allocate(all_rows.shape, all_rows.dtype)
                target[...] = all_rows
                all_rows = entry.commit(all_labels, {"seconds": seconds, "seconds_from_images": seconds,
                                                     "images": int(len(all_labels)), "ranks": comm.size})
        rows = comm.broadcast_array(numpy.ascontiguousarray(all_rows) if comm.is_root else None)
        labels = comm.broadcast_array(all_labels if comm.is_root else None)
        seconds = time.perf_counter() - began  # wall time, gathering and sharing included
        return rows, labels, seconds, seconds
