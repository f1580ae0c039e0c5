"""The Tensor: an n-dimensional backend array that remembers the op that computed it.

Its operators and methods are thin: each calls one differentiable op of :mod:`minitl.tensor.ops`
(``a + b`` is ``ops.Add.apply(a, b)``), and ``backward`` hands the graph to
:mod:`minitl.tensor.engine`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy

from .. import backend
from . import engine

if TYPE_CHECKING:
    from .function import Function

DEFAULT_DTYPE = numpy.float32


def _as_array(data, dtype=None, device=None):
    """Turn data into a backend array; floats default to float32 unless dtype is given."""
    if isinstance(data, Tensor):
        data = data.data
    target = backend.get_backend(device) if device is not None else None
    owner = backend.backend_of(data)
    is_array = isinstance(data, numpy.ndarray) or owner is not backend.NUMPY
    if target is None:
        target = owner if owner is not backend.NUMPY else backend.get_backend()
    if owner is not target:
        if owner is not backend.NUMPY:
            raise ValueError(
                f"array lives on {owner.device!r}, asked for {target.device!r}: use Tensor.to(device)"
            )
        if target is not backend.NUMPY and isinstance(data, (bool, int, float, numpy.generic)):
            # a scalar reaches the device through a fill kernel, not a host->device copy
            if dtype is None:
                dtype = DEFAULT_DTYPE if type(data) is float else numpy.asarray(data).dtype
            return target.xp.full((), data, dtype=dtype)
        data = numpy.asarray(data)
    array = target.xp.asarray(data)
    if dtype is None and not is_array and array.dtype.kind == "f":
        dtype = DEFAULT_DTYPE  # Python numbers and lists: float32 (arrays keep their dtype)
    if dtype is not None and array.dtype != numpy.dtype(dtype):
        array = array.astype(dtype)
    return array


class Tensor:
    """An n-dimensional array that remembers how it was computed.

    ``Tensor(data, requires_grad=False, dtype=None, device=None)``: Python numbers and
    lists of floats become float32 (the default dtype); arrays keep their dtype, as
    ``torch.tensor`` does; ``dtype="float64"`` asks for double precision (gradient checks).
    """

    __array_priority__ = 1000  # make numpy defer to Tensor's reflected operators
    _freed = False  # True once backward has freed the op that computed this (non-leaf) tensor

    def __init__(self, data, requires_grad: bool = False, dtype=None, device=None):
        self.data = _as_array(data, dtype, device)
        self.grad: Tensor | None = None
        self.requires_grad = bool(requires_grad)
        self._ctx: Function | None = None  # the Function that produced this tensor

    # ----------------------------------------------------------------- properties
    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return int(self.data.size)

    @property
    def device(self) -> str:
        return backend.backend_of(self.data).device

    @property
    def xp(self):
        return backend.get_array_module(self.data)

    @property
    def is_leaf(self) -> bool:
        """Made by the user (a parameter, an input), not computed by a recorded op."""
        return self._ctx is None and not self._freed

    def __len__(self) -> int:
        return self.data.shape[0]

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        device = "" if self.device == "cpu" else f", device={self.device!r}"
        return f"Tensor({backend.to_numpy(self.data)!r}{grad}{device})"

    # ----------------------------------------------------------------- conversion
    def numpy(self) -> numpy.ndarray:
        """The data as a host (NumPy) array: on the CPU the tensor's own array (no copy, as
        ``torch.Tensor.numpy``), from a GPU a copy (a device->host transfer)."""
        return backend.to_numpy(self.data)

    def item(self):
        """The single value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a one-element tensor, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def astype(self, dtype) -> Tensor:
        return ops.Cast.apply(self, dtype=numpy.dtype(dtype))

    def float(self) -> Tensor:
        return self.astype(numpy.float32)

    def double(self) -> Tensor:
        return self.astype(numpy.float64)

    def to(self, device) -> Tensor:
        """This tensor on ``device`` ("cpu", "cuda"); itself when it is there already.

        A leaf moves as a new leaf (a parameter or an input keeps collecting its own ``.grad``);
        a computed tensor moves through :class:`ToDevice`, a differentiable op: its gradient
        flows back to the source device, as with ``torch.Tensor.to``.
        """
        if backend.get_backend(device).device == self.device:
            return self
        if not self.is_leaf:
            return ops.ToDevice.apply(self, device=device)
        return Tensor(backend.to_device(self.data, device), requires_grad=self.requires_grad)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        self.requires_grad = bool(flag)
        return self

    def zero_grad_(self) -> None:
        self.grad = None

    # ----------------------------------------------------------------- autograd
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Back-propagate: fill ``.grad`` of every leaf that requires it with dJ/dleaf.

        ``grad`` is dJ/dself; it may be omitted for a one-element tensor (then 1).
        Walks the graph in reverse topological order, freeing each node's saved arrays once it
        has run; ``retain_graph=True`` keeps them, so the graph can be back-propagated again
        (the leaves' gradients then add up).  Reaching a freed node raises RuntimeError.
        The walk itself is :func:`minitl.tensor.engine.backward`.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (no graph was built)")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() without grad needs a one-element tensor, got shape {self.shape}")
            grad = self.xp.ones_like(self.data)
        else:
            grad = _as_array(grad, dtype=self.dtype)
            if grad.shape != self.data.shape:
                raise ValueError(f"grad shape {grad.shape} does not match tensor shape {self.shape}")
        engine.backward(self, grad, retain_graph)

    # ----------------------------------------------------------------- operators
    def __add__(self, other):
        return ops.Add.apply(self, other)

    def __radd__(self, other):
        return ops.Add.apply(other, self)

    def __sub__(self, other):
        return ops.Sub.apply(self, other)

    def __rsub__(self, other):
        return ops.Sub.apply(other, self)

    def __mul__(self, other):
        return ops.Mul.apply(self, other)

    def __rmul__(self, other):
        return ops.Mul.apply(other, self)

    def __truediv__(self, other):
        return ops.Div.apply(self, other)

    def __rtruediv__(self, other):
        return ops.Div.apply(other, self)

    def __pow__(self, other):
        return ops.Pow.apply(self, other)

    def __rpow__(self, other):
        return ops.Pow.apply(other, self)

    def __matmul__(self, other):
        return ops.MatMul.apply(self, other)

    def __rmatmul__(self, other):
        return ops.MatMul.apply(other, self)

    def __neg__(self):
        return ops.Neg.apply(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return self.abs()

    # comparisons give plain (non-differentiable) boolean tensors
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(op(self.data, other))

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    def eq(self, other):
        return self._compare(other, lambda a, b: a == b)

    def ne(self, other):
        return self._compare(other, lambda a, b: a != b)

    __hash__ = object.__hash__  # tensors are graph nodes, hashed by identity

    def __getitem__(self, index):
        return ops.GetItem.apply(self, index=_unwrap_index(index))

    # ----------------------------------------------------------------- methods
    def sum(self, axis=None, keepdims=False):
        return ops.Sum.apply(self, axis=_norm_axis(axis), keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return ops.Mean.apply(self, axis=_norm_axis(axis), keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return ops.Max.apply(self, axis=_norm_axis(axis), keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        return -ops.Max.apply(-self, axis=_norm_axis(axis), keepdims=keepdims)

    def argmax(self, axis=None):
        return Tensor(self.data.argmax(axis=axis))

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ops.Reshape.apply(self, shape=shape)

    def flatten(self, start_dim=0):
        return self.reshape(self.shape[:start_dim] + (-1,))

    def transpose(self, *axes):
        """``x.transpose()`` reverses the axes; ``x.transpose(a, b)`` swaps two (like torch);
        ``x.transpose((2, 0, 1))`` permutes them (like NumPy)."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        elif len(axes) == 2:
            a, b = axes
            perm = list(range(self.ndim))
            perm[a], perm[b] = perm[b], perm[a]
            axes = tuple(perm)
        return ops.Transpose.apply(self, axes=axes or None)

    def permute(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return ops.Transpose.apply(self, axes=tuple(axes))

    @property
    def T(self):
        return ops.Transpose.apply(self, axes=None)

    def exp(self):
        return ops.Exp.apply(self)

    def log(self):
        return ops.Log.apply(self)

    def sqrt(self):
        return ops.Sqrt.apply(self)

    def abs(self):
        return ops.Abs.apply(self)

    def clip(self, min=None, max=None):  # noqa: A002 (numpy/torch names)
        return ops.Clip.apply(self, low=min, high=max)


def _unwrap_index(index):
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


def _norm_axis(axis):
    if isinstance(axis, list):
        return tuple(axis)
    return axis


# ============================================================================ creation
def tensor(data, requires_grad=False, dtype=None, device=None) -> Tensor:
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)


def zeros(*shape, dtype=DEFAULT_DTYPE, requires_grad=False, device=None) -> Tensor:
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    xp = backend.get_backend(device).xp
    return Tensor(xp.zeros(shape, dtype=dtype), requires_grad=requires_grad)


def ones(*shape, dtype=DEFAULT_DTYPE, requires_grad=False, device=None) -> Tensor:
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    xp = backend.get_backend(device).xp
    return Tensor(xp.ones(shape, dtype=dtype), requires_grad=requires_grad)


# The primitive ops build on Tensor (their outputs are Tensors), so they are bound here, after the
# class exists; Tensor's methods reach them as ops.<Op> at call time.
from . import ops  # noqa: E402
