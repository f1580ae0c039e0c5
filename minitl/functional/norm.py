"""Batch normalisation (Ioffe & Szegedy, 2015): normalise each channel, then scale and shift.

    x̂ = (x − μ) / √(σ² + ε),     y = γ · x̂ + β                  (per channel c)

* **training**: μ, σ² are the batch statistics of channel c over every axis but the channel
  axis (n = N·H·W values): μ = (1/n) Σ x,  σ² = (1/n) Σ (x − μ)²  (biased).  The running
  estimates are updated in place with the *unbiased* variance, as PyTorch does:
      running_mean ← (1 − m) · running_mean + m · μ
      running_var  ← (1 − m) · running_var  + m · σ² · n / (n − 1)
* **evaluation**: μ, σ² are the running estimates — constants — and y is an affine map of x.

Backward (g = dJ/dy, sums over the n values of a channel):
    dJ/dβ = Σ g,   dJ/dγ = Σ g · x̂
    training:  dJ/dx = γ/√(σ² + ε) · (g − (1/n) Σ g − x̂ · (1/n) Σ g · x̂)   (μ, σ² depend on x)
    eval:      dJ/dx = γ/√(σ² + ε) · g
Eval mode back-propagates to x, γ and β like any other op: fine-tuning a network whose
BatchNorm layers stay in inference mode depends on it.

Shapes: x (N, C), (N, C, L) or (N, C, H, W); γ, β, running statistics (C,).  An NCHW-shaped
input in NHWC memory (what conv2d returns) is reduced as a contiguous (N·H·W, C) matrix.
"""
from __future__ import annotations

from .. import backend
from ..tensor import Function, Tensor
from . import parallel
from .layout import cache_blocks, channels_last


def each_block(xp, fn, blocks) -> list:
    """[fn(b) for b in blocks] on minitl's threads (parallel.run_chunks; NumPy's ufuncs and einsum
    release the GIL), the results in block order — so per-block sums merged in that order give the
    serial results bit for bit, whatever thread ran which block."""
    return parallel.run_chunks(xp, lambda b, slot: fn(b), blocks)


