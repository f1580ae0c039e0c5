"""The epoch loop: one pass of training over a loader, and one pass of evaluation.

Each training step is the textbook loop: ŷ = f(x), J = cross-entropy(ŷ, y), ∂J/∂w by
back-propagation, then the optimizer's update (SGD: w ← w − η_t v with momentum / Nesterov and
Keras' time-based decay η_t = η / (1 + decay · t)).  A NaN/Inf loss stops the run with
:class:`TrainingDiverged`.  Evaluation runs the same network without a graph, in inference mode,
and scores it with the same ``F.cross_entropy``.

Data-parallel (``comm`` of several ranks, the optimizer a ``DistributedOptimizer``): each rank
back-propagates the mean loss of its share of the batch, one all-reduce per bucket averages
the gradients weighted by the shares' sizes and returns the global loss, which is checked
(on every rank alike) before any rank updates; the epoch's loss and accuracy are summed over
the ranks.
"""
from __future__ import annotations

import math
import time

import numpy

from .. import functional as F
from ..distributed import DistributedOptimizer
from ..tensor import Tensor, no_grad
from .metrics import accuracy
from .progress import progress_bar


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message says where and which checkpoint is the last good one."""


class NonFiniteData(ValueError):
    """A split's inputs hold NaN or Inf: the data is at fault, not the training settings."""


def nonfinite_inputs(x) -> bool:
    """Whether a host batch of floating-point inputs holds any NaN or Inf."""
    x = numpy.asarray(x)
    return x.dtype.kind in "fc" and not bool(numpy.isfinite(x).all())


def to_tensor(array, device=None) -> Tensor:
    """The one place a NumPy batch becomes a Tensor (and, with ``device``, moves to the GPU)."""
    return Tensor(numpy.ascontiguousarray(array), device=device)


def phase_logits(model, cut: int, x: Tensor, cached: bool) -> Tensor:
    """Logits of a phase that trains segments[cut:]: ``x`` is the activation at ``cut`` when
    ``cached``, else images, run through the frozen prefix without a graph."""
    if cached or cut == 0:
        return model.forward_from(x, cut)
    with no_grad():  # the frozen prefix: no graph, no cost beyond the forward pass
        h = model.run_segments(x, 0, cut)
    return model.forward_from(h, cut)


def _forward(model, phase, x, y, to_device):
    """(loss Tensor, its value, correct predictions) of one batch; one device->host read for both numbers
    (on a GPU each read waits for the device)."""
    logits = phase_logits(model, phase.cut, to_device(x), phase.cached)
    target = to_device(y)
    loss = F.cross_entropy(logits, target)
    hits = (logits.data.argmax(axis=1) == target.data).sum()
    both = logits.xp.stack([loss.data.astype(numpy.float64), hits.astype(numpy.float64)])
    value, batch_correct = Tensor(both).numpy().tolist()
    return loss, value, batch_correct


def _out_of_time(deadline: float, comm) -> bool:
    """Past the deadline?  Ranks decide together (any rank out of time stops all), so none waits alone."""
    late = time.perf_counter() >= deadline
    if comm is not None and comm.distributed:
        late = comm.allreduce_scalars([late])[0] > 0
    return late


def train_epoch(model, phase, epoch: int, loader, optimizer, to_device, where: str = "",
                deadline: float | None = None, show_progress: bool = True, comm=None):
    """Epoch ``epoch`` (from 0) of ``phase`` over ``loader``: returns (mean loss, accuracy, stopped by
    ``deadline``).  ``to_device``: batch -> Tensor;  ``where``: the sentence naming the last good checkpoint;
    ``comm``: the ranks of a data-parallel run (``loader`` then yields this rank's share of each batch)."""
    bar = progress_bar(len(loader), desc=f"{phase.name} epoch {epoch + 1}/{phase.epochs}", enabled=show_progress,
                       unit="batch")
    parallel = isinstance(optimizer, DistributedOptimizer)
    total_loss, correct, seen, out_of_time = 0.0, 0, 0, False
    try:
        for b, (x, y) in enumerate(loader):
            optimizer.zero_grad()
            loss, value, batch_correct = _forward(model, phase, x, y, to_device) if len(y) else (None, 0.0, 0)
            if parallel:  # gradients first, then the global loss from the same all-reduce
                if loss is not None:
                    loss.backward()
                global_value = optimizer.synchronize(weight=len(y), loss=value)
            else:
                global_value = value
            if not math.isfinite(global_value):
                if len(y) and nonfinite_inputs(x):
                    raise NonFiniteData(
                        f"the training split's batch {b + 1} ({phase.name} epoch {epoch + 1}) contains NaN or Inf "
                        f"inputs: the data itself is not finite; fix or drop those samples. {where}")
                raise TrainingDiverged(
                    f"loss is {global_value} at {phase.name} epoch {epoch + 1}, batch {b + 1}: training stopped. "
                    f"{where} Try a lower learning rate (--lr / --finetune-lr).")
            if not parallel:
                loss.backward()
            optimizer.step()
            total_loss += value * len(y)
            correct += int(batch_correct)
            seen += len(y)
            bar.update(1)
            bar.set_postfix_str(f"loss {total_loss / max(seen, 1):.4f} acc {correct / max(seen, 1):.3f}")
            if deadline is not None and _out_of_time(deadline, comm):
                out_of_time = True
                break
    finally:
        bar.close()
    if comm is not None and comm.distributed:  # the epoch's figures over every rank's examples
        total_loss, correct, seen = comm.allreduce_scalars([total_loss, correct, seen]).tolist()
    return total_loss / max(seen, 1), correct / max(seen, 1), out_of_time


def predict(model, loader, start: int, to_device, desc: str = "evaluate", show_progress: bool = True):
    """Logits (N, C) and labels (N,) of segments[start:] + head over ``loader``, in inference mode."""
    loader.set_epoch(0)
    outputs, labels = [], []
    bar = progress_bar(len(loader.dataset), desc=desc, enabled=show_progress, unit="img")
    try:
        with model.evaluating(), no_grad():
            for x, y in loader:
                outputs.append(model.forward_from(to_device(x), start).numpy())
                labels.append(numpy.asarray(y))
                bar.update(len(y))
    finally:
        bar.close()
    return numpy.concatenate(outputs), numpy.concatenate(labels)


def score(logits, labels) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of logits (N, C) against integer labels (N,)."""
    with no_grad():
        loss = F.cross_entropy(Tensor(logits), Tensor(numpy.asarray(labels, dtype=numpy.int64)))
    return float(loss.numpy()), accuracy(labels, logits.argmax(axis=1))
