"""The op protocol: a :class:`Function` computes y = f(x1, x2, ...) on arrays and knows its chain rule.

``Fn.apply(*tensors)`` runs ``forward`` and, when some input wants a gradient, records the call as
a node of the graph (the output tensor's ``_ctx``) for :mod:`minitl.tensor.engine` to walk back.
"""
from __future__ import annotations

import numpy

from .. import backend
from . import state
from .core import Tensor


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
        recording = state.is_grad_enabled()  # under no_grad no input wants a gradient: forward saves nothing for one
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
        if state.hook is not None:
            state.hook("forward", fn, tensors, out, options)
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

