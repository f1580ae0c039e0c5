"""BatchNorm1d / BatchNorm2d: y = γ · (x − μ)/√(σ² + ε) + β per channel (the math is F.batch_norm).

Parameters ``weight`` (γ, ones) and ``bias`` (β, zeros) when ``affine``; buffers ``running_mean``
(zeros), ``running_var`` (ones) and ``num_batches_tracked`` (int64) when ``track_running_stats`` —
PyTorch's names, so a PyTorch state_dict loads one to one.  ``train()`` normalises with batch
statistics and updates the running ones; ``eval()`` uses the running statistics (and still
back-propagates to x, γ and β).
"""
from __future__ import annotations

import numpy

from .. import functional as F
from ..tensor import Tensor
from .module import Module, Parameter


class _BatchNorm(Module):
    _expected_dims: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype=numpy.float32, device=None):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(numpy.ones(num_features, dtype=dtype), device=device)
            self.bias = Parameter(numpy.zeros(num_features, dtype=dtype), device=device)
        else:
            self.weight = self.bias = None
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(numpy.zeros(num_features, dtype=dtype), device=device))
            self.register_buffer("running_var", Tensor(numpy.ones(num_features, dtype=dtype), device=device))
            self.register_buffer("num_batches_tracked", Tensor(numpy.array(0, dtype=numpy.int64), device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def forward(self, x, residual=None, relu: bool = False):
        """BN(x);  ``relu=True``: max(0, BN(x) + residual) as one op (F.batch_norm_relu);
        a ``residual`` without ``relu``: BN(x) + residual."""
        if x.ndim not in self._expected_dims:
            raise ValueError(
                f"{type(self).__name__}: expected a {' or '.join(f'{d}-D' for d in self._expected_dims)} input, "
                f"got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}): input has {x.shape[1]} channels (shape {tuple(x.shape)})"
            )
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:  # cumulative moving average, as PyTorch
                momentum = 1.0 / float(self.num_batches_tracked.item())
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        args = (x, self.running_mean if track else None, self.running_var if track else None,
                self.weight, self.bias, use_batch_stats, momentum, self.eps)
        if relu:
            return F.batch_norm_relu(*args, residual=residual)
        y = F.batch_norm(*args)
        return y if residual is None else y + residual

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, H, W) for each channel of an (N, C, H, W) input."""

    _expected_dims = (4,)


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over N (and L) for each channel of an (N, C) or (N, C, L) input."""

    _expected_dims = (2, 3)


class LayerNorm(Module):
    """y = γ ⊙ (x − μ)/√(σ² + ε) + β over the trailing axes ``normalized_shape`` (the math is F.layer_norm).

    Parameters ``weight`` (γ, ones) and ``bias`` (β, zeros) when ``elementwise_affine``; no buffers:
    training and evaluation compute the same thing.
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 dtype=numpy.float32, device=None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        self.weight = Parameter(numpy.ones(shape, dtype=dtype), device=device) if elementwise_affine else None
        self.bias = Parameter(numpy.zeros(shape, dtype=dtype), device=device) if elementwise_affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
