"""Each rank's shard of the data: disjoint, seeded, the same global order at every world size.

Epoch e's global order is the permutation drawn from Generator(seed, e) (as the DataLoader
draws it), padded by wrapping around to a multiple of R·b (R ranks, batch b per rank).  Global
step s uses positions [s·R·b, (s+1)·R·b) of that order; rank r takes the r-th block of b:

    rank r, step s:  order[s·R·b + r·b : s·R·b + (r+1)·b]

so one step of R ranks × b covers exactly the examples of one step of 1 process × R·b, which
is what makes data-parallel training equal to large-batch training — and why a run can resume
at another world size at an epoch boundary when R·b stays the same.
"""
from __future__ import annotations

import math

import numpy


class DistributedSampler:
    """Batches of indices for ``rank`` of ``size``: ``for indices in sampler.batches(epoch): ...``."""

    def __init__(self, n: int, rank: int, size: int, batch_size: int, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = False):
        if not 0 <= rank < size:
            raise ValueError(f"rank {rank} is outside a world of size {size}")
        if n < 1 or batch_size < 1:
            raise ValueError(f"need at least one example and batch_size >= 1 (got n={n}, batch_size={batch_size})")
        self.n, self.rank, self.size, self.batch_size = int(n), int(rank), int(size), int(batch_size)
        self.seed, self.shuffle, self.drop_last = int(seed), shuffle, drop_last

    @property
    def global_batch(self) -> int:
        return self.size * self.batch_size

    def __len__(self) -> int:
        steps = self.n / self.global_batch
        return math.floor(steps) if self.drop_last else math.ceil(steps)

    def order(self, epoch: int) -> numpy.ndarray:
        if not self.shuffle:
            return numpy.arange(self.n)
        return numpy.random.default_rng([self.seed, epoch]).permutation(self.n)

    def batches(self, epoch: int):
        order = self.order(epoch)
        total = len(self) * self.global_batch
        if total > self.n:  # wrap around so every rank gets full, equal batches
            order = numpy.resize(order, total)
        for step in range(len(self)):
            start = step * self.global_batch + self.rank * self.batch_size
            yield order[start:start + self.batch_size]
