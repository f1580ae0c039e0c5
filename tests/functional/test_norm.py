"""batch_norm and BatchNorm1d/2d: y = γ (x − μ)/√(σ² + ε) + β.

Train- and eval-mode outputs against the formula written in NumPy, running statistics after
several steps against the recursion by hand, eval-mode gradients against the hand-derived
dJ/dx = γ g/√(σ²+ε), dJ/dγ = Σ g x̂, dJ/dβ = Σ g, gradcheck in both modes, and PyTorch.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minitl
import minitl.functional as F
from _opcheck import DTYPES, arrays, assert_forward, check_grad, floats, tensor, with_backend

shapes = st.sampled_from([(4, 3), (3, 2, 5), (2, 3, 3, 2), (3, 1, 2, 2), (2, 4, 1, 3)])


def _stats_axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _bshape(x):
    return (1, -1) + (1,) * (x.ndim - 2)


def _bn_formula(x, mean, var, gamma, beta, eps):
    b = _bshape(x)
    return gamma.reshape(b) * (x - mean.reshape(b)) / np.sqrt(var.reshape(b) + eps) + beta.reshape(b)


@with_backend
@given(shape=shapes, dtype=DTYPES, momentum=st.sampled_from([0.1, 0.5, 1.0]), data=st.data())
def test_train_mode_output_and_running_statistics_over_several_steps(backend, shape, dtype, momentum, data):
    C = shape[1]
    gamma = data.draw(arrays(np.float64, (C,), floats(0.5, 2)))
    beta = data.draw(arrays(np.float64, (C,)))
    rm, rv = np.zeros(C, dtype=dtype), np.ones(C, dtype=dtype)
    running_mean, running_var = tensor(rm), tensor(rv)
    expected_mean, expected_var = np.zeros(C), np.ones(C)
    for _ in range(3):
        x = data.draw(arrays(dtype, shape, floats(-3, 3)))
        x64 = x.astype(np.float64)
        mean, var = x64.mean(axis=_stats_axes(x)), x64.var(axis=_stats_axes(x))
        n = x.size // C
        out = F.batch_norm(tensor(x), running_mean, running_var, tensor(gamma.astype(dtype)),
                           tensor(beta.astype(dtype)), training=True, momentum=momentum, eps=1e-3)
        assert_forward(out, _bn_formula(x64, mean, var, gamma, beta, 1e-3), dtype,
                       rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-4 if dtype == np.float32 else 1e-10)
        expected_mean = (1 - momentum) * expected_mean + momentum * mean
        expected_var = (1 - momentum) * expected_var + momentum * var * n / (n - 1)  # unbiased
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(running_mean.numpy(), expected_mean, **tol)  # updated in place
    np.testing.assert_allclose(running_var.numpy(), expected_var, **tol)


@with_backend
@given(shape=shapes, dtype=DTYPES, data=st.data())
def test_eval_mode_output_and_hand_derived_gradients(backend, shape, dtype, data):
    C = shape[1]
    x = data.draw(arrays(dtype, shape))
    rm = data.draw(arrays(dtype, (C,)))
    rv = data.draw(arrays(dtype, (C,), floats(0.2, 3)))
    gamma = data.draw(arrays(dtype, (C,)))
    beta = data.draw(arrays(dtype, (C,)))
    g = data.draw(arrays(dtype, shape))
    xt, gt, bt = tensor(x, requires_grad=True), tensor(gamma, requires_grad=True), tensor(beta, requires_grad=True)
    rmt, rvt = tensor(rm), tensor(rv)
    y = F.batch_norm(xt, rmt, rvt, gt, bt, training=False, eps=1e-5)
    x64, b = x.astype(np.float64), _bshape(x)
    x_hat = (x64 - rm.reshape(b)) / np.sqrt(rv.astype(np.float64).reshape(b) + 1e-5)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    assert_forward(y, gamma.reshape(b) * x_hat + beta.reshape(b), dtype, **tol)
    y.backward(g)
    g64 = g.astype(np.float64)
    np.testing.assert_allclose(xt.grad.numpy(), g64 * gamma.reshape(b) / np.sqrt(rv.reshape(b) + 1e-5), **tol)
    np.testing.assert_allclose(gt.grad.numpy(), (g64 * x_hat).sum(axis=_stats_axes(x)), **tol)
    np.testing.assert_allclose(bt.grad.numpy(), g64.sum(axis=_stats_axes(x)), **tol)
    np.testing.assert_array_equal(rmt.numpy(), rm)  # eval mode leaves the running statistics alone
    np.testing.assert_array_equal(rvt.numpy(), rv)


@with_backend
@given(shape=shapes, training=st.booleans(), affine=st.booleans(), data=st.data())
def test_gradients_equal_finite_differences(backend, shape, training, affine, data):
    C = shape[1]
    x = data.draw(arrays(np.float64, shape))
    if training:  # keep the batch variance away from 0 (x̂ is ill-conditioned there)
        x = x + np.arange(x.size).reshape(shape) % 3
    rm, rv = data.draw(arrays(np.float64, (C,))), data.draw(arrays(np.float64, (C,), floats(0.2, 3)))
    if affine:
        gamma, beta = data.draw(arrays(np.float64, (C,))), data.draw(arrays(np.float64, (C,)))
        check_grad(lambda x_, w_, b_: F.batch_norm(x_, tensor(rm), tensor(rv), w_, b_, training=training), x, gamma, beta)
    else:
        check_grad(lambda x_: F.batch_norm(x_, tensor(rm), tensor(rv), training=training), x)


def test_channels_last_memory_gives_the_same_result(backend):
    """conv2d hands BatchNorm NCHW-shaped NHWC memory: same values and gradients as a contiguous input."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5, 6))
    g = rng.standard_normal((3, 4, 5, 6))
    results = []
    for nhwc in (False, True):
        base = tensor(np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if nhwc else x, requires_grad=True)
        xt = base.transpose(0, 3, 1, 2) if nhwc else base
        w, b = tensor(rng.standard_normal(4), requires_grad=True), tensor(rng.standard_normal(4), requires_grad=True)
        w.data[...] = tensor(np.linspace(0.5, 2, 4)).data
        b.data[...] = tensor(np.linspace(-1, 1, 4)).data
        rm, rv = tensor(np.zeros(4)), tensor(np.ones(4))
        y = F.batch_norm(xt, rm, rv, w, b, training=True)
        y.backward(g)
        grad_x = base.grad.numpy().transpose(0, 3, 1, 2) if nhwc else base.grad.numpy()
        results.append([y.numpy(), grad_x, w.grad.numpy(), b.grad.numpy(), rm.numpy(), rv.numpy()])
    for a, c in zip(*results):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


