"""The dense (fully connected) layer: the neuron h = f(wᵀx + b), a whole layer at a time."""
from __future__ import annotations

import numpy

from .. import backend
from ..tensor import Function, Tensor


class Linear(Function):
    """y = x Wᵀ + b   — every output unit j computes the neuron's pre-activation wⱼᵀx + bⱼ.

    Shapes: x (N, in), W (out, in) as PyTorch stores it, b (out,) -> y (N, out).
    Chain rule:  dJ/dx = dJ/dy · W,   dJ/dW = (dJ/dy)ᵀ · x,   dJ/db = Σ_n dJ/dy_n.
    """

    def forward(self, x, weight, bias=None):
        self.shape = x.shape
        if x.ndim > 2:  # (N, T, in) as one (N·T, in) GEMM: a stacked matmul would call BLAS N times
            x = x.reshape(-1, x.shape[-1])
        self.x, self.weight = x, weight
        y = _x_times_w_transposed(x, weight)
        if bias is not None:
            y += bias
        return y.reshape(self.shape[:-1] + (weight.shape[0],)) if len(self.shape) > 2 else y

    def backward(self, g):
        x, weight = self.x, self.weight
        g2 = g.reshape(-1, g.shape[-1])  # (N·T, out), also for 1-D and 2-D inputs
        grad_x = (g2 @ weight).reshape(self.shape) if self.needs_input_grad[0] else None
        grad_w = grad_b = None
        if self.needs_input_grad[1]:
            grad_w = g2.T @ x.reshape(-1, x.shape[-1])
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            grad_b = g2.sum(axis=0)
        return grad_x, grad_w, grad_b


def _x_times_w_transposed(x, weight):
    """x Wᵀ.  On NumPy, for a batch much smaller than the layer, it is computed as (W xᵀ)ᵀ and copied
    to row-major order: OpenBLAS's kernel for x·Wᵀ is slow when x has few rows (measured 1.4x at
    batch 32, 1.1x at batch 128 on a 784-512 layer, copy included); from batch ≈ out/4 up it is not."""
    xp = backend.get_array_module(x)
    if xp is numpy and x.ndim == 2 and 4 * x.shape[0] <= weight.shape[0]:
        return xp.ascontiguousarray((weight @ x.T).T)
    return x @ weight.T


class LinearConcat(Function):
    """y = x [W₁; …; W_k]ᵀ + [b₁; …; b_k]  — k dense layers on the same input as ONE GEMM.

    The weights are stacked along their output axis (a copy of the small weights, not of x), so one
    (N·T, in) x (in, Σ out_i) product replaces k narrower ones (BERT's Q, K, V projections: one
    384 -> 1152 GEMM instead of three 384 -> 384; wider products run nearer BLAS's peak).
    Inputs: x, W₁ … W_k, then b₁ … b_k when ``biased``.  Chain rule, with W = [W₁; …; W_k]:
    dJ/dx = dJ/dy · W,   dJ/dW_i = (dJ/dy_i)ᵀ · x,   dJ/db_i = Σ_n dJ/dy_i,n  (y_i: the columns of W_i).
    """

    def forward(self, x, *params, biased):
        xp = backend.get_array_module(x)
        k = len(params) // 2 if biased else len(params)
        weights, biases = params[:k], params[k:]
        self.sizes = [w.shape[0] for w in weights]
        self.inner = Linear()  # the one GEMM, forward and backward, as a single dense layer
        self.inner.needs_input_grad = (self.needs_input_grad[0], any(self.needs_input_grad[1:k + 1]),
                                       any(self.needs_input_grad[k + 1:]))
        return self.inner.forward(x, xp.concatenate(weights, axis=0),
                                  xp.concatenate(biases, axis=0) if biased else None)

    def backward(self, g):
        grad_x, grad_w, grad_b = self.inner.backward(g)
        bounds = numpy.cumsum([0] + self.sizes)
        pieces = zip(bounds[:-1], bounds[1:])
        grads_w = [None if grad_w is None else grad_w[a:b] for a, b in pieces]
        grads_b = [] if len(self.needs_input_grad) == 1 + len(self.sizes) else [
            None if grad_b is None else grad_b[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        return (grad_x, *grads_w, *grads_b)


def linear_concat(x: Tensor, weights, biases=None) -> Tensor:
    """[x W₁ᵀ + b₁, …, x W_kᵀ + b_k] concatenated on the last axis, computed as one GEMM.

    ``weights``: k (out_i, in) matrices with the same ``in``; ``biases``: None or k vectors (out_i,).
    """
    weights = list(weights)
    if not weights or any(w.ndim != 2 or w.shape[1] != x.shape[-1] for w in weights):
        raise ValueError(f"linear_concat: every weight must be (out, {x.shape[-1]}) for an input of shape {x.shape}, "
                         f"got {[tuple(w.shape) for w in weights]}")
    if biases is None:
        return LinearConcat.apply(x, *weights, biased=False)
    biases = list(biases)
    if len(biases) != len(weights) or any(b.shape != (w.shape[0],) for w, b in zip(weights, biases)):
        raise ValueError(f"linear_concat: biases {[tuple(b.shape) for b in biases]} do not fit weights "
                         f"{[tuple(w.shape) for w in weights]}")
    return LinearConcat.apply(x, *weights, *biases, biased=True)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Affine map of a dense layer: y = x Wᵀ + b, W of shape (out_features, in_features).

    With an activation f this is the neuron h = f(wᵀx + b) for every unit at once, and a
    network's forward pass is h_k = f_k(W_k h_{k-1} + b_k), layer after layer.
    """
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input has {x.shape[-1]} features (shape {x.shape}) but weight expects "
            f"{weight.shape[1]} (weight shape {weight.shape}, stored as (out_features, in_features))"
        )
    if bias is None:
        return Linear.apply(x, weight)
    return Linear.apply(x, weight, bias)
