"""Winograd's minimal filtering F(2×2, 3×3) for 3×3, stride-1 convolutions (Lavin & Gray, 2015).

Each 2×2 block of outputs is computed from a 4×4 input tile d and the 3×3 kernel g as

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A

        Bᵀ = [1  0 −1  0]     G = [ 1    0    0 ]     Aᵀ = [1  1  1  0]
             [0  1  1  0]         [ ½    ½    ½ ]          [0  1 −1 −1]
             [0 −1  1  0]         [ ½   −½    ½ ]
             [0  1  0 −1]         [ 0    0    1 ]

16 multiplications per tile and channel pair instead of 2·2·9 = 36 (2.25× fewer).  Summed
over input channels, the ⊙ becomes 16 independent GEMMs, one per tile position (a, b):

    M[ab] (tiles, O) = V[ab] (tiles, C) · U[ab] (C, O),   V = Bᵀ d B,  U = G g Gᵀ

The weight gradient stays in the same domain (M = V ⊙ U per tile, summed over tiles and channels):

    dJ/dM[ab] = A dJ/dY Aᵀ (per tile),   dJ/dU[ab] (C, O) = V[ab]ᵀ · dJ/dM[ab],
    dJ/dk[o, c] = Gᵀ dJ/dU[·, ·, c, o] G

again 16 GEMMs, 2.25× fewer multiplications than the im2col weight gradient X_colᵀ · dJ/dy.

The transforms are sums and differences of strided views (no loops over pixels); the same
NHWC layout as the im2col path.  Numerically it is a reassociation of the same sums, exact
up to float rounding (the tests hold it to the plain-loop reference like the im2col path).
"""
from __future__ import annotations

from . import parallel


def worth_it(C: int, O: int, Ho: int, Wo: int, threads: int = 1) -> bool:
    """Whether winograd="auto" picks this path: on one thread from 256 channels in and out; on two or
    more threads never.  Measured on a quiet 2-core machine, forward + backward, each layer alone:

    * one thread (batch 64, CIFAR sizes): 256@8×8 ~0.75×, 512@4×4 ~0.8× the im2col + GEMM time;
      64@32×32 and 128@16×16 even (the transforms cost what the saved multiplications do);
    * two threads: im2col + GEMM ahead at every ResNet-18 CIFAR layer (64@32: 277 vs 370 ms,
      128@16: 188 vs 283, 256@8: 176 vs 210, 512@4: 150 vs 186) and at ResNet-50's 64@56, 128@28,
      512@7 (batch 16; 256@14 the one case for Winograd, 126 vs 170).  im2col's one large GEMM per
      chunk scales with the threads (1.6× at 64@32); the 16 thin GEMMs and the many strided
      transform passes of Winograd do not (1.15×).

    Per output pixel the GEMM saving grows with C·O and the transform cost with C + O, so the
    channel count decides, not the image size."""
    return threads == 1 and C >= 256 and O >= 256


def weight_grad_worth_it(C: int, O: int) -> bool:
    """Whether winograd="auto" computes the weight gradient by :func:`grad_weight` too (where the forward
    is Winograd): from 256 channels, measured against X_colᵀ · dJ/dy single-threaded at batch 64
    (256@8: ~0.87×, 512@4: ~0.75× the time; 64@32 and 128@16 even — there the input transform
    costs about what the column copy does)."""
    return C >= 256 and O >= 256


def _kron_g(xp, dtype):
    """G ⊗ G (16, 9): vec(G k Gᵀ) = (G ⊗ G) · vec(k), rows ordered (a, b), columns (i, j)."""
    e = xp.eye(3, dtype=dtype)
    G = xp.stack([e[0], (e[0] + e[1] + e[2]) * 0.5, (e[0] - e[1] + e[2]) * 0.5, e[2]])  # (4, 3), built on the device
    return xp.kron(G, G)


def kernel_transform(xp, w, transposed: bool = False):
    """U = G k Gᵀ for every kernel, as the right-hand operands (16, Cin, Cout) of the 16 GEMMs.

    w (O, C, 3, 3).  transposed=False: k = w[o, c] (Cin = C, Cout = O).  transposed=True: the
    kernel of the transposed convolution, k[c, o] = w[o, c] rotated by 180° (Cin = O, Cout = C).
    As one GEMM: vec(G k Gᵀ) = (G ⊗ G) · vec(k), with (G ⊗ G) (16, 9) applied to all O·C kernels
    at once; rotating k by 180° reverses vec(k), i.e. the columns of G ⊗ G.
    """
    O, C = w.shape[:2]
    GG = _kron_g(xp, w.dtype)  # (16, 9)
    kernels = w.transpose(2, 3, 0, 1).reshape(9, O * C)  # row 3i + j holds k[i, j] of every (o, c)
    if transposed:
        return xp.matmul(GG[:, ::-1], kernels).reshape(16, O, C)  # (16, Cin = O, Cout = C)
    return xp.matmul(GG, kernels).reshape(16, O, C).transpose(0, 2, 1)  # (16, Cin = C, Cout = O)


