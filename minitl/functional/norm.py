"""Batch normalisation (Ioffe & Szegedy, 2015): normalise each channel, then scale and shift.

    x̂ = (x − μ) / √(σ² + ε),     y = γ · x̂ + β                  (per channel c)

* **training**: μ, σ² are the batch statistics of channel c over every axis but the channel
  axis (n = N·H·W values): μ = (1/n) Σ x,  σ² = (1/n) Σ (x − μ)²  (biased).  The running
  estimates are updated in place with the *unbiased* variance, as PyTorch does:
      running_mean ← (1 − m) · running_mean + m · μ
      running_var  ← (1 − m) · running_var  + m · σ² · n / (n − 1)
* **evaluation**: μ, σ² are the running estimates — constants — and y is an affine map of x.

Backward (g = dJ/dy, sums over the n values of a channel):
    dJ/dβ = Σ g,   dJ/dγ = Σ g · x̂
    training:  dJ/dx = γ/√(σ² + ε) · (g − (1/n) Σ g − x̂ · (1/n) Σ g · x̂)   (μ, σ² depend on x)
    eval:      dJ/dx = γ/√(σ² + ε) · g
Eval mode back-propagates to x, γ and β like any other op: fine-tuning a network whose
BatchNorm layers stay in inference mode depends on it.

Shapes: x (N, C), (N, C, L) or (N, C, H, W); γ, β, running statistics (C,).  An NCHW-shaped
input in NHWC memory (what conv2d returns) is reduced as a contiguous (N·H·W, C) matrix.
"""
from __future__ import annotations

from .. import backend
from ..tensor import Function, Tensor
from .conv import channels_last


