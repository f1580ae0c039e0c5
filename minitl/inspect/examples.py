"""Tiny built-in models to study: the cases ``minitl trace`` / ``graph`` / ``summary`` know by name.

Each builder is seeded and returns an :class:`Example`: the model, its input(s), the loss J of its
output, and a sentence saying what it is.  Inputs are tiny so every number can be checked by hand.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy

from .. import functional as F
from .. import nn
from .. import random as mt_random
from ..tensor import Tensor


@dataclass
class Example:
    model: nn.Module
    inputs: tuple
    loss: object  # callable: output -> scalar Tensor
    description: str
    input_shape: tuple  # one sample's shape (no batch axis), for the cost model


def neuron(seed: int = 0) -> Example:
    """h = σ(wᵀx + b) with 3 inputs, loss J = (h − 1)²."""
    mt_random.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 1), nn.Sigmoid())
    x = Tensor(numpy.array([[0.5, -1.0, 2.0]], dtype=numpy.float32))
    target = Tensor(numpy.ones((1, 1), dtype=numpy.float32))
    return Example(model, (x,), lambda h: F.mse_loss(h, target), "a dense neuron h = σ(wᵀx + b), J = (h − 1)²", (3,))


def mlp(seed: int = 0) -> Example:
    """4 → 5 → 3 with ReLU, cross-entropy on two samples."""
    mt_random.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    x = Tensor(numpy.random.default_rng(seed).standard_normal((2, 4)).astype(numpy.float32))
    target = Tensor(numpy.array([0, 2]))
    return Example(model, (x,), lambda y: F.cross_entropy(y, target),
                   "a 2-layer MLP 4-5-3 (ReLU), cross-entropy on 2 samples", (4,))


def cnn(seed: int = 0) -> Example:
    """conv 3×3 (1 → 2 channels, padding 1) + ReLU + max-pool 2×2 + dense 18 → 3 on one 6×6 image."""
    mt_random.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(1),
                          nn.Linear(2 * 3 * 3, 3))
    x = Tensor(numpy.random.default_rng(seed).standard_normal((1, 1, 6, 6)).astype(numpy.float32))
    target = Tensor(numpy.array([1]))
    return Example(model, (x,), lambda y: F.cross_entropy(y, target),
                   "conv 3x3 (1->2) + ReLU + max-pool 2x2 + dense 18->3, cross-entropy on one 6x6 image", (1, 6, 6))


def transformer(seed: int = 0) -> Example:
    """One post-LN Transformer encoder layer, d = 8, 2 heads, FFN 16 (GELU), no dropout, on 3 tokens."""
    mt_random.manual_seed(seed)
    model = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0)
    rng = numpy.random.default_rng(seed)
    x = Tensor(rng.standard_normal((1, 3, 8)).astype(numpy.float32))
    target = Tensor(rng.standard_normal((1, 3, 8)).astype(numpy.float32))
    return Example(model, (x,), lambda y: F.mse_loss(y, target),
                   "one Transformer encoder layer (d=8, 2 heads, FFN 16), MSE to a random target, 3 tokens", (3, 8))


def lstm(seed: int = 0) -> Example:
    """One LSTM step: input 3, hidden 4, a batch of 2, from zero states."""
    mt_random.manual_seed(seed)
    model = nn.LSTM(3, 4)
    rng = numpy.random.default_rng(seed)
    x = Tensor(rng.standard_normal((1, 2, 3)).astype(numpy.float32))  # (T = 1 step, N = 2, I = 3)
    target = Tensor(rng.standard_normal((1, 2, 4)).astype(numpy.float32))
    return Example(model, (x,), lambda out: F.mse_loss(out[0], target),
                   "one LSTM step (input 3, hidden 4, batch 2, zero states), MSE of h_1 to a random target", (2, 3))


EXAMPLES = {"neuron": neuron, "mlp": mlp, "cnn": cnn, "transformer": transformer, "lstm": lstm}


def build(name: str, seed: int = 0) -> Example:
    if name not in EXAMPLES:
        raise ValueError(f"unknown example {name!r}; choose one of {', '.join(EXAMPLES)}")
    return EXAMPLES[name](seed)


def model_names() -> list:
    """Every name ``model_and_input`` knows: the tiny examples, then the architectures of models/."""
    from ..models import ARCHS  # noqa: PLC0415

    return list(EXAMPLES) + list(ARCHS)


def model_and_input(name: str, input_size: int | None = None, batch: int = 1, seed: int = 0,
                    default_size: int = 32) -> Example:
    """A tiny example by name, or an architecture of ``models/`` (random weights) with a random
    (batch, 3, S, S) image (S = ``input_size``, default ``default_size``), in inference mode
    (BatchNorm uses running statistics, so batch 1 works); the loss is the sum of its logits (the
    graph and the costs do not depend on which loss)."""
    if name in EXAMPLES:
        example = build(name, seed)
        if batch != 1 or input_size is not None:
            raise ValueError(f"the tiny example {name!r} has a fixed input {example.inputs[0].shape}; "
                             "--batch/--input-size apply to the architectures")
        return example
    from ..models import ARCHS, create  # noqa: PLC0415

    if name not in ARCHS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(model_names())}")
    if batch < 1 or (input_size is not None and input_size < 8):
        raise ValueError(f"batch must be >= 1 and input size >= 8, got batch {batch}, input size {input_size}")
    mt_random.manual_seed(seed)
    model = create(name).eval()  # BatchNorm in inference mode: any batch size, the graph is the same
    size = input_size or default_size
    x = Tensor(numpy.random.default_rng(seed).standard_normal((batch, 3, size, size)).astype(numpy.float32))
    return Example(model, (x,), lambda y: y.sum(), f"{name} (random weights) on a {batch}x3x{size}x{size} input",
                   (3, size, size))