# ============================================================================ modules and PyTorch
def test_batchnorm2d_state_dict_names_and_defaults():
    bn = minitl.nn.BatchNorm2d(3)
    state = bn.state_dict()
    assert list(state) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert state["num_batches_tracked"].dtype == np.int64 and state["num_batches_tracked"].shape == ()
    np.testing.assert_array_equal(state["weight"], np.ones(3))
    np.testing.assert_array_equal(state["running_var"], np.ones(3))
    assert list(minitl.nn.BatchNorm1d(3, affine=False, track_running_stats=False).state_dict()) == []


@pytest.mark.parametrize("cls, shape", [("BatchNorm2d", (4, 3, 5, 5)), ("BatchNorm1d", (6, 3)),
                                        ("BatchNorm1d", (4, 3, 7))])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_module_matches_torch_through_training_steps_and_eval(cls, shape, momentum):
    torch = pytest.importorskip("torch", reason="PyTorch reference not installed (pip install torch==2.13.0)")
    rng = np.random.default_rng(5)
    ours, theirs = getattr(minitl.nn, cls)(3, momentum=momentum), getattr(torch.nn, cls)(3, momentum=momentum)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor([0.5, 1.5, -1.0]))
        theirs.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})

    def step(training):
        ours.train(training)
        theirs.train(training)
        x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
        g = rng.standard_normal(shape).astype(np.float32)
        xo, xr = minitl.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        yo, yr = ours(xo), theirs(xr)
        np.testing.assert_allclose(yo.numpy(), yr.detach().numpy(), rtol=1e-4, atol=1e-5)
        yo.backward(g)
        yr.backward(torch.tensor(g))
        np.testing.assert_allclose(xo.grad.numpy(), xr.grad.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(ours.bias.grad.numpy(), theirs.bias.grad.numpy(), rtol=1e-4, atol=1e-4)
        ours.zero_grad()
        theirs.zero_grad()

    for _ in range(4):
        step(training=True)
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name], value.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
    step(training=False)  # eval mode: running statistics, gradients still reach x, γ and β
    step(training=False)
    assert int(ours.num_batches_tracked.item()) == 4


