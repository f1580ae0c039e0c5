"""RNN, LSTM and GRU modules: layers × directions of the recurrent functions, PyTorch's names and init.

Parameters per layer k (and ``_reverse`` for the backward direction), exactly PyTorch's:
``weight_ih_l{k}`` (G·H, I_k), ``weight_hh_l{k}`` (G·H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}`` (G·H,),
I_0 = input_size, I_k = H · directions; G = 1, 4 (i, f, g, o), 3 (r, z, n).  A PyTorch state_dict
loads 1:1.  Every parameter starts U(−1/√H, 1/√H), as PyTorch's ``reset_parameters``.

Layer k+1 reads layer k's outputs (both directions concatenated), with dropout between layers in
training mode (not after the last).  ``forward(x, hx=None, lengths=None)``: x (T, N, I), or
(N, T, I) with ``batch_first``; ``lengths`` (N integers) marks the padding, which then neither
changes a state nor receives gradient, and outputs 0 there — PyTorch's packed-sequence results.
Returns (output (T, N, D·H), h_n (L·D, N, H)); the LSTM returns (output, (h_n, c_n)).
"""
from __future__ import annotations

import math

import numpy

from .. import functional as F
from ..tensor import Tensor, concatenate, stack
from . import init
from .module import Module, Parameter

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


class RNNBase(Module):
    """The shared wiring of RNN, LSTM and GRU: parameters, layers, directions, dropout, lengths."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype=numpy.float32, device=None):
        super().__init__()
        if hidden_size < 1 or num_layers < 1 or input_size < 1:
            raise ValueError(f"{type(self).__name__}: input_size, hidden_size and num_layers must be positive, "
                             f"got {input_size}, {hidden_size}, {num_layers}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{type(self).__name__}: dropout must be in [0, 1], got {dropout}")
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, float(dropout), bidirectional
        gates, directions = _GATES[mode], 2 if bidirectional else 1
        bound = 1 / math.sqrt(hidden_size)
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for suffix in ("", "_reverse")[:directions]:
                shapes = {"weight_ih": (gates * hidden_size, layer_input), "weight_hh": (gates * hidden_size, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(gates * hidden_size,), bias_hh=(gates * hidden_size,))
                for name, shape in shapes.items():
                    param = Parameter(numpy.empty(shape, dtype=dtype), device=device)
                    init.uniform_(param, -bound, bound)
                    setattr(self, f"{name}_l{layer}{suffix}", param)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _weights(self, layer, suffix):
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if self.bias else ("weight_ih", "weight_hh")
        weights = [getattr(self, f"{name}_l{layer}{suffix}") for name in names]
        return weights + [None] * (4 - len(weights))

    def _run(self, x, states, suffix_layer, lengths):
        """One direction of one layer: (outputs, final states)."""
        w_ih, w_hh, b_ih, b_hh = self._weights(*suffix_layer)
        reverse = suffix_layer[1] == "_reverse"
        if self.mode == "LSTM":
            return F.lstm_layer(x, states, w_ih, w_hh, b_ih, b_hh, lengths=lengths, reverse=reverse)
        if self.mode == "GRU":
            y, h = F.gru_layer(x, states[0], w_ih, w_hh, b_ih, b_hh, lengths=lengths, reverse=reverse)
        else:
            nonlinearity = "relu" if self.mode == "RNN_RELU" else "tanh"
            y, h = F.rnn_layer(x, states[0], w_ih, w_hh, b_ih, b_hh, nonlinearity, lengths=lengths, reverse=reverse)
        return y, (h,)

    def forward(self, x: Tensor, hx=None, lengths=None):
        unbatched = x.ndim == 2
        if unbatched:
            x = x.reshape(x.shape[0], 1, x.shape[1])
        elif x.ndim != 3:
            raise ValueError(f"{type(self).__name__}: input must be 3-D (T, N, I) or 2-D (T, I), got shape {x.shape}")
        elif self.batch_first:
            x = x.transpose(0, 1)
        if x.shape[2] != self.input_size:
            raise ValueError(f"{type(self).__name__}: input has {x.shape[2]} features, expected {self.input_size}")
        n_states = 2 if self.mode == "LSTM" else 1
        initial = self._initial_states(hx, n_states, x.shape[1], unbatched)
        finals = [[] for _ in range(n_states)]
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0 and self.training:
                x = F.dropout(x, self.dropout, True)
            outputs = []
            for d, suffix in enumerate(("", "_reverse")[: self.num_directions]):
                k = layer * self.num_directions + d
                states = tuple(None if s is None else s[k] for s in initial)
                y, last = self._run(x, states, (layer, suffix), lengths)
                outputs.append(y)
                for store, state in zip(finals, last):
                    store.append(state)
            x = outputs[0] if len(outputs) == 1 else concatenate(outputs, axis=2)
        output = x
        finals = [stack(store, axis=0) for store in finals]
        if unbatched:
            output = output.reshape(output.shape[0], output.shape[2])
            finals = [f.reshape(f.shape[0], f.shape[2]) for f in finals]
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, (tuple(finals) if n_states == 2 else finals[0])

    def _initial_states(self, hx, n_states, batch, unbatched):
        if hx is None:
            return (None,) * n_states
        states = tuple(hx) if n_states == 2 else (hx,)
        if len(states) != n_states:
            raise ValueError(f"{type(self).__name__}: hx must be (h_0, c_0)")
        expected = (self.num_layers * self.num_directions, batch, self.hidden_size)
        out = []
        for s in states:
            if unbatched and s is not None and s.ndim == 2:
                s = s.reshape(s.shape[0], 1, s.shape[1])
            if s is not None and s.shape != expected:
                raise ValueError(f"{type(self).__name__}: initial state must be {expected} "
                                 f"(layers·directions, N, H), got {s.shape}")
            out.append(s)
        return tuple(out)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            text += ", nonlinearity='relu'"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)}"
        return text


class RNN(RNNBase):
    """Elman RNN: h_t = f(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh), f = tanh (default) or ReLU."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", **options):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size,
                         num_layers, **options)


class LSTM(RNNBase):
    """LSTM: c_t = f ⊙ c_{t−1} + i ⊙ g, h_t = o ⊙ tanh(c_t); gates i, f, g, o (PyTorch's row order)."""

    def __init__(self, input_size, hidden_size, num_layers=1, **options):
        super().__init__("LSTM", input_size, hidden_size, num_layers, **options)


class GRU(RNNBase):
    """GRU: h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}, n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)); gates r, z, n."""

    def __init__(self, input_size, hidden_size, num_layers=1, **options):
        super().__init__("GRU", input_size, hidden_size, num_layers, **options)
