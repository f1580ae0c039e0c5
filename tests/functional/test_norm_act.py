"""batch_norm_relu: z = max(0, γ (x − μ)/√(σ² + ε) + β + r), BatchNorm + residual add + ReLU as one op.

Values and running statistics against a float64 NumPy reference written out here (per-channel
mean and variance by a loop over channels), with and without a residual, NCHW and NHWC memory,
training and eval mode; float64 gradcheck for x, γ, β and r; PyTorch's
``relu(batch_norm(x) + r)``; bitwise equality with minitl's own unfused composition.
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


def _reference(x, r, gamma, beta, mean, var, eps):
    """max(0, γ (x − μ)/√(σ² + ε) + β + r), channel by channel, in float64."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    for c in range(x.shape[1]):
        s = gamma[c] * (x[:, c] - mean[c]) / np.sqrt(var[c] + eps) + beta[c]
        if r is not None:
            s = s + np.asarray(r, dtype=np.float64)[:, c]
        out[:, c] = np.maximum(s, 0)
    return out


def _channel_statistics(x):
    """Per-channel mean and biased variance by a loop over channels (float64)."""
    x = np.asarray(x, dtype=np.float64)
    values = [x[:, c].ravel() for c in range(x.shape[1])]
    mean = np.array([v.sum() / v.size for v in values])
    var = np.array([((v - m) ** 2).sum() / v.size for v, m in zip(values, mean)])
    return mean, var, values[0].size


def _input(x, nhwc):
    """A tensor holding x, in NHWC memory (what conv2d returns) when asked."""
    if nhwc and x.ndim == 4:
        return tensor(np.ascontiguousarray(x.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)
    return tensor(x)


@with_backend
@given(shape=shapes, dtype=DTYPES, training=st.booleans(), residual=st.booleans(), nhwc=st.booleans(),
       momentum=st.sampled_from([0.1, 1.0]), data=st.data())
def test_values_and_running_statistics_equal_the_formula(backend, shape, dtype, training, residual, nhwc,
                                                          momentum, data):
    C = shape[1]
    x = data.draw(arrays(dtype, shape))
    r = data.draw(arrays(dtype, shape)) if residual else None
    gamma = data.draw(arrays(dtype, (C,)))
    beta = data.draw(arrays(dtype, (C,)))
    rm0 = data.draw(arrays(dtype, (C,)))
    rv0 = data.draw(arrays(dtype, (C,), floats(0.2, 3)))
    rm, rv = tensor(rm0.copy()), tensor(rv0.copy())
    z = F.batch_norm_relu(_input(x, nhwc), rm, rv, tensor(gamma), tensor(beta), training=training,
                          momentum=momentum, eps=1e-3, residual=None if r is None else _input(r, nhwc))
    g64, b64 = gamma.astype(np.float64), beta.astype(np.float64)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    if training:
        mean, var, n = _channel_statistics(x)
        assert_forward(z, _reference(x, r, g64, b64, mean, var, 1e-3), dtype, **tol)
        np.testing.assert_allclose(rm.numpy(), (1 - momentum) * rm0 + momentum * mean, **tol)
        np.testing.assert_allclose(rv.numpy(), (1 - momentum) * rv0 + momentum * var * n / (n - 1), **tol)
    else:
        assert_forward(z, _reference(x, r, g64, b64, rm0.astype(np.float64), rv0.astype(np.float64), 1e-3),
                       dtype, **tol)
        np.testing.assert_array_equal(rm.numpy(), rm0)  # eval mode leaves them alone
        np.testing.assert_array_equal(rv.numpy(), rv0)
    assert np.all(z.numpy() >= 0)


def _away_from_the_kink(shape, training, residual, seed):
    """x, γ, β, r, running statistics (float64) with every pre-activation at least 0.05 from 0,
    so central differences never straddle the ReLU's kink."""
    rng = np.random.default_rng(seed)
    C = shape[1]
    while True:
        x = rng.standard_normal(shape) + np.arange(np.prod(shape)).reshape(shape) % 3
        r = rng.standard_normal(shape) if residual else None
        gamma, beta = rng.uniform(0.5, 2, C) * rng.choice([-1, 1], C), rng.standard_normal(C)
        rm, rv = rng.standard_normal(C), rng.uniform(0.5, 2, C)
        mean, var = (_channel_statistics(x)[:2]) if training else (rm, rv)
        s = _reference(x, r, gamma, beta, mean, var, 1e-5)  # ReLU(s): s itself where positive
        pre = np.empty_like(x)
        for c in range(C):
            pre[:, c] = gamma[c] * (x[:, c] - mean[c]) / np.sqrt(var[c] + 1e-5) + beta[c] + (0 if r is None else r[:, c])
        if np.abs(pre).min() > 0.05 and 0 < (s > 0).mean() < 1:
            return x, r, gamma, beta, rm, rv
        seed += 1000
        rng = np.random.default_rng(seed)


@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 4), (2, 3, 3, 2)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("residual", [True, False])
def test_gradients_equal_finite_differences(backend, shape, training, residual):
    x, r, gamma, beta, rm, rv = _away_from_the_kink(shape, training, residual, seed=len(shape))

    def fn(x_, w_, b_, *r_):
        return F.batch_norm_relu(x_, tensor(rm), tensor(rv), w_, b_, training=training,
                                 residual=r_[0] if r_ else None)

    check_grad(fn, x, gamma, beta, *([r] if residual else []))


