"""Tensor ops: forward against NumPy over hypothesis-drawn shapes (broadcasting, size-1 dims),
dtypes and values; backward against float64 finite differences (minitl.gradcheck); one-line
checks against PyTorch where it is installed."""
from __future__ import annotations

import operator

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minitl
from _opcheck import (
    DTYPES, against_torch, arrays, assert_forward, away_from_zero, check_grad, floats, shapes, tensor, with_backend,
)

# ============================================================================ arithmetic with broadcasting
BINARY = {
    "add": (operator.add, floats()),
    "sub": (operator.sub, floats()),
    "mul": (operator.mul, floats()),
    "truediv": (operator.truediv, away_from_zero()),
    "pow": (operator.pow, floats(0.3, 2.0)),  # a^b for a > 0: differentiable in both a and b
}


@pytest.mark.parametrize("name", BINARY)
@with_backend
@given(data=st.data())
def test_binary_ops_broadcast(backend, name, data):
    op, elements = BINARY[name]
    dtype = data.draw(DTYPES)
    shape_a, shape_b = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3)).input_shapes
    a = data.draw(arrays(dtype, shape_a, elements if name == "pow" else floats()))
    b = data.draw(arrays(dtype, shape_b, elements))
    assert_forward(op(tensor(a), tensor(b)), op(a, b), dtype)
    check_grad(op, a, b)


@pytest.mark.parametrize("name", ["add", "sub", "mul", "truediv", "pow"])
@with_backend
@given(dtype=DTYPES, data=st.data(), scalar=st.sampled_from([2.0, -1.5, 3]))
def test_python_scalars_on_either_side_keep_the_tensor_dtype(backend, name, dtype, data, scalar):
    op = getattr(operator, name)
    x = data.draw(arrays(dtype, data.draw(shapes()), floats(0.3, 2.0)))
    if name == "pow":
        right, left = op(tensor(x), scalar), op(abs(scalar), tensor(x))  # x^s and s^x (s > 0)
        expected_right, expected_left = x ** dtype(scalar), dtype(abs(scalar)) ** x
    else:
        right, left = op(tensor(x), scalar), op(scalar, tensor(x))
        expected_right, expected_left = op(x, dtype(scalar)), op(dtype(scalar), x)
    assert_forward(right, expected_right, dtype)
    assert_forward(left, expected_left, dtype)
    check_grad(lambda t: op(t, scalar), x)
    check_grad(lambda t: op(abs(scalar) if name == "pow" else scalar, t), x)


@with_backend
@given(dtype=DTYPES, data=st.data(), exponent=st.sampled_from([2, 3, -1, 0.5]))
def test_pow_with_constant_exponent(backend, dtype, data, exponent):
    elements = floats(0.3, 3.0) if exponent == 0.5 else away_from_zero()
    x = data.draw(arrays(dtype, data.draw(shapes()), elements))
    assert_forward(tensor(x) ** exponent, x ** dtype(exponent), dtype)
    check_grad(lambda t: t ** exponent, x)


@with_backend
@given(dtype=DTYPES, data=st.data())
def test_neg(backend, dtype, data):
    x = data.draw(arrays(dtype, data.draw(shapes())))
    assert_forward(-tensor(x), -x, dtype)
    check_grad(operator.neg, x)


MATMUL_CASES = {  # (shape of a, shape of b) from sizes n, k, m, batch
    "matrix": lambda n, k, m, b: ((n, k), (k, m)),
    "batched": lambda n, k, m, b: ((b, n, k), (b, k, m)),
    "batch-broadcast": lambda n, k, m, b: ((1, n, k), (b, k, m)),
    "batch-times-matrix": lambda n, k, m, b: ((b, n, k), (k, m)),
    "vector-vector": lambda n, k, m, b: ((k,), (k,)),
    "vector-matrix": lambda n, k, m, b: ((k,), (k, m)),
    "matrix-vector": lambda n, k, m, b: ((n, k), (k,)),
    "batched-vector": lambda n, k, m, b: ((b, n, k), (k,)),
}


@pytest.mark.parametrize("case", MATMUL_CASES)
@with_backend
@given(dtype=DTYPES, sizes=st.tuples(*[st.integers(1, 4)] * 4), data=st.data())
def test_matmul(backend, case, dtype, sizes, data):
    shape_a, shape_b = MATMUL_CASES[case](*sizes)
    a, b = data.draw(arrays(dtype, shape_a)), data.draw(arrays(dtype, shape_b))
    expected = np.einsum("...ij,...jk->...ik", a.reshape(a.shape if a.ndim > 1 else (1, -1)),
                         b.reshape(b.shape if b.ndim > 1 else (-1, 1)))
    if a.ndim == 1:
        expected = expected[..., 0, :]
    if b.ndim == 1:
        expected = expected[..., 0]
    assert_forward(tensor(a) @ tensor(b), expected, dtype, rtol=1e-4 if dtype == np.float32 else 1e-11)
    check_grad(operator.matmul, a, b)


