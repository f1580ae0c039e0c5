"""Pooling: h_j = max_{i∈R_j} a_i (max_pool2d), window averages (avg_pool2d), adaptive/global averages.

Forward against the plain-loop references, backward against float64 central differences
(inputs without ties for max-pooling: a permutation of well-separated values), tie-breaking
to the first arg-max, PyTorch forward and backward, and clear errors for bad input.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minitl
import minitl.functional as F
from _opcheck import DTYPES, arrays, assert_forward, check_grad, tensor, with_backend
from minitl.functional.pool import avg_pool2d_reference, max_pool2d_reference


@st.composite
def pool_cases(draw):
    """kernel, stride, padding (≤ kernel/2), ceil_mode and an input the padded kernel fits."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    H = max(1, kernel[0] - 2 * padding[0]) + draw(st.integers(0, 4))
    W = max(1, kernel[1] - 2 * padding[1]) + draw(st.integers(0, 4))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W)
    return dict(shape=shape, kernel_size=kernel, stride=stride, padding=padding, ceil_mode=draw(st.booleans()))


def _untied(shape, data, dtype=np.float64):
    """Distinct values 0.25 apart (a permutation), so each window has one clear maximum."""
    perm = data.draw(st.permutations(range(int(np.prod(shape)))))
    return (np.array(perm, dtype=np.float64).reshape(shape) * 0.25 - 3.0).astype(dtype)


def _args(case):
    return {k: case[k] for k in ("kernel_size", "stride", "padding", "ceil_mode")}


# ============================================================================ max pooling
@with_backend
@given(case=pool_cases(), dtype=DTYPES, data=st.data())
def test_max_pool_forward_equals_the_plain_loop_reference(backend, case, dtype, data):
    x = _untied(case["shape"], data, dtype)
    expected, _ = max_pool2d_reference(x, **_args(case))
    assert_forward(F.max_pool2d(tensor(x), **_args(case)), expected, dtype, rtol=0, atol=0)


@with_backend
@given(case=pool_cases(), data=st.data())
def test_max_pool_gradient_equals_finite_differences(backend, case, data):
    x = _untied(case["shape"], data)
    check_grad(lambda t: F.max_pool2d(t, **_args(case)), x)


@with_backend
@given(case=pool_cases(), dtype=DTYPES, data=st.data())
def test_max_pool_ties_route_the_gradient_to_the_first_maximum(backend, case, dtype, data):
    """Inputs full of ties (values from {0, 1}): each window's gradient goes to its first arg-max (row-major)."""
    x = data.draw(arrays(dtype, case["shape"], st.sampled_from([0.0, 1.0])))
    g = data.draw(arrays(np.float64, (1,), st.floats(0.5, 2.0)))[0]
    _, arg = max_pool2d_reference(x, **_args(case))
    expected = np.zeros(x.shape)
    N, C, H, W = x.shape
    for n in range(N):
        for c in range(C):
            for flat in arg[n, c].ravel():
                expected[n, c].flat[flat] += g
    xt = tensor(x, requires_grad=True)
    y = F.max_pool2d(xt, **_args(case))
    y.backward(np.full(y.shape, g, dtype=dtype))
    np.testing.assert_allclose(xt.grad.numpy(), expected, rtol=1e-6)


def test_max_pool_channels_last_memory_keeps_its_layout(backend):
    rng = np.random.default_rng(0)
    x = rng.permutation(2 * 4 * 6 * 6).reshape(2, 6, 6, 4).astype(np.float64).transpose(0, 3, 1, 2)  # NHWC memory
    xt = tensor(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), requires_grad=True)
    xt_nchw_view = xt.transpose(0, 3, 1, 2)
    y = F.max_pool2d(xt_nchw_view, 3, 2, 1)
    expected, _ = max_pool2d_reference(np.ascontiguousarray(x), 3, 2, 1)
    np.testing.assert_array_equal(y.numpy(), expected)
    if backend == "numpy":
        assert y.data.transpose(0, 2, 3, 1).flags["C_CONTIGUOUS"]


def test_max_pool_reference_on_a_worked_example():
    x = np.array([[[[1.0, 5.0, 2.0], [3.0, 4.0, 9.0], [0.0, 7.0, 6.0]]]])
    y, arg = max_pool2d_reference(x, 2, 1)
    np.testing.assert_array_equal(y, [[[[5.0, 9.0], [7.0, 9.0]]]])
    np.testing.assert_array_equal(arg, [[[[1, 5], [7, 5]]]])
    y, _ = max_pool2d_reference(x, 2, 2, ceil_mode=True)  # the last window hangs over the edge
    np.testing.assert_array_equal(y, [[[[5.0, 9.0], [7.0, 6.0]]]])


