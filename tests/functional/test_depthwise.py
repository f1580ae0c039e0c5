"""Depthwise convolution's fast path (shifted multiply-adds) against the plain-loop reference, its
gradient in float64, and PyTorch, on every backend."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minitl.functional as F
from minitl.functional.conv import conv2d_reference
from minitl.functional.depthwise import DepthwiseConv2d
from _opcheck import DTYPES, arrays, assert_forward, check_grad, floats, tensor, with_backend


def _depthwise(x, w, b=None, stride=1, padding=0, dilation=1):
    pair = lambda v: (v, v)  # noqa: E731
    inputs = (x, w) if b is None else (x, w, b)
    return DepthwiseConv2d.apply(*inputs, stride=pair(stride), padding=pair(padding), dilation=pair(dilation))


@with_backend
@given(dtype=DTYPES, data=st.data(), k=st.sampled_from([1, 3, 5]), stride=st.integers(1, 2),
       dilation=st.integers(1, 2), bias=st.booleans())
def test_depthwise_matches_the_reference_and_its_gradient(backend, dtype, data, k, stride, dilation, bias):
    C, size = 3, 7
    padding = data.draw(st.integers(0, k // 2 * dilation))
    x = data.draw(arrays(dtype, (2, C, size, size), floats()))
    w = data.draw(arrays(dtype, (C, 1, k, k), floats()))
    b = data.draw(arrays(dtype, (C,), floats())) if bias else None
    expected = conv2d_reference(x.astype(np.float64), w.astype(np.float64), None if b is None else b.astype(np.float64),
                                stride, padding, dilation, groups=C)
    out = _depthwise(tensor(x), tensor(w), None if b is None else tensor(b), stride, padding, dilation)
    assert_forward(out, expected, dtype)
    arrays_in = (x, w) if b is None else (x, w, b)
    check_grad(lambda *t: _depthwise(*t, stride=stride, padding=padding, dilation=dilation), *arrays_in)


def test_conv2d_takes_the_fast_path_on_large_maps_only():
    w = tensor(np.zeros((4, 1, 3, 3), np.float32), requires_grad=True)
    big = F.conv2d(tensor(np.zeros((1, 4, 20, 20), np.float32)), w, padding=1, groups=4)
    small = F.conv2d(tensor(np.zeros((1, 4, 8, 8), np.float32)), w, padding=1, groups=4)
    kinds = [type(t._ctx).__name__ for t in (big, small)]  # the Function that made each output
    assert kinds == ["DepthwiseConv2d", "Conv2d"], kinds


def test_depthwise_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 33, 33))  # 17x17 outputs: the fast path
    w = rng.standard_normal((6, 1, 5, 5)) * 0.2
    g = rng.standard_normal((2, 6, 17, 17))
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, None, 2, 2, 1, 6)
    yt.backward(torch.tensor(g))
    xm, wm = tensor(x, requires_grad=True), tensor(w, requires_grad=True)
    ym = F.conv2d(xm, wm, stride=2, padding=2, groups=6)
    (ym * tensor(g)).sum().backward()
    np.testing.assert_allclose(ym.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(wm.grad.numpy(), wt.grad.numpy(), rtol=1e-10, atol=1e-10)
