"""Module and Parameter: the bookkeeping that wires parameters to functional ops.

A :class:`Module` registers every :class:`Parameter`, buffer and sub-module assigned to it
as an attribute, so ``named_parameters()`` yields dotted names (``layers.0.weight``) and
``state_dict()`` / ``load_state_dict()`` round-trip them — with PyTorch's names, so a
PyTorch checkpoint maps one to one.  No math lives here.
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy

from .. import backend
from ..tensor import Tensor


class Parameter(Tensor):
    """A tensor that is a learnable weight of a module: ``requires_grad=True`` by default."""

    def __init__(self, data, requires_grad: bool = True, dtype=None, device=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype, device=device)

    def __repr__(self) -> str:
        return "Parameter(" + super().__repr__()[len("Tensor(") :]


@dataclass
class LoadReport:
    """What ``load_state_dict`` did: names loaded, and names missing, unexpected, mismatched, skipped."""

    loaded: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    mismatched: list = field(default_factory=list)  # (name, expected shape, given shape)
    skipped: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self) -> str:
        lines = []
        if self.missing:
            lines.append(f"missing ({len(self.missing)}): " + ", ".join(self.missing))
        if self.unexpected:
            lines.append(f"unexpected ({len(self.unexpected)}): " + ", ".join(self.unexpected))
        if self.mismatched:
            lines.append(
                f"shape mismatch ({len(self.mismatched)}): "
                + ", ".join(f"{n} expects {tuple(e)}, got {tuple(g)}" for n, e, g in self.mismatched)
            )
        if self.skipped:
            lines.append(f"skipped on request ({len(self.skipped)}): " + ", ".join(self.skipped))
        return "\n".join(lines) if lines else f"all {len(self.loaded)} entries loaded"


class StateDictError(ValueError):
    """A strict ``load_state_dict`` found missing, unexpected or mis-shaped entries."""

    def __init__(self, report: LoadReport):
        self.report = report
        super().__init__("load_state_dict failed:\n" + report.describe())


def _host_copy(tensor: Tensor) -> numpy.ndarray:
    """A host array that shares no memory with the tensor (one copy, also from a device)."""
    host = tensor.numpy()
    return host.copy() if host is tensor.data else host


class Module:
    """Base class of every layer and network: ``forward`` does the math, the rest is bookkeeping."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ----------------------------------------------------------------- registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("call Module.__init__() before assigning attributes")
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self.__dict__.get("_buffer_names", ()):
            self._buffers[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value) -> None:
        """A tensor that is state but not a parameter (BatchNorm's running mean, say)."""
        names = self.__dict__.setdefault("_buffer_names", set())
        names.add(name)
        if value is not None and not isinstance(value, Tensor):
            value = Tensor(value)
        setattr(self, name, value)
        self._buffers[name] = value

    def register_parameter(self, name: str, value) -> None:
        setattr(self, name, value)

    def add_module(self, name: str, module: Module) -> None:
        setattr(self, name, module)

    # ----------------------------------------------------------------- calling
    def forward(self, *args, **kwargs):  # pragma: no cover - interface
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ----------------------------------------------------------------- traversal
    def children(self):
        return iter(self._modules.values())

    def named_children(self):
        return iter(self._modules.items())

    def named_modules(self, prefix: str = ""):
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_parameters(self, prefix: str = ""):
        """(dotted name, Parameter) for every parameter, each once."""
        seen = set()
        for module_name, module in self.named_modules(prefix):
            for name, param in module._parameters.items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self):
        for _, param in self.named_parameters():
            yield param

    def named_buffers(self, prefix: str = ""):
        for module_name, module in self.named_modules(prefix):
            for name, buf in module._buffers.items():
                if buf is not None:
                    yield (f"{module_name}.{name}" if module_name else name), buf

    def buffers(self):
        for _, buf in self.named_buffers():
            yield buf

    def get_submodule(self, target: str) -> Module:
        module = self
        for part in target.split(".") if target else []:
            if part not in module._modules:
                raise AttributeError(f"{type(module).__name__} has no submodule {part!r} (looking up {target!r})")
            module = module._modules[part]
        return module

    def apply(self, fn):
        for module in self.modules():
            fn(module)
        return self

    # ----------------------------------------------------------------- modes
    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    @contextlib.contextmanager
    def evaluating(self):
        """Inference mode for the duration of a ``with`` block (BatchNorm uses, never updates, its
        running statistics); afterwards every sub-module is back in its own mode, mixed or not."""
        modes = [(module, module.training) for module in self.modules()]
        self.eval()
        try:
            yield self
        finally:
            for module, mode in modes:
                object.__setattr__(module, "training", mode)

    def requires_grad_(self, flag: bool = True) -> Module:
        """Freeze (False) or unfreeze (True) every parameter: a frozen one takes no part in the graph."""
        for param in self.parameters():
            param.requires_grad = flag
        return self

    def zero_grad(self) -> None:
        for param in self.parameters():
            param.grad = None

    def to(self, device) -> Module:
        """Move every parameter and buffer to ``device`` ("cpu", "cuda"), in place."""
        for module in self.modules():
            for store in (module._parameters, module._buffers):
                for name, value in store.items():
                    if value is not None and value.device != backend.get_backend(device).device:
                        value.data = backend.to_device(value.data, device)
                        if value.grad is not None:
                            value.grad.data = backend.to_device(value.grad.data, device)
        return self

    # ----------------------------------------------------------------- state
    def state_dict(self) -> OrderedDict:
        """name -> host array, for every parameter and buffer (PyTorch's names).

        The arrays are a snapshot (copies): optimizers update parameters in place, so a
        state dict kept in memory (the best epoch's weights, say) must not change with them.
        """
        state = OrderedDict()
        for name, param in self.named_parameters():
            state[name] = _host_copy(param)
        for name, buf in self.named_buffers():
            state[name] = _host_copy(buf)
        return state

    def load_state_dict(self, state, strict: bool = True, skip=()) -> LoadReport:
        """Copy arrays into parameters and buffers by name.

        strict=True raises one :class:`StateDictError` listing every missing, unexpected and
        shape-mismatched name together.  ``skip`` names prefixes (e.g. ``["fc"]``) that are
        deliberately left out on both sides — a new head with another class count.
        """
        own = OrderedDict(list(self.named_parameters()) + list(self.named_buffers()))

        def skipped(name):
            return any(name == p or name.startswith(p + ".") for p in skip)

        report = LoadReport()
        for name, value in state.items():
            if skipped(name):
                report.skipped.append(name)
            elif name not in own:
                report.unexpected.append(name)
        updates = []
        for name, target in own.items():
            if skipped(name):
                if name not in report.skipped:
                    report.skipped.append(name)
                continue
            if name not in state:
                report.missing.append(name)
                continue
            value = state[name]
            value = value.numpy() if isinstance(value, Tensor) else numpy.asarray(value)
            if tuple(value.shape) != target.shape:
                report.mismatched.append((name, target.shape, tuple(value.shape)))
                continue
            updates.append((name, target, value))
        if strict and not report.ok:
            raise StateDictError(report)
        for name, target, value in updates:
            target.data = backend.to_device(value.astype(target.dtype, copy=True), target.device)
            report.loaded.append(name)
        return report

    # ----------------------------------------------------------------- display
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"
