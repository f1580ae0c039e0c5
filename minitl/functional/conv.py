"""2-D convolution: every output map is a sum of input maps correlated with learned kernels.

    h_j^l = f( Σ_{i∈M_j} h_i^{l-1} * k_ij^l + b_j^l )

``conv2d`` computes the bracket (f is applied by the caller): output channel j sums, over the
input channels i of its group M_j, the cross-correlation of input map h_i with kernel k_ij,
plus a bias b_j.  Written out element by element (what :func:`conv2d_reference` loops over):

    y[n, j, p, q] = b[j] + Σ_{c<Cg} Σ_{u<KH} Σ_{v<KW}
                    x_pad[n, g·Cg + c, p·sh + u·dh, q·sw + v·dw] · w[j, c, u, v],   g = j // (O/G)

Shapes (PyTorch's NCHW / OIHW): x (N, C, H, W), w (O, C/G, KH, KW), b (O,) -> y (N, O, Ho, Wo),
Ho = ⌊(H + 2ph − dh(KH−1) − 1) / sh⌋ + 1 (likewise Wo).

How it is computed fast (the plain-loop reference sits beside it and the tests hold one
against the other):

* **Layout.**  The public API is NCHW, the inside is NHWC: the column copy then moves whole
  channel vectors (contiguous runs) instead of striding across channels.  The result is an
  NCHW-*shaped* view of NHWC memory (``y.transpose(0, 2, 3, 1)`` is contiguous), so the next
  convolution, BatchNorm, ReLU and pooling read it without a layout copy.
* **im2col + one GEMM.**  A sliding-window *view* (``as_strided``, no copy, no loop over
  pixels) presents the padded input as (N, Ho, Wo, KH, KW, C); one copy turns it into the
  column matrix X_col (N·Ho·Wo, KH·KW·C), and one GEMM with W_col (KH·KW·C, O) gives y.
  Groups are a batched GEMM over the G groups.  1×1 stride-1 convolutions need no copy at all.
* **Bounded workspace.**  When X_col would exceed the workspace budget (default 512 MiB,
  :func:`set_workspace_limit`), the batch is processed in chunks.  On the CPU the chunks are
  smaller still, about 8 MiB, so each chunk's columns are still in the L3 cache when the GEMM
  reads them.  A ResNet-50 forward at 224×224, batch 32, peaks at ~0.6 GiB of RSS
  (benchmarks/conv.py --resnet50-memory).
* **Backward.**  dJ/db = Σ dJ/dy;  dJ/dW_col = X_colᵀ · dJ/dy;  dJ/dx is the transposed
  convolution: for stride 1 it *is* a convolution of dJ/dy with the flipped kernel (same code,
  so the same speed); otherwise dJ/dX_col = dJ/dy · W_colᵀ is folded back by col2im — one
  strided slice addition per kernel tap, deterministic (no scatter / ``np.add.at``).
* **Threads.**  On the CPU the batch chunks are shared by minitl's own threads
  (:mod:`minitl.functional.parallel`), each running its chunk's column copy and GEMM with BLAS on
  one thread: no BLAS thread barrier per GEMM call, which is what collapses under load.  Backward
  hands dJ/dW's and dJ/dx's chunks to the threads in one call (:func:`parallel.run_together`).
  ``parallel.set_threads(1)`` gives the serial path; results are bitwise reproducible for a fixed setting.
* **Winograd F(2×2, 3×3)** (:mod:`minitl.functional.winograd`) for 3×3 stride-1 convolutions
  where it pays (2.25× fewer multiplications than the GEMM): run serially (one thread, or a GPU),
  the forward, dJ/dx and dJ/dW from 256 channels; on ≥ 2 threads im2col + GEMM measured faster at
  every ResNet layer (:func:`~minitl.functional.winograd.worth_it`); :func:`set_winograd` chooses
  (True: all three always, False: never).
"""
from __future__ import annotations

import contextlib

