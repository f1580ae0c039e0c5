"""Attention (Vaswani et al., 2017): every query mixes the values of the keys it matches.

Masked softmax over the last axis, with an *additive* mask M (0 = keep, −∞ or a large negative = drop):

    P_ij = exp(S_ij + M_ij − m_i) / Σ_j' exp(S_ij' + M_ij' − m_i),   m_i = max_j (S_ij + M_ij)
    A row whose every entry is masked (−∞) gives P_i = 0 (not NaN), and passes no gradient.

Scaled dot-product attention, for queries Q (…, Tq, d), keys K (…, Tk, d), values V (…, Tk, dv):

    S = Q Kᵀ / √d,   P = masked_softmax(S, M),   P̃ = P ⊙ Z / (1 − p)  (dropout, Z_ij ~ Bernoulli(1 − p)),
    O = P̃ V                                                                      -> (…, Tq, dv)

Backward, the chain rule one step at a time (G = dJ/dO):

    dJ/dV = P̃ᵀ G,   dJ/dP̃ = G Vᵀ,   dJ/dP = dJ/dP̃ ⊙ Z / (1 − p)
    dJ/dS = P ⊙ (dJ/dP − Σ_j (dJ/dP ⊙ P)_ij)          (softmax's Jacobian, row by row; M adds a constant)
    dJ/dQ = dJ/dS · K / √d,   dJ/dK = (dJ/dS)ᵀ Q / √d

Multi-head attention splits the model width D into h heads of d = D/h, attends in each, and
re-joins them:  head_i = Attention(X W_Qiᵀ, X W_Kiᵀ, X W_Viᵀ),  MHA(X) = [head_1 … head_h] W_Oᵀ + b_O.
"""
from __future__ import annotations

import math

import numpy

from .. import backend
from .. import random as mt_random
from ..tensor import Function, Tensor
from .dense import linear, linear_concat


def _masked_softmax(xp, s, mask):
    """softmax(s + mask) along the last axis, in place on ``s``; fully masked rows -> 0."""
    if mask is not None:
        if numpy.broadcast_shapes(s.shape, mask.shape) == s.shape:
            s += mask
        else:
            s = s + mask
    m = s.max(axis=-1, keepdims=True)
    if mask is not None:
        m = xp.where(xp.isfinite(m), m, 0)  # a row of −∞ only: exp(−∞ − 0) = 0 everywhere
    s -= m
    xp.exp(s, out=s)
    total = s.sum(axis=-1, keepdims=True)
    if mask is not None:
        total = xp.where(total > 0, total, 1)
    s /= total
    return s


def _softmax_backward(p, grad_p):
    """dJ/dS = P ⊙ (dJ/dP − Σ_j dJ/dP ⊙ P), written into ``grad_p``."""
    row = (grad_p * p).sum(axis=-1, keepdims=True)
    grad_p -= row
    grad_p *= p
    return grad_p


class MaskedSoftmax(Function):
    """P = softmax(S + M) over the last axis; dJ/dS = P ⊙ (g − Σ_j g ⊙ P)."""

    def forward(self, s, mask=None):
        xp = backend.get_array_module(s)
        self.p = _masked_softmax(xp, s.copy(), mask)
        return self.p

    def backward(self, g):
        return _softmax_backward(self.p, g.copy())


