"""How much arithmetic each op does, and the scratch memory it needs: the cost model's formulas.

Convention: a multiply and an add are two FLOPs (a GEMM of (m, k)·(k, n) is 2mkn); element-wise
ops count about one FLOP per element per arithmetic operation of their formula; moves (reshape,
transpose, indexing, concatenation) count none.  Convolution counts the direct method,
2·N·Ho·Wo·O·(C/G)·KH·KW, whichever algorithm ran (Winograd F(2×2, 3×3) does 2.25× fewer
multiplications; its rate is then reported against the direct count, as is usual).

Backward: each input that wants a gradient costs what its chain-rule product costs — for a GEMM
one more GEMM per input (dJ/dA = dJ/dY·Bᵀ, dJ/dB = Aᵀ·dJ/dY), so a layer whose input and weight
both need gradients costs 2× its forward; a frozen layer at the bottom of the graph costs none.
"""
from __future__ import annotations

from math import prod

import numpy

from ..functional import conv as _conv
from ..functional import layout as _layout

NO_ARITHMETIC = {"Reshape", "Transpose", "GetItem", "Concatenate", "Stack", "Cast", "Embedding"}
# (forward, backward per differentiable input) FLOPs per element of the output, for element-wise ops
PER_ELEMENT = {
    "Add": (1, 0), "Sub": (1, 1), "Neg": (1, 1), "Mul": (1, 1), "Div": (1, 3), "Pow": (3, 4),
    "Exp": (4, 1), "Log": (4, 1), "Sqrt": (4, 2), "Abs": (1, 1), "Clip": (2, 1),
    "ReLU": (1, 1), "LeakyReLU": (2, 2), "Sigmoid": (4, 3), "Tanh": (4, 3), "GELU": (8, 8),
    "Softmax": (5, 4), "LogSoftmax": (5, 3), "MaskedSoftmax": (5, 4), "Dropout": (1, 1),
}


# element-wise FLOPs per hidden unit and step of a recurrent cell (gate nonlinearities, products, sums)
RECURRENT = {"RNNSequence": 4, "LSTMSequence": 25, "LSTMFused": 25, "GRUSequence": 22}


def _gemm(a_shape, b_shape, out_shape) -> int:
    k = a_shape[-1] if len(a_shape) else 1
    return 2 * prod(out_shape) * k


def op_flops(op: str, in_shapes: list, out_shape: tuple, options: dict, wants: tuple) -> tuple[int, int]:
    """(forward FLOPs, backward FLOPs) of one call of op ``op`` (a Function class name).

    ``in_shapes``: the inputs' shapes (None for absent inputs); ``wants[i]``: whether input i
    needs a gradient.  Unknown ops count one FLOP per output element each way.
    """
    wants = tuple(bool(w) for w in wants) + (False,) * (len(in_shapes) - len(wants))
    formula = _FORMULAS.get(op)
    if formula is not None:
        return formula(op, in_shapes, out_shape, options, wants)
    if op in NO_ARITHMETIC:
        return 0, 0
    size = prod(out_shape)
    forward, backward = PER_ELEMENT.get(op, (1, 1))
    return forward * size, backward * size * sum(wants)


def _linear(op, in_shapes, out_shape, options, wants):
    """y = x Wᵀ + b: 2·m·k·n for the GEMM, once more per wanted gradient of x and of W."""
    x, w = in_shapes[0], in_shapes[1]
    m, k, n = prod(x[:-1]), x[-1], w[0]
    bias = len(in_shapes) > 2 and in_shapes[2] is not None
    forward = 2 * m * k * n + (m * n if bias else 0)
    backward = 2 * m * k * n * (wants[0] + wants[1]) + (m * n if bias and wants[2] else 0)
    return forward, backward