def test_eval_mode_still_trains_gamma_and_beta():
    """Fine-tuning with BatchNorm frozen in inference mode: an SGD step on γ, β lowers the loss."""
    rng = np.random.default_rng(6)
    bn = minitl.nn.BatchNorm2d(2).eval()
    bn.running_mean.data[...] = np.array([0.5, -0.5], dtype=np.float32)
    x = minitl.Tensor(rng.standard_normal((4, 2, 3, 3)).astype(np.float32))
    target = minitl.Tensor(np.full((4, 2, 3, 3), 2.0, dtype=np.float32))
    losses = []
    for _ in range(2):
        loss = ((bn(x) - target) ** 2).mean()
        losses.append(loss.item())
        bn.zero_grad()
        loss.backward()
        for p in bn.parameters():
            p.data -= 0.5 * p.grad.data
    assert losses[1] < losses[0]
    assert bn.num_batches_tracked.item() == 0


# ============================================================================ bad input
def test_bad_input():
    x = minitl.Tensor(np.zeros((4, 3, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\) for input \(4, 3, 2, 2\), got \(4,\)"):
        F.batch_norm(x, np.zeros(3), np.ones(3), minitl.Tensor(np.ones(4)), training=False)
    with pytest.raises(ValueError, match=r"running_mean must have shape \(3,\) for input \(4, 3, 2, 2\), got \(2,\)"):
        F.batch_norm(x, np.zeros(2), np.ones(3))
    with pytest.raises(ValueError, match="more than 1 value per channel when training, got input shape \\(1, 3\\)"):
        F.batch_norm(minitl.Tensor(np.zeros((1, 3))), None, None, training=True)
    with pytest.raises(ValueError, match="needed in evaluation mode"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match=r"expected a 4-D input, got shape \(4, 3\)"):
        minitl.nn.BatchNorm2d(3)(minitl.Tensor(np.zeros((4, 3))))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\): input has 2 channels \(shape \(4, 2, 2, 2\)\)"):
        minitl.nn.BatchNorm2d(3)(minitl.Tensor(np.zeros((4, 2, 2, 2))))
    with pytest.raises(ValueError, match=r"2-D or 3-D input, got shape \(4, 3, 2, 2\)"):
        minitl.nn.BatchNorm1d(3)(x)


@pytest.mark.parametrize("block_rows", [1, 3, 4])
@pytest.mark.parametrize("training", [True, False])
def test_cache_blocks_give_the_same_result(monkeypatch, block_rows, training):
    """On the CPU BatchNorm works over row blocks (statistics merged across blocks, Chan's formula):
    block sizes that do not divide the 10 rows (N·H = 5·2) give the formula's values and gradients."""
    from minitl.functional import layout

    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 3, 2, 4)) * 3 + np.array([10.0, -2.0, 0.5])[None, :, None, None]
    g = rng.standard_normal(x.shape)
    gamma, beta = np.array([0.5, 2.0, -1.0]), np.array([0.1, 0.2, 0.3])
    rm, rv = np.array([1.0, 0.0, -1.0]), np.array([2.0, 0.5, 1.5])
    results = []
    for block in (block_rows * 4 * 3 * 8, 2**30):
        monkeypatch.setattr(layout, "_POINTWISE_BLOCK_BYTES", block)
        xt = minitl.Tensor(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), requires_grad=True)  # NHWC memory
        wt, bt = minitl.Tensor(gamma, requires_grad=True), minitl.Tensor(beta, requires_grad=True)
        rmt, rvt = minitl.Tensor(rm.copy()), minitl.Tensor(rv.copy())
        y = F.batch_norm(xt.transpose(0, 3, 1, 2), rmt, rvt, wt, bt, training=training)
        y.backward(g)
        results.append([y.numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy(), rmt.numpy(), rvt.numpy()])
    for a, c in zip(*results):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)
    mean, var = (x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))) if training else (rm, rv)
    np.testing.assert_allclose(results[0][0], _bn_formula(x, mean, var, gamma, beta, 1e-5), rtol=1e-10, atol=1e-10)
