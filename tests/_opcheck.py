"""Helpers for op tests: hypothesis strategies, forward comparison, gradient check, torch one-liners.

An op test draws inputs with hypothesis, compares the forward pass with an independent
NumPy/SciPy expression (in the drawn dtype), and checks the backward pass with
``minitl.gradcheck`` (float64 central differences).  Inputs are created inside the test
with ``minitl.Tensor(numpy_array)``, so they land on the backend the ``backend`` fixture chose.

Every :func:`check_grad` and :func:`against_torch` also holds the op to Chainer's discipline
(:func:`check_layouts`): forward and backward leave the inputs and the upstream gradient
untouched, and non-contiguous inputs — transposed and strided views made on the device — give
the same outputs and gradients as contiguous ones.
"""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import minitl
from minitl import backend as mt_backend
from minitl import random as mt_random

# the `backend` fixture is function-scoped but only selects the array module: safe to share across examples
with_backend = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

DTYPES = st.sampled_from([np.float32, np.float64])
TOLERANCE = {np.dtype(np.float32): dict(rtol=2e-5, atol=1e-6), np.dtype(np.float64): dict(rtol=1e-11, atol=1e-13)}


def floats(low=-3.0, high=3.0):
    """Floats in [low, high] representable in float32 (so float32 and float64 arrays draw the same values)."""
    return st.floats(float(np.float32(low)), float(np.float32(high)), width=32, allow_subnormal=False)


def away_from_zero(low=0.3, high=3.0):
    return st.one_of(floats(-high, -low), floats(low, high))


def shapes(min_dims=0, max_dims=3, min_side=1, max_side=3):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def arrays(dtype, shape, elements=None, unique=False):
    return hnp.arrays(dtype, shape, elements=elements if elements is not None else floats(), unique=unique)


def tensor(array, requires_grad=False):
    """A tensor on the current backend holding ``array`` (dtype kept)."""
    return minitl.Tensor(np.asarray(array), requires_grad=requires_grad)


def assert_forward(out, expected, dtype=None, **tolerance):
    """``out`` (a Tensor) equals the reference array, in shape, dtype and value."""
    expected = np.asarray(expected)
    assert isinstance(out, minitl.Tensor), type(out)
    assert out.shape == expected.shape, f"shape {out.shape} != reference {expected.shape}"
    if dtype is not None:
        assert out.dtype == np.dtype(dtype), f"dtype {out.dtype}, expected {np.dtype(dtype)}"
    tol = dict(TOLERANCE.get(np.dtype(dtype) if dtype is not None else out.dtype, TOLERANCE[np.dtype(np.float64)]))
    tol.update(tolerance)
    np.testing.assert_allclose(out.numpy(), expected, **tol)


def check_grad(fn, *arrays, **kwargs):
    """gradcheck ``fn`` at the given NumPy arrays (every one differentiable, float64), then
    :func:`check_layouts` at the same arrays."""
    inputs = [tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in arrays]
    result = minitl.gradcheck(fn, inputs, **kwargs)
    check_layouts(fn, *[np.asarray(a, dtype=np.float64) for a in arrays])
    return result


LAYOUTS = ("transposed", "strided")


def relayout(array, layout: str):
    """The values of a backend ``array`` in a non-contiguous view made on its own device:
    ``transposed`` (axes reversed in memory: an F-ordered view) or ``strided`` (every other
    element of a buffer twice as large).  Arrays with fewer than two elements stay as they are."""
    xp = mt_backend.get_array_module(array)
    if layout == "transposed":
        if array.ndim < 2:
            return relayout(array, "strided")
        reverse = tuple(reversed(range(array.ndim)))
        return xp.ascontiguousarray(array.transpose(reverse)).transpose(reverse)
    buffer = xp.zeros(array.shape + (2,), dtype=array.dtype)
    buffer[..., 0] = array
    return buffer[..., 0]


