"""A data-parallel optimizer: average the gradients across ranks, then any minitl optimizer steps.

    g ← (1/R) Σ_r g_r   (GradientBuckets: one Allreduce per bucket)
    w ← update(w, g)    (the wrapped optimizer: SGD, Adam, AdamW, ...)

Every rank starts from rank 0's weights (:func:`broadcast_module`) and applies the same update
to the same averaged gradient, so the weights stay identical on every rank without ever being
sent again; the optimizer state (momentum, moments) is identical too, so rank 0's
``state_dict`` is the whole job's and a checkpoint resumes at any world size.
"""
from __future__ import annotations

from .buckets import DEFAULT_BUCKET_BYTES, GradientBuckets


def broadcast_module(module, comm, root: int = 0) -> None:
    """Every parameter and buffer ← root's (called once at start, so all ranks begin equal)."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        comm.broadcast_(tensor.data, root)


def average_buffers(module, comm) -> None:
    """BatchNorm running statistics ← their mean over the ranks (before a checkpoint is written).

    Statistics are local per rank during training (see the package docstring); averaging the
    running means and variances gives the estimate over all shards.  Integer buffers (the
    batch counter) are identical on every rank and left alone.
    """
    if not comm.distributed:
        return
    for buffer in module.buffers():
        if buffer.dtype.kind == "f":
            comm.allreduce_sum_(buffer.data)
            buffer.data /= comm.size


class DistributedOptimizer:
    """Wrap ``optimizer``: ``step()`` first averages every gradient over the ranks of ``comm``.

    Everything else (``zero_grad``, ``param_groups``, ``state_dict``, ``load_state_dict``) is the
    wrapped optimizer's, so schedules and checkpoints work unchanged.
    """

    def __init__(self, optimizer, comm, bucket_bytes: int = DEFAULT_BUCKET_BYTES):
        self.optimizer, self.comm = optimizer, comm
        params = [p for group in optimizer.param_groups for p in group["params"]]
        self.buckets = GradientBuckets(params, bucket_bytes)

    _synchronized = False

    def synchronize(self, weight: float | None = None, loss: float | None = None) -> float | None:
        """Average the gradients over the ranks — weighted by each rank's example count ``weight`` when
        given — and return the global mean ``loss``.  :meth:`step` calls it unless it was called for
        this step already (call it first to check the loss or clip the averaged gradient)."""
        self._synchronized = True
        return self.buckets.allreduce_mean_(self.comm, weight, loss)

    def step(self, closure=None):
        if not self._synchronized:
            self.synchronize()
        self._synchronized = False
        return self.optimizer.step(closure)

    def __getattr__(self, name):
        return getattr(self.optimizer, name)

    def __repr__(self) -> str:
        return f"DistributedOptimizer({self.comm!r}, {len(self.buckets)} bucket(s), {self.optimizer!r})"
