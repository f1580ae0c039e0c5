"""Losses J(ŷ, y): forward against formulas written with plain loops/NumPy/SciPy, backward against
float64 finite differences, bad input as clear errors, PyTorch one-liners."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st

import minitl
import minitl.functional as F
from _opcheck import DTYPES, against_torch, arrays, assert_forward, check_grad, floats, shapes, tensor, with_backend

REDUCTIONS = st.sampled_from(["mean", "sum", "none"])


def _reduce(per_sample, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction](per_sample)


def _cross_entropy_loops(logits, q):
    """−Σ_c q_c log softmax(z)_c per sample, with explicit loops and a naive (shifted) softmax."""
    out = np.zeros(len(logits))
    for n, z in enumerate(logits.astype(np.float64)):
        m = max(z)
        log_norm = m + np.log(sum(np.exp(v - m) for v in z))
        out[n] = -sum(q[n, c] * (z[c] - log_norm) for c in range(len(z)))
    return out


def _one_hot(target, classes):
    q = np.zeros((len(target), classes))
    q[np.arange(len(target)), target] = 1.0
    return q


@st.composite
def logits_and_classes(draw, dtype=None):
    n, c = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dtype = dtype or draw(DTYPES)
    z = draw(arrays(dtype, (n, c), floats(-6, 6)))
    target = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)), dtype=np.int64)
    return z, target


@with_backend
@given(data=st.data(), reduction=REDUCTIONS, smoothing=st.sampled_from([0.0, 0.1, 0.5]))
def test_cross_entropy_with_class_targets(backend, data, reduction, smoothing):
    z, target = data.draw(logits_and_classes())
    c = z.shape[1]
    q = (1 - smoothing) * _one_hot(target, c) + smoothing / c
    expected = _reduce(_cross_entropy_loops(z, q), reduction)
    out = F.cross_entropy(tensor(z), tensor(target), label_smoothing=smoothing, reduction=reduction)
    assert_forward(out, expected, z.dtype, rtol=1e-5 if z.dtype == np.float32 else 1e-11, atol=1e-6)
    check_grad(lambda t: F.cross_entropy(t, tensor(target), label_smoothing=smoothing, reduction=reduction), z)


@with_backend
@given(data=st.data(), reduction=REDUCTIONS, smoothing=st.sampled_from([0.0, 0.2]))
def test_cross_entropy_with_probability_targets(backend, data, reduction, smoothing):
    z, _ = data.draw(logits_and_classes())
    raw = data.draw(arrays(np.float64, z.shape, floats(0.01, 1.0)))
    q = (raw / raw.sum(axis=1, keepdims=True)).astype(z.dtype)
    c = z.shape[1]
    expected = _reduce(_cross_entropy_loops(z, (1 - smoothing) * q.astype(np.float64) + smoothing / c), reduction)
    out = F.cross_entropy(tensor(z), tensor(q), label_smoothing=smoothing, reduction=reduction)
    assert_forward(out, expected, z.dtype, rtol=1e-5 if z.dtype == np.float32 else 1e-11, atol=1e-6)
    # gradient with respect to both the logits and the (soft) targets
    check_grad(lambda t, p: F.cross_entropy(t, p, label_smoothing=smoothing, reduction=reduction), z, q)


def test_cross_entropy_gradient_is_softmax_minus_target_over_n(backend):
    z = np.array([[2.0, -1.0, 0.5], [0.0, 0.0, 3.0]])
    target = np.array([0, 1])
    t = tensor(z, requires_grad=True)
    F.cross_entropy(t, tensor(target)).backward()
    np.testing.assert_allclose(t.grad.numpy(), (scipy.special.softmax(z, axis=1) - _one_hot(target, 3)) / 2,
                               rtol=1e-12)


def test_cross_entropy_is_stable_for_huge_logits(backend):
    z = tensor(np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 0.0]], dtype=np.float32), requires_grad=True)
    loss = F.cross_entropy(z, tensor(np.array([2, 1])))
    loss.backward()
    assert np.isclose(loss.item(), 2e4 / 2, rtol=1e-6)
    assert np.isfinite(z.grad.numpy()).all()


@with_backend
@given(data=st.data(), reduction=REDUCTIONS)
def test_nll_loss(backend, data, reduction):
    z, target = data.draw(logits_and_classes())
    log_p = scipy.special.log_softmax(z.astype(np.float64), axis=1).astype(z.dtype)
    expected = _reduce(np.array([-log_p[n, target[n]] for n in range(len(target))]), reduction)
    assert_forward(F.nll_loss(tensor(log_p), tensor(target), reduction=reduction), expected, z.dtype)
    check_grad(lambda t: F.nll_loss(t, tensor(target), reduction=reduction), log_p)


def test_nll_loss_repeated_targets_and_gradient(backend):
    log_p = tensor(np.log(np.full((3, 2), 0.5)), requires_grad=True)
    F.nll_loss(log_p, tensor(np.array([1, 1, 0])), reduction="sum").backward()
    np.testing.assert_array_equal(log_p.grad.numpy(), [[0, -1], [0, -1], [-1, 0]])


@with_backend
@given(dtype=DTYPES, data=st.data(), reduction=REDUCTIONS)
def test_mse_loss(backend, dtype, data, reduction):
    shape = data.draw(shapes())
    y_hat, y = data.draw(arrays(dtype, shape)), data.draw(arrays(dtype, shape))
    expected = _reduce((y_hat.astype(np.float64) - y) ** 2, reduction)
    assert_forward(F.mse_loss(tensor(y_hat), tensor(y), reduction=reduction), expected, dtype,
                   rtol=1e-5 if dtype == np.float32 else 1e-11, atol=1e-6)
    check_grad(lambda a, b: F.mse_loss(a, b, reduction=reduction), y_hat, y)


@with_backend
@given(dtype=DTYPES, data=st.data(), reduction=REDUCTIONS)
def test_binary_cross_entropy_with_logits(backend, dtype, data, reduction):
    shape = data.draw(shapes())
    z = data.draw(arrays(dtype, shape, floats(-8, 8)))
    y = data.draw(arrays(dtype, shape, floats(0, 1)))
    p = scipy.special.expit(z.astype(np.float64))
    expected = _reduce(-(y * np.log(p) + (1 - y) * np.log1p(-p)), reduction)
    out = F.binary_cross_entropy_with_logits(tensor(z), tensor(y), reduction=reduction)
    assert_forward(out, expected, dtype, rtol=1e-5 if dtype == np.float32 else 1e-10, atol=1e-6)
    check_grad(lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=reduction), z, y)


def test_bce_with_logits_is_stable_for_huge_logits(backend):
    z = tensor(np.array([1e4, -1e4, 50.0], dtype=np.float32), requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(z, tensor(np.array([0.0, 1.0, 1.0], dtype=np.float32)), reduction="sum")
    loss.backward()
    assert np.isclose(loss.item(), 2e4, rtol=1e-6)
    np.testing.assert_allclose(z.grad.numpy(), [1.0, -1.0, 0.0], atol=1e-7)


def test_bad_inputs_are_clear_errors():
    z = tensor(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        F.cross_entropy(tensor(np.zeros(3)), tensor(np.array([0])))
    with pytest.raises(ValueError, match=r"class targets must have shape \(4,\)"):
        F.cross_entropy(z, tensor(np.array([0, 1])))
    with pytest.raises(ValueError, match="probability targets"):
        F.cross_entropy(z, tensor(np.zeros((4, 2))))
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(z, tensor(np.array([0, 1, 2, 0])), label_smoothing=1.5)
    with pytest.raises(ValueError, match="integer class indices"):
        F.nll_loss(z, tensor(np.zeros((4, 3))))
    with pytest.raises(ValueError, match=r"input shape \(4, 3\) differs from target shape \(4,\)"):
        F.mse_loss(z, tensor(np.zeros(4)))
    with pytest.raises(ValueError, match="differs"):
        F.binary_cross_entropy_with_logits(z, tensor(np.zeros(3)))
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(z, z, reduction="avg")


def test_losses_match_torch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    rng = np.random.default_rng(0)
    z, target = rng.normal(size=(6, 4)) * 3, rng.integers(0, 4, size=6)
    soft = scipy.special.softmax(rng.normal(size=(6, 4)), axis=1)
    against_torch(lambda a, y: F.cross_entropy(a, y), lambda a, y: tf.cross_entropy(a, y), z, target)
    against_torch(lambda a, y: F.cross_entropy(a, y, label_smoothing=0.1),
                  lambda a, y: tf.cross_entropy(a, y, label_smoothing=0.1), z, target)
    against_torch(lambda a, y: F.cross_entropy(a, y, label_smoothing=0.3, reduction="sum"),
                  lambda a, y: tf.cross_entropy(a, y, label_smoothing=0.3, reduction="sum"), z, soft)
    against_torch(lambda a, y: F.cross_entropy(a, y, reduction="none"),
                  lambda a, y: tf.cross_entropy(a, y, reduction="none"), z, target)
    against_torch(lambda a, y: F.nll_loss(F.log_softmax(a), y), lambda a, y: tf.nll_loss(tf.log_softmax(a, 1), y),
                  z, target)
    against_torch(lambda a, b: F.mse_loss(a, b), lambda a, b: tf.mse_loss(a, b), z, z[::-1].copy())
    y01 = rng.uniform(size=z.shape)
    against_torch(lambda a, b: F.binary_cross_entropy_with_logits(a, b),
                  lambda a, b: tf.binary_cross_entropy_with_logits(a, b), z, y01)
    against_torch(lambda a, y: F.cross_entropy(a, y), lambda a, y: tf.cross_entropy(a, y),
                  z.astype(np.float32), target, rtol=1e-5)


def test_loss_of_float32_logits_stays_float32():
    z = minitl.Tensor(np.zeros((2, 3), dtype=np.float32))
    assert F.cross_entropy(z, minitl.Tensor(np.array([0, 1]))).dtype == np.float32
    assert F.cross_entropy(z, minitl.Tensor(np.array([0, 1])), label_smoothing=0.1).dtype == np.float32
    assert F.mse_loss(z, np.ones((2, 3))).dtype == np.float32


@with_backend
@given(data=st.data(), reduction=REDUCTIONS, smoothing=st.sampled_from([0.0, 0.2]))
def test_cross_entropy_ignore_index_is_the_mean_over_labelled_examples(backend, data, reduction, smoothing):
    z, target = data.draw(logits_and_classes())
    drop = np.array(data.draw(st.lists(st.booleans(), min_size=len(target), max_size=len(target))))
    target = np.where(drop, -1, target)
    labelled = target != -1
    c = z.shape[1]
    q = (1 - smoothing) * _one_hot(np.where(labelled, target, 0), c) + smoothing / c
    per = np.where(labelled, _cross_entropy_loops(z, q), 0.0)
    expected = {"mean": per.sum() / max(labelled.sum(), 1), "sum": per.sum(), "none": per}[reduction]
    out = F.cross_entropy(tensor(z), tensor(target), label_smoothing=smoothing, reduction=reduction, ignore_index=-1)
    assert_forward(out, expected, z.dtype, rtol=1e-5 if z.dtype == np.float32 else 1e-11, atol=1e-6)
    fn = lambda t: F.cross_entropy(t, tensor(target), label_smoothing=smoothing, reduction=reduction, ignore_index=-1)  # noqa: E731
    check_grad(fn, z)
    t = tensor(z.astype(np.float64), requires_grad=True)
    out = fn(t)
    out.backward(np.ones(out.shape))
    assert not np.any(t.grad.numpy()[~labelled]), "an unlabelled example got a gradient"


def test_cross_entropy_ignore_index_errors_and_empty_batch():
    z = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="ignore_index"):
        F.cross_entropy(minitl.Tensor(z), minitl.Tensor(np.array([0, 5])), ignore_index=-1)
    with pytest.raises(ValueError, match="ignore_index"):
        F.cross_entropy(minitl.Tensor(z), minitl.Tensor(np.array([0, -2])), ignore_index=-1)
    t = minitl.Tensor(z, requires_grad=True)
    loss = F.cross_entropy(t, minitl.Tensor(np.array([-1, -1])), ignore_index=-1)
    loss.backward()
    assert loss.item() == 0.0 and not np.any(t.grad.numpy())


def test_cross_entropy_ignore_index_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    z = rng.standard_normal((7, 4)).astype(np.float32)
    target = np.array([0, -1, 3, 2, -1, 1, 3])
    for kwargs in ({}, {"label_smoothing": 0.1}, {"reduction": "sum"}):
        against_torch(lambda a, y: F.cross_entropy(a, y, ignore_index=-1, **kwargs),
                      lambda a, y: torch.nn.functional.cross_entropy(a, y, ignore_index=-1, **kwargs), z, target)