def _linear_concat(op, in_shapes, out_shape, options, wants):
    """y = x [W₁; …; W_k]ᵀ + b: one GEMM over the stacked weights."""
    k = (len(in_shapes) - 1) // 2 if options.get("biased") else len(in_shapes) - 1
    weights = in_shapes[1:k + 1]
    out = sum(w[0] for w in weights)
    m, width = prod(in_shapes[0][:-1]), in_shapes[0][-1]
    gemm = 2 * m * width * out
    bias = m * out if options.get("biased") else 0
    return gemm + bias, gemm * (wants[0] + any(wants[1:k + 1])) + (bias if any(wants[k + 1:]) else 0)


def _matmul(op, in_shapes, out_shape, options, wants):
    gemm = _gemm(in_shapes[0], in_shapes[1], out_shape)
    return gemm, gemm * (wants[0] + wants[1])


def _packed_attention(op, in_shapes, out_shape, options, wants):
    """Y = [Q | K | V] (N, T, 3D): h heads of d = D/h."""
    n, t, width = in_shapes[0]
    scores = n * options["num_heads"] * t * t
    d = width // 3 // options["num_heads"]
    forward = 4 * scores * d + 6 * scores
    return forward, (6 * scores * d + 4 * scores) * wants[0]


def _attention(op, in_shapes, out_shape, options, wants):
    """S = QKᵀ/√d, P = softmax(S), O = PV."""
    q, k, v = in_shapes[:3]
    batch, lq, lk, d, dv = prod(q[:-2]), q[-2], k[-2], q[-1], v[-1]
    scores = batch * lq * lk
    forward = 2 * scores * d + 2 * scores * dv + 6 * scores  # two GEMMs, scale + softmax
    dp = 2 * scores * dv if (wants[0] or wants[1]) else 0  # dJ/dP = dJ/dO Vᵀ
    backward = dp + 4 * scores * (wants[0] or wants[1]) + 2 * scores * d * (wants[0] + wants[1]) \
        + 2 * scores * dv * wants[2]
    return forward, backward


def _conv2d(op, in_shapes, out_shape, options, wants):
    """2·N·Ho·Wo·O·(C/g)·kh·kw multiply-adds, once more per wanted gradient of x and of the kernel."""
    n, _, _, _ = in_shapes[0]
    o, cg, kh, kw = in_shapes[1]
    ho, wo = out_shape[2], out_shape[3]
    macs = n * ho * wo * o * cg * kh * kw
    bias = len(in_shapes) > 2 and in_shapes[2] is not None
    forward = 2 * macs + (n * ho * wo * o if bias else 0)
    backward = 2 * macs * (wants[0] + wants[1]) + (n * ho * wo * o if bias and wants[2] else 0)
    return forward, backward


def _recurrent(op, in_shapes, out_shape, options, wants):
    """Inputs x (T, N, I), S states, W_ih (G·H, I), W_hh (G·H, H), b_ih, b_hh."""
    (t, n, i), states = in_shapes[0], (2 if op.startswith("LSTM") else 1)
    gh, h = in_shapes[1 + states][0], in_shapes[2 + states][1]
    projection, recurrence = 2 * t * n * i * gh, 2 * t * n * h * gh
    pointwise = RECURRENT[op] * t * n * h
    forward = projection + recurrence + pointwise + 2 * t * n * gh  # + the two biases
    # BPTT: δ W_hh every step, dJ/dW_ih and dJ/dW_hh one GEMM each, dJ/dx if wanted
    backward = recurrence + 2 * pointwise + projection * wants[1 + states] + recurrence * wants[2 + states] \
        + projection * wants[0]
    return forward, backward


def _pool(op, in_shapes, out_shape, options, wants):
    size = prod(out_shape)
    kh, kw = options.get("kernel", (1, 1))
    return size * kh * kw, (size if op == "MaxPool2d" else size * kh * kw) * wants[0]


def _adaptive_pool(op, in_shapes, out_shape, options, wants):
    return prod(in_shapes[0]), prod(in_shapes[0]) * wants[0]


