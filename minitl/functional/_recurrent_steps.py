"""The recurrent layers as Functions: forward step loops and backpropagation through time.

The equations are in :mod:`minitl.functional.recurrent`.  Each class runs one layer over a whole
sequence in one direction; ``forward`` returns one array of shape (T + S, N, H): the T outputs,
then the S final states (h_T; and c_T for the LSTM), so that one Function carries them all.

Common to all three (``_Sequence``):
    before the loop   P = X W_ihᵀ + b   for all T·N rows in one GEMM (the loop adds W_hh h_{t−1})
    after BPTT        dJ/dX = Δ W_ih,  dJ/dW_ih = Δᵀ X,  dJ/dW_hh = Δ_hᵀ H_prev,  db = Σ Δ   (one GEMM each)
with Δ (T·N, G·H) the pre-activation gradients the backward loop leaves behind.  The step loops
work in place on P (it becomes the gates, then their gradients), so a layer keeps ~G+3 arrays of
(T, N, H) for backward.
"""
from __future__ import annotations

from .. import backend
from ..tensor import Function


def _sigmoid_(v, xp):
    """σ(v) = ½(1 + tanh(v/2)) in place (no overflow for large |v|)."""
    v *= 0.5
    xp.tanh(v, out=v)
    v *= 0.5
    v += 0.5


class _Sequence(Function):
    """One recurrent layer over (T, N, I): inputs x, S initial states, W_ih, W_hh, b_ih, b_hh."""

    n_states = 1

    def forward(self, x, *arrays, mask=None, reverse=False, **options):
        xp = backend.get_array_module(x)
        S = self.n_states
        states, (w_ih, w_hh, b_ih, b_hh) = list(arrays[:S]), arrays[S:]
        T, N, I = x.shape
        H = w_hh.shape[1]
        dtype = x.dtype
        states = [xp.zeros((N, H), dtype=dtype) if s is None else s for s in states]
        x2 = x.reshape(T * N, I)
        projected = (x2 @ w_ih.T).astype(dtype, copy=False)  # one GEMM for every step's W_ih x_t
        if b_ih is not None:
            projected += b_ih
            self._fold_hidden_bias(projected, b_hh, H)
        self.x2, self.w_ih, self.w_hh, self.mask, self.options = x2, w_ih, w_hh, mask, options
        self.shape = (T, N, I, H)
        self.steps = range(T - 1, -1, -1) if reverse else range(T)
        self.h_prev = xp.empty((T, N, H), dtype=dtype)
        out = xp.empty((T + S, N, H), dtype=dtype)
        with backend.one_blas_thread(xp):  # T small GEMMs: threads cost more than they give
            finals = self._forward_steps(xp, projected.reshape(T, N, -1), states, b_hh, out)
        for k, final in enumerate(finals):
            out[T + k] = final
        return out

    def _fold_hidden_bias(self, projected, b_hh, H):
        projected += b_hh  # RNN, LSTM: b_hh adds to the same sum as b_ih

    def backward(self, g):
        xp = backend.get_array_module(g)
        T, N, I, H = self.shape
        S, need = self.n_states, self.needs_input_grad
        d_states = [g[T + k] for k in range(S)]
        with backend.one_blas_thread(xp):
            d_in, d_hid, d_states = self._backward_steps(xp, g[:T], d_states)
        d_in2, d_hid2 = d_in.reshape(T * N, -1), d_hid.reshape(T * N, -1)
        grads = [None] * (1 + S + 4)
        if need[0]:
            grads[0] = (d_in2 @ self.w_ih).reshape(T, N, I)
        for k in range(S):
            grads[1 + k] = d_states[k] if need[1 + k] else None
        if need[S + 1]:
            grads[S + 1] = d_in2.T @ self.x2
        if need[S + 2]:
            grads[S + 2] = d_hid2.T @ self.h_prev.reshape(T * N, H)
        if len(need) > S + 3 and need[S + 3]:
            grads[S + 3] = d_in2.sum(axis=0)
        if len(need) > S + 4 and need[S + 4]:
            grads[S + 4] = d_hid2.sum(axis=0)
        return tuple(grads)

    def _keep(self, xp, m, new, old):
        """The state after a step: the new one where the sample is still running, else the old."""
        return new if m is None else xp.where(m, new, old)


