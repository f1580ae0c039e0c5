"""The engine's state: grad mode (per thread) and the observer hook.

``no_grad()`` turns graph recording off for a block (inference, optimizer updates); the hook lets
minitl.inspect watch every op without the engine knowing about it.
"""
from __future__ import annotations

import contextlib
import threading

_state = threading.local()

# An optional observer of the engine (minitl.inspect's trace and cost model set it for the length of
# one recording; None otherwise, so the engine pays one attribute lookup per op).  It is called as
#   hook("forward", fn, input_tensors, output_tensor, options)   after each Function.apply,
#   hook("backward", fn, output_tensor, grad_output, input_grads) after each fn.backward, before release,
#   hook("leaf", None, leaf_tensor, grad, None)                 when a gradient reaches a leaf.
hook = None


def set_hook(new_hook):
    """Install ``new_hook`` as the engine's observer (None removes it); returns the previous one."""
    global hook
    previous, hook = hook, new_hook
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