def _norm(op, in_shapes, out_shape, options, wants):
    """BatchNorm / LayerNorm: statistics (training, or always for LayerNorm), normalise, scale and shift.

    BatchNormReLU (max(0, BN(x) + r)): + the residual add and the ReLU forward; + the mask g ⊙ [z > 0] backward."""
    n = prod(in_shapes[0])
    statistics = 3 * n if (op == "LayerNorm" or options.get("training")) else 0
    forward, backward = 4 * n + statistics, 9 * n if any(wants) else 0
    if op == "BatchNormReLU":
        residual = len(in_shapes) > 3 and in_shapes[3] is not None
        forward += n * (1 + residual)
        backward += n if any(wants) else 0
    return forward, backward


def _reduction(op, in_shapes, out_shape, options, wants):
    n = prod(in_shapes[0])
    return n, n * wants[0]


def _nll(op, in_shapes, out_shape, options, wants):
    size = prod(out_shape)
    return size, size * wants[0]


_FORMULAS = {"Linear": _linear, "LinearConcat": _linear_concat, "MatMul": _matmul,
             "PackedSelfAttention": _packed_attention, "ScaledDotProductAttention": _attention, "Conv2d": _conv2d,
             **{name: _recurrent for name in RECURRENT}, "MaxPool2d": _pool, "AvgPool2d": _pool,
             "AdaptiveAvgPool2d": _adaptive_pool, "BatchNorm": _norm, "BatchNormReLU": _norm,
             "LayerNorm": _norm,
             "Sum": _reduction, "Mean": _reduction, "Max": _reduction, "NLLLoss": _nll}


def workspace(op: str, in_shapes: list, out_shape: tuple, options: dict, itemsize: int, xp) -> tuple[int, str]:
    """Scratch memory the op allocates and frees during its forward: (bytes, what it is)."""
    if op == "Conv2d":
        n, c, h, w = in_shapes[0]
        o, cg, kh, kw = in_shapes[1]
        (ph, pw), stride = options.get("padding", (0, 0)), options.get("stride", (1, 1))
        dilation, groups = options.get("dilation", (1, 1)), options.get("groups", 1)
        ho, wo = out_shape[2], out_shape[3]
        padded = n * (h + 2 * ph) * (w + 2 * pw) * c * itemsize if (ph or pw) else 0
        if _conv._use_winograd(xp, kh, kw, stride, dilation, groups, c, o, ho, wo):
            th, tw = (ho + 1) // 2, (wo + 1) // 2
            per_sample = (4 * th * (w + 2 * pw + 2) * c + 16 * th * tw * (c + o) + 8 * th * tw * o) * itemsize
            step = _layout.batch_chunks(xp, n, per_sample, th * tw)[0][1]
            kernel = 16 * c * o * itemsize  # U = G k Gᵀ for every (c, o)
            return per_sample * step + padded + kernel, "winograd tiles"
        if kh == kw == 1 and stride == (1, 1) and groups == 1 and not (ph or pw):
            return 0, ""
        per_sample = ho * wo * kh * kw * c * itemsize
        step = _layout.batch_chunks(xp, n, per_sample, ho * wo)[0][1]
        kernel = kh * kw * cg * o * itemsize  # W_col, the kernel reordered for the GEMM
        return per_sample * step + padded + kernel, "im2col"
    if op == "Linear":
        x, w = in_shapes[0], in_shapes[1]
        # functional/dense.py computes a small batch as (W xᵀ)ᵀ and copies it to row-major order
        if xp is numpy and len(x) == 2 and 4 * x[0] <= w[0]:
            return x[0] * w[0] * itemsize, "(W xᵀ)ᵀ copy"
        return 0, ""
    if op == "PackedSelfAttention":
        n, t, _ = in_shapes[0]
        return n * options["num_heads"] * t * t * (itemsize + 1), "attention probabilities P and dropout mask"
    if op == "ScaledDotProductAttention":
        q, k = in_shapes[0], in_shapes[1]
        return prod(q[:-2]) * q[-2] * k[-2] * itemsize, "attention scores"
    return 0, ""
