"""The primitive differentiable ops behind Tensor's operators and methods, each a :class:`Function`
whose docstring states y = f(x) and its local derivative (the rule its ``backward`` applies)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy

from .. import backend
from .engine import unbroadcast
from .function import Function

if TYPE_CHECKING:
    from .core import Tensor


# ============================================================================ arithmetic
class Add(Function):
    """y = a + b;  dy/da = 1, dy/db = 1."""

    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


class Sub(Function):
    """y = a - b;  dy/da = 1, dy/db = -1."""

    def forward(self, a, b):
        return a - b

    def backward(self, g):
        return g, -g


class Mul(Function):
    """y = a * b;  dy/da = b, dy/db = a."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        ga = g * self.b if self.needs_input_grad[0] else None
        gb = g * self.a if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """y = a / b;  dy/da = 1/b, dy/db = -a/b^2."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        ga = g / self.b if self.needs_input_grad[0] else None
        gb = -g * self.a / (self.b * self.b) if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    """y = -x;  dy/dx = -1."""

    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


class Pow(Function):
    """y = a^b;  dy/da = b a^(b-1),  dy/db = a^b ln a."""

    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = a**b
        return self.y

    def backward(self, g):
        xp = backend.get_array_module(g)
        ga = g * self.b * self.a ** (self.b - 1) if self.needs_input_grad[0] else None
        gb = None
        if self.needs_input_grad[1]:
            safe_log = xp.log(xp.where(self.a > 0, self.a, 1))
            gb = g * self.y * safe_log
        return ga, gb


class MatMul(Function):
    """Y = A @ B;  dJ/dA = dJ/dY @ Bᵀ,  dJ/dB = Aᵀ @ dJ/dY  (batched over leading axes)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        a, b = self.a, self.b
        xp = backend.get_array_module(g)
        ga = gb = None
        if a.ndim == 1 and b.ndim == 1:  # inner product
            return (g * b if self.needs_input_grad[0] else None), (g * a if self.needs_input_grad[1] else None)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = xp.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = xp.expand_dims(g2, -1)
        if self.needs_input_grad[0]:
            ga = g2 @ xp.swapaxes(b2, -1, -2)
            ga = unbroadcast(ga, a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            gb = xp.swapaxes(a2, -1, -2) @ g2
            gb = unbroadcast(gb, b2.shape).reshape(b.shape)
        return ga, gb


class ToDevice(Function):
    """y = x on another device;  dJ/dx = dJ/dy moved back to x's device."""

    def forward(self, x, device):
        self.source = backend.backend_of(x).device
        return backend.to_device(x, device)

    def backward(self, g):
        return backend.to_device(g, self.source)


class Cast(Function):
    """y = x in another dtype; the gradient is cast back."""

    def forward(self, x, dtype):
        self.dtype = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return g.astype(self.dtype)


# ============================================================================ elementwise
class Exp(Function):
    """y = e^x;  dy/dx = e^x = y."""

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.y = xp.exp(x)
        return self.y

    def backward(self, g):
        return g * self.y


class Log(Function):
    """y = ln x;  dy/dx = 1/x."""

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.x = x
        return xp.log(x)

    def backward(self, g):
        return g / self.x


class Sqrt(Function):
    """y = √x;  dy/dx = 1 / (2√x)."""

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.y = xp.sqrt(x)
        return self.y

    def backward(self, g):
        return g / (2 * self.y)


class Abs(Function):
    """y = |x|;  dy/dx = sign(x)  (0 at x = 0)."""

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.x = x
        return xp.abs(x)

    def backward(self, g):
        xp = backend.get_array_module(g)
        return g * xp.sign(self.x)


class Clip(Function):
    """y = min(max(x, low), high);  dy/dx = 1 inside [low, high], 0 outside."""

    def forward(self, x, low=None, high=None):
        xp = backend.get_array_module(x)
        self.inside = xp.ones(x.shape, dtype=bool)
        if low is not None:
            self.inside &= x >= low
        if high is not None:
            self.inside &= x <= high
        return xp.clip(x, low, high)

    def backward(self, g):
        return g * self.inside


# ============================================================================ reductions
def _expand_reduced(g, shape, axis, keepdims):
    """Re-insert the reduced axes of a gradient so it broadcasts against the input."""
    if axis is None or keepdims:
        return g.reshape([1] * len(shape)) if axis is None and not keepdims else g
    axes = (axis,) if isinstance(axis, int) else axis
    axes = sorted(a % len(shape) for a in axes)
    for a in axes:
        g = g.reshape(g.shape[:a] + (1,) + g.shape[a:])
    return g


class Sum(Function):
    """y = Σ_i x_i over ``axis``;  dy/dx_i = 1 (the gradient is broadcast back)."""

    def forward(self, x, axis=None, keepdims=False):
        self.shape, self.axis, self.keepdims = x.shape, axis, keepdims
        return x.sum(axis=axis, keepdims=keepdims)

    def backward(self, g):
        xp = backend.get_array_module(g)
        return xp.broadcast_to(_expand_reduced(g, self.shape, self.axis, self.keepdims), self.shape)


class Mean(Function):
    """y = (1/n) Σ_i x_i over ``axis``;  dy/dx_i = 1/n."""

    def forward(self, x, axis=None, keepdims=False):
        self.shape, self.axis, self.keepdims = x.shape, axis, keepdims
        y = x.mean(axis=axis, keepdims=keepdims)
        self.n = x.size // max(y.size, 1) if x.size else 1
        return y

    def backward(self, g):
        xp = backend.get_array_module(g)
        g = _expand_reduced(g, self.shape, self.axis, self.keepdims) / self.n
        return xp.broadcast_to(g, self.shape)


class Max(Function):
    """y = max_i x_i over ``axis``;  dy/dx_i = 1 for the maximum (ties share it equally)."""

    def forward(self, x, axis=None, keepdims=False):
        self.x, self.axis, self.keepdims = x, axis, keepdims
        self.y = x.max(axis=axis, keepdims=True)
        return self.y if keepdims else (self.y.reshape(()) if axis is None else x.max(axis=axis))

    def backward(self, g):
        is_max = self.x == self.y
        count = is_max.sum(axis=self.axis, keepdims=True)
        g = _expand_reduced(g, self.x.shape, self.axis, self.keepdims)
        return g * is_max / count


# ============================================================================ shape
class Reshape(Function):
    """y = x viewed with another shape; the gradient is reshaped back."""

    def forward(self, x, shape):
        self.shape = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return g.reshape(self.shape)


class Transpose(Function):
    """y = x with permuted axes; the gradient is permuted by the inverse permutation."""

    def forward(self, x, axes=None):
        self.axes = axes
        return x.transpose(axes) if axes is not None else x.T

    def backward(self, g):
        if self.axes is None:
            return g.T
        return g.transpose(_inverse_permutation(self.axes))


def _inverse_permutation(axes):
    inverse = [0] * len(axes)
    for i, a in enumerate(axes):
        inverse[a] = i
    return tuple(inverse)


class GetItem(Function):
    """y = x[index];  the gradient is scattered back: dJ/dx[index] += dJ/dy.

    Basic slicing writes the gradient into place; integer-array indexing may pick an
    element twice, so it scatter-adds (repeated indices sum their gradients).
    """

    def forward(self, x, index):
        self.shape, self.dtype, self.index = x.shape, x.dtype, index
        return x[index]

    def backward(self, g):
        xp = backend.get_array_module(g)
        grad = xp.zeros(self.shape, dtype=g.dtype)
        if _is_basic_index(self.index):
            grad[self.index] = g
        else:
            backend.scatter_add(xp, grad, self.index, g)
        return grad


def _is_basic_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in items)


class Concatenate(Function):
    """y = [x_1, x_2, ...] joined along ``axis``; each x_k gets its slice of the gradient."""

    def forward(self, *arrays, axis=0):
        xp = backend.get_array_module(*arrays)
        self.axis = axis
        self.sizes = [a.shape[axis] for a in arrays]
        return xp.concatenate(arrays, axis=axis)

    def backward(self, g):
        xp = backend.get_array_module(g)
        splits = numpy.cumsum(self.sizes)[:-1].tolist()
        return tuple(xp.split(g, splits, axis=self.axis))


class Stack(Function):
    """y = [x_1, x_2, ...] stacked on a new ``axis``; each x_k gets its slice of the gradient."""

    def forward(self, *arrays, axis=0):
        xp = backend.get_array_module(*arrays)
        self.axis = axis
        return xp.stack(arrays, axis=axis)

    def backward(self, g):
        xp = backend.get_array_module(g)
        return tuple(xp.take(g, i, axis=self.axis) for i in range(g.shape[self.axis]))


def concatenate(tensors, axis=0) -> Tensor:
    return Concatenate.apply(*tensors, axis=axis)


cat = concatenate


def stack(tensors, axis=0) -> Tensor:
    return Stack.apply(*tensors, axis=axis)


