"""Depthwise convolution's fast path (shifted multiply-adds) against the plain-loop reference, its
gradient in float64, and PyTorch, on every backend."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minitl.functional as F
from minitl.functional.conv import conv2d_reference
from minitl.functional.depthwise import DepthwiseConv2d
from _opcheck import DTYPES, arrays, assert_forward, check_grad, floats, tensor, with_backend


def _depthwise(x, w, b=None, stride=1, padding=0, dilation=1):
    pair = lambda v: (v, v)  # noqa: E731
    inputs = (x, w) if b is None else (x, w, b)
    return DepthwiseConv2d.apply(*inputs, stride=pair(stride), pads=(padding,) * 4, dilation=pair(dilation))


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


@settings(with_backend, max_examples=15)
@given(dtype=DTYPES, data=st.data(), k=st.sampled_from([1, 3, 5]), stride=st.integers(1, 2))
def test_uneven_pads_equal_padding_first(backend, dtype, data, k, stride):
    """pads = (top, bottom, left, right) as TensorFlow's "SAME" needs: the reference on the padded input."""
    pads = tuple(data.draw(st.integers(0, k // 2 + 1)) for _ in range(4))
    x = data.draw(arrays(dtype, (2, 3, 6, 5), floats()))
    w = data.draw(arrays(dtype, (3, 1, k, k), floats()))
    x_padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), pads[:2], pads[2:]))
    expected = conv2d_reference(x_padded, w.astype(np.float64), None, stride, 0, 1, groups=3)
    assert_forward(F.depthwise_conv2d(tensor(x), tensor(w), None, stride, pads), expected, dtype)
    check_grad(lambda *t: F.depthwise_conv2d(*t, stride=stride, pads=pads), x, w)


@pytest.mark.parametrize("block_bytes", [1, 4 * 3 * 8 * 2, 1 << 20])  # one row of one sample; 2 rows; all at once
def test_blocks_of_rows_and_of_samples_give_the_same_values_and_gradients(monkeypatch, block_bytes):
    """The work runs in cache-sized blocks (rows of one sample, or several samples): any split is exact."""
    from minitl.functional import depthwise
    monkeypatch.setattr(depthwise, "BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 3, 7, 8)), rng.standard_normal((3, 1, 3, 3)), rng.standard_normal(3)
    g = rng.standard_normal((2, 3, 4, 4))
    out = F.depthwise_conv2d(tensor(x), tensor(w), tensor(b), 2, (1, 1, 1, 0))
    expected = conv2d_reference(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 0))), w, b, 2, 0, 1, groups=3)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)
    check_grad(lambda *t: F.depthwise_conv2d(*t, stride=2, pads=(1, 1, 1, 0)) * tensor(g), x, w, b)


def test_conv2d_takes_the_fast_path_for_every_depthwise_convolution_only():
    """The dispatch rule: groups = C = O goes to DepthwiseConv2d at any map size (it wins on each
    EfficientNet-Lite0 shape, 112x112 down to 2x2); a channel multiplier > 1 or groups < C do not."""
    def kind(x_shape, w_shape, groups, **options):
        x = tensor(np.zeros(x_shape, np.float32))
        out = F.conv2d(x, tensor(np.zeros(w_shape, np.float32), requires_grad=True), groups=groups, **options)
        return type(out._ctx).__name__  # the Function that made the output
    assert kind((1, 4, 20, 20), (4, 1, 3, 3), 4, padding=1) == "DepthwiseConv2d"
    assert kind((1, 4, 2, 2), (4, 1, 3, 3), 4, padding=1) == "DepthwiseConv2d"
    assert kind((1, 4, 9, 9), (4, 1, 5, 5), 4, padding=2, stride=2) == "DepthwiseConv2d"
    assert kind((1, 4, 8, 8), (8, 1, 3, 3), 4, padding=1) == "Conv2d"  # channel multiplier 2
    assert kind((1, 4, 8, 8), (4, 2, 3, 3), 2, padding=1) == "Conv2d"  # 2 channels per group


def test_depthwise_output_is_channels_last_and_bad_arguments_are_one_clear_error():
    from minitl.functional.layout import channels_last
    out = F.depthwise_conv2d(tensor(np.ones((2, 8, 6, 6), np.float32)), tensor(np.ones((8, 1, 3, 3), np.float32)),
                             pads=(1, 1, 1, 1))
    assert out.numpy().dtype == np.float32 and channels_last(out.numpy())
    with pytest.raises(ValueError, match="pads must be 4"):
        F.depthwise_conv2d(tensor(np.ones((1, 2, 4, 4))), tensor(np.ones((2, 1, 3, 3))), pads=(1, 1))
    with pytest.raises(ValueError, match="weight \\(C, 1, KH, KW\\)"):
        F.depthwise_conv2d(tensor(np.ones((1, 2, 4, 4))), tensor(np.ones((3, 1, 3, 3))))
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.depthwise_conv2d(tensor(np.ones((1, 2, 2, 2))), tensor(np.ones((2, 1, 5, 5))), pads=(1, 1, 1, 1))


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
