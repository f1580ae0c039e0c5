"""The LSTM layer as one fused Function (the fast path of ``F.lstm_layer``).

The equations are the module docstring's of :mod:`minitl.functional.recurrent`
(PyTorch's gate rows i, f, g, o):

    i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o),   a = W_ih x_t + b_ih + W_hh h_{t−1} + b_hh
    c_t = f ⊙ c_{t−1} + i ⊙ g,    h_t = o ⊙ tanh(c_t)

:class:`~minitl.functional._recurrent_steps.LSTMSequence` is the readable reference that follows
them line by line; this Function computes the same numbers with fewer, larger array operations
per step (tests/functional/test_lstm_fused.py holds the two, and PyTorch, to each other):

* column layout inside: a step's vectors are the columns of (features × batch) matrices, so
  a_t = W_hh h_{t−1} + P_t is (4H × N) and each gate is a contiguous block of rows (element-wise
  work on contiguous memory runs up to twice as fast as on the strided column blocks of an
  (N × 4H) matrix; the step GEMM (4H × H)·(H × N) is as fast as (N × H)·(H × 4H) or faster);
* gate rows reordered to (o, i, f, g): the three sigmoid gates side by side (one exp/add/reciprocal
  for all three) and the three gates scaled by dJ/dc_t side by side (one broadcast product);
* σ(v) = 1 / (1 + e^{−v}), with the sign folded into the o, i, f rows of W_ih, W_hh and the biases
  (exact), so a step's three sigmoids are one ``exp`` over a (3H × N) block (an ``exp`` is cheaper
  than a ``tanh`` in NumPy); for v < −88 (float32) e^{−v} overflows to inf and σ comes out exactly
  0, its limit (the warning is silenced: :func:`~minitl.backend.ignore_overflow`);
* P = X W_ihᵀ + b as one GEMM per block of BLOCK_STEPS time steps (N·BLOCK_STEPS rows), stored
  per step as (4H × N); with one batch chunk and a second thread those block GEMMs (and the
  backward's) run on the background thread beside the step loop: the loop is the critical path,
  the big GEMMs fill the other core (:func:`~minitl.functional.parallel.in_background`);
* states live in preallocated (T+1, H, N) buffers H_s, C_s (row k = state before step k), so the
  backward's dJ/dW_hh = Σ_t δ_t h_{t−1}ᵀ is one GEMM per block over the stacked buffer;
* a large batch (≥ 2 × ``MIN_CHUNK_ROWS`` samples) is cut into :func:`~minitl.functional.parallel.workers`
  chunks (column ranges) whose recurrences run on minitl's threads, each the whole sequence with no
  barrier per step (samples are independent); a small one runs as one chunk (see :func:`_chunks`).
  The chunks and blocks depend only on N, T and the thread setting, so results are bitwise
  reproducible for a fixed ``parallel.set_threads``.

Backpropagation through time, per step in reverse (dh = dJ/dh_t carried from step t+1, dc = dJ/dc_t):

    dh ← dh + dJ/dy_t                                        (the output's own gradient)
    dc ← dc + dh ⊙ o ⊙ (1 − tanh² c_t)
    δ_o = dh ⊙ tanh c_t ⊙ o(1−o),   δ_i = dc ⊙ g ⊙ i(1−i),   δ_f = dc ⊙ c_{t−1} ⊙ f(1−f),
    δ_g = dc ⊙ i ⊙ (1 − g²)
    dJ/dc_{t−1} = dc ⊙ f,   dJ/dh_{t−1} = W_hhᵀ δ

and, block by block of time steps once their δ are known (Δ the δ's side by side, (4H × T·N)):
dJ/dX = Δᵀ W_ih, dJ/dW_ih = Σ Δ X, dJ/dW_hh = Σ Δ H_prevᵀ, dJ/db_ih = dJ/db_hh = Σ Δ.

Variable lengths (``mask`` m_t, (T, N, 1)): where m_t = 0 a step keeps the old h, c, outputs 0,
and in backward its δ is 0 while dh, dc pass through unchanged.  ``reverse`` runs the steps
t = T−1 … 0 by reading the time-indexed buffers through a reversed view.
"""
from __future__ import annotations

from .. import backend
from ..tensor import Function
from . import parallel


def _to_internal(xp, w, H, negate):
    """Gate rows (i, f, g, o) -> (o, i, f, g); with ``negate`` the o, i, f rows × −1 (for e^{−v})."""
    out = xp.concatenate([w[3 * H :], w[: 2 * H], w[2 * H : 3 * H]], axis=0)
    if negate:
        out[: 3 * H] *= -1
    return out



def _to_pytorch(xp, w, H):
    """Gate rows (o, i, f, g) -> PyTorch's (i, f, g, o)."""
    return xp.concatenate([w[H : 3 * H], w[3 * H :], w[:H]], axis=0)


