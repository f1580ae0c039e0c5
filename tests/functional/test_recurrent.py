"""Recurrent cells and layers: forward against the gate equations written out in NumPy, backward
(backpropagation through time) against float64 finite differences, variable-length batches
against running each sequence alone, on every backend.  PyTorch parity is in tests/nn/test_rnn.py."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minitl
import minitl.functional as F
from _opcheck import DTYPES, arrays, assert_forward, check_grad, floats, tensor, with_backend

GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def _step(mode, x, h, c, w_ih, w_hh, b_ih, b_hh, preactivations=None):
    """The equations of minitl/functional/recurrent.py's docstring, one step, float64 NumPy.
    ``preactivations`` (a list) collects W_x x_t + b_ih + W_h h_{t-1} + b_hh of each step."""
    H = h.shape[1]
    gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    if preactivations is not None:
        preactivations.append(gi + gh)
    if mode == "rnn_tanh":
        return np.tanh(gi + gh), None
    if mode == "rnn_relu":
        return np.maximum(gi + gh, 0), None
    if mode == "lstm":
        a = gi + gh
        i, f, g, o = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), _sigmoid(a[:, 3 * H:])
        c_new = f * c + i * g
        return o * np.tanh(c_new), c_new
    r = _sigmoid(gi[:, :H] + gh[:, :H])
    z = _sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
    n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    return (1 - z) * n + z * h, None


def _off_relu_kink(mode, preactivations, margin=1e-4):
    """ReLU is not differentiable at 0: finite differences (eps 1e-6) straddling the kink disagree
    with any one-sided derivative, so a ReLU-RNN gradient check needs every pre-activation off it."""
    return mode != "rnn_relu" or all(np.abs(a).min() > margin for a in preactivations if a.size)


def _reference_layer(mode, x, h0, c0, w, lengths, reverse, preactivations=None):
    """Each sequence alone, over its own length only (reversed: from its own last step back)."""
    T, N, _ = x.shape
    H = h0.shape[1]
    y = np.zeros((T, N, H))
    hn, cn = h0.copy(), c0.copy()
    for n in range(N):
        h, c = h0[n:n + 1], c0[n:n + 1]
        steps = range(lengths[n])
        for t in (reversed(steps) if reverse else steps):
            h, c_new = _step(mode, x[t, n:n + 1], h, c, *w, preactivations=preactivations)
            c = c_new if c_new is not None else c
            y[t, n] = h[0]
        hn[n], cn[n] = h[0], c[0]
    return y, hn, cn


def _cell(mode, x, h, c, *w):
    if mode == "lstm":
        return F.lstm_cell(x, (h, c), *w)
    if mode == "gru":
        return F.gru_cell(x, h, *w)
    return F.rnn_cell(x, h, *w, nonlinearity=mode[4:])


def _layer(mode, x, h, c, *w, lengths=None, reverse=False):
    if mode == "lstm":
        y, (h, c) = F.lstm_layer(x, (h, c), *w, lengths=lengths, reverse=reverse)
        return y, h, c
    if mode == "gru":
        return F.gru_layer(x, h, *w, lengths=lengths, reverse=reverse) + (None,)
    return F.rnn_layer(x, h, *w, nonlinearity=mode[4:], lengths=lengths, reverse=reverse) + (None,)


def _weights(data, dtype, mode, I, H):
    G = GATES[mode]
    small = floats(-0.8, 0.8)
    return [data.draw(arrays(dtype, shape, small)) for shape in ((G * H, I), (G * H, H), (G * H,), (G * H,))]


@settings(with_backend, max_examples=15)
@given(mode=st.sampled_from(sorted(GATES)), dtype=DTYPES, N=st.integers(1, 3), I=st.integers(1, 3),
       H=st.integers(1, 3), data=st.data())
def test_cell_follows_the_gate_equations_and_gradcheck(backend, mode, dtype, N, I, H, data):
    x, h, c = (data.draw(arrays(dtype, shape)) for shape in ((N, I), (N, H), (N, H)))
    w = _weights(data, dtype, mode, I, H)
    preactivations = []
    expected_h, expected_c = _step(mode, *(a.astype(np.float64) for a in (x, h, c, *w)), preactivations=preactivations)
    assume(_off_relu_kink(mode, preactivations))
    out = _cell(mode, tensor(x), tensor(h), tensor(c), *map(tensor, w))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else {}
    if mode == "lstm":
        assert_forward(out[0], expected_h, dtype, **tol)
        assert_forward(out[1], expected_c, dtype, **tol)
        check_grad(lambda *a: _cell(mode, *a), x, h, c, *w)
    else:
        assert_forward(out, expected_h, dtype, **tol)
        check_grad(lambda x, h, *w: _cell(mode, x, h, None, *w), x, h, *w)


@settings(with_backend, max_examples=10)
@given(mode=st.sampled_from(sorted(GATES)), T=st.integers(1, 4), N=st.integers(1, 3), reverse=st.booleans(),
       data=st.data())
def test_layer_with_lengths_equals_each_sequence_run_alone_and_gradcheck(backend, mode, T, N, reverse, data):
    I, H = 2, 2
    x, h0, c0 = (data.draw(arrays(np.float64, shape)) for shape in ((T, N, I), (N, H), (N, H)))
    w = _weights(data, np.float64, mode, I, H)
    lengths = np.array(data.draw(st.lists(st.integers(0, T), min_size=N, max_size=N)))
    preactivations = []
    y, hn, cn = _reference_layer(mode, x, h0, c0, w, lengths, reverse, preactivations)
    assume(_off_relu_kink(mode, preactivations))
    out = _layer(mode, tensor(x), tensor(h0), tensor(c0), *map(tensor, w), lengths=lengths, reverse=reverse)
    assert_forward(out[0], y)
    assert_forward(out[1], hn)
    if mode == "lstm":
        assert_forward(out[2], cn)
    # backpropagation through time, padding included, against finite differences
    if mode == "lstm":
        check_grad(lambda *a: _layer(mode, *a, lengths=lengths, reverse=reverse), x, h0, c0, *w)
    else:
        check_grad(lambda x, h, *w: _layer(mode, x, h, None, *w, lengths=lengths, reverse=reverse)[:2], x, h0, *w)


@pytest.mark.parametrize("mode", sorted(GATES))
def test_padded_steps_get_no_gradient_and_change_nothing(backend, mode):
    rng = np.random.default_rng(1)
    T, N, I, H = 5, 3, 2, 3
    lengths = np.array([5, 2, 0])
    x = rng.normal(size=(T, N, I))
    w = [a * 0.5 for a in (rng.normal(size=(GATES[mode] * H, I)), rng.normal(size=(GATES[mode] * H, H)),
                           rng.normal(size=GATES[mode] * H), rng.normal(size=GATES[mode] * H))]
    h0 = rng.normal(size=(N, H))
    for reverse in (False, True):
        xt = tensor(x, requires_grad=True)
        y, hn, _ = _layer(mode, xt, tensor(h0), tensor(h0), *map(tensor, w), lengths=lengths, reverse=reverse)
        (y.sum() + hn.sum()).backward()
        pad = np.arange(T)[:, None] >= lengths[None, :]
        assert np.all(xt.grad.numpy()[pad] == 0) and np.any(xt.grad.numpy()[~pad] != 0)
        assert np.all(y.numpy()[pad] == 0)
        np.testing.assert_array_equal(hn.numpy()[2], h0[2])  # length 0: the state never moved
        garbage = x.copy()
        garbage[pad] = 1e3
        y2, hn2, _ = _layer(mode, tensor(garbage), tensor(h0), tensor(h0), *map(tensor, w), lengths=lengths,
                            reverse=reverse)
        np.testing.assert_array_equal(y2.numpy(), y.numpy())
        np.testing.assert_array_equal(hn2.numpy(), hn.numpy())


def test_full_lengths_equal_no_lengths_and_zero_initial_state_by_default(backend):
    rng = np.random.default_rng(2)
    x, w = rng.normal(size=(4, 2, 3)), [rng.normal(size=s) for s in ((16, 3), (16, 4), (16,), (16,))]
    a = F.lstm_layer(tensor(x), None, *map(tensor, w))
    b = F.lstm_layer(tensor(x), (tensor(np.zeros((2, 4))), tensor(np.zeros((2, 4)))), *map(tensor, w), lengths=[4, 4])
    for u, v in zip((a[0], *a[1]), (b[0], *b[1])):
        np.testing.assert_array_equal(u.numpy(), v.numpy())


def test_layer_without_biases_and_frozen_weights(backend):
    rng = np.random.default_rng(3)
    x = tensor(rng.normal(size=(3, 2, 2)), requires_grad=True)
    w_ih, w_hh = tensor(rng.normal(size=(9, 2))), tensor(rng.normal(size=(9, 3)))
    y, h = F.gru_layer(x, None, w_ih, w_hh)
    y.sum().backward()
    assert w_ih.grad is None and w_hh.grad is None and x.grad.shape == (3, 2, 2)
    check_grad(lambda x, a, b: F.gru_layer(x, None, a, b)[0], x.numpy(), w_ih.numpy(), w_hh.numpy())


def test_bad_shapes_and_lengths_are_named():
    x = minitl.Tensor(np.zeros((4, 2, 3)))
    w_ih, w_hh = minitl.Tensor(np.zeros((8, 3))), minitl.Tensor(np.zeros((8, 3)))
    with pytest.raises(ValueError, match=r"weight_hh must be \(4·H, H\)"):
        F.lstm_layer(x, None, w_ih, w_hh)
    with pytest.raises(ValueError, match="lengths must lie in"):
        F.rnn_layer(x, None, minitl.Tensor(np.zeros((2, 3))), minitl.Tensor(np.zeros((2, 2))), lengths=[5, 1])
    with pytest.raises(ValueError, match="lengths must be 2 integers"):
        F.rnn_layer(x, None, minitl.Tensor(np.zeros((2, 3))), minitl.Tensor(np.zeros((2, 2))), lengths=[1.5, 1])
    with pytest.raises(ValueError, match="input must be"):
        F.gru_cell(x, None, minitl.Tensor(np.zeros((6, 3))), minitl.Tensor(np.zeros((6, 2))))
    with pytest.raises(ValueError, match="nonlinearity"):
        F.rnn_layer(x, None, minitl.Tensor(np.zeros((2, 3))), minitl.Tensor(np.zeros((2, 2))), nonlinearity="gelu")


def test_step_loops_run_numpy_blas_on_one_thread_and_restore_it():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from minitl import backend

    def blas_threads():
        return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]

    before = blas_threads()
    with backend.one_blas_thread(np):
        assert set(blas_threads()) == {1}
    assert blas_threads() == before
    import fakecupy
    with backend.one_blas_thread(fakecupy):  # a device backend: nothing to limit
        assert blas_threads() == before
