"""Layer normalisation (Ba, Kiros & Hinton, 2016): normalise each example over its feature axes.

For every position (all leading axes) and the last k axes given by ``normalized_shape`` (m values):

    μ = (1/m) Σ x,   σ² = (1/m) Σ (x − μ)²  (biased),   x̂ = (x − μ) / √(σ² + ε),   y = γ ⊙ x̂ + β

No running statistics: training and inference compute the same thing.  Backward (g = dJ/dy,
means over the m normalised values of one position, sums over all positions for γ, β):

    dJ/dβ = Σ g,   dJ/dγ = Σ g ⊙ x̂
    dJ/dx = (1/√(σ² + ε)) · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)),   ĝ = g ⊙ γ
"""
from __future__ import annotations

import numpy

from .. import backend
from ..tensor import Function, Tensor


class LayerNorm(Function):
    """y = γ ⊙ (x − μ)/√(σ² + ε) + β over the trailing ``k`` axes (μ, σ² per position)."""

    def forward(self, x, weight=None, bias=None, *, k, eps):
        xp = backend.get_array_module(x)
        lead = x.shape[: x.ndim - k]
        rows = x.reshape(int(numpy.prod(lead, dtype=numpy.int64)), -1)
        mean = rows.mean(axis=1, keepdims=True)
        centred = rows - mean
        var = xp.einsum("ij,ij->i", centred, centred)[:, None] / rows.shape[1]
        self.invstd = (1 / xp.sqrt(var + eps)).astype(x.dtype, copy=False)
        centred *= self.invstd
        self.x_hat, self.weight, self.shape = centred, weight, x.shape
        y = centred * weight.reshape(-1) if weight is not None else centred.copy()
        if bias is not None:
            y += bias.reshape(-1)
        return y.reshape(x.shape)

    def backward(self, g):
        xp = backend.get_array_module(g)
        x_hat, m = self.x_hat, self.x_hat.shape[1]
        g = g.reshape(x_hat.shape)
        grad_w = grad_b = grad_x = None
        if len(self.needs_input_grad) > 1 and self.needs_input_grad[1]:
            grad_w = xp.einsum("ij,ij->j", g, x_hat).reshape(self.weight.shape)
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            grad_b = g.sum(axis=0).reshape(self.weight.shape if self.weight is not None else self.shape[-1:])
        if self.needs_input_grad[0]:
            g_hat = g * self.weight.reshape(-1) if self.weight is not None else g
            mean_g = g_hat.mean(axis=1, keepdims=True)
            mean_gx = (xp.einsum("ij,ij->i", g_hat, x_hat) / m)[:, None]
            grad_x = g_hat - mean_g
            grad_x -= x_hat * mean_gx
            grad_x *= self.invstd
            grad_x = grad_x.reshape(self.shape)
        return grad_x, grad_w, grad_b


def _layer_norm_reference(x, normalized_shape, weight, bias, eps):
    """The formula, one position at a time in float64 (tests)."""
    x = numpy.asarray(x, dtype=numpy.float64)
    k = len(normalized_shape)
    rows = x.reshape(-1, int(numpy.prod(normalized_shape)))
    out = numpy.empty_like(rows)
    for i, r in enumerate(rows):
        mu = sum(r) / len(r)
        var = sum((v - mu) ** 2 for v in r) / len(r)
        out[i] = (r - mu) / numpy.sqrt(var + eps)
    out = out.reshape(x.shape)
    if weight is not None:
        out = out * numpy.asarray(weight, dtype=numpy.float64).reshape(x.shape[x.ndim - k:])
    if bias is not None:
        out = out + numpy.asarray(bias, dtype=numpy.float64).reshape(x.shape[x.ndim - k:])
    return out


def layer_norm(x: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """y = γ ⊙ (x − μ)/√(σ² + ε) + β, μ and σ² over the trailing axes ``normalized_shape``.

    ``normalized_shape``: an int or tuple matching x's last axes; γ, β have that shape (or are None).
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or tuple(x.shape[x.ndim - len(shape):]) != shape or len(shape) > x.ndim:
        raise ValueError(f"layer_norm: normalized_shape {shape} does not match the last axes of input shape {x.shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != shape:
            raise ValueError(f"layer_norm: {name} has shape {p.shape}, expected {shape}")
    if weight is None and bias is not None:
        raise ValueError("layer_norm: a bias without a weight is not supported")
    inputs = [t for t in (weight, bias) if t is not None]
    return LayerNorm.apply(x, *inputs, k=len(shape), eps=eps)
