"""Loss functions J(ŷ, y) — the quantity SGD descends: w ← w − η ∂J/∂w."""
from __future__ import annotations

import numpy

from .. import backend
from ..tensor import Function, Tensor
from .activation import log_softmax


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


class NLLLoss(Function):
    """J = −(1/N) Σ_n log p_{n, y_n}  (mean) from log-probabilities;
    dJ/dlogp_{n,c} = −1/N if c = y_n else 0."""

    def forward(self, log_probs, target, reduction="mean"):
        xp = backend.get_array_module(log_probs)
        n = log_probs.shape[0]
        self.shape, self.target, self.reduction = log_probs.shape, target, reduction
        picked = -log_probs[xp.arange(n), target]
        if reduction == "none":
            return picked
        return picked.sum() if reduction == "sum" else picked.mean()

    def backward(self, g):
        xp = backend.get_array_module(g)
        n = self.shape[0]
        grad = xp.zeros(self.shape, dtype=g.dtype)
        scale = g if self.reduction == "none" else (g / n if self.reduction == "mean" else g)
        grad[xp.arange(n), self.target] = -scale
        return grad, None


def _check_logits_target(logits: Tensor, target: Tensor, name: str):
    if logits.ndim != 2:
        raise ValueError(f"{name}: expects logits of shape (N, C), got {logits.shape}")
    if target.dtype.kind in "iu":
        if target.shape != (logits.shape[0],):
            raise ValueError(f"{name}: class targets must have shape ({logits.shape[0]},), got {target.shape}")
    elif target.shape != logits.shape:
        raise ValueError(f"{name}: probability targets must have the logits' shape {logits.shape}, got {target.shape}")


def nll_loss(log_probs: Tensor, target, reduction: str = "mean") -> Tensor:
    """J = −(1/N) Σ_n log p_{n, y_n}, given log-probabilities (N, C) and class indices (N,)."""
    target = target if isinstance(target, Tensor) else Tensor(target)
    _check_logits_target(log_probs, target, "nll_loss")
    if target.dtype.kind not in "iu":
        raise ValueError(f"nll_loss: targets must be integer class indices, got dtype {target.dtype}")
    return NLLLoss.apply(log_probs, target, reduction=reduction)


def cross_entropy(logits: Tensor, target, label_smoothing: float = 0.0, reduction: str = "mean",
                  ignore_index: int | None = None) -> Tensor:
    """Cross-entropy of softmax(logits) against the targets:

        J = −(1/N) Σ_n Σ_c q_{n,c} log softmax(z_n)_c

    q is one-hot for integer class targets (N,), or the given probabilities (N, C).  With
    label smoothing ε: q ← (1 − ε) q + ε / C.  Its gradient is dJ/dz = (softmax(z) − q) / N.

    ``ignore_index`` (integer targets): examples whose target equals it carry no label; with
    M = {n : y_n ≠ ignore_index} the loss is J = −(1/|M|) Σ_{n∈M} Σ_c q_{n,c} log softmax(z_n)_c
    (PyTorch's rule), an ignored example's gradient is exactly 0, and a batch with no label
    at all gives J = 0 (PyTorch gives NaN) so a multi-task step can go on with the other tasks.
    """
    target = target if isinstance(target, Tensor) else Tensor(target)
    _check_logits_target(logits, target, "cross_entropy")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if ignore_index is not None:
        return _masked_cross_entropy(logits, target, label_smoothing, reduction, int(ignore_index))
    log_p = log_softmax(logits, dim=-1)
    num_classes = logits.shape[1]
    if target.dtype.kind in "iu":
        if label_smoothing == 0.0:
            return nll_loss(log_p, target, reduction=reduction)
        per_sample = (1 - label_smoothing) * NLLLoss.apply(log_p, target, reduction="none")
        per_sample = per_sample - (label_smoothing / num_classes) * log_p.sum(axis=1)
        return _reduce(per_sample, reduction)
    q = target
    if label_smoothing:
        q = q * (1 - label_smoothing) + label_smoothing / num_classes
    return _reduce(-(q * log_p).sum(axis=1), reduction)


def _masked_cross_entropy(logits: Tensor, target: Tensor, label_smoothing: float, reduction: str,
                          ignore_index: int) -> Tensor:
    """Per-example cross-entropy times the label mask m_n = [y_n ≠ ignore_index]; the mean divides by
    max(Σ_n m_n, 1).  Ignored rows are looked up at class 0 and multiplied by 0 (value and gradient)."""
    if target.dtype.kind not in "iu":
        raise ValueError("cross_entropy: ignore_index needs integer class targets")
    xp = backend.get_array_module(logits.data)
    labelled = target.data != ignore_index
    num_classes = logits.shape[1]
    safe = xp.where(labelled, target.data, 0)
    # checked on the host only (on a GPU the check would cost a device->host read every step)
    if xp is numpy and bool((labelled & ((safe < 0) | (safe >= num_classes))).any()):
        raise ValueError(f"cross_entropy: targets must be in [0, {num_classes}) or equal ignore_index={ignore_index}")
    per_sample = cross_entropy(logits, Tensor(safe), label_smoothing=label_smoothing, reduction="none")
    mask = labelled.astype(logits.dtype)
    per_sample = per_sample * Tensor(mask)
    if reduction == "mean":
        count = xp.maximum(mask.sum(), 1).astype(logits.dtype)
        return per_sample.sum() * Tensor((1 / count).astype(logits.dtype))
    return _reduce(per_sample, reduction)


def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:  # noqa: A002 (torch name)
    """J = (1/N) Σ_i (ŷ_i − y_i)²."""
    target = target if isinstance(target, Tensor) else Tensor(target, dtype=input.dtype)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input shape {input.shape} differs from target shape {target.shape}")
    diff = input - target
    return _reduce(diff * diff, reduction)


class BCEWithLogits(Function):
    """J_i = max(z, 0) − z y + log(1 + e^{−|z|})  (= −[y log σ(z) + (1−y) log(1−σ(z))], stable);
    dJ/dz = σ(z) − y."""

    def forward(self, z, y):
        xp = backend.get_array_module(z)
        self.z, self.y = z, y
        return xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z)))

    def backward(self, g):
        xp = backend.get_array_module(g)
        e = xp.exp(-xp.abs(self.z))
        sigma = xp.where(self.z >= 0, 1 / (1 + e), e / (1 + e))
        grad_z = g * (sigma - self.y) if self.needs_input_grad[0] else None
        grad_y = g * (-self.z) if self.needs_input_grad[1] else None
        return grad_z, grad_y


def binary_cross_entropy_with_logits(input: Tensor, target, reduction: str = "mean") -> Tensor:  # noqa: A002
    """J = −(1/N) Σ_i [y_i log σ(z_i) + (1 − y_i) log(1 − σ(z_i))], computed from logits z stably."""
    target = target if isinstance(target, Tensor) else Tensor(target, dtype=input.dtype)
    if input.shape != target.shape:
        raise ValueError(
            f"binary_cross_entropy_with_logits: input shape {input.shape} differs from target shape {target.shape}"
        )
    return _reduce(BCEWithLogits.apply(input, target), reduction)