@pytest.mark.parametrize("wanted", ["x", "r", "gamma"])
@pytest.mark.parametrize("training", [True, False])
def test_gradient_of_each_input_alone(backend, wanted, training):
    """Only one input wants a gradient (the others frozen): each backward path gives the composition's gradient."""
    x, r, gamma, beta, rm, rv = _away_from_the_kink((3, 2, 2, 3), training, True, seed=7)
    g = np.random.default_rng(1).standard_normal(x.shape)
    results = []
    for fused in (True, False):
        xt, rt, wt = tensor(x, requires_grad=wanted == "x"), tensor(r, requires_grad=wanted == "r"), \
            tensor(gamma, requires_grad=wanted == "gamma")
        if fused:
            z = F.batch_norm_relu(xt, tensor(rm), tensor(rv), wt, tensor(beta), training=training, residual=rt)
        else:
            z = F.relu(F.batch_norm(xt, tensor(rm), tensor(rv), wt, tensor(beta), training=training) + rt)
        z.backward(tensor(g))
        results.append({"x": xt, "r": rt, "gamma": wt}[wanted].grad.numpy())
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("nhwc", [False, True])
@pytest.mark.parametrize("residual", [False, True])
def test_bitwise_equal_to_the_unfused_composition(backend, nhwc, residual):
    """Same operations in the same order: relu(batch_norm(x) + r) to the last bit, forward and backward."""
    rng = np.random.default_rng(3)
    x, r, g = (rng.standard_normal((4, 5, 6, 3)).astype(np.float32) for _ in range(3))
    results = []
    for fused in (True, False):
        xt, rt = _input(x, nhwc), _input(r, nhwc)
        xt.requires_grad, rt.requires_grad = True, True
        wt = tensor(np.linspace(0.5, 2, 5).astype(np.float32), requires_grad=True)
        bt = tensor(np.linspace(-1, 1, 5).astype(np.float32), requires_grad=True)
        rm, rv = tensor(np.zeros(5, np.float32)), tensor(np.ones(5, np.float32))
        res = rt if residual else None
        if fused:
            z = F.batch_norm_relu(xt, rm, rv, wt, bt, training=True, residual=res)
        else:
            y = F.batch_norm(xt, rm, rv, wt, bt, training=True)
            z = F.relu(y + res if residual else y)
        z.backward(tensor(g))
        results.append([z.numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy(), rm.numpy(), rv.numpy()]
                       + ([rt.grad.numpy()] if residual else []))
    for a, c in zip(*results):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("residual", [False, True])
