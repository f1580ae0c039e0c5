"""Activation functions f in h = f(wᵀx + b), and softmax.  Each backward is f'(x) times the
upstream gradient: dJ/dx = dJ/dh · f'(x)."""
from __future__ import annotations

import math

import numpy

from .. import backend
from ..tensor import Function, Tensor
from . import erf as _erf


class Sigmoid(Function):
    """σ(x) = 1 / (1 + e^{-x});   σ'(x) = σ(x)(1 − σ(x))."""

    def forward(self, x):
        xp = backend.get_array_module(x)
        # stable in both tails: e^{-|x|} never overflows
        z = xp.exp(-xp.abs(x))
        self.y = xp.where(x >= 0, 1 / (1 + z), z / (1 + z)).astype(x.dtype, copy=False)
        return self.y

    def backward(self, g):
        return g * self.y * (1 - self.y)


class Tanh(Function):
    """tanh(x) = (e^x − e^{-x}) / (e^x + e^{-x});   tanh'(x) = 1 − tanh²(x)."""

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.y = xp.tanh(x)
        return self.y

    def backward(self, g):
        return g * (1 - self.y * self.y)


class ReLU(Function):
    """ReLU(x) = max(0, x);   ReLU'(x) = 1 if x > 0 else 0."""

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.positive = x > 0
        return xp.maximum(x, 0)

    def backward(self, g):
        return g * self.positive


class ReLU6(Function):
    """ReLU6(x) = min(max(0, x), 6);   ReLU6'(x) = 1 if 0 < x < 6 else 0 (MobileNet's, for quantisation)."""

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.inside = (x > 0) & (x < 6)
        return xp.clip(x, 0, 6)

    def backward(self, g):
        return g * self.inside


class LeakyReLU(Function):
    """LeakyReLU(x) = x if x > 0 else αx;   derivative 1 or α."""

    def forward(self, x, negative_slope=0.01):
        xp = backend.get_array_module(x)
        self.positive, self.slope = x > 0, negative_slope
        return xp.where(self.positive, x, x * negative_slope)

    def backward(self, g):
        xp = backend.get_array_module(g)
        return xp.where(self.positive, g, g * self.slope)


class GELU(Function):
    """GELU(x) = x Φ(x), Φ(x) = ½(1 + erf(x/√2));   GELU'(x) = Φ(x) + x φ(x), φ the normal pdf.

    ``approximate="tanh"``: x · ½(1 + tanh(√(2/π)(x + 0.044715x³))), as PyTorch's option.
    A contiguous float32 NumPy array goes through both passes in blocks of :data:`erf.BLOCK`
    elements (erf by the rational approximation of minitl.functional.erf), so the dozen element-wise
    steps of each run in the L2 cache instead of streaming the whole activation a dozen times.
    """

    def forward(self, x, approximate="none"):
        xp = backend.get_array_module(x)
        self.x, self.approximate = x, approximate
        if approximate == "tanh":
            self.t = xp.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))
            return 0.5 * x * (1 + self.t)
        if _erf.is_fast(x):
            return self._forward_blocks(x)
        self.cdf = (0.5 * (1 + backend.erf(xp, x / math.sqrt(2)))).astype(x.dtype, copy=False)
        return x * self.cdf

    def _forward_blocks(self, x):
        flat, cdf, y = x.reshape(-1), numpy.empty(x.size, x.dtype), numpy.empty(x.size, x.dtype)
        for a, b in _erf.blocks(x.size):
            c = numpy.multiply(flat[a:b], _SQRT_HALF, out=cdf[a:b])
            _erf.erf_rational32(c, out=c)
            c *= 0.5
            c += 0.5  # Φ(x) = ½(1 + erf(x/√2))
            numpy.multiply(flat[a:b], c, out=y[a:b])
        self.cdf = cdf.reshape(x.shape)
        return y.reshape(x.shape)

    def backward(self, g):
        xp = backend.get_array_module(g)
        x = self.x
        if self.approximate == "tanh":
            k = math.sqrt(2 / math.pi)
            dt = (1 - self.t**2) * k * (1 + 3 * 0.044715 * x**2)
            return g * (0.5 * (1 + self.t) + 0.5 * x * dt)
        if _erf.is_fast(x) and _erf.is_fast(g):
            return self._backward_blocks(x, g)
        pdf = xp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return g * (self.cdf + x * pdf)

    def _backward_blocks(self, x, g):
        flat, cdf, gf = x.reshape(-1), self.cdf.reshape(-1), g.reshape(-1)
        out = numpy.empty(x.size, x.dtype)
        for a, b in _erf.blocks(x.size):
            xb, o = flat[a:b], out[a:b]
            numpy.multiply(xb, xb, out=o)
            o *= -0.5
            numpy.exp(o, out=o)
            o *= xb
            o *= _INV_SQRT_2PI  # x φ(x)
            o += cdf[a:b]
            o *= gf[a:b]  # g (Φ(x) + x φ(x))
        return out.reshape(x.shape)


_SQRT_HALF = numpy.float32(math.sqrt(0.5))
_INV_SQRT_2PI = numpy.float32(1 / math.sqrt(2 * math.pi))


class Softmax(Function):
    """softmax(x)_i = e^{x_i − max x} / Σ_j e^{x_j − max x};
    dJ/dx = y ⊙ (g − Σ_j g_j y_j)."""

    def forward(self, x, axis=-1):
        xp = backend.get_array_module(x)
        self.axis = axis
        e = xp.exp(x - x.max(axis=axis, keepdims=True))
        self.y = e / e.sum(axis=axis, keepdims=True)
        return self.y

    def backward(self, g):
        y = self.y
        return y * (g - (g * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """log_softmax(x)_i = x_i − m − log Σ_j e^{x_j − m},  m = max x (never overflows);
    dJ/dx = g − softmax(x) Σ_j g_j."""

    def forward(self, x, axis=-1):
        xp = backend.get_array_module(x)
        self.axis = axis
        shifted = x - x.max(axis=axis, keepdims=True)
        y = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        self.y = y
        return y

    def backward(self, g):
        xp = backend.get_array_module(g)
        return g - xp.exp(self.y) * g.sum(axis=self.axis, keepdims=True)


def sigmoid(x: Tensor) -> Tensor:
    """σ(x) = 1 / (1 + e^{-x})."""
    return Sigmoid.apply(x)


def tanh(x: Tensor) -> Tensor:
    """tanh(x)."""
    return Tanh.apply(x)


def relu(x: Tensor) -> Tensor:
    """ReLU(x) = max(0, x)."""
    return ReLU.apply(x)


def relu6(x: Tensor) -> Tensor:
    """min(max(0, x), 6) elementwise."""
    return ReLU6.apply(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x if x > 0 else negative_slope · x."""
    return LeakyReLU.apply(x, negative_slope=negative_slope)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU(x) = x Φ(x) (exact, erf) or its tanh approximation."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(x, approximate=approximate)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """softmax(x)_i = e^{x_i} / Σ_j e^{x_j}, computed stably along ``dim``."""
    return Softmax.apply(x, axis=dim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """log softmax(x)_i = x_i − log Σ_j e^{x_j}, computed stably along ``dim``."""
    return LogSoftmax.apply(x, axis=dim)