# ============================================================================ average pooling
@with_backend
@given(case=pool_cases(), count_include_pad=st.booleans(), dtype=DTYPES, data=st.data())
def test_avg_pool_forward_equals_the_reference_and_gradient_finite_differences(backend, case, count_include_pad,
                                                                              dtype, data):
    x = data.draw(arrays(dtype, case["shape"]))
    expected = avg_pool2d_reference(x.astype(np.float64), **_args(case), count_include_pad=count_include_pad)
    out = F.avg_pool2d(tensor(x), **_args(case), count_include_pad=count_include_pad)
    assert_forward(out, expected, dtype, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
    check_grad(lambda t: F.avg_pool2d(t, **_args(case), count_include_pad=count_include_pad), x.astype(np.float64))


@with_backend
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 7), st.integers(1, 7)),
       out=st.tuples(st.integers(1, 4), st.integers(1, 4)), dtype=DTYPES, data=st.data())
def test_adaptive_avg_pool_bins_and_gradient(backend, shape, out, dtype, data):
    """Output (i, j) averages rows ⌊iH/Ho⌋ … ⌈(i+1)H/Ho⌉ − 1 and likewise columns (PyTorch's bins)."""
    x = data.draw(arrays(dtype, shape))
    N, C, H, W = shape
    expected = np.zeros((N, C) + out)
    for i in range(out[0]):
        for j in range(out[1]):
            r0, r1 = (i * H) // out[0], -(-((i + 1) * H) // out[0])
            c0, c1 = (j * W) // out[1], -(-((j + 1) * W) // out[1])
            expected[:, :, i, j] = x[:, :, r0:r1, c0:c1].astype(np.float64).mean(axis=(2, 3))
    assert_forward(F.adaptive_avg_pool2d(tensor(x), out), expected, dtype, rtol=1e-5, atol=1e-6)
    check_grad(lambda t: F.adaptive_avg_pool2d(t, out), x.astype(np.float64))


def test_global_average_pool(backend):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    y = F.adaptive_avg_pool2d(tensor(x), 1)
    np.testing.assert_allclose(y.numpy(), x.mean(axis=(2, 3), keepdims=True), rtol=1e-12)
    check_grad(lambda t: F.adaptive_avg_pool2d(t, 1), x)
    assert F.adaptive_avg_pool2d(tensor(x), (None, 2)).shape == (2, 3, 4, 2)


# ============================================================================ PyTorch
TORCH_CASES = [  # (shape, kernel, stride, padding, ceil_mode)
    ((2, 3, 8, 8), 3, 2, 1, False),  # the ResNet stem pool
    ((2, 3, 7, 9), 3, 2, 1, True),
    ((1, 2, 6, 5), 2, None, 0, False),
    ((2, 2, 7, 7), 2, 2, 0, True),  # Caffe-style ceil_mode
    ((1, 3, 9, 8), (3, 2), (2, 1), (1, 0), True),
    ((2, 4, 5, 5), 3, 1, 1, False),
]


