"""Zero padding, on each side separately: TensorFlow's "SAME" convolutions pad unevenly.

    pad(x, (left, right, top, bottom))[n, c, top + i, left + j] = x[n, c, i, j],  zeros elsewhere
    backward: the gradient of the padded array, cropped back to x's window.

``same_padding(size, kernel, stride)`` is TensorFlow's rule: the output has ceil(size / stride)
positions, and the total padding p = max((out − 1)·stride + kernel − size, 0) is split
p // 2 before and p − p // 2 after (the extra pixel goes after: right / bottom).
"""
from __future__ import annotations

import math

from .. import backend
from ..tensor import Function, Tensor


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding of TensorFlow's "SAME" for one spatial axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class Pad2d(Function):
    """Zero-pad the last two axes of (N, C, H, W) by (left, right, top, bottom)."""

    def forward(self, x, pads):
        left, right, top, bottom = pads
        xp = backend.get_array_module(x)
        n, c, h, w = x.shape
        self.window = (slice(None), slice(None), slice(top, top + h), slice(left, left + w))
        y = xp.zeros((n, c, h + top + bottom, w + left + right), dtype=x.dtype)
        y[self.window] = x
        return y

    def backward(self, g):
        return g[self.window]  # the chain rule of a copy: only the copied positions receive gradient


def pad2d(x: Tensor, pads) -> Tensor:
    """``pads`` = (left, right, top, bottom), non-negative ints, as ``torch.nn.functional.pad`` for 4-D input."""
    pads = tuple(int(p) for p in pads)
    if len(pads) != 4 or min(pads) < 0:
        raise ValueError(f"pad2d: pads must be 4 non-negative ints (left, right, top, bottom), got {pads}")
    if x.ndim != 4:
        raise ValueError(f"pad2d: expected (N, C, H, W) input, got shape {x.shape}")
    if not any(pads):
        return x
    return Pad2d.apply(x, pads=pads)