def input_transform(xp, xpad, th: int, tw: int, t, v):
    """V = Bᵀ d B for every 4×4 tile (stride 2) of the padded NHWC input (n, ≥2th+2, ≥2tw+2, C).

    Writes V into ``v`` (16, n, th, tw, C), using ``t`` (4, n, th, Wp, C) for the row pass.
    """
    rows = [xpad[:, r:r + 2 * th - 1:2] for r in range(4)]  # rows 2i + r: (n, th, Wp, C)
    _bt(xp, rows, t)  # Bᵀ d   (along rows)
    for a in range(4):
        cols = [t[a][:, :, c:c + 2 * tw - 1:2] for c in range(4)]  # columns 2j + c: (n, th, tw, C)
        _bt(xp, cols, v[4 * a:4 * a + 4])  # (Bᵀ d) B   (along columns)


def _bt(xp, d, out):
    """out[0..3] = Bᵀ applied to the four slices d[0..3]: d0 − d2, d1 + d2, d2 − d1, d1 − d3."""
    xp.subtract(d[0], d[2], out=out[0])
    xp.add(d[1], d[2], out=out[1])
    xp.subtract(d[2], d[1], out=out[2])
    xp.subtract(d[1], d[3], out=out[3])


def output_transform(xp, m, y, s):
    """y (n, 2th, 2tw, O) = Aᵀ M A for every tile, M (4, 4, n, th, tw, O); ``s`` (2, 4, n, th, tw, O) scratch."""
    for b in range(4):  # Aᵀ M  (along a): row 0 = m0 + m1 + m2, row 1 = m1 − m2 − m3
        xp.add(m[0, b], m[1, b], out=s[0, b])
        s[0, b] += m[2, b]
        xp.subtract(m[1, b], m[2, b], out=s[1, b])
        s[1, b] -= m[3, b]
    for r in range(2):  # (Aᵀ M) A  (along b)
        out0, out1 = y[:, r::2, 0::2], y[:, r::2, 1::2]
        xp.add(s[r, 0], s[r, 1], out=out0)
        out0 += s[r, 2]
        xp.subtract(s[r, 1], s[r, 2], out=out1)
        out1 -= s[r, 3]


def conv3x3_nhwc(xp, xpad, u, Ho: int, Wo: int, chunks):
    """3×3 stride-1 cross-correlation by F(2×2, 3×3).

    xpad: zero-padded NHWC input (N, Hp, Wp, C) with Hp ≥ 2·⌈Ho/2⌉ + 2 and Wp ≥ 2·⌈Wo/2⌉ + 2;
    u: the transformed kernel (16, C, O) from :func:`kernel_transform`; ``chunks(xp, N, bytes_per_sample, gemm_rows_per_sample)`` splits the batch so the
    workspace stays bounded (and cache-sized on the CPU).  Returns y (N, Ho, Wo, O), C-contiguous.
    """
    N, Hp, Wp, C = xpad.shape
    O = u.shape[2]
    th, tw = (Ho + 1) // 2, (Wo + 1) // 2
    y = xp.empty((N, 2 * th, 2 * tw, O), dtype=xpad.dtype)
    per_sample = (4 * th * Wp * C + 16 * th * tw * (C + O) + 8 * th * tw * O) * xpad.itemsize
    pieces = parallel.spread(xp, chunks(xp, N, per_sample, th * tw), per_sample)
    step = max(n1 - n0 for n0, n1 in pieces)
    scratch = [(xp.empty((4, step, th, Wp, C), dtype=xpad.dtype), xp.empty((16, step, th, tw, C), dtype=xpad.dtype),
                xp.empty((16, step * th * tw, O), dtype=xpad.dtype), xp.empty((2, 4, step, th, tw, O), dtype=xpad.dtype))
               for _ in range(parallel.workers(xp, len(pieces)))]

    def tiles(bounds, slot):  # transform, 16 GEMMs, transform back: the outputs of samples n0..n1
        n0, n1 = bounds
        k = n1 - n0
        t, v, m, s = scratch[slot]
        t, v, s, m = t[:, :k], v[:, :k], s[:, :, :k], m[:, :k * th * tw]  # (the last chunk may be shorter)
        input_transform(xp, xpad[n0:n1], th, tw, t, v)
        xp.matmul(v.reshape(16, k * th * tw, C), u, out=m)  # 16 GEMMs: (tiles, C) · (C, O)
        output_transform(xp, m.reshape(4, 4, k, th, tw, O), y[n0:n1], s)

    parallel.run_chunks(xp, tiles, pieces)
    if 2 * th != Ho or 2 * tw != Wo:
        y = xp.ascontiguousarray(y[:, :Ho, :Wo])
    return y