class ScaledDotProductAttention(Function):
    """O = dropout(softmax(Q Kᵀ/√d + M)) V — forward and the backward of the module docstring."""

    def forward(self, q, k, v, mask=None, dropout_p=0.0, scale=None):
        xp = backend.get_array_module(q)
        self.scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        with backend.single_thread_blas(xp):  # many small GEMMs: threads cost more than they give
            return self._forward(xp, q, k, v, mask, dropout_p)

    def _forward(self, xp, q, k, v, mask, dropout_p):
        s = q @ xp.swapaxes(k, -1, -2)  # S = Q Kᵀ
        s *= self.scale
        p = _masked_softmax(xp, s, mask)
        self.keep = None
        if dropout_p > 0.0:
            self.keep = (mt_random.uniform_like(p) >= dropout_p).astype(p.dtype)
            self.keep /= 1.0 - dropout_p  # Z / (1 − p)
            p_used = p * self.keep
        else:
            p_used = p
        self.q, self.k, self.v, self.p, self.p_used = q, k, v, p, p_used
        return p_used @ v

    def backward(self, g):
        xp = backend.get_array_module(g)
        with backend.single_thread_blas(xp):
            return self._backward(xp, g)

    def _backward(self, xp, g):
        q, k, v, p = self.q, self.k, self.v, self.p
        need = self.needs_input_grad
        grad_v = xp.swapaxes(self.p_used, -1, -2) @ g if need[2] else None  # dJ/dV = P̃ᵀ G
        grad_q = grad_k = None
        if need[0] or need[1]:
            grad_p = g @ xp.swapaxes(v, -1, -2)  # dJ/dP̃ = G Vᵀ
            if self.keep is not None:
                grad_p *= self.keep  # dJ/dP = dJ/dP̃ ⊙ Z/(1 − p)
            grad_s = _softmax_backward(p, grad_p)  # dJ/dS
            grad_s *= self.scale  # the 1/√d of S = Q Kᵀ/√d
            if need[0]:
                grad_q = grad_s @ k  # dJ/dQ = dJ/dS K /√d
            if need[1]:
                grad_k = xp.swapaxes(grad_s, -1, -2) @ q  # dJ/dK = dJ/dSᵀ Q /√d
        if grad_q is not None:
            grad_q = _unbroadcast_to(grad_q, q.shape)
        if grad_k is not None:
            grad_k = _unbroadcast_to(grad_k, k.shape)
        if grad_v is not None:
            grad_v = _unbroadcast_to(grad_v, v.shape)
        return grad_q, grad_k, grad_v