class RNNSequence(_Sequence):
    """h_t = f(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh);  δ_t = (dJ/dh_t) ⊙ f′,  dJ/dh_{t−1} = δ_t W_hh."""

    def _forward_steps(self, xp, pre, states, b_hh, out):
        (h,) = states
        relu = self.options["nonlinearity"] == "relu"
        w_hh_t, hw = self.w_hh.T, xp.empty(pre.shape[1:], dtype=pre.dtype)
        for t in self.steps:
            a = pre[t]
            self.h_prev[t] = h
            xp.matmul(h, w_hh_t, out=hw)
            a += hw
            if relu:
                xp.maximum(a, 0, out=a)
            else:
                xp.tanh(a, out=a)
            m = None if self.mask is None else self.mask[t]
            out[t] = a if m is None else a * m
            h = self._keep(xp, m, a, h)
        self.act = pre  # f(a_t) for every step; becomes δ in backward
        return (h,)

    def _backward_steps(self, xp, dy, d_states):
        (dh,) = d_states
        relu = self.options["nonlinearity"] == "relu"
        for t in reversed(self.steps):
            y = self.act[t]
            dhn = dh + dy[t]
            if relu:
                y[...] = dhn * (y > 0)
            else:
                y[...] = dhn * (1 - y * y)
            m = None if self.mask is None else self.mask[t]
            if m is not None:
                y *= m
            dh = self._keep(xp, m, y @ self.w_hh, dh)
        return self.act, self.act, [dh]


class LSTMSequence(_Sequence):
    """c_t = f ⊙ c_{t−1} + i ⊙ g,  h_t = o ⊙ tanh(c_t)  (gates i, f, g, o from W_ih x_t + W_hh h_{t−1} + b).

    BPTT per step, with dh = dJ/dh_t (from the future and from the output) and dc = dJ/dc_t:
        dc ← dc + dh ⊙ o ⊙ (1 − tanh²c_t)
        δ_i = dc ⊙ g ⊙ i(1−i),  δ_f = dc ⊙ c_{t−1} ⊙ f(1−f),  δ_g = dc ⊙ i ⊙ (1−g²),  δ_o = dh ⊙ tanh c_t ⊙ o(1−o)
        dJ/dc_{t−1} = dc ⊙ f,   dJ/dh_{t−1} = δ W_hh
    """

    n_states = 2

    def _forward_steps(self, xp, pre, states, b_hh, out):
        h, c = states
        H = out.shape[2]
        self.c_prev, self.tanh_c = xp.empty_like(self.h_prev), xp.empty_like(self.h_prev)
        w_hh_t, hw = self.w_hh.T, xp.empty(pre.shape[1:], dtype=pre.dtype)
        for t in self.steps:
            a = pre[t]  # becomes the gates, in place
            self.h_prev[t], self.c_prev[t] = h, c
            xp.matmul(h, w_hh_t, out=hw)
            a += hw
            _sigmoid_(a[:, : 2 * H], xp)
            xp.tanh(a[:, 2 * H : 3 * H], out=a[:, 2 * H : 3 * H])
            _sigmoid_(a[:, 3 * H :], xp)
            i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
            c_new = f * c
            c_new += i * g
            tc = self.tanh_c[t]
            xp.tanh(c_new, out=tc)
            y = out[t]
            xp.multiply(o, tc, out=y)
            m = None if self.mask is None else self.mask[t]
            h, c = self._keep(xp, m, y, h), self._keep(xp, m, c_new, c)
            if m is not None:
                y *= m
        self.gates = pre
        return h, c

    def _backward_steps(self, xp, dy, d_states):
        dh, dc = d_states
        H = dh.shape[1]
        for t in reversed(self.steps):
            a = self.gates[t]  # the gates i, f, g, o; overwritten with δ
            i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
            tc = self.tanh_c[t]
            dhn = dh + dy[t]
            dct = dhn * o
            dct *= 1 - tc * tc
            dct += dc
            d_o = dhn * tc
            d_i, d_f, d_g = dct * g, dct * self.c_prev[t], dct * i
            dc_prev = dct * f
            d_i *= i * (1 - i)
            d_f *= f * (1 - f)
            d_g *= 1 - g * g
            d_o *= o * (1 - o)
            a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :] = d_i, d_f, d_g, d_o
            m = None if self.mask is None else self.mask[t]
            if m is not None:
                a *= m
            dc = self._keep(xp, m, dc_prev, dc)
            dh = self._keep(xp, m, a @ self.w_hh, dh)
        return self.gates, self.gates, [dh, dc]