def output_gradient_transform(xp, gy, th: int, tw: int, e, dm):
    """dJ/dM = A dJ/dY Aᵀ for every 2×2 output tile: gy (n, 2th, 2tw, O) -> ``dm`` (4, 4, n, th, tw, O).

    The adjoint of :func:`output_transform` (Y = Aᵀ M A), A = Aᵀᵀ (4×2) with rows [1, 0], [1, 1],
    [1, −1], [0, −1]:  along rows e[a] = A[a, 0]·dY[0] + A[a, 1]·dY[1] into ``e`` (4, 2, n, th, tw, O),
    then along columns dM[a, b] = A[b, 0]·e[a, 0] + A[b, 1]·e[a, 1].
    """
    d = [[gy[:, r::2, c::2] for c in range(2)] for r in range(2)]  # dY[r][c]: (n, th, tw, O)
    for c in range(2):
        _a(xp, d[0][c], d[1][c], [e[a, c] for a in range(4)])
    for a in range(4):
        _a(xp, e[a, 0], e[a, 1], dm[a])


def _a(xp, d0, d1, out):
    """out[0..3] = A applied to (d0, d1): d0, d0 + d1, d0 − d1, −d1."""
    out[0][...] = d0
    xp.add(d0, d1, out=out[1])
    xp.subtract(d0, d1, out=out[2])
    xp.negative(d1, out=out[3])


def grad_weight(xp, xpad, gy, chunks):
    """dJ/dw (O, C, 3, 3) of the F(2×2, 3×3) convolution, in the Winograd domain (module docstring).

    xpad: the zero-padded NHWC input (N, 2th + 2, 2tw + 2, C) the forward read; gy: dJ/dy as
    NHWC (N, Ho, Wo, O), th = ⌈Ho/2⌉, tw = ⌈Wo/2⌉.  Per batch chunk (``chunks`` as in
    :func:`conv3x3_nhwc`): V = Bᵀ d B, dJ/dM = A dJ/dY Aᵀ, and the 16 GEMMs V[ab]ᵀ · dJ/dM[ab];
    the chunks' (16, C, O) parts are summed in the chunks' order (reproducible for a fixed
    thread setting), then dJ/dk = (G ⊗ G)ᵀ · vec(dJ/dU).
    """
    N, Hp, Wp, C = xpad.shape
    Ho, Wo, O = gy.shape[1:]
    th, tw = (Ho + 1) // 2, (Wo + 1) // 2
    if 2 * th != Ho or 2 * tw != Wo:  # odd sizes: the cropped outputs have zero gradient
        full = xp.empty((N, 2 * th, 2 * tw, O), dtype=gy.dtype)
        full[:, Ho:] = 0
        full[:, :, Wo:] = 0
        full[:, :Ho, :Wo] = gy
        gy = full
    per_sample = (4 * th * Wp * C + 16 * th * tw * (C + O) + 8 * th * tw * O) * xpad.itemsize
    pieces = parallel.spread(xp, chunks(xp, N, per_sample, th * tw), per_sample)
    step = max(n1 - n0 for n0, n1 in pieces)
    scratch = [(xp.empty((4, step, th, Wp, C), dtype=xpad.dtype), xp.empty((16, step, th, tw, C), dtype=xpad.dtype),
                xp.empty((4, 4, step, th, tw, O), dtype=xpad.dtype), xp.empty((4, 2, step, th, tw, O), dtype=xpad.dtype))
               for _ in range(parallel.workers(xp, len(pieces)))]

    def tiles(bounds, slot):  # this chunk's dJ/dU: (16, C, O)
        n0, n1 = bounds
        k = n1 - n0
        t, v, dm, e = scratch[slot]
        t, v, dm, e = t[:, :k], v[:, :k], dm[:, :, :k], e[:, :, :k]  # (the last chunk may be shorter)
        input_transform(xp, xpad[n0:n1], th, tw, t, v)
        output_gradient_transform(xp, gy[n0:n1], th, tw, e, dm)
        vt = v.reshape(16, k * th * tw, C).transpose(0, 2, 1)
        return xp.matmul(vt, dm.reshape(16, k * th * tw, O))  # 16 GEMMs: (C, tiles) · (tiles, O)

    parts = parallel.run_chunks(xp, tiles, pieces)
    du = parts[0]
    for part in parts[1:]:  # summed in the chunks' order, whichever thread computed them
        du += part
    dk = xp.matmul(_kron_g(xp, du.dtype).T, du.reshape(16, C * O))  # (9, C·O): dJ/dk[i, j] for every (c, o)
    return xp.ascontiguousarray(dk.reshape(3, 3, C, O).transpose(3, 2, 0, 1))  # (O, C, 3, 3), the weight's memory order
