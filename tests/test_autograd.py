"""The engine's bookkeeping around the graph: a second backward, device moves inside a graph,
no_grad reaching the ops, and random state that resumes bit for bit on every backend."""
from __future__ import annotations

import numpy as np
import pytest

import minitl
import minitl.functional as F
from minitl import backend as mt_backend
from minitl import random as mt_random
from minitl.tensor import Function, Tensor, no_grad, set_hook
from minitl.train import load_checkpoint, save_checkpoint


def _w():
    return Tensor(np.array([2.0, -1.0], dtype=np.float32), requires_grad=True)


# ============================================================================ retain_graph
def test_second_backward_through_a_freed_graph_raises_and_leaves_the_gradients_alone(backend):
    w = _w()
    h = w * 3
    loss = (h * 1).sum()
    loss.backward()
    assert w.grad.numpy().tolist() == [3.0, 3.0]
    with pytest.raises(RuntimeError, match=r"already back-propagated.*retain_graph=True"):
        (h * 1).sum().backward()  # a new graph on top of the freed one
    with pytest.raises(RuntimeError, match="already back-propagated"):
        loss.backward()  # the same graph again
    assert w.grad.numpy().tolist() == [3.0, 3.0], "nothing accumulated by the refused passes"
    assert h.grad is None and not h.is_leaf, "an intermediate never becomes a leaf with a .grad"


def test_retain_graph_back_propagates_twice_and_the_gradients_add_up(backend):
    w = _w()
    h = w * 3
    loss = (h * 1).sum()
    loss.backward(retain_graph=True)
    loss.backward(retain_graph=True)
    assert w.grad.numpy().tolist() == [6.0, 6.0]  # dJ/dw = 3, twice
    assert h.grad is None and not h.is_leaf
    (h * h).sum().backward()  # and a new graph through the retained h: d(Σ h²)/dw = 2h·3 = 18w
    assert w.grad.numpy().tolist() == [6.0 + 36.0, 6.0 - 18.0]


def test_retained_graph_with_shared_subexpressions_matches_the_analytic_gradient():
    x = Tensor(np.array([0.5, -0.3, 1.2]), requires_grad=True, dtype="float64")
    y = (x.exp() * x).sum()  # dy/dx = e^x (1 + x)
    expected = np.exp(x.numpy()) * (1 + x.numpy())
    y.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * expected, rtol=1e-12)


# ============================================================================ device moves inside a graph
def test_to_device_of_a_computed_tensor_is_differentiable():
    w = Tensor(np.array([1.0, 2.0, 3.0], dtype=np.float32), requires_grad=True)  # a leaf on the host
    h = w * w  # computed on the host
    on_device = h.to("fakecuda")
    assert on_device.device == "fakecuda" and on_device.requires_grad and not on_device.is_leaf
    (on_device * 2).sum().backward()  # the loss lives on the device
    assert w.grad.device == "cpu", "the gradient is moved back to where w lives"
    np.testing.assert_array_equal(w.grad.numpy(), 4 * w.numpy())  # d(Σ 2w²)/dw = 4w
    back = (on_device * 1).to("cpu")  # and back again, the other way
    assert not back.is_leaf and back.device == "cpu"


def test_to_device_of_a_leaf_is_a_new_leaf_and_moving_under_no_grad_records_nothing():
    w = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    moved = w.to("fakecuda")
    assert moved.is_leaf and moved.requires_grad and moved.device == "fakecuda"
    with no_grad():
        assert not (w * 2).to("fakecuda").requires_grad


# ============================================================================ no_grad reaches the ops
class _Probe(Function):
    """y = x; records what the engine told forward about the wanted gradients."""

    seen: list = []

    def forward(self, x):
        _Probe.seen.append(self.needs_input_grad)
        return x.copy()

    def backward(self, g):
        return g


