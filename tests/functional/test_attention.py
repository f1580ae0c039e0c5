"""Attention: masked softmax, scaled dot-product attention O = softmax(Q Kᵀ/√d + M) V, multi-head attention.

Forward against the query-by-query float64 loop reference (padding masks, fully masked rows ->
0 and no NaN), backward by float64 gradcheck of Q, K, V (with dropout: the same mask each
evaluation), dropout's keep-rate and scaling, and PyTorch's scaled_dot_product_attention and
a multi-head attention written from torch primitives."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minitl
import minitl.functional as F
from _opcheck import DTYPES, arrays, assert_forward, check_grad, floats, tensor, with_backend
from minitl.functional.attention import _attention_reference

FEW = settings(with_backend, max_examples=15)  # the loop reference and gradcheck are slow: fewer, richer draws
SHAPES = st.sampled_from([((2, 3, 4), (2, 5, 4), (2, 5, 3)), ((1, 2, 2, 3), (1, 2, 4, 3), (1, 2, 4, 2)),
                          ((3, 2), (4, 2), (4, 1)), ((2, 1, 3, 2), (2, 1, 3, 2), (2, 1, 3, 2))])


def _padding_mask(data, batch_shape, tk):
    """Additive (…, 1, Tk) mask: key positions past a drawn length are −∞."""
    keep = np.ones(batch_shape + (1, tk), dtype=bool)
    for idx in np.ndindex(*batch_shape):
        keep[idx + (0,)][data.draw(st.integers(0, tk)):] = False  # length 0: a fully masked row
    return np.where(keep, 0.0, -np.inf)


@settings(FEW)
@given(shapes=SHAPES, dtype=DTYPES, masked=st.booleans(), data=st.data())
def test_attention_forward_and_gradcheck(backend, shapes, dtype, masked, data):
    q, k, v = (data.draw(arrays(dtype, s, floats(-2, 2))) for s in shapes)
    mask = _padding_mask(data, q.shape[:-2], k.shape[-2]).astype(dtype) if masked else None
    with np.errstate(invalid="raise"):
        out = F.scaled_dot_product_attention(tensor(q), tensor(k), tensor(v), mask)
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)
    assert_forward(out, _attention_reference(q, k, v, mask), dtype, **tol)
    check_grad(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, mask), q, k, v)


@settings(FEW)
@given(data=st.data())
def test_attention_gradcheck_with_dropout(backend, data):
    q, k, v = (data.draw(arrays(np.float64, (2, 3, 4))) for _ in range(3))
    check_grad(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, dropout_p=0.3), q, k, v)


def test_attention_dropout_keeps_expected_fraction_and_rescales(backend):
    minitl.manual_seed(1)
    q = tensor(np.zeros((1, 200, 2), np.float32))
    v = tensor(np.ones((1, 200, 1), np.float32))
    out = F.scaled_dot_product_attention(q, q, v, dropout_p=0.25).numpy()  # uniform weights 1/200
    assert abs(out.mean() - 1.0) < 0.02  # E[Z/(1-p)] = 1
    np.testing.assert_allclose(F.scaled_dot_product_attention(q, q, v, dropout_p=0.25, training=False).numpy(),
                               np.ones((1, 200, 1), np.float32), rtol=1e-6)


def test_fully_masked_rows_give_zero_and_finite_gradients(backend):
    rng = np.random.default_rng(0)
    q = tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    k = tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    v = tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    mask = np.zeros((2, 1, 3))
    mask[1] = -np.inf
    with np.errstate(invalid="raise", divide="raise"):
        out = F.scaled_dot_product_attention(q, k, v, mask)
        out.sum().backward()
    assert np.all(out.numpy()[1] == 0)
    for t in (q, k, v):
        assert np.isfinite(t.grad.numpy()).all()
    assert np.all(q.grad.numpy()[1] == 0)


@with_backend
@given(dtype=DTYPES, data=st.data())
def test_masked_softmax(backend, dtype, data):
    shape = data.draw(st.sampled_from([(2, 5), (3, 2, 4), (1, 1)]))
    x = data.draw(arrays(dtype, shape, floats(-5, 5)))
    mask = _padding_mask(data, shape[:-2] + (shape[-2] if len(shape) > 1 else 1,), shape[-1]).reshape(
        shape[:-1] + (shape[-1],)) if len(shape) > 1 else None
    out = F.masked_softmax(tensor(x), None if mask is None else mask.astype(dtype))
    z = x.astype(np.float64) + (0 if mask is None else mask)
    with np.errstate(invalid="ignore"):
        expected = np.exp(z - z.max(axis=-1, keepdims=True))
        expected = np.nan_to_num(expected / expected.sum(axis=-1, keepdims=True))
    assert_forward(out, expected, dtype, rtol=2e-5 if dtype == np.float32 else 1e-11, atol=1e-7)
    check_grad(lambda t: F.masked_softmax(t, mask), x)


def test_boolean_mask_is_refused_and_additive_mask_converts(backend):
    keep = np.array([[True, False]])
    with pytest.raises(TypeError, match="additive"):
        F.masked_softmax(tensor(np.zeros((1, 2))), keep)
    np.testing.assert_array_equal(minitl.backend.to_numpy(F.additive_mask(keep)), [[0, -np.inf]])


def test_attention_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 3, 5, 4)) for _ in range(3))
    mask = np.zeros((2, 1, 1, 5))
    mask[0, ..., 3:] = -np.inf
    g = rng.standard_normal((2, 3, 5, 4))
    ours = [tensor(a, requires_grad=True) for a in (q, k, v)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    out = F.scaled_dot_product_attention(*ours, mask)
    ref = torch.nn.functional.scaled_dot_product_attention(*theirs, attn_mask=torch.tensor(mask))
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    out.backward(g)
    ref.backward(torch.tensor(g))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-11)


def _torch_mha(torch, x, weights, heads, mask):
    """Multi-head attention from torch primitives: project, split heads, attend, merge, project."""
    (wq, bq), (wk, bk), (wv, bv), (wo, bo) = weights
    n, t, d = x.shape

    def split(a):
        return a.reshape(n, t, heads, d // heads).transpose(1, 2)

    q, k, v = split(x @ wq.T + bq), split(x @ wk.T + bk), split(x @ wv.T + bv)
    p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads) + mask, dim=-1)
    return (p @ v).transpose(1, 2).reshape(n, t, d) @ wo.T + bo


def test_multi_head_attention_matches_torch_and_gradcheck(backend):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 6))
    weights = [(rng.standard_normal((6, 6)) / 3, rng.standard_normal(6)) for _ in range(4)]
    mask = np.zeros((2, 1, 1, 4))
    mask[1, ..., 2:] = -np.inf
    flat = [a for pair in weights for a in pair]
    ours = [tensor(a, requires_grad=True) for a in [x] + flat]
    out = F.multi_head_attention(ours[0], ours[0], ours[0], 3, *ours[1:], mask=mask)
    theirs = [torch.tensor(a, requires_grad=True) for a in [x] + flat]
    ref = _torch_mha(torch, theirs[0], list(zip(theirs[1::2], theirs[2::2])), 3, torch.tensor(mask))
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(ref.shape)
    out.backward(g)
    ref.backward(torch.tensor(g))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-10)
    check_grad(lambda a, *w: F.multi_head_attention(a, a, a, 2, *w, mask=mask, dropout_p=0.2), x[:, :, :4],
               *[w[:4, :4] if w.ndim == 2 else w[:4] for w in flat])


# ---------------------------------------------------------------- packed self-attention (one Q/K/V GEMM)
def _split_path(x, heads, weights, mask, dropout_p):
    """Multi-head self-attention through separate Q, K, V projections and split/merged heads (the
    generic path: ``key`` is another tensor than ``query``, so F.multi_head_attention does not pack)."""
    return F.multi_head_attention(x, x * 1.0, x * 1.0, heads, *weights, mask=mask, dropout_p=dropout_p)


@settings(FEW)
@given(n=st.integers(1, 3), t=st.integers(1, 5), heads=st.sampled_from([1, 2, 3]), d=st.integers(1, 3),
       dtype=DTYPES, masked=st.sampled_from(["none", "padding", "square"]), dropout=st.sampled_from([0.0, 0.3]),
       cache=st.sampled_from([1, 1 << 20]), data=st.data())
def test_packed_self_attention_equals_the_split_path(backend, monkeypatch, n, t, heads, d, dtype, masked, dropout,
                                                     cache, data):
    """Same outputs and gradients (dropout included, same seed: the same draws in the same order),
    one sequence per chunk or all at once."""
    monkeypatch.setattr(minitl.functional.attention, "_CACHE_ELEMENTS", cache)
    width = heads * d
    x = data.draw(arrays(dtype, (n, t, width), floats(-2, 2)))
    weights = [data.draw(arrays(dtype, shape, floats(-1, 1))) for _ in range(4) for shape in ((width, width), (width,))]
    mask = None
    if masked == "padding":
        mask = _padding_mask(data, (n,), t)[:, None].astype(dtype)  # (N, 1, 1, T), fully masked rows too
    elif masked == "square":
        mask = np.where(np.tril(np.ones((t, t))) > 0, 0.0, -np.inf).astype(dtype)  # (T, T), causal
    grads, outs = [], []
    for path in ("packed", "split"):
        minitl.manual_seed(3)
        inputs = [tensor(a, requires_grad=True) for a in [x] + weights]
        if path == "packed":
            out = F.multi_head_attention(inputs[0], inputs[0], inputs[0], heads, *inputs[1:], mask=mask,
                                         dropout_p=dropout)
        else:
            out = _split_path(inputs[0], heads, inputs[1:], mask, dropout)
        (out * tensor(np.cos(np.arange(out.data.size)).reshape(out.shape).astype(dtype))).sum().backward()
        outs.append(out.numpy())
        grads.append([a.grad.numpy() for a in inputs])
    # float32: the two paths round differently and a weight's gradient sums cancelling terms; float64 is the check
    tol = dict(rtol=1e-3, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(outs[0], outs[1], **tol)
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, **tol)


def test_packed_self_attention_gradcheck_and_reference(backend):
    rng = np.random.default_rng(1)
    y = rng.standard_normal((2, 4, 3 * 6))
    mask = np.zeros((2, 1, 1, 4))
    mask[1, ..., 3:] = -np.inf
    out = F.self_attention_packed(tensor(y), 2, mask)
    q, k, v = (y[..., i * 6:(i + 1) * 6].reshape(2, 4, 2, 3).transpose(0, 2, 1, 3) for i in range(3))
    expected = _attention_reference(q, k, v, mask).transpose(0, 2, 1, 3).reshape(2, 4, 6)
    assert_forward(out, expected, np.float64)
    check_grad(lambda a: F.self_attention_packed(a, 2, mask), y)
    check_grad(lambda a: F.self_attention_packed(a, 3, None, dropout_p=0.25), y)
    with pytest.raises(ValueError, match="3·D"):
        F.self_attention_packed(tensor(y[..., :10]), 2)
