"""Watching the engine: which layer is running, and every op it performs, as it happens.

The engine (``minitl.tensor``) calls an optional observer after each ``Function.apply`` and each
``fn.backward``; :class:`Recorder` is that observer.  :func:`layer_scope` tells it which module
(by its dotted name in the model, as ``state_dict`` names it) each op was called from, by
wrapping every sub-module's ``forward`` for the length of the recording.
"""
from __future__ import annotations

import contextlib
import time

from ..tensor import set_hook
from ..nn import Module


def formula_of(fn_class) -> str:
    """The formula an op implements: its ``formula`` attribute, else the first line of its docstring."""
    formula = getattr(fn_class, "formula", None)
    if formula:
        return str(formula)
    doc = (fn_class.__doc__ or "").strip()
    return doc.splitlines()[0].strip() if doc else ""


class LayerStack:
    """The dotted names of the modules whose forward is running, innermost last."""

    def __init__(self):
        self.names: list[str] = []

    @property
    def current(self) -> str:
        return self.names[-1] if self.names else ""


@contextlib.contextmanager
def layer_scope(model, stack: LayerStack, on_enter=None, on_exit=None):
    """Wrap each sub-module's forward so ``stack`` names the module running; undo afterwards.

    ``on_enter(name, module)`` / ``on_exit(name, module, output)`` are called around each call
    (the cost model times layers with them).
    """
    wrapped = []
    if isinstance(model, Module):
        for name, module in model.named_modules():
            original = module.forward

            def forward(*args, _name=name or "(model)", _module=module, _original=original, **kwargs):
                stack.names.append(_name)
                if on_enter is not None:
                    on_enter(_name, _module)
                try:
                    out = _original(*args, **kwargs)
                finally:
                    stack.names.pop()
                if on_exit is not None:
                    on_exit(_name, _module, out)
                return out

            object.__setattr__(module, "forward", forward)
            wrapped.append(module)
    try:
        yield stack
    finally:
        for module in wrapped:
            module.__dict__.pop("forward", None)


class Recorder:
    """Collects the engine's events: ``(kind, fn, tensor, grad_or_inputs, extra, layer, time)``.

    kind is "forward", "backward" or "leaf" (see ``minitl.tensor.state.set_hook``).  Tensors and
    Functions are kept alive while the recorder lives, so their ids stay unique.
    """

    def __init__(self, stack: LayerStack | None = None, sync=None):
        self.stack = stack or LayerStack()
        self.events: list[tuple] = []
        self.layer_of_fn: dict[int, str] = {}
        self.sync = sync  # called before each timestamp (a GPU: wait for the queued kernels)

    def __call__(self, kind, fn, a, b, c):
        if self.sync is not None:
            self.sync()
        now = time.perf_counter()
        if kind == "forward":
            self.layer_of_fn[id(fn)] = self.stack.current
            self.events.append((kind, fn, a, b, c, self.stack.current, now))
        else:
            self.events.append((kind, fn, a, b, c, self.layer_of_fn.get(id(fn), ""), now))

    @contextlib.contextmanager
    def installed(self):
        previous = set_hook(self)
        try:
            yield self
        finally:
            set_hook(previous)
