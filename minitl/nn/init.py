"""Weight initialisation, as PyTorch does it, from minitl's seedable generator.

Kaiming-uniform (He et al. 2015) with a = √5, PyTorch's default for Linear and Conv2d:
    W ~ U(−bound, bound),  bound = gain · √(3 / fan_in),  gain = √(2 / (1 + a²))  → bound = 1/√fan_in
and the bias ~ U(−1/√fan_in, 1/√fan_in).
"""
from __future__ import annotations

import math

import numpy

from .. import backend
from .. import random as mt_random


def fan_in_and_fan_out(shape) -> tuple[int, int]:
    """fan_in = in_features · kernel area, fan_out = out_features · kernel area."""
    if len(shape) < 2:
        raise ValueError(f"fan in/out needs at least 2 dimensions, got shape {tuple(shape)}")
    receptive = int(numpy.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fill(tensor, values) -> None:
    tensor.data = backend.to_device(values.astype(tensor.dtype), tensor.device)


def uniform_(tensor, low: float = 0.0, high: float = 1.0):
    _fill(tensor, mt_random.generator().uniform(low, high, size=tensor.shape))
    return tensor


def normal_(tensor, mean: float = 0.0, std: float = 1.0):
    _fill(tensor, mt_random.generator().normal(mean, std, size=tensor.shape))
    return tensor


def constant_(tensor, value: float):
    _fill(tensor, numpy.full(tensor.shape, value))
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def kaiming_uniform_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """W ~ U(−b, b), b = gain · √(3 / fan), gain = √(2 / (1 + a²)) for (leaky) ReLU."""
    fan_in, fan_out = fan_in_and_fan_out(tensor.shape)
    fan = fan_in if mode == "fan_in" else fan_out
    gain = math.sqrt(2.0 / (1 + a * a)) if nonlinearity in ("leaky_relu", "relu") else 1.0
    if nonlinearity == "relu":
        gain = math.sqrt(2.0)
    bound = gain * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, mode: str = "fan_out", nonlinearity: str = "relu"):
    """W ~ N(0, σ²), σ = √2 / √fan — torchvision's ResNet convolution init."""
    fan_in, fan_out = fan_in_and_fan_out(tensor.shape)
    fan = fan_in if mode == "fan_in" else fan_out
    return normal_(tensor, 0.0, math.sqrt(2.0) / math.sqrt(fan))


def xavier_uniform_(tensor, gain: float = 1.0):
    """W ~ U(−b, b), b = gain · √(6 / (fan_in + fan_out))  (Glorot & Bengio 2010)."""
    fan_in, fan_out = fan_in_and_fan_out(tensor.shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def default_layer_init_(weight, bias=None):
    """PyTorch's reset_parameters for Linear/Conv: Kaiming-uniform(a=√5) weight, U(±1/√fan_in) bias."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = fan_in_and_fan_out(weight.shape)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        uniform_(bias, -bound, bound)
