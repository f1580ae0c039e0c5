"""Tensor and the define-by-run autograd engine.

Every differentiable operation is a :class:`Function` with two methods:

    forward(*arrays)  -> array               computes y = f(x1, x2, ...)
    backward(grad_y)  -> (grad_x1, ...)      the chain rule: dJ/dx_i = dJ/dy * dy/dx_i

Calling ``Fn.apply(*tensors)`` runs ``forward`` and, when gradients are wanted, records the
call as a node of the graph.  ``Tensor.backward()`` walks those nodes in reverse topological
order, calls each ``backward`` once, sums gradients that meet at a tensor, and frees each
node's saved arrays as soon as it has run, so a training loop does not grow memory.  A second
``backward`` through a freed node raises (as PyTorch does); ``backward(retain_graph=True)``
keeps the graph for another pass.

Gradients of leaf tensors (parameters) *accumulate* in ``.grad`` across ``backward`` calls,
as in PyTorch: call ``optimizer.zero_grad()`` (or ``tensor.grad = None``) between steps.
Intermediate (non-leaf) tensors never get a ``.grad``: their gradient exists only during the
pass, on its way to the leaves.
"""
from __future__ import annotations

import contextlib
import threading

import numpy

from . import backend

DEFAULT_DTYPE = numpy.float32

_state = threading.local()

# An optional observer of the engine (minitl.inspect's trace and cost model set it for the length of
# one recording; None otherwise, so the engine pays one global lookup per op).  It is called as
#   hook("forward", fn, input_tensors, output_tensor, options)   after each Function.apply,
#   hook("backward", fn, output_tensor, grad_output, input_grads) after each fn.backward, before release,
#   hook("leaf", None, leaf_tensor, grad, None)                 when a gradient reaches a leaf.
_hook = None


def set_hook(hook):
    """Install ``hook`` as the engine's observer (None removes it); returns the previous one."""
    global _hook
    previous, _hook = _hook, hook
    return previous


def is_grad_enabled() -> bool:
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def no_grad():
    """Inside this block no graph is built at all (inference, optimizer updates)."""
    previous = is_grad_enabled()
    _state.grad_enabled = False
    try:
        yield
    finally:
        _state.grad_enabled = previous


