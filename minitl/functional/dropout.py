"""Dropout: during training each unit is kept with probability 1 − p and scaled by 1/(1 − p)."""
from __future__ import annotations

from .. import random as mt_random
from ..tensor import Tensor


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """y = x ⊙ m / (1 − p),  m_i ~ Bernoulli(1 − p)  (inverted dropout; identity when not training).

    The mask comes from minitl's seedable generator (``minitl.manual_seed``), so runs repeat.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = mt_random.uniform_like(x.data) >= p
    return x * (keep.astype(x.dtype) / (1.0 - p))
