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

The package, one job a file (imports flow state -> engine -> core -> function -> ops; core binds
ops late, as its methods call them):

    state.py     grad mode (no_grad, enable_grad) and the observer hook
    engine.py    the backward pass: reverse topological order, summing, unbroadcasting, freeing
    core.py      Tensor (and tensor/zeros/ones)
    function.py  Function, the op protocol (apply records the graph node)
    ops.py       the primitive ops behind Tensor's operators (Add ... Stack) and concatenate/stack
"""
from __future__ import annotations

from .core import DEFAULT_DTYPE, Tensor, ones, tensor, zeros
from .function import Function
from .ops import (Abs, Add, Cast, Clip, Concatenate, Div, Exp, GetItem, Log, MatMul, Max, Mean, Mul, Neg, Pow,
                  Reshape, Sqrt, Stack, Sub, Sum, ToDevice, Transpose, cat, concatenate, stack)
from .state import enable_grad, is_grad_enabled, no_grad, set_hook

__all__ = ["DEFAULT_DTYPE", "Tensor", "Function", "tensor", "zeros", "ones", "concatenate", "cat", "stack",
           "no_grad", "enable_grad", "is_grad_enabled", "set_hook",
           "Add", "Sub", "Mul", "Div", "Neg", "Pow", "MatMul", "ToDevice", "Cast", "Exp", "Log", "Sqrt", "Abs", "Clip",
           "Sum", "Mean", "Max", "Reshape", "Transpose", "GetItem", "Concatenate", "Stack"]
