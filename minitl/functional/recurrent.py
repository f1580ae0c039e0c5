"""Recurrent networks: the RNN h_t = f(W_x x_t + W_h h_{t−1} + b), the LSTM and the GRU.

Shapes are time-major, as PyTorch's default: x (T, N, I), states h, c (N, H).  Weights are
stored as PyTorch stores them, the gates stacked along the first axis:

    W_ih (G·H, I),  W_hh (G·H, H),  b_ih, b_hh (G·H,)       G = 1 (RNN), 4 (LSTM), 3 (GRU)

RNN (f = tanh or ReLU):
    h_t = f(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh)

LSTM (gate rows in PyTorch's order i, f, g, o; σ the logistic sigmoid, ⊙ elementwise):
    i = σ(W_ii x_t + b_ii + W_hi h_{t−1} + b_hi)        input gate
    f = σ(W_if x_t + b_if + W_hf h_{t−1} + b_hf)        forget gate
    g = tanh(W_ig x_t + b_ig + W_hg h_{t−1} + b_hg)     candidate cell
    o = σ(W_io x_t + b_io + W_ho h_{t−1} + b_ho)        output gate
    c_t = f ⊙ c_{t−1} + i ⊙ g,    h_t = o ⊙ tanh(c_t)

GRU (rows r, z, n; b_hn sits inside the reset gate's product, as in PyTorch and cuDNN):
    r = σ(W_ir x_t + b_ir + W_hr h_{t−1} + b_hr)        reset gate
    z = σ(W_iz x_t + b_iz + W_hz h_{t−1} + b_hz)        update gate
    n = tanh(W_in x_t + b_in + r ⊙ (W_hn h_{t−1} + b_hn))
    h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}

One layer over a whole sequence is one :class:`Function` (``RNNSequence``, ``LSTMSequence``,
``GRUSequence`` in :mod:`._recurrent_steps`): the input projections W_ih x_t of all T steps are
one GEMM before the loop, each step adds the small GEMM W_hh h_{t−1}; backward is
backpropagation through time written out — the loop runs the steps in reverse carrying
dJ/dh (and dJ/dc), and the weight gradients are again one GEMM each over all steps:

    dJ/dW_ih = Σ_t δ_tᵀ x_t,   dJ/dW_hh = Σ_t δ_tᵀ h_{t−1},   dJ/dx_t = δ_t W_ih,
    dJ/dh_{t−1} = δ_t W_hh (+ the direct paths: f ⊙ dJ/dc_t to c_{t−1}, z ⊙ dJ/dh_t for the GRU)

where δ_t is the gradient of the step's pre-activations.  Variable-length batches: with
``lengths`` a step t ≥ lengths[n] leaves sample n's state unchanged, outputs 0 there (as
PyTorch's pad_packed_sequence) and its pre-activations receive no gradient; a reversed layer
starts each sample at its own last step, as over a packed sequence.
"""
from __future__ import annotations

import numpy

from ..tensor import Tensor
from ._lstm_fused import LSTMFused
from ._recurrent_steps import GRUSequence, LSTMSequence, RNNSequence

__all__ = ["rnn_cell", "lstm_cell", "gru_cell", "rnn_layer", "lstm_layer", "gru_layer", "sequence_mask"]


def _check(name, x, h, w_ih, w_hh, b_ih, b_hh, gates):
    if x.ndim != 3:
        raise ValueError(f"{name}: input must be (T, N, input_size), got shape {x.shape}")
    rows, hidden = w_hh.shape if w_hh.ndim == 2 else (None, None)
    if rows != gates * hidden:
        raise ValueError(f"{name}: weight_hh must be ({gates}·H, H), got shape {w_hh.shape}")
    if w_ih.shape != (rows, x.shape[2]):
        raise ValueError(f"{name}: weight_ih must be ({rows}, {x.shape[2]}) for input size {x.shape[2]}, "
                         f"got shape {w_ih.shape}")
    for label, b in (("bias_ih", b_ih), ("bias_hh", b_hh)):
        if b is not None and b.shape != (rows,):
            raise ValueError(f"{name}: {label} must be ({rows},), got shape {b.shape}")
    for state in h:
        if state is not None and state.shape != (x.shape[1], hidden):
            raise ValueError(f"{name}: state must be (N, H) = ({x.shape[1]}, {hidden}), got shape {state.shape}")
    if (b_ih is None) != (b_hh is None):
        raise ValueError(f"{name}: give both biases or neither")