COMPARISONS = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge,
               "eq": lambda a, b: a.eq(b) if isinstance(a, minitl.Tensor) else a == b,
               "ne": lambda a, b: a.ne(b) if isinstance(a, minitl.Tensor) else a != b}


@pytest.mark.parametrize("name", COMPARISONS)
@with_backend
@given(data=st.data())
def test_comparisons_are_boolean_and_not_differentiable(backend, name, data):
    op = COMPARISONS[name]
    dtype = data.draw(DTYPES)
    shape_a, shape_b = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3)).input_shapes
    values = st.sampled_from([-1.0, 0.0, 0.5, 2.0])  # few values: equal elements are common
    a, b = data.draw(arrays(dtype, shape_a, values)), data.draw(arrays(dtype, shape_b, values))
    out = op(tensor(a, requires_grad=True), tensor(b))
    assert out.dtype == np.bool_ and not out.requires_grad and out.is_leaf
    np.testing.assert_array_equal(out.numpy(), op(a, b))
    np.testing.assert_array_equal(op(tensor(a), 0.5).numpy(), op(a, dtype(0.5)))


# ============================================================================ reductions
def _axes(ndim):
    if ndim == 0:
        return st.just(None)
    return st.one_of(st.none(), st.integers(-ndim, ndim - 1), hnp.valid_tuple_axes(ndim, min_size=1))


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
@with_backend
@given(dtype=DTYPES, keepdims=st.booleans(), data=st.data())
def test_reductions(backend, name, dtype, keepdims, data):
    shape = data.draw(shapes())
    # distinct values: max/min are differentiable only without ties (ties are tested below)
    x = data.draw(arrays(dtype, shape, floats(-3, 3), unique=name in ("max", "min")))
    if name in ("max", "min") and x.size > 1:
        assume(np.diff(np.sort(x, axis=None)).min() > 1e-3)  # ties within the finite-difference step
    axis = data.draw(_axes(len(shape)))
    expected = getattr(np, {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin"}[name])(
        x, axis=axis, keepdims=keepdims)
    out = getattr(tensor(x), name)(axis=axis, keepdims=keepdims)
    assert_forward(out, expected, dtype, rtol=1e-5 if dtype == np.float32 else 1e-11)
    check_grad(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims), x)


def test_reduction_axis_as_list_and_torch_names(backend):
    x = np.arange(24.0).reshape(2, 3, 4)
    assert_forward(tensor(x).sum(axis=[0, 2]), x.sum(axis=(0, 2)))
    assert_forward(tensor(x).mean(axis=-1, keepdims=True), x.mean(axis=-1, keepdims=True))


def test_max_ties_share_the_gradient_equally(backend):
    """Documented choice: tied maxima split dJ/dy equally (as torch.amax), so the gradient sums to dJ/dy."""
    x = tensor(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]]), requires_grad=True)
    x.max(axis=1).backward(np.array([1.0, 4.0]))
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0.5, 0.5], [2.0, 0, 2.0]])
    y = tensor(np.array([5.0, 5.0, 5.0, 1.0]), requires_grad=True)
    y.min().backward()
    np.testing.assert_allclose(y.grad.numpy(), [0, 0, 0, 1.0])
    z = tensor(np.array([5.0, 5.0, 5.0, 1.0]), requires_grad=True)
    z.max().backward()
    np.testing.assert_allclose(z.grad.numpy(), [1 / 3, 1 / 3, 1 / 3, 0])


def test_max_ties_match_torch_amax():
    torch = pytest.importorskip("torch")
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    against_torch(lambda t: t.max(axis=1), lambda t: torch.amax(t, dim=1), x)
    against_torch(lambda t: t.min(), lambda t: torch.amin(t), x)


# ============================================================================ shape ops
@with_backend
@given(dtype=DTYPES, data=st.data())
def test_reshape(backend, dtype, data):
    shape = data.draw(shapes(max_dims=4))
    x = data.draw(arrays(dtype, shape))
    size = int(np.prod(shape))
    target = data.draw(st.sampled_from([(-1,), shape[::-1], (1,) + shape, (size, 1), (1, -1)]))
    assert_forward(tensor(x).reshape(target), x.reshape(target), dtype)
    assert_forward(tensor(x).reshape(*target), x.reshape(target), dtype)
    check_grad(lambda t: t.reshape(target), x)