class PackedSelfAttention(Function):
    """Self-attention on the packed projections Y = [Q | K | V] (N, T, 3D) -> the merged heads (N, T, D).

    The same formulas as :class:`ScaledDotProductAttention` (module docstring), per head of d = D/h,
    but the heads are read from and written to (N, T, h, d) views — no split/merge copies, and dJ/dY
    comes back packed for the one Q/K/V GEMM — and on the CPU the work goes a few sequences at a time
    so that S, P and dJ/dP stay in cache through softmax, dropout and their backward.  Saved for
    backward: Y, P and the dropout's keep-mask Z (booleans); P̃ = P ⊙ Z/(1 − p) is recomputed.
    """

    def forward(self, y, mask=None, *, num_heads, dropout_p=0.0, scale=None):
        xp = backend.get_array_module(y)
        n, t, width = y.shape
        self.heads, d = num_heads, width // (3 * num_heads)
        self.scale = 1.0 / math.sqrt(d) if scale is None else scale
        self.y, self.mask, self.dropout_p = y, _as_4d(mask), dropout_p
        q, k, v = _unpack(y, num_heads)
        out = xp.empty((n, t, num_heads, d), dtype=y.dtype)
        self.p = xp.empty((n, num_heads, t, t), dtype=y.dtype)
        self.keep = xp.empty(self.p.shape, dtype=bool) if dropout_p > 0.0 else None
        heads_out = out.transpose(0, 2, 1, 3)  # (N, h, T, d) view of the (N, T, h·d) result
        with backend.single_thread_blas(xp):  # many small GEMMs: threads cost more than they give
            for a, b in _chunks(xp, n, num_heads * t * t):
                p = self.p[a:b]
                xp.matmul(q[a:b], xp.swapaxes(k[a:b], -1, -2), out=p)  # S = Q Kᵀ
                p *= self.scale
                soft = _masked_softmax(xp, p, _rows(self.mask, a, b))  # in place unless the mask is wider
                if soft is not p:
                    p[...] = soft
                if self.keep is not None:
                    self.keep[a:b] = mt_random.uniform_like(p) >= dropout_p
                    p = p * self.keep[a:b]
                    p *= 1.0 / (1.0 - dropout_p)  # P̃ = P ⊙ Z / (1 − p)
                xp.matmul(p, v[a:b], out=heads_out[a:b])  # O = P̃ V
        return out.reshape(n, t, num_heads * d)

    def backward(self, g):
        xp = backend.get_array_module(g)
        n, t, width = self.y.shape
        h = self.heads
        q, k, v = _unpack(self.y, h)
        grad = xp.empty((n, t, 3, h, width // (3 * h)), dtype=g.dtype)
        gq, gk, gv = (grad[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
        g = g.reshape(n, t, h, -1).transpose(0, 2, 1, 3)  # G per head, (N, h, T, d)
        inverse_keep = 1.0 / (1.0 - self.dropout_p)
        with backend.single_thread_blas(xp):
            for a, b in _chunks(xp, n, h * t * t):
                p = self.p[a:b]
                p_used = p if self.keep is None else p * self.keep[a:b] * inverse_keep  # P̃
                xp.matmul(xp.swapaxes(p_used, -1, -2), g[a:b], out=gv[a:b])  # dJ/dV = P̃ᵀ G
                grad_p = g[a:b] @ xp.swapaxes(v[a:b], -1, -2)  # dJ/dP̃ = G Vᵀ
                scale = self.scale
                if self.keep is not None:
                    grad_p *= self.keep[a:b]  # dJ/dP = dJ/dP̃ ⊙ Z/(1 − p); the 1/(1 − p) joins 1/√d below
                    scale *= inverse_keep
                grad_s = _softmax_backward(p, grad_p)
                grad_s *= scale
                xp.matmul(grad_s, k[a:b], out=gq[a:b])  # dJ/dQ = dJ/dS K /√d
                xp.matmul(xp.swapaxes(grad_s, -1, -2), q[a:b], out=gk[a:b])  # dJ/dK = dJ/dSᵀ Q /√d
        return grad.reshape(n, t, width)


def _unpack(y, heads):
    """Y (N, T, 3·h·d) -> Q, K, V as (N, h, T, d) views (no copy)."""
    n, t, width = y.shape
    packed = y.reshape(n, t, 3, heads, width // (3 * heads))
    return (packed[:, :, i].transpose(0, 2, 1, 3) for i in range(3))


def _as_4d(mask):
    return None if mask is None else mask.reshape((1,) * (4 - mask.ndim) + mask.shape)


def _rows(mask, a, b):
    """The part of a (N or 1, …) mask for sequences a:b."""
    return None if mask is None else (mask if mask.shape[0] == 1 else mask[a:b])


_CACHE_ELEMENTS = 1 << 20  # 4 MB of float32 scores per chunk: in the last-level cache while softmax runs


def _chunks(xp, n, per_sequence):
    """(start, stop) runs of sequences: a few at a time on the CPU, all at once on a GPU."""
    step = n if xp is not numpy else max(1, _CACHE_ELEMENTS // max(per_sequence, 1))
    return [(a, min(a + step, n)) for a in range(0, n, step)]


def _unbroadcast_to(grad, shape):
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def _mask_array(mask, reference: Tensor, dtype):
    if mask is None:
        return None
    data = mask.data if isinstance(mask, Tensor) else mask
    xp = backend.get_array_module(reference.data)
    if backend.get_array_module(data) is not xp:
        data = backend.to_device(numpy.asarray(data), reference.device)
    if data.dtype == bool:
        raise TypeError("attention mask must be additive (0 = keep, -inf = drop), not boolean: "
                        "use additive_mask(keep) to convert")
    return data.astype(dtype, copy=False)


def additive_mask(keep, dtype=numpy.float32):
    """A boolean/0-1 "keep" array -> the additive mask M (0 where kept, −∞ where dropped)."""
    data = keep.data if isinstance(keep, Tensor) else keep
    xp = backend.get_array_module(data)
    return xp.where(data.astype(bool), xp.zeros((), dtype=dtype), xp.full((), -numpy.inf, dtype=dtype))


def masked_softmax(x: Tensor, mask=None) -> Tensor:
    """softmax(x + M) over the last axis; M additive (0 keep, −∞ drop), broadcastable; masked-out rows -> 0."""
    return MaskedSoftmax.apply(x, mask=_mask_array(mask, x, x.dtype))


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask=None, dropout_p: float = 0.0,
                                 training: bool = True, scale: float | None = None) -> Tensor:
    """O = dropout_p(softmax(Q Kᵀ/√d + M)) V.

    q (…, Tq, d), k (…, Tk, d), v (…, Tk, dv) -> (…, Tq, dv).  ``mask``: additive (0 keep, −∞ drop),
    broadcastable to (…, Tq, Tk).  Dropout on the attention weights only while ``training``.
    """
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"attention: q {q.shape}, k {k.shape}, v {v.shape} do not fit "
                         "(q and k need the same last axis, k and v the same length)")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"attention: dropout_p must be in [0, 1), got {dropout_p}")
    return ScaledDotProductAttention.apply(q, k, v, mask=_mask_array(mask, q, q.dtype),
                                           dropout_p=dropout_p if training else 0.0, scale=scale)


def self_attention_packed(y: Tensor, num_heads: int, mask=None, dropout_p: float = 0.0,
                          training: bool = True, scale: float | None = None) -> Tensor:
    """Multi-head self-attention on packed projections: Y = [Q | K | V] (N, T, 3D) -> (N, T, D).

    Head i reads columns i·d … (i+1)·d of each of Q, K, V and writes the same columns of the result:
    O_i = dropout_p(softmax(Q_i K_iᵀ/√d + M)) V_i, d = D/h.  ``mask`` additive, broadcastable to (N, h, T, T).
    """
    if y.ndim != 3 or y.shape[-1] % (3 * num_heads):
        raise ValueError(f"self_attention_packed: expected (N, T, 3·D) with D divisible by {num_heads} heads, "
                         f"got shape {y.shape}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"attention: dropout_p must be in [0, 1), got {dropout_p}")
    return PackedSelfAttention.apply(y, mask=_mask_array(mask, y, y.dtype), num_heads=num_heads,
                                     dropout_p=dropout_p if training else 0.0, scale=scale)


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(N, T, D) -> (N, h, T, D/h)."""
    n, t, d = x.shape
    return x.reshape(n, t, num_heads, d // num_heads).transpose(0, 2, 1, 3)


def merge_heads(x: Tensor) -> Tensor:
    """(N, h, T, d) -> (N, T, h·d)."""
    n, h, t, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(n, t, h * d)


def multi_head_attention(query: Tensor, key: Tensor, value: Tensor, num_heads: int,
                         q_weight, q_bias, k_weight, k_bias, v_weight, v_bias, out_weight, out_bias,
                         mask=None, dropout_p: float = 0.0, training: bool = True) -> Tensor:
    """MHA(Q, K, V) = [head_1 … head_h] W_Oᵀ + b_O,  head_i = Attention(Q W_Qiᵀ + b, K W_Kiᵀ + b, V W_Viᵀ + b).

    query (N, Tq, D), key/value (N, Tk, D); weights (D, D) in PyTorch's (out, in) layout; ``mask``
    additive, broadcastable to (N, h, Tq, Tk) — a padding mask is (N, 1, 1, Tk).
    """
    width = query.shape[-1]
    if width % num_heads:
        raise ValueError(f"multi_head_attention: width {width} is not divisible by {num_heads} heads")
    if key is query and value is query and query.ndim == 3:  # self-attention: one Q/K/V GEMM, packed heads
        packed = linear_concat(query, (q_weight, k_weight, v_weight),
                               None if q_bias is None else (q_bias, k_bias, v_bias))
        heads = self_attention_packed(packed, num_heads, mask, dropout_p, training)
        return linear(heads, out_weight, out_bias)
    q = split_heads(linear(query, q_weight, q_bias), num_heads)
    k = split_heads(linear(key, k_weight, k_bias), num_heads)
    v = split_heads(linear(value, v_weight, v_bias), num_heads)
    heads = scaled_dot_product_attention(q, k, v, mask, dropout_p, training)
    return linear(merge_heads(heads), out_weight, out_bias)


def _attention_reference(q, k, v, mask=None):
    """The formula in float64 with explicit loops over queries (tests)."""
    q, k, v = (numpy.asarray(a, dtype=numpy.float64) for a in (q, k, v))
    lead = numpy.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    tq, tk = q.shape[-2], k.shape[-2]
    m = numpy.zeros(lead + (tq, tk)) if mask is None else numpy.broadcast_to(numpy.asarray(mask, numpy.float64),
                                                                            lead + (tq, tk))
    q, k, v = (numpy.broadcast_to(a, lead + a.shape[-2:]) for a in (q, k, v))
    out = numpy.zeros(lead + (tq, v.shape[-1]))
    for idx in numpy.ndindex(*lead):
        for i in range(tq):
            scores = numpy.array([q[idx][i] @ k[idx][j] / math.sqrt(q.shape[-1]) + m[idx][i, j] for j in range(tk)])
            if numpy.all(numpy.isneginf(scores)):
                continue
            w = numpy.exp(scores - scores.max())
            w /= w.sum()
            out[idx][i] = sum(w[j] * v[idx][j] for j in range(tk))
    return out