def test_matches_torch_through_training_steps_and_eval(residual):
    torch = pytest.importorskip("torch", reason="PyTorch reference not installed (pip install torch==2.13.0)")
    rng = np.random.default_rng(5)
    C, shape = 4, (6, 4, 5, 5)
    gamma, beta = np.array([0.5, 1.5, -1.0, 2.0], np.float32), np.array([0.1, -0.2, 0.3, 0.0], np.float32)
    rm, rv = minitl.Tensor(np.zeros(C, np.float32)), minitl.Tensor(np.ones(C, np.float32))
    trm, trv = torch.zeros(C), torch.ones(C)
    for training in (True, True, True, False):
        x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
        r = rng.standard_normal(shape).astype(np.float32)
        g = rng.standard_normal(shape).astype(np.float32)
        nhwc = minitl.Tensor(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), requires_grad=True)
        xo, ro = nhwc.transpose(0, 3, 1, 2), minitl.Tensor(r, requires_grad=True)
        wo, bo = minitl.Tensor(gamma, requires_grad=True), minitl.Tensor(beta, requires_grad=True)
        xr, rr = torch.tensor(x, requires_grad=True), torch.tensor(r, requires_grad=True)
        wr, br = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
        zo = F.batch_norm_relu(xo, rm, rv, wo, bo, training=training, momentum=0.1, residual=ro if residual else None)
        yr = torch.nn.functional.batch_norm(xr, trm, trv, wr, br, training=training, momentum=0.1)
        zr = torch.relu(yr + rr if residual else yr)
        np.testing.assert_allclose(zo.numpy(), zr.detach().numpy(), rtol=1e-4, atol=1e-5)
        zo.backward(minitl.Tensor(g))
        zr.backward(torch.tensor(g))
        np.testing.assert_allclose(nhwc.grad.numpy().transpose(0, 3, 1, 2), xr.grad.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(wo.grad.numpy(), wr.grad.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(bo.grad.numpy(), br.grad.numpy(), rtol=1e-4, atol=1e-4)
        if residual:
            np.testing.assert_allclose(ro.grad.numpy(), rr.grad.numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(rm.numpy(), trm.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(rv.numpy(), trv.numpy(), rtol=1e-5, atol=1e-6)


def test_bad_input():
    x = minitl.Tensor(np.zeros((4, 3, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"batch_norm_relu: weight must have shape \(3,\) for input \(4, 3, 2, 2\)"):
        F.batch_norm_relu(x, np.zeros(3), np.ones(3), minitl.Tensor(np.ones(4)))
    with pytest.raises(ValueError, match=r"batch_norm_relu: running_mean must have shape \(3,\)"):
        F.batch_norm_relu(x, np.zeros(2), np.ones(3))
    with pytest.raises(ValueError, match="batch_norm_relu: running_mean and running_var are needed in evaluation mode"):
        F.batch_norm_relu(x, None, None)
    with pytest.raises(ValueError, match=r"more than 1 value per channel when training, got input shape \(1, 3\)"):
        F.batch_norm_relu(minitl.Tensor(np.zeros((1, 3))), None, None, training=True)
    with pytest.raises(ValueError, match=r"residual must have the input's shape \(4, 3, 2, 2\), got \(4, 3, 2\)"):
        F.batch_norm_relu(x, None, None, training=True, residual=minitl.Tensor(np.zeros((4, 3, 2), np.float32)))
    with pytest.raises(ValueError, match="residual has dtype float64, the input float32"):
        F.batch_norm_relu(x, None, None, training=True, residual=minitl.Tensor(np.zeros((4, 3, 2, 2))))


@pytest.mark.parametrize("training", [True, False])
def test_cost_model_counts_what_the_three_ops_count(training):
    """The fused op does the arithmetic of BatchNorm, Add and ReLU (minitl inspect's FLOP table)."""
    from minitl.inspect.flops import op_flops

    shape, vec = (2, 3, 4, 5), (3,)
    options = {"training": training}
    fused = op_flops("BatchNormReLU", [shape, vec, vec, shape], shape, options, (True, True, True, True))
    parts = [op_flops("BatchNorm", [shape, vec, vec], shape, options, (True, True, True)),
             op_flops("Add", [shape, shape], shape, {}, (True, True)),
             op_flops("ReLU", [shape], shape, {}, (True,))]
    assert fused == tuple(sum(p[i] for p in parts) for i in range(2))
    plain = op_flops("BatchNormReLU", [shape, vec, vec, None], shape, options, (True, True, True, False))
    assert plain[0] == fused[0] - 2 * 3 * 4 * 5 and plain[1] == fused[1]


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_module_relu_and_residual_arguments(momentum):
    """BatchNorm2d(x, residual, relu=True) = relu(BatchNorm2d(x) + residual), with the same statistics steps."""
    rng = np.random.default_rng(9)
    fused, plain = minitl.nn.BatchNorm2d(3, momentum=momentum), minitl.nn.BatchNorm2d(3, momentum=momentum)
    for training in (True, True, False):
        fused.train(training)
        plain.train(training)
        x = minitl.Tensor(rng.standard_normal((2, 3, 4, 4)).astype(np.float32))
        r = minitl.Tensor(rng.standard_normal((2, 3, 4, 4)).astype(np.float32))
        np.testing.assert_array_equal(fused(x, r, relu=True).numpy(), F.relu(plain(x) + r).numpy())
        np.testing.assert_array_equal(fused(x, relu=True).numpy(), F.relu(plain(x)).numpy())
        np.testing.assert_array_equal(fused(x, r).numpy(), (plain(x) + r).numpy())
    for name, value in plain.state_dict().items():
        np.testing.assert_array_equal(fused.state_dict()[name], value, err_msg=name)
    assert int(fused.num_batches_tracked.item()) == 6


@pytest.mark.parametrize("fused", [False, True])
def test_threads_give_the_serial_result_bit_for_bit(monkeypatch, fused):
    """The block passes run on minitl's threads; per-block sums merge in block order, so two threads
    and one give the same bits (values, every gradient, running statistics)."""
    from minitl.functional import layout, parallel

    monkeypatch.setattr(layout, "_POINTWISE_BLOCK_BYTES", 3 * 4 * 4 * 8)  # 3 rows of (W·C) = 4·4 floats
    monkeypatch.setattr(parallel, "MIN_SPLIT_BYTES", 0)
    rng = np.random.default_rng(11)
    x, r, g = (rng.standard_normal((5, 4, 2, 4)) for _ in range(3))
    results = []
    for threads in (1, 2):
        with parallel.using_threads(threads):
            xt = minitl.Tensor(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), requires_grad=True)  # NHWC memory
            rt = minitl.Tensor(r, requires_grad=True)
            wt, bt = minitl.Tensor(np.linspace(0.5, 2, 4), requires_grad=True), minitl.Tensor(np.zeros(4), requires_grad=True)
            rm, rv = minitl.Tensor(np.zeros(4)), minitl.Tensor(np.ones(4))
            if fused:
                z = F.batch_norm_relu(xt.transpose(0, 3, 1, 2), rm, rv, wt, bt, training=True, residual=rt)
            else:
                z = F.batch_norm(xt.transpose(0, 3, 1, 2), rm, rv, wt, bt, training=True)
            z.backward(minitl.Tensor(g))
            results.append([z.numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy(), rm.numpy(), rv.numpy()]
                           + ([rt.grad.numpy()] if fused else []))
    for a, c in zip(*results):
        np.testing.assert_array_equal(a, c)


def test_relu_reads_a_shared_read_only_block_of_zeros():
    """ReLU's other operand (layout.zeros_like_block): zeros of the block's shape and dtype that no pass can
    overwrite, grown when a block is larger than the one kept."""
    from minitl.functional import layout

    for dtype in (np.float32, np.float64):
        zeros = layout.zeros_like_block(np, np.ones((3, 5), dtype))
        assert zeros.shape == (3, 5) and zeros.dtype == dtype and not zeros.any()
        with pytest.raises(ValueError):
            zeros[0, 0] = 1.0
    big = layout.zeros_like_block(np, np.ones(2**19 + 3, np.float32))  # past the 1 MiB block kept
    assert big.shape == (2**19 + 3,) and not big.any()