@pytest.mark.parametrize("case", TORCH_CASES, ids=str)
@pytest.mark.parametrize("kind", ["max", "avg", "avg-exclude-pad"])
def test_pooling_matches_torch(case, kind):
    torch = pytest.importorskip("torch", reason="PyTorch reference not installed (pip install torch==2.13.0)")
    shape, kernel, stride, padding, ceil_mode = case
    rng = np.random.default_rng(len(shape) + sum(shape))
    x = rng.standard_normal(shape)
    if kind == "max":
        x = np.maximum(x, 0)  # ReLU output: many ties at 0 — PyTorch's CPU kernel also picks the first
        ours = lambda t: F.max_pool2d(t, kernel, stride, padding, ceil_mode)  # noqa: E731
        theirs = lambda t: torch.nn.functional.max_pool2d(t, kernel, stride, padding, ceil_mode=ceil_mode)  # noqa: E731
    else:
        include = kind == "avg"
        ours = lambda t: F.avg_pool2d(t, kernel, stride, padding, ceil_mode, include)  # noqa: E731
        theirs = lambda t: torch.nn.functional.avg_pool2d(t, kernel, stride, padding, ceil_mode, include)  # noqa: E731
    xt, xr = minitl.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ref = ours(xt), theirs(xr)
    np.testing.assert_allclose(y.numpy(), ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    upstream = rng.standard_normal(ref.shape)
    y.backward(upstream)
    ref.backward(torch.tensor(upstream))
    np.testing.assert_allclose(xt.grad.numpy(), xr.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, out", [((2, 3, 7, 7), 1), ((2, 3, 10, 7), (3, 4)), ((1, 2, 5, 6), (5, 2))])
def test_adaptive_avg_pool_matches_torch(shape, out):
    torch = pytest.importorskip("torch", reason="PyTorch reference not installed (pip install torch==2.13.0)")
    x = np.random.default_rng(1).standard_normal(shape)
    xt, xr = minitl.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ref = F.adaptive_avg_pool2d(xt, out), torch.nn.functional.adaptive_avg_pool2d(xr, out)
    np.testing.assert_allclose(y.numpy(), ref.detach().numpy(), rtol=1e-12)
    upstream = np.random.default_rng(2).standard_normal(ref.shape)
    y.backward(upstream)
    ref.backward(torch.tensor(upstream))
    np.testing.assert_allclose(xt.grad.numpy(), xr.grad.numpy(), rtol=1e-12)


def test_modules():
    x = minitl.Tensor(np.random.default_rng(3).standard_normal((1, 2, 6, 6)))
    assert minitl.nn.MaxPool2d(3, 2, 1)(x).shape == (1, 2, 3, 3)
    assert minitl.nn.MaxPool2d(2, ceil_mode=True)(minitl.Tensor(np.zeros((1, 1, 5, 5)))).shape == (1, 1, 3, 3)
    assert minitl.nn.AvgPool2d(2)(x).shape == (1, 2, 3, 3)
    np.testing.assert_allclose(minitl.nn.AdaptiveAvgPool2d(1)(x).numpy(), x.numpy().mean(axis=(2, 3), keepdims=True))
    assert minitl.nn.MaxPool2d(3, 2).state_dict() == {}


# ============================================================================ bad input
@pytest.mark.parametrize("fn", [F.max_pool2d, F.avg_pool2d])
@pytest.mark.parametrize("shape, args, message", [
    ((2, 3, 8), (2,), r"4-D input \(N, C, H, W\), got shape \(2, 3, 8\)"),
    ((1, 1, 4, 4), (3, 1, 2), r"padding \(2, 2\) must be at most half the kernel size \(3, 3\)"),
    ((1, 1, 2, 2), (5, 1, 1), r"kernel 5×5 is larger than the padded input 4×4 \(input shape \(1, 1, 2, 2\)"),
    ((1, 1, 4, 4), (0,), r"kernel_size must be >= 1"),
])
def test_pool_bad_input(fn, shape, args, message):
    with pytest.raises(ValueError, match=message):
        fn(minitl.Tensor(np.zeros(shape)), *args)


def test_adaptive_bad_input():
    with pytest.raises(ValueError, match=r"4-D input .* got shape \(3, 4\)"):
        F.adaptive_avg_pool2d(minitl.Tensor(np.zeros((3, 4))), 1)
    with pytest.raises(ValueError, match="output_size must be positive"):
        F.adaptive_avg_pool2d(minitl.Tensor(np.zeros((1, 1, 3, 4))), 0)


@pytest.mark.parametrize("block_samples", [1, 2])
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_cache_blocks_give_the_same_result(monkeypatch, block_samples, layout):
    """On the CPU pooling runs over batch blocks (here 1 or 2 samples of 3, so also a shorter last block)."""
    from minitl.functional import layout as layout_module

    rng = np.random.default_rng(7)
    x = (rng.permutation(3 * 2 * 7 * 6).reshape(3, 2, 7, 6) * 0.5).astype(np.float64)
    x[1, :, :3, :3] = 1.0  # some ties
    data = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2) if layout == "nhwc" else x
    monkeypatch.setattr(layout_module, "_POINTWISE_BLOCK_BYTES", block_samples * 2 * 7 * 6 * 8)
    for fn, ref in [(lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True), lambda a: max_pool2d_reference(a, 3, 2, 1, True)),
                    (lambda t: F.avg_pool2d(t, 3, 2, 1, True, False), lambda a: avg_pool2d_reference(a, 3, 2, 1, True, False))]:
        xt = minitl.Tensor(data, requires_grad=True)
        y = fn(xt)
        expected = ref(x)
        expected = expected[0] if isinstance(expected, tuple) else expected
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12)
        g = rng.standard_normal(y.shape)
        y.backward(g)
        monkeypatch.setattr(layout_module, "_POINTWISE_BLOCK_BYTES", 2**30)  # one block: the reference run
        xr = minitl.Tensor(x, requires_grad=True)
        fn(xr).backward(g)
        np.testing.assert_allclose(xt.grad.numpy(), xr.grad.numpy(), rtol=1e-12)
        monkeypatch.setattr(layout_module, "_POINTWISE_BLOCK_BYTES", block_samples * 2 * 7 * 6 * 8)