def sequence_mask(lengths, steps: int, like: Tensor):
    """m[t, n] = 1 if t < lengths[n] else 0, shape (T, N, 1), on ``like``'s device; None for no lengths.

    ``lengths``: N integers in [0, T] (a list, a NumPy array or an integer tensor).
    """
    if lengths is None:
        return None
    host = lengths.numpy() if isinstance(lengths, Tensor) else numpy.asarray(lengths)
    n = like.shape[1]
    if host.shape != (n,) or host.dtype.kind not in "iu":
        raise ValueError(f"lengths must be {n} integers (one per sequence), got {host.dtype} of shape {host.shape}")
    if host.size and (host.min() < 0 or host.max() > steps):
        raise ValueError(f"lengths must lie in [0, {steps}] (the padded length), got {host.min()}..{host.max()}")
    xp = like.xp
    lengths_on_device = xp.asarray(host.astype(numpy.int64))
    return (xp.arange(steps)[:, None] < lengths_on_device[None, :])[:, :, None]


def _layer(fn, name, gates, x, states, w_ih, w_hh, b_ih, b_hh, lengths, reverse, **options):
    _check(name, x, states, w_ih, w_hh, b_ih, b_hh, gates)
    mask = sequence_mask(lengths, x.shape[0], x)
    out = fn.apply(x, *states, w_ih, w_hh, b_ih, b_hh, mask=mask, reverse=bool(reverse), **options)
    steps = x.shape[0]
    finals = tuple(out[steps + k] for k in range(len(states)))
    return out[:steps], finals


def rnn_layer(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh", lengths=None, reverse=False):
    """One RNN layer over a sequence: h_t = f(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh), f = tanh or ReLU.

    x (T, N, I), h0 (N, H) or None (zeros) -> (outputs (T, N, H), h_T (N, H)).
    ``reverse`` runs t = T−1 … 0 (the backward direction of a bidirectional layer).
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"rnn: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    y, (h,) = _layer(RNNSequence, "rnn", 1, x, (h0,), w_ih, w_hh, b_ih, b_hh, lengths, reverse,
                     nonlinearity=nonlinearity)
    return y, h


def lstm_layer(x, hx, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None, reverse=False, fused=True):
    """One LSTM layer over a sequence (gates i, f, g, o; equations in the module docstring).

    x (T, N, I), hx = (h0, c0) each (N, H), or None for zeros -> (outputs (T, N, H), (h_T, c_T)).
    ``fused`` (default) runs :class:`._lstm_fused.LSTMFused`, the fast whole-sequence op (one tanh
    call for the four gates, batch chunks on minitl's threads); ``fused=False`` the reference
    :class:`._recurrent_steps.LSTMSequence`, which follows the equations line by line.  Same numbers.
    """
    h0, c0 = (None, None) if hx is None else hx
    fn = LSTMFused if fused else LSTMSequence
    y, (h, c) = _layer(fn, "lstm", 4, x, (h0, c0), w_ih, w_hh, b_ih, b_hh, lengths, reverse)
    return y, (h, c)


def gru_layer(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None, reverse=False):
    """One GRU layer over a sequence (gates r, z, n, with b_hn inside r ⊙ (W_hn h + b_hn)).

    x (T, N, I), h0 (N, H) or None -> (outputs (T, N, H), h_T (N, H)).
    """
    y, (h,) = _layer(GRUSequence, "gru", 3, x, (h0,), w_ih, w_hh, b_ih, b_hh, lengths, reverse)
    return y, h


def _one_step(x, name):
    if x.ndim != 2:
        raise ValueError(f"{name}: input must be (N, input_size), got shape {x.shape}")
    return x.reshape(1, *x.shape)


def rnn_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """One step: h' = f(W_ih x + b_ih + W_hh h + b_hh), f = tanh or ReLU.  x (N, I), h (N, H) -> (N, H)."""
    return rnn_layer(_one_step(x, "rnn_cell"), h, w_ih, w_hh, b_ih, b_hh, nonlinearity)[1]


def lstm_cell(x, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """One LSTM step: (h, c) -> (h', c') with c' = f ⊙ c + i ⊙ g, h' = o ⊙ tanh(c') (gates i, f, g, o)."""
    return lstm_layer(_one_step(x, "lstm_cell"), hx, w_ih, w_hh, b_ih, b_hh)[1]


def gru_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    """One GRU step: h' = (1 − z) ⊙ n + z ⊙ h, n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))."""
    return gru_layer(_one_step(x, "gru_cell"), h, w_ih, w_hh, b_ih, b_hh)[1]