@with_backend
@given(dtype=DTYPES, data=st.data())
def test_transpose_and_permute(backend, dtype, data):
    shape = data.draw(shapes(min_dims=1, max_dims=4))
    x = data.draw(arrays(dtype, shape))
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    assert_forward(tensor(x).permute(perm), x.transpose(perm), dtype)
    assert_forward(tensor(x).permute(*perm), x.transpose(perm), dtype)
    assert_forward(tensor(x).transpose(perm), x.transpose(perm), dtype)
    assert_forward(tensor(x).T, x.T, dtype)
    assert_forward(tensor(x).transpose(), x.T, dtype)
    check_grad(lambda t: t.permute(perm), x)
    check_grad(lambda t: t.T, x)
    if len(shape) >= 2:
        i, j = data.draw(st.integers(0, len(shape) - 1)), data.draw(st.integers(-len(shape), -1))
        assert_forward(tensor(x).transpose(i, j), np.swapaxes(x, i, j), dtype)
        check_grad(lambda t: t.transpose(i, j), x)


@with_backend
@given(dtype=DTYPES, data=st.data())
def test_getitem_basic_indexing(backend, dtype, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=4))
    x = data.draw(arrays(dtype, shape))
    index = data.draw(hnp.basic_indices(shape, allow_newaxis=True))
    assert_forward(tensor(x)[index], x[index], dtype)
    check_grad(lambda t: t[index], x)


@with_backend
@given(dtype=DTYPES, data=st.data())
def test_getitem_integer_arrays_scatter_repeated_indices(backend, dtype, data):
    n, m = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    x = data.draw(arrays(dtype, (n, m)))
    rows = np.array(data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=6)))
    cols = np.array(data.draw(st.lists(st.integers(-m, m - 1), min_size=len(rows), max_size=len(rows))))
    kind = data.draw(st.sampled_from(["rows", "rows-cols", "slice-cols", "2d-rows"]))
    host_index = {"rows": rows, "rows-cols": (rows, cols), "slice-cols": (slice(None), cols),
                  "2d-rows": rows.reshape(1, -1)}[kind]

    def device_index():  # index arrays go where the data is (a device refuses host indices)
        if isinstance(host_index, tuple):
            return tuple(i if isinstance(i, slice) else tensor(i) for i in host_index)
        return tensor(host_index)

    assert_forward(tensor(x)[device_index()], x[host_index], dtype)
    check_grad(lambda t: t[device_index()], x)


def test_getitem_repeated_index_gradient_counts_each_pick(backend):
    x = tensor(np.array([10.0, 20.0, 30.0]), requires_grad=True)
    x[tensor(np.array([2, 0, 2, 2]))].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 0.0, 3.0])


@with_backend
@given(dtype=DTYPES, data=st.data())
def test_concatenate_and_stack(backend, dtype, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    count = data.draw(st.integers(1, 3))
    parts = []
    for _ in range(count):
        part_shape = list(shape)
        part_shape[axis] = data.draw(st.integers(1, 3))
        parts.append(data.draw(arrays(dtype, tuple(part_shape))))
    assert_forward(minitl.concatenate([tensor(p) for p in parts], axis=axis), np.concatenate(parts, axis=axis), dtype)
    assert_forward(minitl.cat([tensor(p) for p in parts], axis=axis), np.concatenate(parts, axis=axis), dtype)
    check_grad(lambda *ts: minitl.concatenate(ts, axis=axis), *parts)

    same = [data.draw(arrays(dtype, shape)) for _ in range(count)]
    stack_axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    assert_forward(minitl.stack([tensor(p) for p in same], axis=stack_axis), np.stack(same, axis=stack_axis), dtype)
    check_grad(lambda *ts: minitl.stack(ts, axis=stack_axis), *same)


# ============================================================================ elementwise functions
UNARY = {  # name: (minitl call, NumPy reference, elements where the function is smooth)
    "exp": (lambda t: t.exp(), np.exp, floats(-3, 3)),
    "log": (lambda t: t.log(), np.log, floats(0.05, 5)),
    "sqrt": (lambda t: t.sqrt(), np.sqrt, floats(0.05, 5)),
    "abs": (lambda t: t.abs(), np.abs, away_from_zero(0.01)),
    "abs-builtin": (abs, np.abs, away_from_zero(0.01)),
}


@pytest.mark.parametrize("name", UNARY)
@with_backend
@given(dtype=DTYPES, data=st.data())
def test_unary_functions(backend, name, dtype, data):
    fn, reference, elements = UNARY[name]
    x = data.draw(arrays(dtype, data.draw(shapes()), elements))
    assert_forward(fn(tensor(x)), reference(x), dtype, rtol=1e-6 if dtype == np.float32 else 1e-12)
    check_grad(fn, x)


@with_backend
@given(dtype=DTYPES, data=st.data(), bounds=st.sampled_from([(-1.0, 1.0), (None, 0.5), (-0.5, None), (0.0, 2.0)]))
def test_clip(backend, dtype, data, bounds):
    low, high = bounds
    # stay 0.01 away from the bounds, where the derivative jumps
    near = lambda v: any(b is not None and abs(v - b) < 0.01 for b in bounds)  # noqa: E731
    x = data.draw(arrays(dtype, data.draw(shapes()), floats(-3, 3).filter(lambda v: not near(v))))
    assert_forward(tensor(x).clip(low, high), np.clip(x, low, high), dtype)
    assert_forward(tensor(x).clip(min=low, max=high), np.clip(x, low, high), dtype)
    check_grad(lambda t: t.clip(low, high), x)


# ============================================================================ autograd plumbing
def test_gradient_of_a_tensor_used_twice_is_summed(backend):
    x = tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1.0, -2.0, 3.0]) + 1)


