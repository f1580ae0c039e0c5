"""Depthwise convolution (groups = C, one k×k kernel per channel) as shifted multiply-adds over NHWC.

    y[n, p, q, c] = b[c] + Σ_{u, v} x_pad[n, p·sh + u·dh, q·sw + v·dw, c] · w[c, 0, u, v]

One pass per kernel tap (9 for 3×3, 25 for 5×5), each a strided view of the padded input times
the channel's tap weight — a vector over the contiguous channel axis — broadcast over
(N, Ho, Wo): no column matrix, no per-group GEMMs.  Backward, tap by tap (the chain rule of each
multiply-add):

    ∂J/∂x_pad[view(u, v)] += ∂J/∂y · w[c, 0, u, v]        (then cropped to x)
    ∂J/∂w[c, 0, u, v]      = Σ_{n, p, q} ∂J/∂y · x_pad[view(u, v)]
    ∂J/∂b[c]               = Σ_{n, p, q} ∂J/∂y

Memory is channels-last, like the rest of minitl's convolution: x is read in whichever layout it
comes (an NHWC-memory view costs no copy), the output is NHWC memory handed back as an
NCHW-shaped view.  The work runs block by block — a few samples, or a few output rows of one
sample, ~256 KiB of output (:func:`layout.cache_blocks`) — so the 9 or 25 passes over a block's
accumulator and its one preallocated scratch block read the cache, not memory.  The padding may
be uneven (``pads`` = top, bottom, left, right: TensorFlow's "SAME" at stride 2), so no separate
padding copy is needed.

``conv2d`` takes this path whenever groups = C = O (a depthwise multiplier of 1): measured against
the general grouped path (im2col, a GEMM per group) on every EfficientNet-Lite0 layer shape
(benchmarks/efficientnet.py), it wins at each map size; that path is also the reference it is tested
against.
"""
from __future__ import annotations

from .. import backend
from ..shapes import pair
from ..tensor import Function, Tensor
from .layout import cache_blocks

BLOCK_BYTES = 256 * 2**10  # output bytes per block: accumulator + scratch + the taps' input rows fit a 1 MiB L2


def _blocks(xp, N: int, Ho: int, row_bytes: int):
    """[(n0, n1, p0, p1), ...]: whole samples when one fits a block, else rows of one sample."""
    if Ho * row_bytes <= BLOCK_BYTES or xp is not backend.NUMPY.xp:
        return [(n0, n1, 0, Ho) for n0, n1 in cache_blocks(xp, N, Ho * row_bytes, BLOCK_BYTES)]
    rows = cache_blocks(xp, Ho, row_bytes, BLOCK_BYTES)
    return [(n, n + 1, p0, p1) for n in range(N) for p0, p1 in rows]


def _blocks_and_scratch(xp, N: int, Ho: int, Wo: int, C: int, dtype):
    """The output blocks (``_blocks``) of an (N, Ho, Wo, C) map and one scratch buffer the largest fits in."""
    blocks = _blocks(xp, N, Ho, Wo * C * xp.dtype(dtype).itemsize)
    scratch = xp.empty(max((n1 - n0) * (p1 - p0) for n0, n1, p0, p1 in blocks) * Wo * C, dtype=dtype)
    return blocks, scratch


def _tap(xpad, block, u, v, Wo, stride, dilation):
    """The strided view of NHWC x_pad that tap (u, v) multiplies for output rows p0:p1 of samples n0:n1."""
    (n0, n1, p0, p1), (sh, sw), (dh, dw) = block, stride, dilation
    top = p0 * sh + u * dh
    return xpad[n0:n1, top:top + sh * (p1 - p0 - 1) + 1:sh, v * dw:v * dw + sw * (Wo - 1) + 1:sw]


def _pad_nhwc(xp, x, pads):
    """x (N, C, H, W), any layout -> contiguous NHWC, zero-padded by (top, bottom, left, right)."""
    top, bottom, left, right = pads
    N, C, H, W = x.shape
    if not any(pads):
        return xp.ascontiguousarray(x.transpose(0, 2, 3, 1))
    out = xp.zeros((N, H + top + bottom, W + left + right, C), dtype=x.dtype)
    out[:, top:top + H, left:left + W] = x.transpose(0, 2, 3, 1)
    return out


