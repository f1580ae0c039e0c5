"""Helpers for op tests: hypothesis strategies, forward comparison, gradient check, torch one-liners.

An op test draws inputs with hypothesis, compares the forward pass with an independent
NumPy/SciPy expression (in the drawn dtype), and checks the backward pass with
``minitl.gradcheck`` (float64 central differences).  Inputs are created inside the test
with ``minitl.Tensor(numpy_array)``, so they land on the backend the ``backend`` fixture chose.
"""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import minitl

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
    """gradcheck ``fn`` at the given NumPy arrays (every one differentiable, float64)."""
    inputs = [tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in arrays]
    return minitl.gradcheck(fn, inputs, **kwargs)


def against_torch(minitl_fn, torch_fn, *arrays, rtol=1e-6, atol=1e-7, grad=True, seed=0):
    """One-line check against PyTorch: same inputs -> same output and same input gradients."""
    import pytest  # noqa: PLC0415

    torch = pytest.importorskip("torch", reason="PyTorch reference not installed (pip install torch==2.13.0)")
    ours = [minitl.Tensor(np.asarray(a), requires_grad=grad and np.asarray(a).dtype.kind == "f") for a in arrays]
    theirs = [torch.tensor(np.asarray(a), requires_grad=grad and np.asarray(a).dtype.kind == "f") for a in arrays]
    out, ref = minitl_fn(*ours), torch_fn(*theirs)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=rtol, atol=atol)
    if grad:
        upstream = np.random.default_rng(seed).standard_normal(ref.shape).astype(out.dtype)
        out.backward(upstream)
        ref.backward(torch.tensor(upstream))
        for i, (a, b) in enumerate(zip(ours, theirs)):
            if b.requires_grad:
                np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=atol,
                                           err_msg=f"gradient of input {i}")