class GRUSequence(_Sequence):
    """h_t = (1 − z) ⊙ n + z ⊙ h_{t−1},  n = tanh(W_in x_t + b_in + r ⊙ (W_hn h_{t−1} + b_hn)).

    BPTT per step, dh = dJ/dh_t, u = W_hn h_{t−1} + b_hn:
        δ_n = dh ⊙ (1 − z) ⊙ (1 − n²),  δ_r = δ_n ⊙ u ⊙ r(1−r),  δ_z = dh ⊙ (h_{t−1} − n) ⊙ z(1−z)
        the input side gets (δ_r, δ_z, δ_n), the hidden side (δ_r, δ_z, r ⊙ δ_n)
        dJ/dh_{t−1} = (δ_r, δ_z, r ⊙ δ_n) W_hh + dh ⊙ z
    """

    def _fold_hidden_bias(self, projected, b_hh, H):
        projected[:, : 2 * H] += b_hh[: 2 * H]  # b_hr, b_hz add to the sums; b_hn stays inside r ⊙ (…)

    def _forward_steps(self, xp, pre, states, b_hh, out):
        (h,) = states
        H = out.shape[2]
        self.u = xp.empty_like(self.h_prev)  # W_hn h_{t−1} + b_hn, needed for δ_r
        w_hh_t, hw = self.w_hh.T, xp.empty(pre.shape[1:], dtype=pre.dtype)
        for t in self.steps:
            a = pre[t]  # becomes r, z, n in place
            self.h_prev[t] = h
            xp.matmul(h, w_hh_t, out=hw)
            u = hw[:, 2 * H :]
            if b_hh is not None:
                u += b_hh[2 * H :]
            self.u[t] = u
            a[:, : 2 * H] += hw[:, : 2 * H]
            _sigmoid_(a[:, : 2 * H], xp)
            r, z, n = a[:, :H], a[:, H : 2 * H], a[:, 2 * H :]
            n += r * u
            xp.tanh(n, out=n)
            y = out[t]
            xp.subtract(h, n, out=y)
            y *= z
            y += n  # n + z (h − n)
            m = None if self.mask is None else self.mask[t]
            h = self._keep(xp, m, y, h)
            if m is not None:
                y *= m
        self.gates = pre
        return (h,)

    def _backward_steps(self, xp, dy, d_states):
        (dh,) = d_states
        H = dh.shape[1]
        d_hidden = xp.empty_like(self.gates)
        for t in reversed(self.steps):
            a = self.gates[t]
            r, z, n = a[:, :H], a[:, H : 2 * H], a[:, 2 * H :]
            dhn = dh + dy[t]
            dz = dhn * (self.h_prev[t] - n)
            dz *= z * (1 - z)
            dn = dhn * (1 - z)
            dn *= 1 - n * n
            dr = dn * self.u[t]
            dr *= r * (1 - r)
            d_direct = dhn * z
            dh_side = d_hidden[t]
            dh_side[:, 2 * H :] = dn * r
            a[:, :H], a[:, H : 2 * H], a[:, 2 * H :] = dr, dz, dn
            dh_side[:, : 2 * H] = a[:, : 2 * H]
            m = None if self.mask is None else self.mask[t]
            if m is not None:
                a *= m
                dh_side *= m
            step = dh_side @ self.w_hh
            step += d_direct
            dh = self._keep(xp, m, step, dh)
        return self.gates, d_hidden, [dh]
