"""Data-parallel training on MPI: one process per rank, gradients averaged with one all-reduce.

The textbook data-parallel step, for R ranks each holding a shard B_r of the global batch B:

    g_r = ∂J_r/∂w            (J_r: mean loss over B_r, computed locally)
    g   = (1/R) Σ_r g_r      (one Allreduce of all gradients packed into flat buffers)
    w  ← w − η g             (every rank applies the same update to the same weights)

With equal shards, g equals the gradient of the mean loss over B, so R ranks × batch b step
exactly like one process × batch R·b (up to the order of float32 additions).

* :mod:`.comm` — the communicator: rank, size, barrier, broadcast, all-reduce (mpi4py, or a
  single-process stand-in when no MPI world exists).
* :mod:`.buckets` — gradients packed into size-bounded flat buffers, one ``Allreduce`` each.
* :mod:`.optimizer` — wraps any minitl optimizer: average the gradients, then step.
* :mod:`.cost` — the α + β·n model of an all-reduce and the speed-up it leaves.
* each rank's data: ``DataLoader(..., shard=(rank, size))`` (minitl.data) yields the rank's
  share of every global batch of the epoch's seeded order.

BatchNorm: statistics are **local to each rank** (as PyTorch's DDP without SyncBatchNorm):
in training mode each rank normalises its shard with the shard's own mean and variance, so
R ranks × batch b behave like one process with "ghost batches" of size b.  The running
statistics are averaged across ranks (:func:`average_buffers`) before a checkpoint is written,
so every rank, and a resume at another world size, holds the same buffers.
"""
from .buckets import GradientBuckets
from .cost import data_parallel_speedup, ring_allreduce_seconds
from .comm import Communicator, RankFailedError, world
from .optimizer import DistributedOptimizer, average_buffers, broadcast_module

__all__ = ["Communicator", "DistributedOptimizer", "GradientBuckets", "RankFailedError",
           "average_buffers", "broadcast_module", "data_parallel_speedup", "ring_allreduce_seconds", "world"]