@contextlib.contextmanager
def enable_grad():
    previous = is_grad_enabled()
    _state.grad_enabled = True
    try:
        yield
    finally:
        _state.grad_enabled = previous


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
        return Cast.apply(self, dtype=numpy.dtype(dtype))

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
            return ToDevice.apply(self, device=device)
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
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (no graph was built)")
        xp = self.xp
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() without grad needs a one-element tensor, got shape {self.shape}")
            grad = xp.ones_like(self.data)
        else:
            grad = _as_array(grad, dtype=self.dtype)
            if grad.shape != self.data.shape:
                raise ValueError(f"grad shape {grad.shape} does not match tensor shape {self.shape}")

        order = _topological_order(self)
        grads = {id(self): grad}
        handed_out = set()  # ids of arrays already stored as some leaf's .grad in this pass
        while order:  # reverse topological order; popping lets each finished tensor be freed at once
            tensor = order.pop()
            g = grads.pop(id(tensor), None)
            if g is None:
                continue
            fn = tensor._ctx
            if fn is None:  # a leaf: accumulate, like PyTorch
                if _hook is not None:
                    _hook("leaf", None, tensor, g, None)
                if tensor.grad is None:
                    # a leaf owns its .grad: copy the caller's array, views (a read-only broadcast,
                    # say) and arrays another leaf already got (Add hands the same g to both inputs)
                    if g is grad or g.base is not None or id(g) in handed_out:
                        g = g.copy(order="K")  # keep g's memory layout (NHWC conv gradients): no transposing copy
                    handed_out.add(id(g))
                    tensor.grad = Tensor(g)
                else:
                    tensor.grad = Tensor(tensor.grad.data + g)
                continue
            fn.graph_retained = retain_graph  # backward may free what it saved early only when False
            input_grads = fn.backward(g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            if _hook is not None:
                _hook("backward", fn, tensor, g, input_grads)
            for parent, parent_grad in zip(fn.inputs, input_grads):
                if parent is None or parent_grad is None or not parent.requires_grad:
                    continue
                parent_grad = _unbroadcast(parent_grad, parent.data.shape)
                previous = grads.get(id(parent))
                grads[id(parent)] = parent_grad if previous is None else previous + parent_grad
            if not retain_graph:  # free the graph: this node has done its work
                fn.release()
                tensor._ctx, tensor._freed = None, True

    # ----------------------------------------------------------------- operators
    def __add__(self, other):
        return Add.apply(self, other)

    def __radd__(self, other):
        return Add.apply(other, self)

    def __sub__(self, other):
        return Sub.apply(self, other)

    def __rsub__(self, other):
        return Sub.apply(other, self)

    def __mul__(self, other):
        return Mul.apply(self, other)

    def __rmul__(self, other):
        return Mul.apply(other, self)

    def __truediv__(self, other):
        return Div.apply(self, other)

    def __rtruediv__(self, other):
        return Div.apply(other, self)

    def __pow__(self, other):
        return Pow.apply(self, other)

    def __rpow__(self, other):
        return Pow.apply(other, self)

    def __matmul__(self, other):
        return MatMul.apply(self, other)

    def __rmatmul__(self, other):
        return MatMul.apply(other, self)

    def __neg__(self):
        return Neg.apply(self)

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
        return GetItem.apply(self, index=_unwrap_index(index))

    # ----------------------------------------------------------------- methods
    def sum(self, axis=None, keepdims=False):
        return Sum.apply(self, axis=_norm_axis(axis), keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return Mean.apply(self, axis=_norm_axis(axis), keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return Max.apply(self, axis=_norm_axis(axis), keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        return -Max.apply(-self, axis=_norm_axis(axis), keepdims=keepdims)

    def argmax(self, axis=None):
        return Tensor(self.data.argmax(axis=axis))

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Reshape.apply(self, shape=shape)

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
        return Transpose.apply(self, axes=axes or None)

    def permute(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return Transpose.apply(self, axes=tuple(axes))

    @property
    def T(self):
        return Transpose.apply(self, axes=None)

    def exp(self):
        return Exp.apply(self)

    def log(self):
        return Log.apply(self)

    def sqrt(self):
        return Sqrt.apply(self)

    def abs(self):
        return Abs.apply(self)

    def clip(self, min=None, max=None):  # noqa: A002 (numpy/torch names)
        return Clip.apply(self, low=min, high=max)


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


def _topological_order(root: Tensor) -> list[Tensor]:
    """Tensors of the graph, each after everything it depends on (iterative DFS)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        if tensor._freed:
            raise RuntimeError(
                f"backward through a graph that was already back-propagated: the tensor of shape {tensor.shape} "
                "was computed by an op whose saved arrays the first backward() freed; call "
                "backward(retain_graph=True) the first time to back-propagate twice")
        if tensor._ctx is not None:
            for parent in tensor._ctx.inputs:
                if parent is not None and parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def _unbroadcast(grad, shape):
    """Sum a gradient back to the shape of the input that was broadcast to make it."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


class Function:
    """One differentiable operation: ``forward`` on arrays, ``backward`` by the chain rule.

    Subclasses implement ``forward(self, *arrays, **options)`` and ``backward(self, grad)``,
    and keep what backward needs on ``self``.  ``self.needs_input_grad[i]`` tells backward
    whether input ``i`` wants a gradient, so it can skip work for frozen inputs.
    ``self.graph_retained`` (set before each ``backward``) is True under ``retain_graph=True``:
    backward must then leave what it saved intact (it may run again).
    """

    inputs: tuple
    needs_input_grad: tuple

    @classmethod
    def apply(cls, *inputs, **options):
        tensors = _to_tensors(inputs)
        fn = cls()
        recording = is_grad_enabled()  # under no_grad no input wants a gradient: forward saves nothing for one
        fn.needs_input_grad = tuple(recording and t is not None and t.requires_grad for t in tensors)
        arrays = [t.data if t is not None else None for t in tensors]
        out = Tensor.__new__(Tensor)
        out.data = fn.forward(*arrays, **options)
        out.grad = None
        out.requires_grad = any(fn.needs_input_grad)
        out._ctx = None
        if out.requires_grad:
            fn.inputs = tensors
            out._ctx = fn
        if _hook is not None:
            _hook("forward", fn, tensors, out, options)
        return out

    def forward(self, *arrays, **options):  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, grad):  # pragma: no cover - interface
        raise NotImplementedError

    def release(self) -> None:
        """Drop references to inputs and saved arrays once backward has used them."""
        self.__dict__.clear()


def _to_tensors(inputs):
    """Wrap non-tensor inputs (Python numbers, arrays) with the dtype/device of the tensors."""
    array_types = {type(x.data) for x in inputs if isinstance(x, Tensor)}
    if len(array_types) == 1 and all(isinstance(x, Tensor) or x is None for x in inputs):
        return inputs  # the common case: tensors only, one array type, hence one device
    reference = next((x for x in inputs if isinstance(x, Tensor)), None)
    if reference is not None:
        for x in inputs:
            if isinstance(x, Tensor) and x.device != reference.device:
                raise ValueError(
                    f"tensors on different devices in one op: {reference.device!r} and {x.device!r}; "
                    "move them with .to(device) first"
                )
    out = []
    for x in inputs:
        if isinstance(x, Tensor) or x is None:
            out.append(x)
        elif reference is None:
            out.append(Tensor(x))
        else:
            dtype = reference.dtype if reference.dtype.kind == "f" else None
            if backend.backend_of(x) is not backend.backend_of(reference.data) and not isinstance(x, (int, float, bool, numpy.generic)):
                raise ValueError(
                    f"an array on {backend.backend_of(x).device!r} mixed with a tensor on {reference.device!r}; "
                    "move it with .to(device) first"
                )
            out.append(Tensor(x, dtype=dtype, device=reference.device))
    return tuple(out)


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
            ga = _unbroadcast(ga, a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            gb = xp.swapaxes(a2, -1, -2) @ g2
            gb = _unbroadcast(gb, b2.shape).reshape(b.shape)
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
