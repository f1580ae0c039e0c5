"""Gradients packed into flat buffers, so an all-reduce is one call per bucket, not per parameter.

Each MPI call costs a latency α plus β per byte; a ResNet-50 has 161 parameter tensors, so
reducing them one by one pays 161 α.  Packing the gradients into buckets of at most
``bucket_bytes`` pays α once per bucket, and β·n for the n bytes either way:

    t_allreduce(n) ≈ α + β·n   per call,   total ≈ n_buckets·α + β·N.

Averaging.  With equal shards the mean gradient is (1/R) Σ_r g_r.  With shards of n_r examples
(the last batch of an epoch split unevenly), each g_r being the mean over its n_r examples,
the gradient of the mean loss over all of them is the weighted mean

    g = Σ_r n_r g_r / Σ_r n_r,

so each rank packs n_r·g_r and, as two extra elements of the first bucket, n_r and n_r·J_r
(its loss): the same single Allreduce returns Σ n_r g_r, Σ n_r and the global mean loss.
A parameter without a gradient on this rank (unused in this step) contributes zeros, so every
rank packs the same layout.
"""
from __future__ import annotations

from .. import backend
from ..tensor import Tensor

DEFAULT_BUCKET_BYTES = 25 * 2**20  # PyTorch DDP's default bucket size
_EXTRA = 2  # n_r and n_r·J_r, riding in the first bucket


class GradientBuckets:
    """The trainable parameters grouped into flat buffers of at most ``bucket_bytes`` (one dtype, one device each)."""

    def __init__(self, params, bucket_bytes: int = DEFAULT_BUCKET_BYTES):
        if bucket_bytes <= 0:
            raise ValueError(f"bucket_bytes must be positive, got {bucket_bytes}")
        self.params = [p for p in params if p.requires_grad]
        self.bucket_bytes = int(bucket_bytes)
        self.buckets: list[list[Tensor]] = []
        current, size, key = [], 0, None
        for p in self.params:
            p_key = (p.dtype, p.device)
            if current and (size + p.data.nbytes > self.bucket_bytes or p_key != key):
                self.buckets.append(current)
                current, size = [], 0
            current.append(p)
            size += p.data.nbytes
            key = p_key
        if current:
            self.buckets.append(current)

    def __len__(self) -> int:
        return len(self.buckets)

    def allreduce_mean_(self, comm, weight: float | None = None, loss: float | None = None) -> float | None:
        """Every ``grad`` ← the (weighted) mean over the ranks: pack, one Allreduce per bucket, unpack.

        weight: this rank's example count n_r (None: equal weights, the plain mean);  loss: this
        rank's mean loss J_r.  Returns the global mean loss Σ n_r J_r / Σ n_r when ``loss`` is given.
        """
        if not comm.distributed:
            return loss
        n = 1.0 if weight is None else float(weight)
        local_loss = 0.0 if loss is None or n == 0 else float(loss) * n
        total_loss = None
        for i, bucket in enumerate(self.buckets):
            extra = (n, local_loss) if i == 0 else ()
            flat = self._pack(bucket, n, extra)
            comm.allreduce_sum_(flat)
            if i == 0:  # the summed count and loss: one read (from the device, where the bucket lives)
                total, loss_sum = backend.to_numpy(flat[-2:]).tolist()
                total_loss = loss_sum / total if total else float("nan")
            if total == 0:
                raise ValueError("no rank had any example in this step")
            flat /= total
            self._unpack(bucket, flat)
        return total_loss if loss is not None else None

    @staticmethod
    def _pack(bucket, scale: float, extra=()):
        xp = bucket[0].xp
        flat = xp.zeros(sum(p.data.size for p in bucket) + len(extra), dtype=bucket[0].dtype)
        offset = 0
        for p in bucket:
            if p.grad is not None and scale:
                block = flat[offset:offset + p.data.size]
                block[...] = p.grad.data.reshape(-1)
                if scale != 1.0:
                    block *= scale
            offset += p.data.size
        for i, value in enumerate(extra):  # scalars written on the device, no host array to copy
            flat[offset + i] = value
        return flat

    @staticmethod
    def _unpack(bucket, flat) -> None:
        offset = 0
        for p in bucket:
            block = flat[offset:offset + p.data.size].reshape(p.shape)
            p.grad = Tensor(block.copy())
            offset += p.data.size
