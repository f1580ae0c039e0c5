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

The transforms are sums and differences of strided views (no loops over pixels); the same
NHWC layout as the im2col path.  Numerically it is a reassociation of the same sums, exact
up to float rounding (the tests hold it to the plain-loop reference like the im2col path).
"""
from __future__ import annotations

from . import parallel


def worth_it(C: int, O: int, Ho: int, Wo: int) -> bool:
    """Whether winograd="auto" picks this path: where benchmarks/conv.py measured it faster than
    im2col + GEMM on the CPU — 256 channels and more (256@8×8: ~0.75×, 512@4×4: ~0.67× the im2col
    time; 64@32×32 and 128@16×16 lose, their transforms cost more than the 2.25× fewer
    multiplications save).  Per output pixel the GEMM saving grows with C·O and the transform
    cost with C + O, so the channel count decides, not the image size."""
    return C >= 256 and O >= 256


def kernel_transform(xp, w, transposed: bool = False):
    """U = G k Gᵀ for every kernel, as the right-hand operands (16, Cin, Cout) of the 16 GEMMs.

    w (O, C, 3, 3).  transposed=False: k = w[o, c] (Cin = C, Cout = O).  transposed=True: the
    kernel of the transposed convolution, k[c, o] = w[o, c] rotated by 180° (Cin = O, Cout = C).
    As one GEMM: vec(G k Gᵀ) = (G ⊗ G) · vec(k), with (G ⊗ G) (16, 9) applied to all O·C kernels
    at once; rotating k by 180° reverses vec(k), i.e. the columns of G ⊗ G.
    """
    O, C = w.shape[:2]
    e = xp.eye(3, dtype=w.dtype)
    G = xp.stack([e[0], (e[0] + e[1] + e[2]) * 0.5, (e[0] - e[1] + e[2]) * 0.5, e[2]])  # (4, 3), built on the device
    GG = xp.kron(G, G)  # (16, 9)
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
