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


def _channel_view(x):
    """x as a view with the channel axis contiguous where possible: (rows, C) with axes (0,), else (N, C, S) with axes (0, 2)."""
    if x.ndim == 2:
        return x, (0,)
    if x.ndim == 4 and channels_last(x):
        return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1]), (0,)
    return x.reshape(x.shape[0], x.shape[1], -1), (0, 2)


def _from_view(y, x_shape, nhwc: bool):
    if nhwc:
        N, C, H, W = x_shape
        return y.reshape(N, H, W, C).transpose(0, 3, 1, 2)
    return y.reshape(x_shape)


def _per_channel(v, axes):
    """A (C,) vector shaped to broadcast against the channel view."""
    return v if axes == (0,) else v[:, None]


def _sum_product(xp, a, b, axes):
    """Σ a·b over ``axes`` without a temporary of a's size."""
    return xp.einsum("ij,ij->j", a, b) if axes == (0,) else xp.einsum("ijk,ijk->j", a, b)


class BatchNorm(Function):
    """y = γ · (x − μ)/√(σ² + ε) + β — batch statistics when training, running statistics in eval mode."""

    def forward(self, x, weight=None, bias=None, *, running_mean, running_var, training, momentum, eps):
        xp = backend.get_array_module(x)
        self.x_shape, self.training = x.shape, training
        self.nhwc = x.ndim == 4 and channels_last(x)
        xv, axes = _channel_view(x)
        self.axes = axes
        C = x.shape[1]
        n = xv.size // C
        self.n = n
        if training:
            mean = xv.mean(axis=axes)
            xc = xv - _per_channel(mean, axes)
            var = _sum_product(xp, xc, xc, axes) / n
            invstd = 1 / xp.sqrt(var + eps)
            xc *= _per_channel(invstd, axes)  # x̂, in place
            x_hat = xc
            if running_mean is not None:
                running_mean *= 1 - momentum
                running_mean += (momentum * mean).astype(running_mean.dtype)
            if running_var is not None:
                running_var *= 1 - momentum
                running_var += (momentum * n / (n - 1) * var).astype(running_var.dtype)
            if weight is None:
                y = x_hat.copy() if bias is None else x_hat + _per_channel(bias, axes)
            else:
                y = x_hat * _per_channel(weight, axes)
                if bias is not None:
                    y += _per_channel(bias, axes)
            self.x_hat = x_hat if any(self.needs_input_grad) else None
        else:
            mean = running_mean.astype(x.dtype)
            invstd = 1 / xp.sqrt(running_var.astype(x.dtype) + eps)
            scale = invstd if weight is None else weight * invstd
            y = xv * _per_channel(scale, axes)
            shift = -mean * scale
            if bias is not None:
                shift = shift + bias
            y += _per_channel(shift, axes)
            self.mean = mean
            # x̂ is only needed for dJ/dγ: keep x itself (no copy) instead
            self.xv = xv if len(self.needs_input_grad) > 1 and self.needs_input_grad[1] else None
        self.invstd = invstd
        self.weight = weight
        return _from_view(y, x.shape, self.nhwc)

    def backward(self, g):
        xp = backend.get_array_module(g)
        axes, n = self.axes, self.n
        needs = self.needs_input_grad + (False,) * (3 - len(self.needs_input_grad))
        # g in the same view as x (whatever g's own memory layout)
        if self.nhwc:
            gv = g.transpose(0, 2, 3, 1).reshape(-1, g.shape[1])
        else:
            gv = g if g.ndim == 2 else g.reshape(g.shape[0], g.shape[1], -1)
        grad_x = grad_w = grad_b = None
        scale = self.invstd if self.weight is None else self.weight * self.invstd
        if self.training:
            x_hat = self.x_hat
            sum_g = gv.sum(axis=axes)
            sum_gx = _sum_product(xp, gv, x_hat, axes)
            if needs[0]:  # γ/σ · (g − mean(g) − x̂ · mean(g·x̂))
                grad = x_hat * _per_channel(-sum_gx / n, axes)
                grad += gv
                grad -= _per_channel(sum_g / n, axes)
                grad *= _per_channel(scale, axes)
                grad_x = _from_view(grad, self.x_shape, self.nhwc)
        else:
            sum_g = gv.sum(axis=axes) if (needs[1] or needs[2]) else None
            if needs[1]:  # Σ g·x̂ = (Σ g·x − μ Σ g) / σ
                sum_gx = (_sum_product(xp, gv, self.xv, axes) - self.mean * sum_g) * self.invstd
            if needs[0]:
                grad_x = _from_view(gv * _per_channel(scale, axes), self.x_shape, self.nhwc)
        if needs[1]:
            grad_w = sum_gx
        if needs[2]:
            grad_b = sum_g
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