class _ChannelLayout:
    """How to see an (N, C, ...) array so per-channel work runs in long contiguous inner loops.

    * NHWC memory (conv2d's output) -> rows (N·H, W·C): channel of column j is j mod C, so a
      per-channel vector is tiled W times (an inner loop of W·C elements, not C);
    * (N, C) -> itself;  otherwise -> (N, C, S) with per-channel vectors shaped (C, 1).
    """

    def __init__(self, x):
        self.shape = x.shape
        self.C = x.shape[1]
        self.nhwc = x.ndim == 4 and channels_last(x)
        if self.nhwc:
            N, C, H, W = x.shape
            self.rows, self.reps = (N * H, W * C), W
        elif x.ndim == 2:
            self.rows, self.reps = x.shape, 1
        else:
            self.rows = None
        self.n = (x.size // self.C) if self.C else 0

    def view(self, a):
        """``a`` (same NCHW shape as x, any memory layout) in this layout (a copy only if its memory differs)."""
        if self.nhwc:
            return a.transpose(0, 2, 3, 1).reshape(self.rows)
        if self.rows is not None:
            return a
        return a.reshape(a.shape[0], a.shape[1], -1)

    def unview(self, v):
        if self.nhwc:
            N, C, H, W = self.shape
            return v.reshape(N, H, W, C).transpose(0, 3, 1, 2)
        return v.reshape(self.shape)

    def expand(self, xp, vector):
        """A (C,) vector shaped to broadcast against the view."""
        if self.rows is not None:
            return xp.tile(vector, self.reps) if self.reps > 1 else vector
        return vector[:, None]

    def _fold(self, v):
        return v.reshape(self.reps, self.C).sum(axis=0) if self.reps > 1 else v

    def sum(self, v):
        """Σ over everything but the channel: a (C,) vector."""
        if self.rows is not None:
            return self._fold(v.sum(axis=0))
        return v.sum(axis=(0, 2))

    def blocks(self, xp, v):
        """Slices of the view's first axis, about one cache block each (one block on a GPU)."""
        per_item = (v.size // v.shape[0] if v.shape[0] else 1) * v.itemsize
        return [slice(i, j) for i, j in cache_blocks(xp, v.shape[0], per_item)]

    def sum_product(self, xp, a, b):
        """Σ a·b per channel, without a temporary of a's size."""
        if self.rows is not None:
            return self._fold(xp.einsum("ij,ij->j", a, b))
        return xp.einsum("ijk,ijk->j", a, b)


class BatchNorm(Function):
    """y = γ · (x − μ)/√(σ² + ε) + β — batch statistics when training, running statistics in eval mode.

    On the CPU every pass runs over cache-sized blocks of rows: the statistics in one read of x
    (per-block mean and Σ(x − μ_b)², merged with Chan's formula — as stable as two passes), the
    output in a second (x − μ, ·γ/σ, +β on a block in cache); backward likewise in two reads.
    The blocks of each pass are spread over minitl's threads (:func:`each_block`), results merged in
    block order: the same bits on any thread count.
    """

    def forward(self, x, weight=None, bias=None, *, running_mean, running_var, training, momentum, eps):
        xp = backend.get_array_module(x)
        layout = _ChannelLayout(x)
        self.layout, self.training = layout, training
        xv = layout.view(x)
        blocks = layout.blocks(xp, xv)
        scale, shift = self._scale_shift(xp, xv, blocks, weight, bias, running_mean, running_var, training,
                                         momentum, eps)
        y = self._output(xp, xv, blocks, layout.expand(xp, scale), layout.expand(xp, shift))
        # backward needs x (training: x − μ; eval: x̂ for dJ/dγ only) — the input itself, no copy
        self.xv = xv if (training and any(self.needs_input_grad)) or (
            len(self.needs_input_grad) > 1 and self.needs_input_grad[1]) else None
        return layout.unview(y)

    def _scale_shift(self, xp, xv, blocks, weight, bias, running_mean, running_var, training, momentum, eps):
        """(scale, shift) with y = scale · x + shift:  scale = γ/σ,  shift = β − γμ/σ  (σ = √(σ² + ε)).

        Training: μ, σ² from the batch, and the running statistics updated in place.  Keeps μ, 1/σ
        and the scale on ``self`` for backward."""
        if training:
            n = self.layout.n
            mean, var = self._batch_statistics(xp, self.layout, xv, blocks)
            invstd = 1 / xp.sqrt(var + eps)
            if running_mean is not None:
                running_mean *= 1 - momentum
                running_mean += (momentum * mean).astype(running_mean.dtype)
            if running_var is not None:
                running_var *= 1 - momentum
                running_var += (momentum * n / (n - 1) * var).astype(running_var.dtype)
        else:
            mean = running_mean.astype(xv.dtype)
            invstd = 1 / xp.sqrt(running_var.astype(xv.dtype) + eps)
        scale = invstd if weight is None else weight * invstd
        shift = -mean * scale if bias is None else bias - mean * scale  # y = γ/σ · x + (β − γμ/σ)
        self.mean, self.invstd, self.scale = mean, invstd, scale
        return scale, shift

    def _output(self, xp, xv, blocks, scale_e, shift_e):
        """The output pass: y = x · scale + shift, block by block (in the layout's view)."""
        y = xp.empty(xv.shape, dtype=xv.dtype)

        def block(b):
            yb = y[b]
            xp.multiply(xv[b], scale_e, out=yb)
            yb += shift_e

        each_block(xp, block, blocks)
        return y

    @staticmethod
    def _batch_statistics(xp, layout, xv, blocks):
        """Per-channel mean and biased variance in one read: per block b, μ_b and M2_b = Σ(x − μ_b)²
        (the centred block stays in cache), merged by Chan et al.'s update
        M2 = M2_a + M2_b + (μ_b − μ_a)² · n_a n_b / (n_a + n_b)."""
        per_row = layout.n // xv.shape[0]

        def block(b):
            xb = xv[b]
            nb = xb.shape[0] * per_row
            mean_b = layout.sum(xb) / nb
            centred = xb - layout.expand(xp, mean_b)
            return nb, mean_b, layout.sum_product(xp, centred, centred)

        count, mean, m2 = 0, None, None
        for nb, mean_b, m2_b in each_block(xp, block, blocks):  # merged in block order
            if mean is None:
                count, mean, m2 = nb, mean_b, m2_b
            else:
                delta = mean_b - mean
                total = count + nb
                mean = mean + delta * (nb / total)
                m2 = m2 + m2_b + delta * delta * (count * nb / total)
                count = total
        return mean, m2 / count

    def _upstream(self, xp, gv):
        """The array the backward formulas read as g after ``_upstream_block`` filled it: dJ/dy itself
        here (BatchNormReLU: a buffer for dJ/dy ⊙ [z > 0])."""
        return gv

    def _upstream_block(self, xp, gv, gbuf, b):
        """Block b of g, read by the first backward pass that touches it: dJ/dy itself here.
        BatchNormReLU masks it into ``gbuf[b]`` while the block is in cache."""
        return gv[b]

    def _grad_x_buffer(self, xp, gbuf):
        """Where dJ/dx is written (a fresh array; BatchNormReLU may reuse its masked-gradient buffer)."""
        return xp.empty(gbuf.shape, dtype=gbuf.dtype)

    def backward(self, g):
        xp = backend.get_array_module(g)
        layout = self.layout
        n = layout.n
        needs = self.needs_input_grad + (False,) * (3 - len(self.needs_input_grad))
        gv = layout.view(g)  # g seen like x, whatever g's own memory layout
        blocks = layout.blocks(xp, gv)
        gbuf = self._upstream(xp, gv)
        mean_e = layout.expand(xp, self.mean)
        grad_x = grad_w = grad_b = None
        sum_g = sum_gxhat = None
        self.first_pass = self.training or needs[1] or needs[2]
        if self.first_pass:
            # Σ g and Σ g·x̂ = Σ g·(x − μ) / σ, block by block
            with_x = self.training or needs[1]

            def sums(b):
                gb = self._upstream_block(xp, gv, gbuf, b)
                return layout.sum(gb), layout.sum_product(xp, gb, self.xv[b] - mean_e) if with_x else 0

            sum_g, sum_gxc = 0, 0
            for sum_g_b, sum_gxc_b in each_block(xp, sums, blocks):  # added in block order
                sum_g = sum_g + sum_g_b
                if with_x:
                    sum_gxc = sum_gxc + sum_gxc_b
            sum_gxhat = sum_gxc * self.invstd
        if needs[0]:
            grad = self._grad_x_buffer(xp, gbuf)
            a_e = layout.expand(xp, self.scale)
            if self.training:
                # dJ/dx = γ/σ · (g − (1/n) Σ g − x̂ · (1/n) Σ g·x̂)  with x̂ = (x − μ)/σ
                #       = A·g + B·(x − μ) + D = A·g + B·x + (D − B·μ),
                #         A = γ/σ,  B = −A/σ · Σ g·x̂ / n,  D = −A · Σ g / n   (four passes over a block)
                coef_b = -self.scale * self.invstd * sum_gxhat / n
                b_e = layout.expand(xp, coef_b)
                d_e = layout.expand(xp, -self.scale * sum_g / n - coef_b * self.mean)

                def block(b):
                    out = grad[b]
                    xp.multiply(gbuf[b], a_e, out=out)
                    bx = xp.multiply(self.xv[b], b_e)
                    out += bx
                    out += d_e
            else:
                # dJ/dx = γ/σ · g   (μ, σ are constants in eval mode)
                def block(b):
                    gb = gbuf[b] if self.first_pass else self._upstream_block(xp, gv, gbuf, b)
                    xp.multiply(gb, a_e, out=grad[b])
            each_block(xp, block, blocks)
            grad_x = layout.unview(grad)
        if needs[1]:
            grad_w = sum_gxhat  # dJ/dγ = Σ g·x̂
        if needs[2]:
            grad_b = sum_g  # dJ/dβ = Σ g
        return grad_x, grad_w, grad_b


def _array(value, name, C, x, op="batch_norm"):
    if value is None:
        return None
    array = value.data if isinstance(value, Tensor) else value
    if tuple(array.shape) != (C,):
        raise ValueError(f"{op}: {name} must have shape ({C},) for input {tuple(x.shape)}, got {tuple(array.shape)}")
    if backend.backend_of(array) is not backend.backend_of(x.data):
        raise ValueError(f"{op}: {name} lives on another device than the input; move it with .to(device)")
    return array


def batch_norm(x: Tensor, running_mean, running_var, weight: Tensor | None = None, bias: Tensor | None = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation y = γ · (x − μ)/√(σ² + ε) + β, per channel (axis 1).

    ``training=True``: μ, σ² from the batch, and ``running_mean`` / ``running_var`` (Tensors or
    arrays of shape (C,), or None) updated in place: r ← (1 − m)·r + m·stat, with the unbiased
    batch variance.  ``training=False``: μ, σ² are the running statistics; gradients still flow
    to x, ``weight`` (γ) and ``bias`` (β).  x is (N, C), (N, C, L) or (N, C, H, W).
    """
    x, rm, rv = _checked_inputs("batch_norm", x, running_mean, running_var, weight, bias, training)
    return BatchNorm.apply(x, weight, bias, running_mean=rm, running_var=rv, training=bool(training),
                           momentum=float(momentum), eps=float(eps))


def _checked_inputs(op, x, running_mean, running_var, weight, bias, training):
    """batch_norm's input checks (one-line ValueErrors naming ``op``): (x as a Tensor, running mean, running var)."""
    shape = tuple(x.shape)
    if len(shape) < 2:
        raise ValueError(f"{op}: expected an input of shape (N, C, ...), got shape {shape}")
    C = shape[1]
    if not isinstance(x, Tensor):
        x = Tensor(x)
    rm = _array(running_mean, "running_mean", C, x, op)
    rv = _array(running_var, "running_var", C, x, op)
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None and tuple(value.shape) != (C,):
            raise ValueError(f"{op}: {name} must have shape ({C},) for input {shape}, got {tuple(value.shape)}")
    if not training and (rm is None or rv is None):
        raise ValueError(f"{op}: running_mean and running_var are needed in evaluation mode (training=False)")
    if training:
        per_channel = x.size // C if C else 0
        if per_channel <= 1:
            raise ValueError(f"{op}: expected more than 1 value per channel when training, got input shape {shape}")
    return x, rm, rv
