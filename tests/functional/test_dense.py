"""The dense layer y = x Wᵀ + b and dropout: forward against NumPy, backward against float64 finite
differences, PyTorch one-liners."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minitl
import minitl.functional as F
from _opcheck import DTYPES, against_torch, arrays, assert_forward, check_grad, floats, tensor, with_backend


@with_backend
@given(dtype=DTYPES, batch=st.lists(st.integers(1, 3), max_size=2), n_in=st.integers(1, 4),
       n_out=st.integers(1, 4), bias=st.booleans(), data=st.data())
def test_linear(backend, dtype, batch, n_in, n_out, bias, data):
    x = data.draw(arrays(dtype, (*batch, n_in)))
    w = data.draw(arrays(dtype, (n_out, n_in)))
    b = data.draw(arrays(dtype, (n_out,)))
    # the neuron h_j = w_jᵀ x + b_j, one output unit at a time
    expected = np.zeros((*batch, n_out))
    for j in range(n_out):
        expected[..., j] = (x.astype(np.float64) * w[j]).sum(axis=-1) + (b[j] if bias else 0.0)
    out = F.linear(tensor(x), tensor(w), tensor(b) if bias else None)
    assert_forward(out, expected, dtype, rtol=1e-5 if dtype == np.float32 else 1e-11, atol=1e-5)
    if bias:
        check_grad(F.linear, x, w, b)
    else:
        check_grad(F.linear, x, w)


@pytest.mark.parametrize("batch,n_in,n_out", [(2, 5, 16), (1, 3, 4), (16, 5, 2), (8, 7, 32)])
def test_linear_small_batch_and_large_batch_paths(backend, batch, n_in, n_out):
    """A batch much smaller than the layer takes the (W xᵀ)ᵀ route on NumPy: same values, row-major result."""
    rng = np.random.default_rng(batch)
    x, w, b = rng.normal(size=(batch, n_in)), rng.normal(size=(n_out, n_in)), rng.normal(size=n_out)
    out = F.linear(tensor(x), tensor(w), tensor(b))
    assert_forward(out, np.einsum("ni,oi->no", x, w) + b)
    if backend == "numpy":
        assert out.data.flags.c_contiguous
    check_grad(F.linear, x, w, b)


def test_linear_names_the_shapes_on_mismatch():
    with pytest.raises(ValueError, match=r"input has 3 features \(shape \(2, 3\)\).*weight shape \(5, 4\)"):
        F.linear(minitl.Tensor(np.zeros((2, 3))), minitl.Tensor(np.zeros((5, 4))))


def test_linear_frozen_weight_gets_no_gradient(backend):
    x = tensor(np.ones((2, 3)), requires_grad=True)
    w = tensor(np.ones((4, 3)))
    F.linear(x, w, tensor(np.zeros(4))).sum().backward()
    assert w.grad is None
    np.testing.assert_allclose(x.grad.numpy(), np.full((2, 3), 4.0))


def test_linear_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(2, 5, 3)), rng.normal(size=(4, 3)), rng.normal(size=4)
    against_torch(F.linear, torch.nn.functional.linear, x, w, b)
    against_torch(F.linear, torch.nn.functional.linear, *(a.astype(np.float32) for a in (x, w, b)), rtol=1e-5)


# ============================================================================ dropout
@with_backend
@given(dtype=DTYPES, p=st.sampled_from([0.1, 0.5, 0.8]), data=st.data())
def test_dropout_keeps_or_zeroes_and_scales(backend, dtype, p, data):
    x = data.draw(arrays(dtype, (4, 5), floats(0.5, 2.0)))  # nonzero, so a dropped unit is visible
    out = F.dropout(tensor(x), p=p, training=True).numpy()
    kept = out != 0
    np.testing.assert_allclose(out[kept], x[kept] / dtype(1 - p), rtol=1e-6)
    assert out.dtype == dtype
    check_grad(lambda t: F.dropout(t, p=p, training=True), x)  # gradcheck reseeds: the same mask each time


def test_dropout_gradient_is_the_mask_over_keep_probability(backend):
    x = tensor(np.ones((50, 40)), requires_grad=True)
    y = F.dropout(x, p=0.3)
    y.backward(np.ones((50, 40)))
    np.testing.assert_allclose(x.grad.numpy(), y.numpy())  # y = mask/(1−p) for x = 1


def test_dropout_keeps_about_1_minus_p_and_preserves_the_mean():
    x = minitl.Tensor(np.ones((400, 500), dtype=np.float32))
    out = F.dropout(x, p=0.3).numpy()
    kept = (out != 0).mean()
    # 200,000 Bernoulli(0.7) draws: std of the fraction ≈ 0.001; allow 5 sigma
    assert abs(kept - 0.7) < 0.005
    assert abs(out.mean() - 1.0) < 0.01


def test_dropout_identity_cases_and_bad_p(backend):
    x = tensor(np.arange(6.0).reshape(2, 3))
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="dropout probability"):
        F.dropout(x, 1.5)


def test_dropout_is_reproducible_under_a_seed():
    x = minitl.Tensor(np.ones((8, 8)))
    minitl.manual_seed(11)
    a = F.dropout(x, 0.5).numpy()
    b = F.dropout(x, 0.5).numpy()
    minitl.manual_seed(11)
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), a)
    assert not np.array_equal(a, b)


@with_backend
@given(dtype=DTYPES, sizes=st.lists(st.integers(1, 4), min_size=1, max_size=3), lead=st.sampled_from([(3,), (2, 3)]),
       bias=st.booleans(), data=st.data())
def test_linear_concat_is_the_concatenation_of_linears(backend, dtype, sizes, lead, bias, data):
    x = data.draw(arrays(dtype, lead + (3,)))
    weights = [data.draw(arrays(dtype, (s, 3))) for s in sizes]
    biases = [data.draw(arrays(dtype, (s,))) for s in sizes] if bias else None
    expected = np.concatenate([x.astype(np.float64) @ w.T.astype(np.float64) + (biases[i] if bias else 0)
                               for i, w in enumerate(weights)], axis=-1)
    out = F.linear_concat(tensor(x), [tensor(w) for w in weights], None if biases is None else
                                [tensor(b) for b in biases])
    assert_forward(out, expected, dtype)
    k = len(sizes)
    check_grad(lambda a, *p: F.linear_concat(a, p[:k], p[k:] or None), x, *weights, *(biases or []))


def test_linear_concat_checks_shapes_and_skips_frozen_weights(backend):
    x = tensor(np.ones((2, 3)), requires_grad=True)
    w1, w2 = tensor(np.ones((2, 3)), requires_grad=True), tensor(np.ones((4, 3)))
    F.linear_concat(x, [w1, w2]).sum().backward()
    assert w1.grad is not None and w2.grad is None and x.grad is not None
    with pytest.raises(ValueError, match="every weight"):
        F.linear_concat(x, [tensor(np.ones((2, 4)))])
    with pytest.raises(ValueError, match="biases"):
        F.linear_concat(x, [w1], [tensor(np.ones(3))])