def _outputs(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


def _run_and_watch(fn, arrays, layout, requires_grad, seed=0):
    """Run ``fn`` forward and backward on tensors holding ``arrays`` (in ``layout``); assert that
    neither pass changed an input or the upstream gradient; return (outputs, input gradients) on the host."""
    inputs = []
    for a in arrays:
        t = tensor(a, requires_grad=requires_grad and np.asarray(a).dtype.kind == "f")
        if layout is not None and t.size > 1:
            t.data = relayout(t.data, layout)
        inputs.append(t)
    before = [np.array(t.numpy(), copy=True) for t in inputs]
    state = mt_random.get_state()
    try:
        mt_random.manual_seed(seed)  # random ops (dropout) draw the same numbers for every layout
        outs = _outputs(fn(*inputs))
    finally:
        mt_random.set_state(state)
    where = f"({layout or 'contiguous'} inputs)"
    for i, (t, old) in enumerate(zip(inputs, before)):
        np.testing.assert_array_equal(t.numpy(), old, err_msg=f"forward modified input {i} {where}")
    rng = np.random.default_rng(seed)
    upstream = [rng.standard_normal(o.shape).astype(o.dtype) if o.dtype.kind == "f" else None for o in outs]
    differentiable = [(o, u) for o, u in zip(outs, upstream) if o.requires_grad]
    if differentiable:
        sent = [minitl.Tensor(u, device=o.device) for o, u in differentiable]
        total = None
        for (o, _), g in zip(differentiable, sent):
            term = (o * g).sum()
            total = term if total is None else total + term
        total.backward()
        for g, (_, u) in zip(sent, differentiable):
            np.testing.assert_array_equal(g.numpy(), u, err_msg=f"backward modified the upstream gradient {where}")
    for i, (t, old) in enumerate(zip(inputs, before)):
        np.testing.assert_array_equal(t.numpy(), old, err_msg=f"backward modified input {i} {where}")
    grads = [None if t.grad is None else np.array(t.grad.numpy()) for t in inputs]
    return [np.array(o.numpy()) for o in outs], grads


def check_layouts(fn, *arrays, requires_grad=True):
    """Chainer's discipline for an op ``fn``: inputs and upstream gradient are left untouched, and
    transposed and strided inputs give the outputs and gradients that contiguous ones give."""
    reference = _run_and_watch(fn, arrays, None, requires_grad)
    for layout in LAYOUTS:
        outs, grads = _run_and_watch(fn, arrays, layout, requires_grad)
        for i, (got, want) in enumerate(zip(outs + grads, reference[0] + reference[1])):
            what = f"output {i}" if i < len(outs) else f"gradient of input {i - len(outs)}"
            if want is None or got is None:
                assert got is None and want is None, f"{what}: given on one layout only ({layout})"
                continue
            tol = TOLERANCE.get(want.dtype, TOLERANCE[np.dtype(np.float64)]) if want.dtype.kind == "f" else {}
            np.testing.assert_allclose(got, want, **tol, err_msg=f"{what} differs on {layout} inputs")


def against_torch(minitl_fn, torch_fn, *arrays, rtol=1e-6, atol=1e-7, grad=True, seed=0):
    """One-line check against PyTorch: same inputs -> same output and same input gradients."""
    import pytest  # noqa: PLC0415

    torch = pytest.importorskip("torch", reason="PyTorch reference not installed (pip install torch==2.13.0)")
    ours = [minitl.Tensor(np.asarray(a), requires_grad=grad and np.asarray(a).dtype.kind == "f") for a in arrays]
    theirs = [torch.tensor(np.asarray(a), requires_grad=grad and np.asarray(a).dtype.kind == "f") for a in arrays]
    out, ref = minitl_fn(*ours), torch_fn(*theirs)
    check_layouts(minitl_fn, *arrays, requires_grad=grad)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=rtol, atol=atol)
    if grad:
        upstream = np.random.default_rng(seed).standard_normal(ref.shape).astype(out.dtype)
        out.backward(upstream)
        ref.backward(torch.tensor(upstream))
        for i, (a, b) in enumerate(zip(ours, theirs)):
            if b.requires_grad:
                np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=atol,
                                           err_msg=f"gradient of input {i}")