from .. import backend
from ..shapes import pair
from .depthwise import DepthwiseConv2d
from ..tensor import Function, Tensor
from . import parallel
from .im2col import col2im, im2col
from . import winograd as _winograd
from .layout import batch_chunks, chunk_padder, out_size, pad_nhwc, per_thread, reused_buffer, set_workspace_limit, to_nhwc, workspace, workspace_limit  # noqa: F401

# ============================================================================ configuration
_WINOGRAD = "auto"


def set_winograd(mode) -> object:
    """Winograd F(2×2,3×3) for 3×3 stride-1 dilation-1 convolutions: "auto" (where it was measured
    to win), True (always where it applies) or False (never: im2col + GEMM).  Returns the old mode."""
    global _WINOGRAD
    if mode not in ("auto", True, False):
        raise ValueError(f"winograd mode must be 'auto', True or False, got {mode!r}")
    old, _WINOGRAD = _WINOGRAD, mode
    return old


@contextlib.contextmanager
def winograd(mode):
    old = set_winograd(mode)
    try:
        yield
    finally:
        set_winograd(old)


class _Kernel:
    """An OIHW kernel w (O, Cg, KH, KW), as the right-hand GEMM operands of the fast paths.

    transposed=False — the convolution itself:      k[o, c, u, v] = w[o, c, u, v]          (Cin = C, Cout = O)
    transposed=True  — the convolution giving dJ/dx at stride 1 (the transposed convolution):
                                                     k[c, o, u, v] = w[o, c, KH−1−u, KW−1−v]  (Cin = O, Cout = C)
    Each operand is one copy of w, read block by block (every output channel's kernel is a
    contiguous block of w), never a strided pass over the whole array per output row.
    """

    def __init__(self, w, groups: int, transposed: bool = False):
        self.w, self.groups, self.transposed = w, groups, transposed
        O, Cg, self.KH, self.KW = w.shape
        self.cin, self.cout = (O, Cg * groups) if transposed else (Cg * groups, O)

    def rows(self):
        """W_colᵀ per group: (G, Og, KH·KW·Cg), columns ordered (u, v, c) like X_col's (the forward kernel)."""
        w, G = self.w, self.groups
        O, Cg, KH, KW = w.shape
        return w.reshape(G, O // G, Cg, KH, KW).transpose(0, 1, 3, 4, 2).reshape(G, O // G, KH * KW * Cg)

    def columns(self):
        """W_col per group: (G, KH·KW·Cin_g, Cout_g), rows ordered (u, v, c_in): y = X_col · W_col."""
        if not self.transposed:
            return self.rows().transpose(0, 2, 1)
        w, G = self.w, self.groups
        O, Cg, KH, KW = w.shape  # W'_col[g, (u, v, o), c] = w[g·Og + o, c, KH−1−u, KW−1−v]
        flipped = w.reshape(G, O // G, Cg, KH, KW)[:, :, :, ::-1, ::-1]
        return flipped.transpose(0, 3, 4, 1, 2).reshape(G, KH * KW * (O // G), Cg)

    def winograd(self, xp):
        """U = G k Gᵀ as (16, Cin, Cout) for Winograd's 16 GEMMs (3×3, groups = 1)."""
        return _winograd.kernel_transform(xp, self.w, self.transposed)


# ============================================================================ the core (NHWC arrays in, NHWC out)
def _use_winograd(xp, KH, KW, stride, dilation, groups, C, O, Ho, Wo) -> bool:
    if (KH, KW) != (3, 3) or stride != (1, 1) or dilation != (1, 1) or groups != 1:
        return False
    if _WINOGRAD == "auto":
        return _winograd.worth_it(C, O, Ho, Wo, threads=parallel.workers(xp, 2))
    return bool(_WINOGRAD)


def _scratch(xp, chunks, per_sample: int, dtype):
    """``scratch()``: a flat workspace the size of the largest chunk, the running thread's own (kept between
    calls: :func:`~minitl.functional.layout.reused_buffer`, and for this call: ``layout.per_thread``; call
    it inside the chunk)."""
    size = per_sample * max(c[1] - c[0] for c in chunks)
    return per_thread(lambda: reused_buffer(xp, "columns", size, dtype))


def _conv_nhwc(xp, x, kernel: _Kernel, padding, stride, dilation, keep_columns=False):
    """x (N, Cin, H, W) any layout -> y as NHWC (N, Ho, Wo, Cout) contiguous, and the saved columns.

    Returns (y, cols): with ``keep_columns``, for a small convolution (columns within one cache
    block), the column matrices as [((n0, n1), X_col of samples n0..n1), ...]; else None
    (backward then rebuilds them chunk by chunk).
    """
    return parallel.run_together(xp, _conv_work(xp, x, kernel, padding, stride, dilation, keep_columns))[0]


def _conv_work(xp, x, kernel: _Kernel, padding, stride, dilation, keep_columns=False, pad_kind="pad"):
    """:func:`_conv_nhwc` as a :class:`~minitl.functional.parallel.Work` not yet run (Winograd: already done)."""
    N, C, H, W = x.shape
    KH, KW, O, groups = kernel.KH, kernel.KW, kernel.cout, kernel.groups
    ph, pw = padding
    Ho = out_size(H, KH, stride[0], ph, dilation[0])
    Wo = out_size(W, KW, stride[1], pw, dilation[1])
    if _use_winograd(xp, KH, KW, stride, dilation, groups, C, O, Ho, Wo):
        # tiles of 2×2 outputs read 4×4 inputs: pad odd output sizes up by one row / column
        xpad = pad_nhwc(xp, x, ph, pw, Ho % 2, Wo % 2)
        y = _winograd.conv3x3_nhwc(xp, xpad, kernel.winograd(xp), Ho, Wo, batch_chunks)
        return parallel.Work([], None, lambda _: (y, None))
    wcol = kernel.columns()  # (G, KH·KW·Cg, Og)
    Og = O // groups
    y = xp.empty((N, Ho, Wo, O), dtype=x.dtype)
    per_sample = Ho * Wo * KH * KW * C
    chunks = batch_chunks(xp, N, per_sample * x.itemsize, Ho * Wo)
    keep = keep_columns and len(chunks) == 1  # small enough to keep the columns for backward
    chunks = parallel.spread(xp, chunks, per_sample * x.itemsize)
    buffers = None if keep or len(chunks) == 1 else _scratch(xp, chunks, per_sample, x.dtype)
    padded = chunk_padder(xp, x, ph, pw, chunks, pad_kind)

    def chunk(bounds, slot):  # pad samples n0..n1, copy out their columns, then their outputs: one GEMM
        n0, n1 = bounds
        col = im2col(xp, padded(n0, n1), KH, KW, Ho, Wo, stride, dilation, groups, buffers and buffers())
        if groups == 1:
            xp.matmul(col[0], wcol[0], out=y[n0:n1].reshape(-1, O))
        else:
            y[n0:n1].reshape(-1, groups, Og)[...] = xp.matmul(col, wcol).transpose(1, 0, 2)
        return col

    return parallel.Work(chunks, chunk, lambda cols: (y, list(zip(chunks, cols)) if keep else None))


class Conv2d(Function):
    """y = W ⋆ x + b  (cross-correlation, im2col + GEMM).  See the module docstring for the formulas.

    Chain rule, with X_col the column matrix and W_col the reshaped kernel (y = X_col · W_col + b):
        dJ/db     = Σ_{n,p,q} dJ/dy[n, :, p, q]
        dJ/dW_col = X_colᵀ · dJ/dy
        dJ/dx     = col2im(dJ/dy · W_colᵀ)   (= conv(dJ/dy, flipped W) for stride 1)
    """

    def forward(self, x, weight, bias=None, *, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        xp = backend.get_array_module(x)
        self.opts = (stride, padding, dilation, groups)
        self.x_shape = x.shape
        need_w = self.needs_input_grad[1]
        y, col = _conv_nhwc(xp, x, _Kernel(weight, groups), padding, stride, dilation, keep_columns=need_w)
        if bias is not None:
            y += bias
        # keep for backward only what the wanted gradients need
        O, Cg, KH, KW = weight.shape  # the weight gradient by Winograd too? (decided now: the mode may change)
        self.winograd_weight = _use_winograd(xp, KH, KW, stride, dilation, groups, Cg * groups, O, *y.shape[1:3]) and (
            _WINOGRAD is True or _winograd.weight_grad_worth_it(Cg * groups, O))
        self.col = col
        self.x = x if need_w and col is None else None
        self.weight = weight if self.needs_input_grad[0] else None
        self.w_shape = weight.shape
        return y.transpose(0, 3, 1, 2)  # NCHW shape, NHWC memory

    def backward(self, g):
        xp = backend.get_array_module(g)
        O = self.w_shape[0]
        gy = to_nhwc(xp, g)  # (N, Ho, Wo, O)
        Ho, Wo = gy.shape[1:3]
        grad_b = None
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            grad_b = gy.reshape(-1, O).sum(axis=0)
        works = {}  # input index -> the Work giving its gradient
        if self.needs_input_grad[1]:
            works[1] = self._grad_weight_work(xp, gy, Ho, Wo)
        if self.needs_input_grad[0]:
            works[0] = self._grad_input_work(xp, gy, Ho, Wo)
        # dJ/dW and dJ/dx share one fork-join (parallel.run_together): no thread waits at the end of the first
        grads = dict(zip(works, parallel.run_together(xp, *works.values())))
        return grads.get(0), grads.get(1), grad_b

    def _grad_weight_work(self, xp, gy, Ho, Wo):
        """dJ/dW_colᵀ[g] = dJ/dy[g]ᵀ · X_col[g], summed over batch chunks; back to OIHW (a Work)."""
        stride, padding, dilation, groups = self.opts
        O, Cg, KH, KW = self.w_shape
        Og = O // groups
        N = gy.shape[0]
        if self.winograd_weight:
            # F(2×2, 3×3) for the weight gradient too: 2.25× fewer multiplications than X_colᵀ · dJ/dy
            xpad = pad_nhwc(xp, self.x, *padding, Ho % 2, Wo % 2)
            grad_w = _winograd.grad_weight(xp, xpad, gy, batch_chunks)
            return parallel.Work([], None, lambda _: grad_w)
        if self.col is not None:
            chunks, padded, buffers = self.col, None, None
        else:
            per_sample = Ho * Wo * KH * KW * self.x.shape[1]
            nbytes = per_sample * self.x.itemsize
            chunks = parallel.spread(xp, batch_chunks(xp, N, nbytes, Ho * Wo), nbytes)
            buffers = _scratch(xp, chunks, per_sample, self.x.dtype)
            padded = chunk_padder(xp, self.x, *padding, chunks, "pad-input")  # not dJ/dx's padding buffers
            chunks = [(bounds, None) for bounds in chunks]

        def chunk(item, slot):  # this chunk's share of dJ/dW_colᵀ: (G, Og, KH·KW·Cg)
            (n0, n1), col = item
            if col is None:
                col = im2col(xp, padded(n0, n1), KH, KW, Ho, Wo, stride, dilation, groups, buffers())
            gyg = gy[n0:n1].reshape(-1, groups, Og).transpose(1, 0, 2)  # (G, m, Og)
            return xp.matmul(gyg.transpose(0, 2, 1), col)

        def finish(parts):
            gcol_w = parts[0]
            for part in parts[1:]:  # summed in the chunks' order, whichever thread computed them
                gcol_w += part
            if not getattr(self, "graph_retained", False):
                self.col = None
            # (G, Og, KH, KW, Cg) -> (G, Og, Cg, KH, KW) -> OIHW, in the weight's own (C-contiguous) memory
            # order: the leaf takes this array as its .grad without a copy, and the optimizer reads it flat
            return xp.ascontiguousarray(gcol_w.reshape(groups, Og, KH, KW, Cg).transpose(0, 1, 4, 2, 3)
                                        .reshape(O, Cg, KH, KW))

        return parallel.Work(chunks, chunk, finish)

    def _grad_input_work(self, xp, gy, Ho, Wo):
        """dJ/dx (a Work): a convolution of dJ/dy with the flipped kernel at stride 1, else col2im(dJ/dy · W_colᵀ)."""
        stride, padding, dilation, groups = self.opts
        N, C, H, W = self.x_shape
        O, Cg, KH, KW = self.w_shape
        ph, pw = padding
        qh, qw = dilation[0] * (KH - 1) - ph, dilation[1] * (KW - 1) - pw
        w = self.weight
        if stride == (1, 1) and qh >= 0 and qw >= 0:
            # stride 1: dJ/dx = dJ/dy ⋆ flipped kernel, padded by d(k−1) − p: a plain convolution
            work = _conv_work(xp, gy.transpose(0, 3, 1, 2), _Kernel(w, groups, transposed=True), (qh, qw), (1, 1),
                              dilation)
            return work._replace(finish=lambda cols: work.finish(cols)[0].transpose(0, 3, 1, 2))
        Og = O // groups
        wrows = _Kernel(w, groups).rows()  # W_colᵀ (G, Og, K)
        Hp, Wp = H + 2 * ph, W + 2 * pw
        gxpad = xp.empty((N, Hp, Wp, C), dtype=gy.dtype)
        gxpad[...] = 0  # (not xp.zeros: see pool._empty_in_layout)
        per_sample = Ho * Wo * KH * KW * C
        chunks = parallel.spread(xp, batch_chunks(xp, N, per_sample * gy.itemsize, Ho * Wo), per_sample * gy.itemsize)
        buffers = _scratch(xp, chunks, per_sample, gy.dtype)

        def chunk(bounds, slot):  # each chunk folds into its own samples of gx_pad
            n0, n1 = bounds
            gyg = gy[n0:n1].reshape(-1, groups, Og).transpose(1, 0, 2)  # (G, m, Og)
            gcol = buffers()[:per_sample * (n1 - n0)].reshape(groups, -1, wrows.shape[2])
            xp.matmul(gyg, wrows, out=gcol)  # dJ/dX_col = dJ/dy · W_colᵀ  (G, m, K)
            col2im(xp, gcol, gxpad[n0:n1], KH, KW, Ho, Wo, stride, dilation, groups)

        return parallel.Work(chunks, chunk, lambda _: gxpad[:, ph:ph + H, pw:pw + W].transpose(0, 3, 1, 2))


# ============================================================================ public function
def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """2-D convolution (cross-correlation, as in every framework): h_j = Σ_{i∈M_j} h_i * k_ij + b_j.

        y[n, j, p, q] = b[j] + Σ_{c, u, v} x_pad[n, g·Cg + c, p·sh + u·dh, q·sw + v·dw] · w[j, c, u, v]

    x (N, C, H, W), weight (O, C/groups, KH, KW), bias (O,) -> (N, O, Ho, Wo) with
    Ho = ⌊(H + 2·ph − dh·(KH − 1) − 1) / sh⌋ + 1.  ``stride``, ``padding``, ``dilation`` are an int
    or an (h, w) pair; ``groups`` splits the channels into independent groups (groups = C with
    C/groups = 1 is a depthwise convolution).  PyTorch's signature and semantics.
    """
    x_shape, w_shape = tuple(x.shape), tuple(weight.shape)
    if len(x_shape) != 4:
        raise ValueError(f"conv2d: expected a 4-D input (N, C, H, W), got shape {x_shape}")
    if len(w_shape) != 4:
        raise ValueError(f"conv2d: expected a 4-D weight (O, C/groups, KH, KW), got shape {w_shape}")
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
    stride = pair(stride, "conv2d: stride", 1)
    padding = pair(padding, "conv2d: padding", 0)
    dilation = pair(dilation, "conv2d: dilation", 1)
    N, C, H, W = x_shape
    O, Cg, KH, KW = w_shape
    if C % groups or O % groups:
        raise ValueError(
            f"conv2d: groups={groups} must divide both the input channels ({C}, input shape {x_shape}) "
            f"and the output channels ({O}, weight shape {w_shape})"
        )
    if Cg * groups != C:
        raise ValueError(
            f"conv2d: input has {C} channels (shape {x_shape}) but weight {w_shape} with groups={groups} "
            f"expects {Cg * groups} (weight is (out_channels, in_channels/groups, KH, KW))"
        )
    if min(w_shape) < 1 or N < 1 or C < 1:
        raise ValueError(f"conv2d: empty input {x_shape} or weight {w_shape}")
    if bias is not None and tuple(bias.shape) != (O,):
        raise ValueError(f"conv2d: bias must have shape ({O},) for weight {w_shape}, got {tuple(bias.shape)}")
    eff = (dilation[0] * (KH - 1) + 1, dilation[1] * (KW - 1) + 1)
    padded = (H + 2 * padding[0], W + 2 * padding[1])
    if eff[0] > padded[0] or eff[1] > padded[1]:
        raise ValueError(
            f"conv2d: kernel {KH}×{KW} (dilation {dilation}, effective {eff[0]}×{eff[1]}) is larger than the "
            f"padded input {padded[0]}×{padded[1]} (input shape {x_shape}, padding {padding})"
        )
    inputs = (x, weight) if bias is None else (x, weight, bias)
    if groups == C == O:
        # depthwise: shifted multiply-adds over NHWC beat per-group GEMMs on every map size measured
        # (benchmarks/efficientnet.py, A/B at batch 16: 2.5-6x forward+backward from 112x112 down to 7x7,
        # 2.5-4x at 3x3 and 2x2, batch 64)
        return DepthwiseConv2d.apply(*inputs, stride=stride, pads=(padding[0], padding[0], padding[1], padding[1]),
                                     dilation=dilation)
    return Conv2d.apply(*inputs, stride=stride, padding=padding, dilation=dilation, groups=groups)


# ============================================================================ the plain-loop reference
def conv2d_reference(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """The formula as plain loops, on arrays (for tests and for reading):

        y[n, j, p, q] = b[j] + Σ_{c<Cg} Σ_{u<KH} Σ_{v<KW} x_pad[n, g·Cg + c, p·sh + u·dh, q·sw + v·dw] · w[j, c, u, v]
    """
    xp = backend.get_array_module(x)
    sh, sw = pair(stride, "stride", 1)
    ph, pw = pair(padding, "padding", 0)
    dh, dw = pair(dilation, "dilation", 1)
    N, C, H, W = x.shape
    O, Cg, KH, KW = weight.shape
    Og = O // groups
    x_pad = xp.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=x.dtype)
    x_pad[:, :, ph:ph + H, pw:pw + W] = x
    Ho, Wo = out_size(H, KH, sh, ph, dh), out_size(W, KW, sw, pw, dw)
    y = xp.zeros((N, O, Ho, Wo), dtype=x.dtype)
    for n in range(N):
        for j in range(O):
            g = j // Og
            for p in range(Ho):
                for q in range(Wo):
                    total = 0.0 if bias is None else bias[j]
                    for c in range(Cg):
                        for u in range(KH):
                            for v in range(KW):
                                total = total + x_pad[n, g * Cg + c, p * sh + u * dh, q * sw + v * dw] * weight[j, c, u, v]
                    y[n, j, p, q] = total
    return y