class _ChannelLayout:
    """How to see an (N, C, ...) array so per-channel work runs in long contiguous inner loops.

    * NHWC memory (conv2d's output) -> rows (N·H, W·C): channel of column j is j mod C, so a
      per-channel vector is tiled W times (an inner loop of W·C elements, not C);
    * (N, C) -> itself;  otherwise -> (N, C, S) with per-channel vectors shaped (C, 1).
    """

    def __init__(self, x):
        self.shape = x.shape
        self.C = x.shape[1]
        self.nhwc = x.ndim == 4 and channels_last(x)
        if self.nhwc:
            N, C, H, W = x.shape
            self.rows, self.reps = (N * H, W * C), W
        elif x.ndim == 2:
            self.rows, self.reps = x.shape, 1
        else:
            self.rows = None
        self.n = (x.size // self.C) if self.C else 0

    def view(self, a):
        """``a`` (same NCHW shape as x, any memory layout) in this layout (a copy only if its memory differs)."""
        if self.nhwc:
            return a.transpose(0, 2, 3, 1).reshape(self.rows)
        if self.rows is not None:
            return a
        return a.reshape(a.shape[0], a.shape[1], -1)

    def unview(self, v):
        if self.nhwc:
            N, C, H, W = self.shape
            return v.reshape(N, H, W, C).transpose(0, 3, 1, 2)
        return v.reshape(self.shape)

    def expand(self, xp, vector):
        """A (C,) vector shaped to broadcast against the view."""
        if self.rows is not None:
            return xp.tile(vector, self.reps) if self.reps > 1 else vector
        return vector[:, None]

    def _fold(self, v):
        return v.reshape(self.reps, self.C).sum(axis=0) if self.reps > 1 else v

    def sum(self, v):
        """Σ over everything but the channel: a (C,) vector."""
        if self.rows is not None:
            return self._fold(v.sum(axis=0))
        return v.sum(axis=(0, 2))

    def sum_product(self, xp, a, b):
        """Σ a·b per channel, without a temporary of a's size."""
        if self.rows is not None:
            return self._fold(xp.einsum("ij,ij->j", a, b))
        return xp.einsum("ijk,ijk->j", a, b)


class BatchNorm(Function):
    """y = γ · (x − μ)/√(σ² + ε) + β — batch statistics when training, running statistics in eval mode."""

    def forward(self, x, weight=None, bias=None, *, running_mean, running_var, training, momentum, eps):
        xp = backend.get_array_module(x)
        layout = _ChannelLayout(x)
        self.layout, self.training = layout, training
        xv = layout.view(x)
        n = layout.n
        if training:
            mean = layout.sum(xv) / n
            xc = xv - layout.expand(xp, mean)  # x − μ, kept for backward
            var = layout.sum_product(xp, xc, xc) / n  # biased batch variance
            invstd = 1 / xp.sqrt(var + eps)
            if running_mean is not None:
                running_mean *= 1 - momentum
                running_mean += (momentum * mean).astype(running_mean.dtype)
            if running_var is not None:
                running_var *= 1 - momentum
                running_var += (momentum * n / (n - 1) * var).astype(running_var.dtype)
            scale = invstd if weight is None else weight * invstd
            y = xc * layout.expand(xp, scale)  # γ x̂
            self.xc = xc if any(self.needs_input_grad) else None
        else:
            mean = running_mean.astype(x.dtype)
            invstd = 1 / xp.sqrt(running_var.astype(x.dtype) + eps)
            scale = invstd if weight is None else weight * invstd
            y = xv * layout.expand(xp, scale)
            bias = -mean * scale if bias is None else bias - mean * scale  # y = γ/σ · x + (β − γμ/σ)
            self.mean = mean
            # x̂ is only needed for dJ/dγ: keep x itself (no copy) instead
            self.xv = xv if len(self.needs_input_grad) > 1 and self.needs_input_grad[1] else None
        if bias is not None:
            y += layout.expand(xp, bias)
        self.invstd, self.scale = invstd, scale
        return layout.unview(y)

    def backward(self, g):
        xp = backend.get_array_module(g)
        layout = self.layout
        n = layout.n
        needs = self.needs_input_grad + (False,) * (3 - len(self.needs_input_grad))
        gv = layout.view(g)  # g seen like x, whatever g's own memory layout
        grad_x = grad_w = grad_b = None
        sum_g = sum_gxhat = None
        if self.training:
            # dJ/dx = γ/σ · (g − (1/n) Σ g − x̂ · (1/n) Σ g·x̂)  with x̂ = (x − μ)/σ
            sum_g = layout.sum(gv)
            sum_gxhat = layout.sum_product(xp, gv, self.xc) * self.invstd
            if needs[0]:
                grad = gv * layout.expand(xp, self.scale)
                grad += self.xc * layout.expand(xp, -self.scale * self.invstd * sum_gxhat / n)
                grad += layout.expand(xp, -self.scale * sum_g / n)
                grad_x = layout.unview(grad)
        else:
            # dJ/dx = γ/σ · g   (μ, σ are constants in eval mode)
            if needs[1] or needs[2]:
                sum_g = layout.sum(gv)
            if needs[1]:  # Σ g·x̂ = (Σ g·x − μ Σ g) / σ
                sum_gxhat = (layout.sum_product(xp, gv, self.xv) - self.mean * sum_g) * self.invstd
            if needs[0]:
                grad_x = layout.unview(gv * layout.expand(xp, self.scale))
        if needs[1]:
            grad_w = sum_gxhat  # dJ/dγ = Σ g·x̂
        if needs[2]:
            grad_b = sum_g  # dJ/dβ = Σ g
        return grad_x, grad_w, grad_b


def _array(value, name, C, x):
    if value is None:
        return None
    array = value.data if isinstance(value, Tensor) else value
    if tuple(array.shape) != (C,):
        raise ValueError(f"batch_norm: {name} must have shape ({C},) for input {tuple(x.shape)}, got {tuple(array.shape)}")
    if backend.backend_of(array) is not backend.backend_of(x.data):
        raise ValueError(f"batch_norm: {name} lives on another device than the input; move it with .to(device)")
    return array


def batch_norm(x: Tensor, running_mean, running_var, weight: Tensor | None = None, bias: Tensor | None = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation y = γ · (x − μ)/√(σ² + ε) + β, per channel (axis 1).

    ``training=True``: μ, σ² from the batch, and ``running_mean`` / ``running_var`` (Tensors or
    arrays of shape (C,), or None) updated in place: r ← (1 − m)·r + m·stat, with the unbiased
    batch variance.  ``training=False``: μ, σ² are the running statistics; gradients still flow
    to x, ``weight`` (γ) and ``bias`` (β).  x is (N, C), (N, C, L) or (N, C, H, W).
    """
    shape = tuple(x.shape)
    if len(shape) < 2:
        raise ValueError(f"batch_norm: expected an input of shape (N, C, ...), got shape {shape}")
    C = shape[1]
    if not isinstance(x, Tensor):
        x = Tensor(x)
    rm = _array(running_mean, "running_mean", C, x)
    rv = _array(running_var, "running_var", C, x)
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None and tuple(value.shape) != (C,):
            raise ValueError(f"batch_norm: {name} must have shape ({C},) for input {shape}, got {tuple(value.shape)}")
    if not training and (rm is None or rv is None):
        raise ValueError("batch_norm: running_mean and running_var are needed in evaluation mode (training=False)")
    if training:
        per_channel = x.size // C if C else 0
        if per_channel <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input shape {shape}")
    return BatchNorm.apply(x, weight, bias, running_mean=rm, running_var=rv, training=bool(training),
                           momentum=float(momentum), eps=float(eps))