def test_needs_input_grad_is_false_under_no_grad():
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    _Probe.seen = []
    _Probe.apply(x)
    with no_grad():
        _Probe.apply(x)
    assert _Probe.seen == [(True,), (False,)]


def test_conv_under_no_grad_keeps_no_column_matrix():
    rng = np.random.default_rng(0)
    x = Tensor(rng.normal(size=(1, 2, 5, 5)).astype(np.float32))
    w = Tensor(rng.normal(size=(3, 2, 3, 3)).astype(np.float32), requires_grad=True)
    kept = []
    previous = set_hook(lambda kind, fn, *rest: kept.append(fn) if kind == "forward" else None)
    try:
        with no_grad():
            F.conv2d(x, w, padding=1)
    finally:
        set_hook(previous)
    (conv,) = [fn for fn in kept if type(fn).__name__.lower().startswith("conv")]
    assert conv.col is None and conv.x is None and conv.weight is None


# ============================================================================ random state, every backend
def _draws(x, n=3):
    return [mt_backend.to_numpy(mt_random.uniform_like(x.data)) for _ in range(n)]


def test_random_state_resumes_the_same_draws_bitwise(backend):
    x = minitl.zeros(4, 5)
    mt_random.manual_seed(7)
    mt_random.uniform_like(x.data)  # the generators have drawn before the checkpoint
    state = mt_random.get_state()
    expected = _draws(x)
    mask = F.dropout(minitl.ones(6, 6), 0.5, training=True).numpy()

    mt_random.manual_seed(99)  # another seed, other draws, then the restore
    _draws(x)
    mt_random.set_state(state)
    assert all(np.array_equal(a, b) for a, b in zip(_draws(x), expected))
    assert np.array_equal(F.dropout(minitl.ones(6, 6), 0.5, training=True).numpy(), mask)


def test_random_state_survives_a_checkpoint_in_a_fresh_process(backend, tmp_path):
    x = minitl.zeros(8)
    mt_random.manual_seed(3)
    mt_random.uniform_like(x.data)
    save_checkpoint(tmp_path / "c.npz", {"rng": mt_random.get_state()})
    expected = mt_backend.to_numpy(mt_random.uniform_like(x.data))
    mt_random._device_generators.clear()  # a fresh process: no device generator made yet
    mt_random.manual_seed(0)
    mt_random.set_state(load_checkpoint(tmp_path / "c.npz")["rng"])
    assert np.array_equal(mt_backend.to_numpy(mt_random.uniform_like(x.data)), expected)


def test_a_bare_host_state_from_an_older_checkpoint_still_restores_the_host_generator():
    mt_random.manual_seed(5)
    old = mt_random.generator().bit_generator.state
    expected = mt_random.generator().random(4)
    mt_random.manual_seed(6)
    mt_random.set_state(old)
    assert np.array_equal(mt_random.generator().random(4), expected)


# ============================================================================ retain_graph through every layer kind
def test_retain_graph_through_conv_bn_pool_attention_layers_gives_twice_the_gradient(backend):
    """Back-propagating a retained graph twice must add exactly the same gradient again: no backward
    may free or change what it saved (the convolution once dropped its column matrix in backward)."""
    from minitl import nn, random as mt_random

    mt_random.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(4, 4, 3, stride=2, padding=1, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
                        nn.Dropout(0.3), nn.Linear(4, 3))
    encoder = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.2)
    rng = np.random.default_rng(0)
    cases = [(cnn, Tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))),
             (encoder, Tensor(rng.standard_normal((2, 5, 8)).astype(np.float32)))]
    for model, x in cases:
        model.train()
        loss = (model(x) ** 2).sum()
        loss.backward(retain_graph=True)
        once = [p.grad.numpy().copy() for p in model.parameters()]
        loss.backward()
        for p, g in zip(model.parameters(), once):
            np.testing.assert_allclose(p.grad.numpy(), 2 * g, rtol=1e-5, atol=1e-6)
