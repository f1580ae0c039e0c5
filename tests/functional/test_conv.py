"""conv2d: h_j = Σ_{i∈M_j} h_i * k_ij + b_j.

Forward against the plain-loop reference (the formula as loops) and scipy.signal.correlate;
backward against float64 central differences (minitl.gradcheck) for x, weight and bias; the
same random cases against torch.nn.functional.conv2d; both fast paths (im2col + GEMM and
Winograd F(2×2,3×3)), batch chunking under a small workspace, and clear errors for bad input.
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.signal
from hypothesis import given
from hypothesis import strategies as st

import minitl
import minitl.functional as F
from _opcheck import DTYPES, arrays, assert_forward, check_grad, floats, tensor, with_backend
from minitl.functional import conv as conv_module
from minitl.functional import layout, parallel
from minitl.shapes import pair
from minitl.functional.conv import conv2d_reference


@st.composite
def conv_cases(draw, winograd_only=False):
    """A valid conv2d configuration: the (dilated) kernel always fits the padded input."""
    if winograd_only:
        kh = kw = 3
        stride = dilation = (1, 1)
        groups = 1
    else:
        kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        groups = draw(st.integers(1, 3))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    eff_h, eff_w = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    H = max(1, eff_h - 2 * padding[0]) + draw(st.integers(0, 4))
    W = max(1, eff_w - 2 * padding[1]) + draw(st.integers(0, 4))
    cin_g, cout_g = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    return dict(N=draw(st.integers(1, 2)), C=cin_g * groups, O=cout_g * groups, H=H, W=W, kernel=(kh, kw),
                stride=stride, padding=padding, dilation=dilation, groups=groups, bias=draw(st.booleans()))


def _arrays(case, dtype, data):
    x = data.draw(arrays(dtype, (case["N"], case["C"], case["H"], case["W"])))
    w = data.draw(arrays(dtype, (case["O"], case["C"] // case["groups"], *case["kernel"])))
    b = data.draw(arrays(dtype, (case["O"],))) if case["bias"] else None
    return x, w, b


def _opts(case):
    return dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"], groups=case["groups"])


def _scipy_conv(x, w, b, stride, padding, dilation, groups):
    """An independent reference: per (n, j), Σ_c scipy.signal.correlate(x_pad[n, c], dilated kernel, 'valid'), strided."""
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    x_pad = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    dilated = np.zeros((O, Cg, dilation[0] * (KH - 1) + 1, dilation[1] * (KW - 1) + 1))
    dilated[:, :, ::dilation[0], ::dilation[1]] = w
    out = []
    for n in range(N):
        maps = []
        for j in range(O):
            g = j // (O // groups)
            acc = sum(scipy.signal.correlate(x_pad[n, g * Cg + c], dilated[j, c], mode="valid") for c in range(Cg))
            acc = acc[::stride[0], ::stride[1]] + (0.0 if b is None else b[j])
            maps.append(acc)
        out.append(maps)
    return np.array(out)


# ============================================================================ forward
@pytest.mark.parametrize("winograd", [False, True], ids=["im2col", "winograd"])
@with_backend
@given(case=conv_cases(), dtype=DTYPES, data=st.data())
def test_conv2d_forward_equals_the_plain_loop_reference_and_scipy(backend, winograd, case, dtype, data):
    x, w, b = _arrays(case, dtype, data)
    with conv_module.winograd(winograd):
        out = F.conv2d(tensor(x), tensor(w), None if b is None else tensor(b), **_opts(case))
    reference = conv2d_reference(x.astype(np.float64), w.astype(np.float64),
                                 None if b is None else b.astype(np.float64), **_opts(case))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)
    assert_forward(out, reference, dtype, **tol)
    np.testing.assert_allclose(reference, _scipy_conv(x, w, b, **_opts(case)), rtol=1e-12, atol=1e-12)


@with_backend
@given(case=conv_cases(winograd_only=True), dtype=DTYPES, data=st.data())
def test_winograd_path_equals_the_reference(backend, case, dtype, data):
    """3×3 stride-1 convolutions forced onto Winograd F(2×2,3×3): odd and even sizes, every padding."""
    x, w, b = _arrays(case, dtype, data)
    with conv_module.winograd(True):
        out = F.conv2d(tensor(x), tensor(w), None if b is None else tensor(b), **_opts(case))
    reference = conv2d_reference(x.astype(np.float64), w.astype(np.float64),
                                 None if b is None else b.astype(np.float64), **_opts(case))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)
    assert_forward(out, reference, dtype, **tol)


# ============================================================================ backward
@pytest.mark.parametrize("winograd", [False, True], ids=["im2col", "winograd"])
@with_backend
@given(case=conv_cases(), data=st.data())
def test_conv2d_gradients_equal_finite_differences(backend, winograd, case, data):
    x, w, b = _arrays(case, np.float64, data)
    opts = _opts(case)
    with conv_module.winograd(winograd):
        if b is None:
            check_grad(lambda x_, w_: F.conv2d(x_, w_, **opts), x, w)
        else:
            check_grad(lambda x_, w_, b_: F.conv2d(x_, w_, b_, **opts), x, w, b)


@with_backend
@given(case=conv_cases(winograd_only=True), data=st.data())
def test_winograd_gradients_equal_finite_differences(backend, case, data):
    x, w, b = _arrays(case, np.float64, data)
    opts = _opts(case)
    with conv_module.winograd(True):
        if b is None:
            check_grad(lambda x_, w_: F.conv2d(x_, w_, **opts), x, w)
        else:
            check_grad(lambda x_, w_, b_: F.conv2d(x_, w_, b_, **opts), x, w, b)


def test_frozen_weight_gets_no_gradient_and_frozen_input_none(backend):
    rng = np.random.default_rng(0)
    x = tensor(rng.standard_normal((2, 3, 5, 5)), requires_grad=True)
    w = tensor(rng.standard_normal((4, 3, 3, 3)))
    F.conv2d(x, w, padding=1).sum().backward()
    assert w.grad is None and x.grad is not None
    x2 = tensor(rng.standard_normal((2, 3, 5, 5)))
    w2 = tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    F.conv2d(x2, w2, stride=2).sum().backward()
    assert x2.grad is None and w2.grad.shape == (4, 3, 3, 3)


# ============================================================================ chunking and memory
@pytest.mark.parametrize("winograd", [False, True], ids=["im2col", "winograd"])
@pytest.mark.parametrize("stride", [1, 2])
def test_batch_chunks_give_the_same_result(backend, winograd, stride):
    """A workspace too small for the batch: computed in batch chunks (5 = 2 + 2 + 1), same values and gradients."""
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((5, 3, 6, 7)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    results = []
    for limit in (None, 2 * 6 * 7 * 27 * 8):  # room for two samples' columns
        xt, wt, bt = tensor(x, requires_grad=True), tensor(w, requires_grad=True), tensor(b, requires_grad=True)
        with conv_module.winograd(winograd), conv_module.workspace(limit or conv_module.workspace_limit()):
            if limit:
                assert layout.batch_chunks(minitl.backend.get_array_module(xt.data), 5, 6 * 7 * 27 * 8, 42) == \
                    [(0, 2), (2, 4), (4, 5)]
            y = F.conv2d(xt, wt, bt, stride=stride, padding=1)
            y.backward(np.ones(y.shape))
        results.append([y.numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()])
    for a, c in zip(*results):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


def test_chunk_padder_borders_are_zero_for_every_chunk_when_scratch_is_fresh(monkeypatch):
    """Where reused_buffer hands out fresh memory (a GPU, a buffer over the reuse cap) every chunk must still
    see a zero border: the thread's buffer is held for the call, its border written once.  Fresh
    memory is filled with NaN here, so an unwritten border shows."""
    monkeypatch.setattr(layout, "reused_buffer", lambda xp, kind, size, dtype: np.full(size, np.nan, dtype))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 3, 4, 6))
    chunks = [(0, 2), (2, 4), (4, 5)]
    padded = layout.chunk_padder(np, x, 1, 2, chunks)
    reference = np.pad(x.transpose(0, 2, 3, 1), ((0, 0), (1, 1), (2, 2), (0, 0)))
    for n0, n1 in chunks:
        np.testing.assert_array_equal(padded(n0, n1), reference[n0:n1])


def test_im2col_workspace_is_bounded():
    """Peak memory of a conv whose full column matrix is 9.4 MB stays near input + output + the 1 MiB cap."""
    rng = np.random.default_rng(2)
    x = minitl.Tensor(rng.standard_normal((16, 16, 32, 32), dtype=np.float32))
    w = minitl.Tensor(rng.standard_normal((16, 16, 3, 3), dtype=np.float32))
    full_columns = 16 * 32 * 32 * 9 * 16 * 4
    with conv_module.winograd(False):
        peaks = {}
        for limit in (2**20, 2**30):
            with conv_module.workspace(limit), conv_module_cache_block(2**30):
                tracemalloc.start()
                F.conv2d(x, w, padding=1)
                peaks[limit] = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
    padded_input, output = 16 * 34 * 34 * 16 * 4, 16 * 32 * 32 * 16 * 4
    assert peaks[2**30] > full_columns  # the unbounded run really builds the whole matrix
    assert peaks[2**20] < padded_input + output + 2**20 + 2**18


class conv_module_cache_block:  # noqa: N801 - a context manager, used like a function
    """Temporarily set the CPU cache-block size of the chunking (a tuning knob, not API)."""

    def __init__(self, nbytes):
        self.nbytes = nbytes

    def __enter__(self):
        self.old, layout._CACHE_BLOCK_BYTES = layout._CACHE_BLOCK_BYTES, self.nbytes

    def __exit__(self, *exc):
        layout._CACHE_BLOCK_BYTES = self.old


def test_output_is_nchw_shaped_in_nhwc_memory_and_accepted_back():
    rng = np.random.default_rng(3)
    x = minitl.Tensor(rng.standard_normal((2, 3, 6, 6)))
    y = F.conv2d(x, minitl.Tensor(rng.standard_normal((5, 3, 3, 3))), padding=1)
    assert y.shape == (2, 5, 6, 6) and y.data.transpose(0, 2, 3, 1).flags["C_CONTIGUOUS"]
    w2 = rng.standard_normal((4, 5, 3, 3))
    z = F.conv2d(y, minitl.Tensor(w2), padding=1)  # NHWC-memory input
    np.testing.assert_allclose(z.numpy(), conv2d_reference(np.ascontiguousarray(y.numpy()), w2, padding=1), rtol=1e-12)


@pytest.mark.parametrize("winograd", [False, True])
@pytest.mark.parametrize("groups", [1, 2])
def test_weight_gradient_is_in_the_weights_own_memory_order(winograd, groups):
    """dJ/dW comes back C-contiguous (OIHW, as the parameter), a fresh array the leaf keeps as its .grad
    without a copy and the optimizer reads flat; its values are held against PyTorch below."""
    rng = np.random.default_rng(4)
    x = minitl.Tensor(rng.standard_normal((2, 4, 6, 6)))
    w = minitl.Tensor(rng.standard_normal((4, 4 // groups, 3, 3)), requires_grad=True)
    with conv_module.winograd(winograd and groups == 1):
        F.conv2d(x, w, padding=1, groups=groups).sum().backward()
    assert w.grad.data.flags["C_CONTIGUOUS"] and w.grad.data.base is None


# ============================================================================ PyTorch
TORCH_CASES = [  # (x shape, weight shape, stride, padding, dilation, groups)
    ((2, 3, 9, 8), (4, 3, 3, 3), 1, 1, 1, 1),
    ((2, 4, 11, 10), (6, 2, 3, 2), (2, 1), (1, 0), 1, 2),
    ((1, 6, 9, 9), (6, 1, 3, 3), 1, 1, 1, 6),  # depthwise
    ((1, 6, 9, 9), (12, 1, 3, 3), 2, 1, 1, 6),  # depthwise, channel multiplier 2
    ((3, 4, 10, 12), (5, 4, 3, 3), 2, 2, 2, 1),
    ((2, 3, 12, 12), (8, 3, 7, 7), 2, 3, 1, 1),  # a ResNet stem
    ((2, 8, 7, 7), (16, 8, 1, 1), 2, 0, 1, 1),  # a downsampling shortcut
    ((2, 8, 5, 5), (4, 8, 1, 1), 1, 0, 1, 1),
    ((2, 32, 6, 6), (32, 32, 3, 3), 1, 1, 1, 1),  # im2col under "auto"
    ((2, 64, 6, 6), (64, 64, 3, 3), 1, 1, 1, 1),  # Winograd forced (set_winograd(True))
    ((2, 256, 4, 4), (256, 256, 3, 3), 1, 1, 1, 1),  # Winograd under "auto" on one thread, dJ/dW too
    ((1, 256, 5, 7), (256, 256, 3, 3), 1, 0, 1, 1),  # the same, odd output sizes
]
WINOGRAD_CASES = {((2, 64, 6, 6), (64, 64, 3, 3)): True, ((2, 256, 4, 4), (256, 256, 3, 3)): "auto-serial",
                  ((1, 256, 5, 7), (256, 256, 3, 3)): "auto-serial"}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: f"{c[0]}-{c[1]}-s{c[2]}-p{c[3]}-d{c[4]}-g{c[5]}")
def test_conv2d_matches_torch(case, dtype):
    torch = pytest.importorskip("torch", reason="PyTorch reference not installed (pip install torch==2.13.0)")
    x_shape, w_shape, stride, padding, dilation, groups = case
    rng = np.random.default_rng(sum(x_shape) + sum(w_shape))
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in (x_shape, w_shape, w_shape[:1]))
    w = (w / np.sqrt(np.prod(w_shape[1:]))).astype(dtype)  # outputs of order 1, as in a network
    ours = [minitl.Tensor(a, requires_grad=True) for a in (x, w, b)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)
    path = WINOGRAD_CASES.get((x_shape, w_shape), False)  # the Winograd cases run (and are checked) on that path
    with conv_module.winograd(True if path is True else "auto"), parallel.using_threads(1 if path else None):
        assert conv_module._use_winograd(np, *w_shape[2:], pair(stride, "", 1), pair(dilation, "", 1), groups,
                                         x_shape[1], w_shape[0], 2, 2) == bool(path)
        y = F.conv2d(*ours, stride=stride, padding=padding, dilation=dilation, groups=groups)
        ref = torch.nn.functional.conv2d(*theirs, stride=stride, padding=padding, dilation=dilation, groups=groups)
        np.testing.assert_allclose(y.numpy(), ref.detach().numpy(), **tol)
        upstream = rng.standard_normal(ref.shape).astype(dtype)
        y.backward(upstream)
    ref.backward(torch.tensor(upstream))
    for name, a, t in zip(("x", "weight", "bias"), ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), err_msg=f"gradient of {name}", **tol)


def test_winograd_auto_runs_serially_from_256_channels_and_never_on_threads():
    for threads, expected in ((1, {64: False, 256: True, 512: True}), (2, {64: False, 256: False, 512: False})):
        with parallel.using_threads(threads), conv_module.winograd("auto"):
            got = {c: conv_module._use_winograd(np, 3, 3, (1, 1), (1, 1), 1, c, c, 8, 8) for c in expected}
        assert got == expected, threads
    with parallel.using_threads(2), conv_module.winograd(True):
        assert conv_module._use_winograd(np, 3, 3, (1, 1), (1, 1), 1, 64, 64, 8, 8)


def test_conv2d_module_matches_torch_and_uses_its_init():
    torch = pytest.importorskip("torch", reason="PyTorch reference not installed (pip install torch==2.13.0)")
    conv = minitl.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    assert [n for n, _ in conv.named_parameters()] == ["weight", "bias"]
    assert conv.weight.shape == (6, 2, 3, 3) and conv.bias.shape == (6,)
    bound = 1 / np.sqrt(2 * 3 * 3)  # PyTorch: Kaiming-uniform(a=√5) -> U(±1/√fan_in), bias U(±1/√fan_in)
    assert np.abs(conv.weight.numpy()).max() <= bound and np.abs(conv.weight.numpy()).max() > 0.5 * bound
    assert np.abs(conv.bias.numpy()).max() <= bound
    ref = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    ref.load_state_dict({k: torch.tensor(v) for k, v in conv.state_dict().items()})
    x = np.random.default_rng(4).standard_normal((2, 4, 7, 7)).astype(np.float32)
    np.testing.assert_allclose(conv(minitl.Tensor(x)).numpy(), ref(torch.tensor(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-5)
    assert minitl.nn.Conv2d(3, 8, (1, 3), bias=False).bias is None


# ============================================================================ bad input
def _t(*shape):
    return minitl.Tensor(np.zeros(shape, dtype=np.float32))


@pytest.mark.parametrize("x, w, kwargs, message", [
    ((2, 3, 8), (4, 3, 3, 3), {}, r"4-D input \(N, C, H, W\), got shape \(2, 3, 8\)"),
    ((2, 3, 8, 8), (4, 3, 3), {}, r"4-D weight .* got shape \(4, 3, 3\)"),
    ((2, 3, 8, 8), (4, 2, 3, 3), {}, r"input has 3 channels \(shape \(2, 3, 8, 8\)\) but weight \(4, 2, 3, 3\)"),
    ((2, 6, 8, 8), (4, 3, 3, 3), {"groups": 4},
     r"groups=4 must divide both the input channels \(6, input shape \(2, 6, 8, 8\)\)"),
    ((2, 6, 8, 8), (3, 3, 3, 3), {"groups": 2}, r"output channels \(3, weight shape \(3, 3, 3, 3\)\)"),
    ((2, 3, 4, 4), (4, 3, 7, 7), {"padding": 1}, r"kernel 7×7 .* larger than the padded input 6×6 \(input shape \(2, 3, 4, 4\)"),
    ((2, 3, 5, 5), (4, 3, 3, 3), {"dilation": 3}, r"effective 7×7\) is larger than the padded input 5×5"),
    ((2, 3, 5, 5), (4, 3, 3, 3), {"stride": 0}, r"stride must be >= 1"),
    ((2, 3, 5, 5), (4, 3, 3, 3), {"padding": -1}, r"padding must be >= 0"),
    ((2, 3, 5, 5), (4, 3, 3, 3), {"groups": 0}, r"groups must be a positive int"),
])
def test_bad_input_raises_a_clear_value_error(x, w, kwargs, message):
    with pytest.raises(ValueError, match=message):
        F.conv2d(_t(*x), _t(*w), **kwargs)


def test_bias_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\) for weight \(4, 3, 3, 3\), got \(3,\)"):
        F.conv2d(_t(1, 3, 5, 5), _t(4, 3, 3, 3), _t(3))


def test_module_rejects_groups_that_do_not_divide():
    with pytest.raises(ValueError, match="groups=2 must divide in_channels=3"):
        minitl.nn.Conv2d(3, 4, 3, groups=2)


def test_reference_loop_is_the_formula():
    """The plain-loop reference itself, on a case worked by hand."""
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    w = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])
    y = conv2d_reference(x, w, np.array([0.5]), stride=2)
    # y[p, q] = x[2p, 2q] − x[2p+1, 2q+1] + 0.5 = −5 + 0.5 everywhere
    np.testing.assert_array_equal(y, np.full((1, 1, 2, 2), -4.5))


@given(value=floats(-2, 2))
def test_single_pixel(value):
    y = F.conv2d(minitl.Tensor(np.full((1, 1, 1, 1), value)), minitl.Tensor(np.full((1, 1, 1, 1), 3.0)))
    assert y.shape == (1, 1, 1, 1) and y.item() == pytest.approx(3.0 * value)
