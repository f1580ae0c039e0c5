"""BatchNorm, an optional residual add and ReLU as one op — a ResNet block's tail in BatchNorm's passes.

    z = max(0, γ · (x − μ)/√(σ² + ε) + β + r)          (per channel c; r optional, shaped like x)

μ, σ² and the running statistics exactly as :func:`minitl.functional.batch_norm` (batch statistics
when training, running ones in eval mode).  Written out as three ops, ``relu(batch_norm(x) + r)``
reads and writes the whole activation three times forward and three times backward; here the
add and the ReLU happen on each cache-sized block of BatchNorm's output pass while it is in cache.

Backward, by the chain rule through z = ReLU(s), s = y + r, y = BN(x):

    g_m = dJ/ds = g ⊙ [z > 0]          ([z > 0] = [s > 0]: z is saved, not s)
    dJ/dr = g_m,   and dJ/dx, dJ/dγ, dJ/dβ are BatchNorm's formulas with g_m for dJ/dy:
    dJ/dβ = Σ g_m,  dJ/dγ = Σ g_m · x̂,
    training:  dJ/dx = γ/√(σ² + ε) · (g_m − (1/n) Σ g_m − x̂ · (1/n) Σ g_m · x̂);   eval: γ/√(σ² + ε) · g_m

The mask is applied in BatchNorm's first backward pass (Σ g, Σ g·(x − μ)), block by block, into a
buffer that the second pass reads (and overwrites with dJ/dx when the residual wants no gradient).
The results equal ``relu(batch_norm(x, ...) + r)`` bit for bit: the same operations in the same order.
"""
from __future__ import annotations

from .. import backend
from ..tensor import Tensor
from .layout import zeros_like_block
from .norm import BatchNorm, _checked_inputs, each_block


class BatchNormReLU(BatchNorm):
    """z = max(0, γ · (x − μ)/√(σ² + ε) + β + r) — BatchNorm, residual add and ReLU in BatchNorm's block passes."""

    def forward(self, x, weight=None, bias=None, residual=None, **options):
        self.residual = residual
        return super().forward(x, weight, bias, **options)

    def _output(self, xp, xv, blocks, scale_e, shift_e):
        """z = max(0, x · scale + shift + r), block by block; z is kept for the backward mask."""
        rv = None if self.residual is None else self.layout.view(self.residual)  # a copy only if r's memory differs
        self.residual = None
        z = xp.empty(xv.shape, dtype=xv.dtype)

        def block(b):
            zb = z[b]
            xp.multiply(xv[b], scale_e, out=zb)
            zb += shift_e
            if rv is not None:
                zb += rv[b]
            xp.maximum(zb, zeros_like_block(xp, zb), out=zb)

        each_block(xp, block, blocks)
        self.zv = z if any(self.needs_input_grad) else None
        return z

    def _wants_residual_grad(self) -> bool:
        return len(self.needs_input_grad) > 3 and self.needs_input_grad[3]

    def _upstream(self, xp, gv):
        self.gbuf = xp.empty(gv.shape, dtype=gv.dtype)  # g ⊙ [z > 0], filled block by block
        return self.gbuf

    def _upstream_block(self, xp, gv, gbuf, b):
        out = gbuf[b]
        xp.multiply(gv[b], self.zv[b] > 0, out=out)
        return out

    def _grad_x_buffer(self, xp, gbuf):
        # dJ/dx may overwrite g_m block by block (each block is read before it is written) unless
        # g_m is also dJ/dr
        return super()._grad_x_buffer(xp, gbuf) if self._wants_residual_grad() else gbuf

    def backward(self, g):
        grad_x, grad_w, grad_b = super().backward(g)
        grad_r = None
        if self._wants_residual_grad():
            xp = backend.get_array_module(g)
            gbuf = self.gbuf
            if not (self.first_pass or self.needs_input_grad[0]):  # no BatchNorm pass has masked g yet
                gv = self.layout.view(g)
                for b in self.layout.blocks(xp, gv):
                    self._upstream_block(xp, gv, gbuf, b)
            grad_r = self.layout.unview(gbuf)  # dJ/dr = g ⊙ [z > 0]
        self.gbuf = None
        return grad_x, grad_w, grad_b, grad_r


def batch_norm_relu(x: Tensor, running_mean, running_var, weight: Tensor | None = None, bias: Tensor | None = None,
                    training: bool = False, momentum: float = 0.1, eps: float = 1e-5,
                    residual: Tensor | None = None) -> Tensor:
    """z = max(0, γ · (x − μ)/√(σ² + ε) + β + r): ``relu(batch_norm(x, ...) + residual)`` as one op.

    Arguments and running-statistics update as :func:`minitl.functional.batch_norm`; ``residual``
    (optional) has x's shape and dtype.  Gradients flow to x, γ, β and the residual.
    """
    x, rm, rv = _checked_inputs("batch_norm_relu", x, running_mean, running_var, weight, bias, training)
    if residual is not None:
        if not isinstance(residual, Tensor):
            residual = Tensor(residual, device=x.device)
        if tuple(residual.shape) != tuple(x.shape):
            raise ValueError(f"batch_norm_relu: residual must have the input's shape {tuple(x.shape)}, "
                             f"got {tuple(residual.shape)}")
        if residual.dtype != x.dtype:
            raise ValueError(f"batch_norm_relu: residual has dtype {residual.dtype}, the input {x.dtype}")
    return BatchNormReLU.apply(x, weight, bias, residual, running_mean=rm, running_var=rv, training=bool(training),
                               momentum=float(momentum), eps=float(eps))
