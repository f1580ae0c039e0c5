"""im2col and its adjoint col2im: a convolution's receptive fields as the rows of one matrix.

Every output pixel (n, p, q) of a convolution reads a KH×KW window of the padded input; laid out as
one row per pixel, those windows form the column matrix X_col, and the convolution becomes one GEMM
y = X_col · W_col (``functional/conv.py``).  col2im sends a gradient on X_col back to the pixels it
was copied from — the transpose of that copy, so the two are exact adjoints.
"""
from __future__ import annotations


def im2col(xp, xpad, KH, KW, Ho, Wo, stride, dilation, groups, buffer=None):
    """Padded NHWC input (n, Hp, Wp, C) -> column matrix (G, n·Ho·Wo, KH·KW·Cg), rows (n, p, q), columns (u, v, c).

    X_col[g, (n,p,q), (u,v,c)] = x_pad[n, p·sh + u·dh, q·sw + v·dw, g·Cg + c] — a strided window
    view (no copy, no loop), then one copy into contiguous memory (``buffer``, a flat workspace
    reused across batch chunks, when given).
    """
    n, Hp, Wp, C = xpad.shape
    Cg = C // groups
    sh, sw = stride
    dh, dw = dilation
    if KH == KW == 1 and sh == sw == 1 and groups == 1 and Ho == Hp and Wo == Wp:
        return xp.ascontiguousarray(xpad).reshape(1, n * Ho * Wo, C)  # 1×1 stride 1: the input is the matrix
    s0, s1, s2, s3 = xpad.strides
    windows = xp.lib.stride_tricks.as_strided(
        xpad,
        shape=(groups, n, Ho, Wo, KH, KW, Cg),
        strides=(Cg * s3, s0, sh * s1, sw * s2, dh * s1, dw * s2, s3),
    )
    shape = (groups, n, Ho, Wo, KH, KW, Cg)
    if buffer is None:
        col = xp.empty(shape, dtype=xpad.dtype)
    else:
        col = buffer[:groups * n * Ho * Wo * KH * KW * Cg].reshape(shape)
    col[...] = windows
    return col.reshape(groups, n * Ho * Wo, KH * KW * Cg)


def col2im(xp, gcol, gxpad, KH, KW, Ho, Wo, stride, dilation, groups):
    """The adjoint of :func:`im2col`, accumulated into the padded NHWC gradient ``gxpad`` (n, Hp, Wp, C).

    gx_pad[n, p·sh + u·dh, q·sw + v·dw, g·Cg + c] += dX_col[g, (n,p,q), (u,v,c)]: one strided slice
    addition per kernel tap (u, v) — deterministic, no scatter.
    """
    n, Hp, Wp, C = gxpad.shape
    Cg = C // groups
    sh, sw = stride
    dh, dw = dilation
    g7 = gcol.reshape(groups, n, Ho, Wo, KH, KW, Cg)
    target = gxpad.reshape(n, Hp, Wp, groups, Cg)
    for u in range(KH):
        for v in range(KW):
            rows = slice(u * dh, u * dh + sh * (Ho - 1) + 1, sh)
            cols = slice(v * dw, v * dw + sw * (Wo - 1) + 1, sw)
            target[:, rows, cols] += g7[:, :, :, :, u, v].transpose(1, 2, 3, 0, 4)