MIN_CHUNK_ROWS = 64  # a thread's chunk has at least this many samples, or the batch is not split
BLOCK_STEPS = 16  # time steps per block of the big GEMMs (input projection; dX, dW_ih, dW_hh, db)


def _chunks(xp, n):
    """The batch ranges whose recurrences run side by side: one per thread, each ≥ MIN_CHUNK_ROWS rows.

    A step is ~35 small array calls; on a few rows their per-call cost and the GIL hand-offs between
    threads outweigh the arithmetic: at batch 32, hidden 128, two chunks of 16 rows on two threads
    took 292 ms forward+backward against 163 ms for one chunk on one thread (benchmarks/lstm.md).
    """
    k = parallel.workers(xp, n // MIN_CHUNK_ROWS)
    return [(n * j // k, n * (j + 1) // k) for j in range(k)]


def _blocks(T, reverse):
    """Time blocks [t0, t1) of BLOCK_STEPS steps in the order the steps visit them, with each block's first step k0."""
    blocks = [(t0, min(T, t0 + BLOCK_STEPS)) for t0 in range(0, T, BLOCK_STEPS)]
    if reverse:
        return [(T - t1, t0, t1) for t0, t1 in reversed(blocks)]  # step k runs time T − 1 − k
    return [(t0, t0, t1) for t0, t1 in blocks]


def _overlapped(xp, chunks):
    """One chunk and a thread to spare: the block GEMMs run on the background thread beside the steps."""
    return len(chunks) == 1 and parallel.overlaps(xp)


class LSTMFused(Function):
    """One LSTM layer over (T, N, I): inputs x, h0, c0, W_ih, W_hh, b_ih, b_hh -> (T + 2, N, H): y, h_T, c_T.

    The big GEMMs go by blocks of BLOCK_STEPS time steps in a fixed order, so results do not depend
    on where they run: with one batch chunk and ≥ 2 threads they run on the background thread
    (:func:`~minitl.functional.parallel.in_background`) while the step loop goes on: block j + 1's
    projection during block j's steps, a finished block's gradients during the next block's.
    """

    def forward(self, x, h0, c0, w_ih, w_hh, b_ih, b_hh, mask=None, reverse=False):
        xp = backend.get_array_module(x)
        T, N, I = x.shape
        H = w_hh.shape[1]
        x2 = x.reshape(T * N, I)
        gates = xp.empty((T, 4 * H, N), dtype=x.dtype)  # P_t = W_ih x_t + b per column, time-indexed; becomes the gates
        w_ih_t = _to_internal(xp, w_ih, H, True).T
        biases = [] if b_ih is None else [_to_internal(xp, b, H, True) for b in (b_ih, b_hh)]

        def project(t0, t1):  # P for the time steps [t0, t1): one GEMM, stored one (4H × N) matrix per step
            p = x2[t0 * N : t1 * N] @ w_ih_t
            for b in biases:
                p += b
            gates[t0:t1] = p.reshape(t1 - t0, N, 4 * H).transpose(0, 2, 1)

        h_s, c_s = xp.empty((T + 1, H, N), dtype=x.dtype), xp.empty((T + 1, H, N), dtype=x.dtype)
        h_s[0] = 0 if h0 is None else h0.T
        c_s[0] = 0 if c0 is None else c0.T
        tanh_c = xp.empty((T, H, N), dtype=x.dtype)
        by_step = (lambda a: a[::-1]) if reverse else (lambda a: a)  # time index -> step index
        w_hh_int = _to_internal(xp, w_hh, H, True)  # (4H, H)
        m = None if mask is None else by_step(mask).transpose(0, 2, 1)  # (T, 1, N), step-indexed
        chunks, blocks = _chunks(xp, N), _blocks(T, reverse)  # before BLAS is limited: its default threads

        def steps(r, ready=None):
            _forward_chunk(xp, by_step(gates), h_s, c_s, by_step(tanh_c), w_hh_int, m, slice(*r), ready)

        if _overlapped(xp, chunks):
            with backend.one_blas_thread(xp):
                steps(chunks[0], {k0: parallel.in_background(lambda t=(t0, t1): project(*t)) for k0, t0, t1 in blocks})
        else:
            for _, t0, t1 in blocks:
                project(t0, t1)
            with backend.one_blas_thread(xp):
                parallel.run_chunks(xp, lambda r, _slot: steps(r), chunks)
        out = xp.empty((T + 2, N, H), dtype=x.dtype)
        out[:T] = by_step(h_s[1:]).transpose(0, 2, 1)
        if mask is not None:
            out[:T] *= mask
        out[T], out[T + 1] = h_s[T].T, c_s[T].T
        if any(self.needs_input_grad):
            self.x2, self.w_ih, self.w_hh, self.mask, self.reverse = x2, w_ih, w_hh, m, reverse
            self.gates, self.h_s, self.c_s, self.tanh_c, self.by_step = gates, h_s, c_s, tanh_c, by_step
        return out

    def backward(self, g):
        xp = backend.get_array_module(g)
        T, N, H = g.shape[0] - 2, g.shape[1], g.shape[2]
        by_step = self.by_step
        delta = xp.empty_like(self.gates)  # Δ, time-indexed, (4H × N) per step, gate rows (o, i, f, g)
        dy = xp.ascontiguousarray(g[:T].transpose(0, 2, 1))  # dJ/dy_t as (H × N) columns
        d_h0, d_c0 = xp.ascontiguousarray(g[T].T), xp.ascontiguousarray(g[T + 1].T)  # carried from step T back
        w_hh_t = xp.ascontiguousarray(_to_internal(xp, self.w_hh, H, False).T)  # W_hhᵀ (H, 4H)
        block_grads = _BlockGradients(xp, self, delta)
        chunks, blocks = _chunks(xp, N), _blocks(T, self.reverse)

        def steps(r, done=None):
            _backward_chunk(xp, by_step(self.gates), by_step(delta), self.c_s, by_step(self.tanh_c), by_step(dy),
                            w_hh_t, self.mask, d_h0, d_c0, slice(*r), done)

        if _overlapped(xp, chunks):
            futures = []
            with backend.one_blas_thread(xp):  # a block's gradients once its steps (all k ≥ k0) are done
                steps(chunks[0], {k0: lambda t=(t0, t1): futures.append(parallel.in_background(
                    lambda: block_grads.add(*t))) for k0, t0, t1 in blocks})
                for future in futures:
                    future.result()
        else:
            with backend.one_blas_thread(xp):
                parallel.run_chunks(xp, lambda r, _slot: steps(r), chunks)
            for _, t0, t1 in reversed(blocks):  # the same order as the overlapped path's
                block_grads.add(t0, t1)
        return block_grads.result(xp.ascontiguousarray(d_h0.T), xp.ascontiguousarray(d_c0.T))


class _BlockGradients:
    """dJ/dX = Δᵀ W_ih, dJ/dW_ih = Σ Δ X, dJ/dW_hh = Σ Δ H_prev, dJ/db = Σ Δ, summed block by block."""

    def __init__(self, xp, fn, delta):
        T, H4, N = delta.shape
        self.xp, self.fn, self.delta, self.N, self.H = xp, fn, delta, N, H4 // 4
        need, dtype, I = fn.needs_input_grad, delta.dtype, fn.x2.shape[1]
        self.w_ih = _to_internal(xp, fn.w_ih, self.H, False)
        self.dx = xp.empty((T, N, I), dtype=dtype) if need[0] else None
        self.dw_ih = xp.zeros((H4, I), dtype=dtype) if need[3] else None
        self.dw_hh = xp.zeros((H4, self.H), dtype=dtype) if need[4] else None
        self.db = xp.zeros(H4, dtype=dtype) if need[5] or need[6] else None

    def add(self, t0, t1):
        """The contributions of the time steps [t0, t1)."""
        xp, fn, N, H, B = self.xp, self.fn, self.N, self.H, t1 - t0
        d = xp.ascontiguousarray(self.delta[t0:t1].transpose(1, 0, 2)).reshape(4 * H, B * N)  # columns (t, n)
        if self.dx is not None:
            xp.matmul(d.T, self.w_ih, out=self.dx[t0:t1].reshape(B * N, -1))
        if self.dw_ih is not None:
            self.dw_ih += d @ fn.x2[t0 * N : t1 * N]
        if self.dw_hh is not None:  # h_{t−1} of time t: the state before its step (reverse: step T − 1 − t)
            T = self.delta.shape[0]
            h_prev = fn.h_s[t0:t1] if not fn.reverse else fn.h_s[T - t1 : T - t0][::-1]  # (B, H, N)
            self.dw_hh += d @ xp.ascontiguousarray(h_prev.transpose(1, 0, 2)).reshape(H, B * N).T
        if self.db is not None:
            self.db += d.sum(axis=1)

    def result(self, d_h0, d_c0):
        need, xp, H = self.fn.needs_input_grad, self.xp, self.H
        db = None if self.db is None else _to_pytorch(xp, self.db, H)
        return (self.dx, d_h0 if need[1] else None, d_c0 if need[2] else None,
                None if self.dw_ih is None else _to_pytorch(xp, self.dw_ih, H),
                None if self.dw_hh is None else _to_pytorch(xp, self.dw_hh, H),
                db if need[5] else None, db if need[6] else None)


def _forward_chunk(xp, gates, h_s, c_s, tanh_c, w_hh, mask, r, ready=None):
    """Steps k = 0 … T−1 for the batch columns ``r``; ``gates[k]`` holds P_k (o, i, f rows negated), becomes the gates.

    ``ready`` ({k: future}): wait for ``ready[k]`` (the projection of k's block) before step k."""
    H = h_s.shape[1]
    gs, hs, cs, tcs = gates[:, :, r], h_s[:, :, r], c_s[:, :, r], tanh_c[:, :, r]
    ms = None if mask is None else mask[:, :, r]
    n = hs.shape[2]
    hw, ig = xp.empty((4 * H, n), dtype=h_s.dtype), xp.empty((H, n), dtype=h_s.dtype)
    with backend.ignore_overflow():
        for k in range(gs.shape[0]):
            if ready is not None and k in ready:
                ready[k].result()
            a = gs[k]
            xp.matmul(w_hh, hs[k], out=hw)
            a += hw  # pre-activations (4H × n), o, i, f rows negated
            s, gg = a[: 3 * H], a[3 * H :]
            xp.exp(s, out=s)  # e^{−v} (inf for v < −88: σ = 0 below)
            s += 1
            xp.reciprocal(s, out=s)  # σ(v) = 1 / (1 + e^{−v}) for o, i, f
            xp.tanh(gg, out=gg)  # g = tanh(a_g)
            o, i, f = a[:H], a[H : 2 * H], a[2 * H : 3 * H]
            c = cs[k + 1]
            xp.multiply(f, cs[k], out=c)
            xp.multiply(i, gg, out=ig)
            c += ig  # c_t = f ⊙ c_{t−1} + i ⊙ g
            tc = tcs[k]
            xp.tanh(c, out=tc)
            h = hs[k + 1]
            xp.multiply(o, tc, out=h)  # h_t = o ⊙ tanh c_t
            if ms is not None:  # padded: the state stays
                m = ms[k]
                hs[k + 1] = xp.where(m, h, hs[k])
                cs[k + 1] = xp.where(m, c, cs[k])


def _backward_chunk(xp, gates, delta, c_s, tanh_c, dy, w_hh_t, mask, d_h, d_c, r, done=None):
    """BPTT over the batch columns ``r``, steps k = T−1 … 0; leaves δ_k in ``delta[k]`` and dJ/dh_0, dJ/dc_0 in d_h, d_c.

    ``done`` ({k: callback}): call ``done[k]()`` once step k's δ is written (k0 of a block: the block is finished)."""
    H = c_s.shape[1]
    gs, ds, cs, tcs, dys = gates[:, :, r], delta[:, :, r], c_s[:, :, r], tanh_c[:, :, r], dy[:, :, r]
    ms = None if mask is None else mask[:, :, r]
    dh, dc = d_h[:, r].copy(), d_c[:, r].copy()
    dhn, dct = xp.empty_like(dh), xp.empty_like(dh)
    for k in range(gs.shape[0] - 1, -1, -1):
        a, d, tc = gs[k], ds[k], tcs[k]
        o, i, f, gg = a[:H], a[H : 2 * H], a[2 * H : 3 * H], a[3 * H :]
        xp.add(dh, dys[k], out=dhn)  # dJ/dh_t: from step t+1 and from the output
        xp.multiply(tc, tc, out=dct)
        xp.subtract(1, dct, out=dct)
        dct *= o
        dct *= dhn
        dct += dc  # dJ/dc_t = dc + dh ⊙ o ⊙ (1 − tanh² c_t)
        d_s = d[: 3 * H]
        xp.subtract(1, a[: 3 * H], out=d_s)
        d_s *= a[: 3 * H]  # σ' = s(1−s) for o, i, f
        d_o, d_i, d_f, d_g = d[:H], d[H : 2 * H], d[2 * H : 3 * H], d[3 * H :]
        xp.multiply(gg, gg, out=d_g)
        xp.subtract(1, d_g, out=d_g)  # tanh' = 1 − g²
        d_o *= tc
        d_o *= dhn  # δ_o = dh ⊙ tanh c_t ⊙ o(1−o)
        d_i *= gg
        d_f *= cs[k]
        d_g *= i
        d_ifg = d[H:].reshape(3, H, -1)  # a view: rows split into the three gates
        d_ifg *= dct  # δ_i, δ_f, δ_g: × dJ/dc_t
        if ms is None:
            xp.multiply(dct, f, out=dc)  # dJ/dc_{t−1}
            xp.matmul(w_hh_t, d, out=dh)  # dJ/dh_{t−1} = W_hhᵀ δ
        else:
            m = ms[k]
            d *= m  # a padded step's pre-activations get no gradient
            dc = xp.where(m, dct * f, dc)  # padded: dh, dc pass through
            dh = xp.where(m, w_hh_t @ d, dh)
        if done is not None and k in done:
            done[k]()
    d_h[:, r], d_c[:, r] = dh, dc