class DepthwiseConv2d(Function):
    """x (N, C, H, W), w (C, 1, KH, KW)[, b (C,)] -> (N, C, Ho, Wo), NHWC memory."""

    def forward(self, x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1)):
        xp = backend.get_array_module(x)
        top, bottom, left, right = pads
        N, C, H, W = x.shape
        KH, KW = w.shape[2:]
        Ho = (H + top + bottom - dilation[0] * (KH - 1) - 1) // stride[0] + 1
        Wo = (W + left + right - dilation[1] * (KW - 1) - 1) // stride[1] + 1
        xpad = _pad_nhwc(xp, x, pads)
        taps = xp.ascontiguousarray(w[:, 0].transpose(1, 2, 0)).astype(x.dtype, copy=False)  # (KH, KW, C)
        y = xp.empty((N, Ho, Wo, C), dtype=x.dtype)
        blocks, scratch = _blocks_and_scratch(xp, N, Ho, Wo, C, x.dtype)
        for block in blocks:
            n0, n1, p0, p1 = block
            acc = y[n0:n1, p0:p1]
            tmp = scratch[:acc.size].reshape(acc.shape)
            xp.multiply(_tap(xpad, block, 0, 0, Wo, stride, dilation), taps[0, 0], out=acc)
            for t in range(1, KH * KW):
                u, v = divmod(t, KW)
                xp.multiply(_tap(xpad, block, u, v, Wo, stride, dilation), taps[u, v], out=tmp)
                acc += tmp
            if b is not None:
                acc += b
        self.xpad = xpad if self.needs_input_grad[1] else None
        self.taps = taps if self.needs_input_grad[0] else None
        self.geometry = ((N, C, H, W), (KH, KW), stride, pads, dilation)
        self.has_bias = b is not None
        return y.transpose(0, 3, 1, 2)

    def backward(self, g):
        xp = backend.get_array_module(g)
        (N, C, H, W), (KH, KW), stride, (top, bottom, left, right), dilation = self.geometry
        gy = xp.ascontiguousarray(g.transpose(0, 2, 3, 1))  # (N, Ho, Wo, C): free when g is NHWC memory
        Ho, Wo = gy.shape[1:3]
        want_x, want_w = self.needs_input_grad[0], self.needs_input_grad[1]
        gxpad = xp.zeros((N, H + top + bottom, W + left + right, C), dtype=gy.dtype) if want_x else None
        gtaps = xp.zeros((KH, KW, C), dtype=gy.dtype) if want_w else None
        blocks, scratch = _blocks_and_scratch(xp, N, Ho, Wo, C, gy.dtype)
        for block in blocks:
            n0, n1, p0, p1 = block
            gb = gy[n0:n1, p0:p1]
            tmp = scratch[:gb.size].reshape(gb.shape)
            for t in range(KH * KW):
                u, v = divmod(t, KW)
                if want_x:
                    xp.multiply(gb, self.taps[u, v], out=tmp)
                    _tap(gxpad, block, u, v, Wo, stride, dilation)[...] += tmp
                if want_w:
                    xp.multiply(gb, _tap(self.xpad, block, u, v, Wo, stride, dilation), out=tmp)
                    gtaps[u, v] += tmp.reshape(-1, C).sum(axis=0)
        gx = gxpad[:, top:top + H, left:left + W].transpose(0, 3, 1, 2) if want_x else None
        gw = gtaps.transpose(2, 0, 1)[:, None] if want_w else None  # (C, 1, KH, KW)
        if not self.has_bias:
            return gx, gw
        gbias = gy.reshape(-1, C).sum(axis=0) if self.needs_input_grad[2] else None
        return gx, gw, gbias


def depthwise_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, pads=(0, 0, 0, 0),
                     dilation=1) -> Tensor:
    """Depthwise convolution with uneven zero padding ``pads`` = (top, bottom, left, right):

        y[n, c, p, q] = b[c] + Σ_{u, v} x_pad[n, c, p·sh + u·dh, q·sw + v·dw] · w[c, 0, u, v]

    x (N, C, H, W), weight (C, 1, KH, KW), bias (C,).  ``conv2d(groups=C)`` with symmetric padding
    calls this too (on larger maps); TensorFlow's "SAME" padding at stride 2 is uneven.
    """
    x_shape, w_shape = tuple(x.shape), tuple(weight.shape)
    if len(x_shape) != 4 or len(w_shape) != 4 or w_shape[1] != 1 or w_shape[0] != x_shape[1]:
        raise ValueError(f"depthwise_conv2d: expected x (N, C, H, W) and weight (C, 1, KH, KW), "
                         f"got {x_shape} and {w_shape}")
    pads = tuple(int(p) for p in pads)
    if len(pads) != 4 or min(pads) < 0:
        raise ValueError(f"depthwise_conv2d: pads must be 4 non-negative ints (top, bottom, left, right), got {pads}")
    if bias is not None and tuple(bias.shape) != (w_shape[0],):
        raise ValueError(f"depthwise_conv2d: bias must have shape ({w_shape[0]},), got {tuple(bias.shape)}")
    stride, dilation = pair(stride, "depthwise_conv2d: stride", 1), pair(dilation, "depthwise_conv2d: dilation", 1)
    for axis, (size, k, d) in enumerate(((x_shape[2], w_shape[2], dilation[0]), (x_shape[3], w_shape[3], dilation[1]))):
        if size + pads[2 * axis] + pads[2 * axis + 1] < d * (k - 1) + 1:
            raise ValueError(f"depthwise_conv2d: kernel {w_shape[2:]} (dilation {dilation}) is larger than the "
                             f"padded input (input shape {x_shape}, pads {pads})")
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return DepthwiseConv2d.apply(*inputs, stride=stride, pads=pads, dilation=dilation)