def test_leaf_gradients_are_owned_writable_arrays(backend):
    """Add hands one array to both inputs and Sum a read-only broadcast view: each leaf still gets
    its own writable .grad (in-place gradient clipping must not touch another parameter)."""
    a, b = tensor(np.ones(3), requires_grad=True), tensor(np.ones(3), requires_grad=True)
    (a + b).sum().backward()
    assert a.grad.data is not b.grad.data
    a.grad.data *= 2.0
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0, 1.0])
    upstream = np.array([1.0, 2.0, 3.0])
    c = tensor(np.zeros(3), requires_grad=True)
    c.backward(upstream)
    c.grad.data += 1.0
    np.testing.assert_array_equal(upstream, [1.0, 2.0, 3.0]), "the caller's gradient array is not modified"


@with_backend
@given(data=st.data())
def test_composite_expression_gradcheck(backend, data):
    """A small graph mixing ops, broadcasting and reuse: the chain rule across nodes."""
    a = data.draw(arrays(np.float64, (3, 1), floats(0.5, 2)))
    b = data.draw(arrays(np.float64, (1, 4)))
    check_grad(lambda p, q: ((p * q).exp() / (p + 1.0) - q ** 2).mean(axis=0) @ (q.T * p.sum()), a, b)


def test_creation_dtypes_follow_torch():
    assert minitl.Tensor([1.0, 2.0]).dtype == np.float32
    assert minitl.Tensor(np.zeros(2)).dtype == np.float64
    assert minitl.Tensor(np.zeros(2, np.float32)).dtype == np.float32
    assert minitl.Tensor(np.arange(3)).dtype.kind == "i"
    assert (minitl.Tensor(np.zeros(2, np.float32)) * 2.5).dtype == np.float32
    assert minitl.Tensor([1.0], dtype="float64").dtype == np.float64


def test_ops_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 1, 4)), rng.normal(size=(2, 1))
    pos = rng.uniform(0.5, 2.0, size=(3, 4))
    m1, m2 = rng.normal(size=(2, 3, 4)), rng.normal(size=(4, 5))
    against_torch(lambda x, y: x * y - x / (y + 3.0), lambda x, y: x * y - x / (y + 3.0), a, b)
    against_torch(lambda x: x ** 1.5 + 2.0 ** x, lambda x: x ** 1.5 + 2.0 ** x, pos)
    against_torch(lambda x, y: x @ y, lambda x, y: x @ y, m1, m2)
    against_torch(lambda x: x.sum(axis=(0, 2), keepdims=True), lambda x: x.sum(dim=(0, 2), keepdim=True), m1)
    against_torch(lambda x: x.mean(axis=1), lambda x: x.mean(dim=1), m1)
    against_torch(lambda x: x.max(axis=-1), lambda x: torch.amax(x, dim=-1), m1)
    against_torch(lambda x: x.permute(2, 0, 1).reshape(4, -1), lambda x: x.permute(2, 0, 1).reshape(4, -1), m1)
    against_torch(lambda x: x.transpose(0, 2), lambda x: x.transpose(0, 2), m1)
    against_torch(lambda x: x[1, ::2, 1:], lambda x: x[1, ::2, 1:], m1)
    idx = np.array([2, 0, 2])
    against_torch(lambda x: x[minitl.Tensor(idx)], lambda x: x[torch.tensor(idx)], m2)
    against_torch(lambda x, y: minitl.cat([x, y], axis=0), lambda x, y: torch.cat([x, y], dim=0), pos, pos * 2)
    against_torch(lambda x, y: minitl.stack([x, y], axis=1), lambda x, y: torch.stack([x, y], dim=1), pos, pos)
    against_torch(lambda x: x.exp().log().sqrt().abs(), lambda x: x.exp().log().sqrt().abs(), pos)
    against_torch(lambda x: x.clip(-0.5, 0.7), lambda x: x.clamp(-0.5, 0.7), m2)
