"""Activations h = f(a) and softmax: forward against SciPy/NumPy formulas over hypothesis-drawn
shapes, dtypes and values; backward against float64 finite differences; PyTorch one-liners."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st

import minitl
import minitl.functional as F
from _opcheck import DTYPES, against_torch, arrays, assert_forward, away_from_zero, check_grad, floats, shapes, tensor, with_backend


def _gelu_exact(x):
    return x * 0.5 * (1 + scipy.special.erf(x / math.sqrt(2)))


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


ACTIVATIONS = {  # name: (minitl call, reference in float64, elements (away from kinks))
    "sigmoid": (F.sigmoid, scipy.special.expit, floats(-6, 6)),
    "tanh": (F.tanh, np.tanh, floats(-4, 4)),
    "relu": (F.relu, lambda x: np.where(x > 0, x, 0.0), away_from_zero(0.01)),
    "leaky_relu": (F.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x), away_from_zero(0.01)),
    "leaky_relu-0.2": (lambda t: F.leaky_relu(t, negative_slope=0.2), lambda x: np.where(x > 0, x, 0.2 * x),
                       away_from_zero(0.01)),
    "relu6": (F.relu6, lambda x: np.clip(x, 0.0, 6.0),
              floats(-8, 8).filter(lambda v: abs(v) > 0.01 and abs(v - 6) > 0.01)),
    "gelu": (F.gelu, _gelu_exact, floats(-4, 4)),
    "gelu-tanh": (lambda t: F.gelu(t, approximate="tanh"), _gelu_tanh, floats(-4, 4)),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
@with_backend
@given(dtype=DTYPES, data=st.data())
def test_activation(backend, name, dtype, data):
    fn, reference, elements = ACTIVATIONS[name]
    x = data.draw(arrays(dtype, data.draw(shapes()), elements))
    expected = reference(x.astype(np.float64))
    assert_forward(fn(tensor(x)), expected, dtype, rtol=1e-5 if dtype == np.float32 else 1e-12,
                   atol=1e-6 if dtype == np.float32 else 1e-14)
    check_grad(fn, x)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "leaky_relu", "gelu", "gelu-tanh"])
def test_activations_are_finite_in_the_tails(backend, name):
    fn, reference, _ = ACTIVATIONS[name]
    x = np.array([-1e4, -100.0, -30.0, 30.0, 100.0, 1e4], dtype=np.float32)
    t = tensor(x, requires_grad=True)
    with np.errstate(over="raise", invalid="raise"):
        out = fn(t)
        out.sum().backward()
    np.testing.assert_allclose(out.numpy(), reference(x.astype(np.float64)), rtol=1e-6, atol=1e-38)
    assert np.isfinite(t.grad.numpy()).all()


def test_relu_gradient_at_zero_is_zero(backend):
    x = tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
    F.relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 1.0])


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(tensor(np.zeros(2)), approximate="erf")


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@with_backend
@given(dtype=DTYPES, data=st.data())
def test_softmax_and_log_softmax(backend, name, dtype, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=4))
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(arrays(dtype, shape, floats(-5, 5)))
    reference = getattr(scipy.special, name)(x.astype(np.float64), axis=dim)
    out = getattr(F, name)(tensor(x), dim=dim)
    assert_forward(out, reference, dtype, rtol=2e-5 if dtype == np.float32 else 1e-11, atol=1e-6 if dtype == np.float32 else 1e-13)
    check_grad(lambda t: getattr(F, name)(t, dim=dim), x)


def test_softmax_is_stable_for_huge_logits(backend):
    x = np.array([[1000.0, 0.0, -1000.0], [1e4, 1e4, 1e4]], dtype=np.float32)
    np.testing.assert_allclose(F.softmax(tensor(x)).numpy(), [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-7)
    np.testing.assert_allclose(F.log_softmax(tensor(x)).numpy(),
                               [[0, -1000, -2000], [-math.log(3)] * 3], rtol=1e-6)
    rows = F.softmax(tensor(np.random.default_rng(0).normal(size=(5, 7)) * 50), dim=1).numpy().sum(axis=1)
    np.testing.assert_allclose(rows, 1.0, rtol=1e-12)


def test_activations_match_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(4, 6)) * 3
    tf = torch.nn.functional
    against_torch(F.sigmoid, torch.sigmoid, x)
    against_torch(F.tanh, torch.tanh, x)
    against_torch(F.relu, tf.relu, x)
    against_torch(F.relu6, tf.relu6, x * 4)
    against_torch(lambda t: F.leaky_relu(t, 0.1), lambda t: tf.leaky_relu(t, 0.1), x)
    against_torch(F.gelu, tf.gelu, x)
    against_torch(lambda t: F.gelu(t, approximate="tanh"), lambda t: tf.gelu(t, approximate="tanh"), x)
    against_torch(lambda t: F.softmax(t, dim=0), lambda t: tf.softmax(t, dim=0), x)
    against_torch(lambda t: F.log_softmax(t, dim=-1), lambda t: tf.log_softmax(t, dim=-1), x)
    against_torch(F.relu, tf.relu, x.astype(np.float32), rtol=1e-6)
    against_torch(F.gelu, tf.gelu, x.astype(np.float32), rtol=1e-5, atol=1e-6)


def test_float32_erf_is_within_5e_7_of_float64_and_gelu_blocks_match_the_formula():
    """The rational erf (minitl.functional.erf) against SciPy's float64 erf on a dense grid of [−6, 6];
    the blocked float32 GELU forward/backward over several blocks (and a ragged last one) against the
    float64 formula."""
    from minitl.functional import erf as fast

    grid = np.linspace(-6, 6, 400_001).astype(np.float32)
    assert np.abs(fast.erf(grid) - scipy.special.erf(grid.astype(np.float64))).max() < 5e-7
    x = (np.random.default_rng(0).standard_normal(2 * fast.BLOCK + 123) * 2.5).astype(np.float32)
    g = np.random.default_rng(1).standard_normal(x.size).astype(np.float32)
    t = minitl.Tensor(x, requires_grad=True)
    y = F.gelu(t)
    y.backward(minitl.Tensor(g))
    x64 = x.astype(np.float64)
    cdf = 0.5 * (1 + scipy.special.erf(x64 / math.sqrt(2)))
    np.testing.assert_allclose(y.numpy(), x64 * cdf, rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(t.grad.numpy(), g * (cdf + x64 * np.exp(-x64 ** 2 / 2) / math.sqrt(2 * math.pi)),
                               rtol=1e-5, atol=2e-6)
