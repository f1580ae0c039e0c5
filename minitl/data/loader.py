"""DataLoader: batches of NumPy arrays, shuffled and augmented repeatably, optionally prefetched.

Randomness is a pure function of (seed, epoch, batch index):

    order of epoch e      = permutation from Generator(seed, e)
    transforms of batch b = Generator(seed, e, b)

so a run resumed at an epoch boundary sees exactly the batches an uninterrupted run would,
and a background prefetching thread yields the same batches as the main thread.

Data-parallel runs: ``shard=(rank, size)`` makes ``batch_size`` the *global* batch and yields
this rank's part of each one, ``numpy.array_split(global batch, size)[rank]`` — disjoint across
ranks, together exactly the batch a single process would take, in every epoch's seeded order
(which depends on seed and epoch only, so a run can resume at another world size).
"""
from __future__ import annotations

import math
import queue
import threading

import numpy

_DONE = object()


class DataLoader:
    """Iterate ``dataset`` in batches of (x, y): x stacked transform outputs, y int64 labels.

    transform: ``t(image, rng) -> array`` applied to each sample (None: raw arrays, batched by
    ``dataset.get_batch``).  shuffle: a new order every epoch (call :meth:`set_epoch`, or let
    each ``iter`` advance the epoch).  drop_last: skip the final short batch.  prefetch: number
    of batches a background thread prepares ahead (0: none).  shard: (rank, world size) of a
    data-parallel run: yield this rank's share of every global batch of ``batch_size``.
    """

    def __init__(self, dataset, batch_size: int = 32, shuffle: bool = False, drop_last: bool = False,
                 transform=None, seed: int = 0, prefetch: int = 0, shard: tuple[int, int] = (0, 1)):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        rank, size = shard
        if not 0 <= rank < size:
            raise ValueError(f"shard: rank {rank} is outside a world of size {size}")
        self.shard = (int(rank), int(size))
        if prefetch < 0:
            raise ValueError(f"prefetch must be >= 0, got {prefetch}")
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, int(batch_size), shuffle, drop_last
        self.transform, self.seed, self.prefetch = transform, int(seed), int(prefetch)
        self.epoch = 0
        self._epoch_set = False

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Fix the epoch whose order and augmentation the next iteration uses."""
        self.epoch, self._epoch_set = int(epoch), True

    def order(self, epoch: int | None = None) -> numpy.ndarray:
        epoch = self.epoch if epoch is None else epoch
        n = len(self.dataset)
        if not self.shuffle:
            return numpy.arange(n)
        return numpy.random.default_rng([self.seed, epoch]).permutation(n)

    def batch_indices(self, epoch: int | None = None):
        order = self.order(epoch)
        rank, size = self.shard
        for b in range(len(self)):
            indices = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield indices if size == 1 else numpy.array_split(indices, size)[rank]

    def make_batch(self, indices, epoch: int, batch: int):
        """The (x, y) of one batch; its random transforms use Generator(seed, epoch, batch)."""
        if self.transform is None:
            return self.dataset.get_batch(indices)
        if len(indices) == 0:  # a rank's empty share of a last batch smaller than the world
            return numpy.zeros((0,), numpy.float32), numpy.zeros(0, numpy.int64)
        rng = numpy.random.default_rng([self.seed, epoch, batch, 1])
        xs, ys = [], []
        if getattr(self.dataset, "in_memory", False):
            images, labels = self.dataset.get_batch(indices)  # arrays in memory: one gather
            pairs = zip(images, labels)
        else:
            pairs = (self.dataset[int(i)] for i in indices)
        for image, label in pairs:
            xs.append(self.transform(image, rng))
            ys.append(label)
        return numpy.stack(xs), numpy.asarray(ys, dtype=numpy.int64)

    def __iter__(self):
        epoch = self.epoch
        if not self._epoch_set:
            self.epoch += 1  # plain iteration: each pass is a new epoch
        self._epoch_set = False
        jobs = ((indices, epoch, b) for b, indices in enumerate(self.batch_indices(epoch)))
        if self.prefetch == 0:
            for job in jobs:
                yield self.make_batch(*job)
            return
        yield from self._prefetched(jobs)

    def _prefetched(self, jobs):
        """A worker thread fills a bounded queue; errors in it are re-raised here."""
        slots: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def work():
            try:
                for job in jobs:
                    if stop.is_set():
                        return
                    item = self.make_batch(*job)
                    while not stop.is_set():
                        try:
                            slots.put(("ok", item), timeout=0.1)
                            break
                        except queue.Full:
                            continue
                slots.put(("done", _DONE))
            except BaseException as error:  # noqa: BLE001 - handed to the consumer
                slots.put(("error", error))

        worker = threading.Thread(target=work, name="minitl-prefetch", daemon=True)
        worker.start()
        try:
            while True:
                kind, item = slots.get()
                if kind == "done":
                    return
                if kind == "error":
                    raise item
                yield item
        finally:
            stop.set()
            while worker.is_alive():  # unblock a producer waiting on a full queue
                try:
                    slots.get_nowait()
                except queue.Empty:
                    pass
                worker.join(timeout=0.05)
