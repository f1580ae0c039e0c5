"""Length-bucketed batches: texts of similar length share a batch, so padding costs little.

Training order of epoch e (``shuffle=True``), a pure function of (seed, e):

    1. permute all indices with Generator(seed, e)
    2. cut the permutation into buckets of ``batch_size * bucket_batches`` texts
    3. sort each bucket by length (stable), cut it into batches
    4. permute the batches with the same generator

so batches are random in content and order, yet each holds texts of nearly one length.
Evaluation order (``shuffle=False``): all indices sorted by length, cut into batches — the least
padding of all; callers put predictions back in dataset order.
"""
from __future__ import annotations

import math

import numpy

from ..loader import DataLoader


def bucketed_batches(lengths, batch_size: int, shuffle: bool = True, seed: int = 0, epoch: int = 0,
                     bucket_batches: int = 50, drop_last: bool = False) -> list:
    """Index arrays, one per batch (see the module docstring)."""
    lengths = numpy.asarray(lengths)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    n = len(lengths)
    if not shuffle:
        order = numpy.argsort(lengths, kind="stable")
        batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    else:
        rng = numpy.random.default_rng([int(seed), int(epoch)])
        order = rng.permutation(n)
        span = batch_size * max(1, int(bucket_batches))
        batches = []
        for start in range(0, n, span):
            bucket = order[start:start + span]
            bucket = bucket[numpy.argsort(lengths[bucket], kind="stable")]
            batches.extend(bucket[i:i + batch_size] for i in range(0, len(bucket), batch_size))
        batches = [batches[i] for i in rng.permutation(len(batches))]
    if drop_last:
        batches = [b for b in batches if len(b) == batch_size]
    return batches


def padding_fraction(lengths, batches) -> float:
    """Share of the padded (batch x longest) slots that are padding."""
    lengths = numpy.asarray(lengths)
    total = sum(len(b) * int(lengths[b].max()) for b in batches if len(b))
    return 1.0 - float(lengths.sum()) / total if total else 0.0


def batch_count(n: int, batch_size: int, drop_last: bool = False) -> int:
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def lengths_of(dataset) -> numpy.ndarray:
    """Token counts of an EncodedText, or of a Subset of one (in the subset's order)."""
    if hasattr(dataset, "lengths"):
        return numpy.asarray(dataset.lengths)
    if hasattr(dataset, "indices") and hasattr(dataset, "dataset"):
        return lengths_of(dataset.dataset)[dataset.indices]
    raise TypeError(f"{type(dataset).__name__} has no token lengths (tokenize it with EncodedText)")


class BucketLoader(DataLoader):
    """A :class:`DataLoader` whose batch order is :func:`bucketed_batches`: batches of
    ((input_ids, attention_mask), labels), each padded only to its own longest text."""

    def __init__(self, dataset, batch_size: int = 16, shuffle: bool = False, seed: int = 0, prefetch: int = 0,
                 bucket_batches: int = 50, drop_last: bool = False):
        super().__init__(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed,
                         prefetch=prefetch)
        self.lengths, self.bucket_batches = lengths_of(dataset), int(bucket_batches)

    def batch_indices(self, epoch: int | None = None):
        epoch = self.epoch if epoch is None else epoch
        yield from bucketed_batches(self.lengths, self.batch_size, self.shuffle, self.seed, epoch,
                                    self.bucket_batches, self.drop_last)
