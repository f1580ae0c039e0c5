"""Training utilities on parameters' gradients.

    clip_grad_norm_   g_i ← g_i · min(1, c / (‖g‖₂ + 1e-6)),  ‖g‖₂ = sqrt(Σ_i Σ g_i²) over every parameter
"""
from __future__ import annotations

import math

from .. import backend
from ..tensor import Tensor


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0) -> Tensor:
    """Scale all gradients together so their joint norm is at most ``max_norm`` (as
    ``torch.nn.utils.clip_grad_norm_``): with ‖g‖ the ``norm_type``-norm of every gradient
    entry of every parameter, each g_i ← g_i · min(1, max_norm / (‖g‖ + 1e-6)).

    In place; parameters without a gradient are skipped.  Returns ‖g‖ (before clipping) as a 0-d
    Tensor on the gradients' device: no device-to-host read, so a GPU step is not stalled.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return Tensor(0.0)
    if not max_norm > 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be positive, got {max_norm}")
    xp = backend.get_array_module(grads[0].data)
    if math.isinf(norm_type):
        total = xp.max(xp.stack([xp.max(xp.abs(g.data)) for g in grads]))
    else:
        p = float(norm_type)
        total = xp.sum(xp.stack([xp.sum(xp.abs(g.data) ** p) for g in grads])) ** (1.0 / p)
    coef = xp.minimum(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g.data *= coef.astype(g.data.dtype)
    return Tensor(total)
