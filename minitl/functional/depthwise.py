"""Depthwise convolution (groups = C, one k×k kernel per channel) as shifted multiply-adds.

    y[n, c, p, q] = b[c] + Σ_{u, v} x_pad[n, c, p·sh + u·dh, q·sw + v·dw] · w[c, 0, u, v]

One pass per kernel tap (9 for 3×3, 25 for 5×5), each a strided view of the padded input times
the channel's tap weight, broadcast over (N, Ho, Wo): no column matrix, no per-group GEMMs.
Backward, tap by tap (the chain rule of each multiply-add):

    ∂J/∂x_pad[view(u, v)] += ∂J/∂y · w[c, 0, u, v]        (then cropped to x)
    ∂J/∂w[c, 0, u, v]      = Σ_{n, p, q} ∂J/∂y · x_pad[view(u, v)]
    ∂J/∂b[c]               = Σ_{n, p, q} ∂J/∂y

``conv2d`` takes this path when groups = C = O (a depthwise multiplier of 1); the general
grouped path (im2col, a GEMM per group) is the reference it is tested against.
"""
from __future__ import annotations

from .. import backend
from ..tensor import Function


def _tap(xpad, u, v, Ho, Wo, stride, dilation):
    """The strided view of x_pad that kernel tap (u, v) multiplies: (N, C, Ho, Wo)."""
    (sh, sw), (dh, dw) = stride, dilation
    return xpad[:, :, u * dh:u * dh + sh * (Ho - 1) + 1:sh, v * dw:v * dw + sw * (Wo - 1) + 1:sw]


class DepthwiseConv2d(Function):
    """x (N, C, H, W), w (C, 1, KH, KW)[, b (C,)] -> (N, C, Ho, Wo)."""

    def forward(self, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
        xp = backend.get_array_module(x)
        (ph, pw), (dh, dw) = padding, dilation
        N, C, H, W = x.shape
        KH, KW = w.shape[2:]
        Ho = (H + 2 * ph - dh * (KH - 1) - 1) // stride[0] + 1
        Wo = (W + 2 * pw - dw * (KW - 1) - 1) // stride[1] + 1
        xpad = x
        if ph or pw:
            xpad = xp.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=x.dtype)
            xpad[:, :, ph:ph + H, pw:pw + W] = x
        y = xp.zeros((N, C, Ho, Wo), dtype=x.dtype)
        for u in range(KH):
            for v in range(KW):
                y += _tap(xpad, u, v, Ho, Wo, stride, dilation) * w[:, 0, u, v][None, :, None, None]
        if b is not None:
            y += b[None, :, None, None]
        self.xpad, self.w, self.geometry = xpad, w, (x.shape, (Ho, Wo), stride, padding, dilation)
        self.has_bias = b is not None
        return y

    def backward(self, g):
        xp = backend.get_array_module(g)
        (N, C, H, W), (Ho, Wo), stride, (ph, pw), dilation = self.geometry
        KH, KW = self.w.shape[2:]
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            gxpad = xp.zeros(self.xpad.shape, dtype=g.dtype)
            for u in range(KH):
                for v in range(KW):
                    _tap(gxpad, u, v, Ho, Wo, stride, dilation)[...] += g * self.w[:, 0, u, v][None, :, None, None]
            gx = gxpad[:, :, ph:ph + H, pw:pw + W]
        if self.needs_input_grad[1]:
            gw = xp.empty(self.w.shape, dtype=g.dtype)
            for u in range(KH):
                for v in range(KW):
                    gw[:, 0, u, v] = (g * _tap(self.xpad, u, v, Ho, Wo, stride, dilation)).sum(axis=(0, 2, 3))
        if self.has_bias and self.needs_input_grad[2]:
            gb = g.sum(axis=(0, 2, 3))
        return (gx, gw, gb) if self.has_bias else (gx, gw)
