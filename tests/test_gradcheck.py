"""minitl.gradcheck must catch wrong gradients (else every backward test built on it is hollow)."""
from __future__ import annotations

import numpy as np
import pytest

import minitl
import minitl.functional as F
from minitl import random as mt_random
from minitl.gradcheck import GradcheckError, GradcheckResult
from minitl.tensor import Function


class SquareWrongFactor(Function):
    """y = x²  with a backward off by a factor (3x instead of 2x)."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, g):
        return g * 3 * self.x


class IdentityTransposedGrad(Function):
    """y = x (square matrix) with the gradient transposed: invisible to a sum (all-ones) projection."""

    def forward(self, x):
        return x.copy()

    def backward(self, g):
        return g.T


class MulForgetsSecond(Function):
    """y = a * b but backward gives b's gradient as zero-shaped garbage (wrong sign)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        return g * self.b, -g * self.a


class NoGradForInput(Function):
    """y = 2x whose backward returns None although x requires grad."""

    def forward(self, x):
        return 2 * x

    def backward(self, g):
        return None


def _t(array, requires_grad=True):
    return minitl.Tensor(np.asarray(array, dtype=np.float64), requires_grad=requires_grad)


def test_passes_on_a_correct_gradient(backend):
    x = _t(np.random.default_rng(0).normal(size=(3, 4)))
    result = minitl.gradcheck(lambda t: (t * t).sum(axis=1), [x])
    assert isinstance(result, GradcheckResult) and result.ok and bool(result)
    assert result.inputs[0].max_abs_error < 1e-7


def test_wrong_factor_is_caught_with_input_and_worst_element_named(backend):
    values = np.array([[0.5, -1.0, 2.0], [0.1, 3.0, -0.2]])
    x = _t(values)
    with pytest.raises(GradcheckError) as info:
        minitl.gradcheck(lambda weights: SquareWrongFactor.apply(weights), {"weights": x}, seed=3)
    report = info.value.result.inputs[0]
    assert report.name == "weights" and not report.ok
    message = str(info.value)
    assert "weights" in message and "worst element" in message and "MISMATCH" in message
    # the worst element is where |3x v − 2x v| = |x v| is largest; the report's numbers must be that element's
    i = report.worst_index
    assert np.isclose(report.analytic, 1.5 * report.numeric, rtol=1e-6)
    v = np.random.default_rng(3).standard_normal(values.shape)  # gradcheck's upstream gradient for seed 3
    assert np.isclose(report.numeric, 2 * values[i] * v[i], rtol=1e-6)
    excess = np.abs(values * v) / (1e-5 + 1e-4 * np.abs(2 * values * v))
    assert i == np.unravel_index(np.argmax(excess), values.shape)


def test_transposed_gradient_is_caught_thanks_to_the_random_projection(backend):
    x = _t(np.random.default_rng(1).normal(size=(3, 3)))
    # the all-ones projection (backward of .sum()) cannot see the transpose ...
    IdentityTransposedGrad.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.ones((3, 3)))
    x.grad = None
    # ... a random upstream gradient can
    with pytest.raises(GradcheckError):
        minitl.gradcheck(lambda t: IdentityTransposedGrad.apply(t), [x])


def test_every_differentiable_input_is_checked(backend):
    a, b = _t([1.0, 2.0, -3.0]), _t([0.5, -1.5, 2.5])
    with pytest.raises(GradcheckError) as info:
        minitl.gradcheck(lambda p, q: MulForgetsSecond.apply(p, q), [a, b])
    first, second = info.value.result.inputs
    assert first.ok and not second.ok
    assert "input 1" in str(info.value)


def test_inputs_without_requires_grad_are_not_checked_and_ints_pass_through(backend):
    logits = _t(np.random.default_rng(2).normal(size=(4, 3)))
    target = minitl.Tensor(np.array([0, 2, 1, 2]))
    frozen = _t(np.ones((4, 3)), requires_grad=False)
    result = minitl.gradcheck(lambda z, y, c: F.cross_entropy(z * c, y), [logits, target, frozen])
    assert [r.name for r in result.inputs] == ["input 0"]


def test_nothing_to_check_is_an_error():
    with pytest.raises(ValueError, match="requires_grad"):
        minitl.gradcheck(lambda t: t * 2, [_t([1.0], requires_grad=False)])


def test_missing_gradient_counts_as_zero_and_fails_when_the_output_depends_on_it():
    x = _t([1.0, 2.0])
    result = minitl.gradcheck(lambda t: NoGradForInput.apply(t), [x], raise_exception=False)
    assert not result and "no gradient" in result.describe()
    unused = _t([3.0])
    ok = minitl.gradcheck(lambda t, u: t * 2.0, [x, unused])  # u truly has zero gradient
    assert ok.inputs[1].ok


def test_float32_inputs_are_checked_in_float64():
    x = minitl.Tensor(np.random.default_rng(4).normal(size=(5,)).astype(np.float32), requires_grad=True)
    dtypes = []

    def f(t):
        dtypes.append(t.dtype)
        return t.exp()

    assert minitl.gradcheck(f, [x])
    assert set(dtypes) == {np.dtype(np.float64)}
    assert x.dtype == np.float32 and x.grad is None, "the caller's tensor is left alone"


def test_random_ops_see_the_same_mask_and_the_generator_is_restored():
    x = _t(np.random.default_rng(5).normal(size=(6, 4)))
    mt_random.manual_seed(123)
    before = mt_random.get_state()
    assert minitl.gradcheck(lambda t: F.dropout(t, 0.5, training=True) * t, [x])
    assert mt_random.get_state() == before


def test_multiple_outputs_are_all_projected():
    x = _t([0.3, -0.7, 1.1])
    assert minitl.gradcheck(lambda t: (t.exp(), t * t), [x])
    with pytest.raises(GradcheckError):
        minitl.gradcheck(lambda t: (t.exp(), SquareWrongFactor.apply(t)), [x])
