"""``minitl.trace``: run a small model once and show what the engine does, op by op.

Forward, in call order: each op, the formula it implements (its docstring), the layer it was
called from, input and output shapes with a few values.  Then backward, in the order the engine
runs it (reverse topological order): the gradient ∂J/∂y flowing into each op, the gradients it
sends to its inputs, a float64 finite-difference check of that op's backward
(:mod:`minitl.inspect.fdcheck`), and every time a gradient reaches a parameter and is
accumulated into its ``.grad`` (``grad += ...``: zero it between steps, or it keeps adding).

    >>> import minitl
    >>> t = minitl.trace(model, x, loss=lambda y: F.cross_entropy(y, target))
    >>> print(t.format())          # or t.to_dict() for JSON
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy

from .. import backend
from ..nn import Module
from ..tensor import Tensor, enable_grad
from ..tensor.engine import unbroadcast
from ._record import LayerStack, Recorder, formula_of, layer_scope
from .fdcheck import check_op

SHOW_VALUES = 4


def _view(name: str, array, show: int = SHOW_VALUES) -> dict:
    host = backend.to_numpy(array)
    values = [float(v) if host.dtype.kind in "fc" else int(v) for v in host.reshape(-1)[:show]]
    return {"name": name, "shape": list(host.shape), "dtype": str(host.dtype), "values": values}


def _fmt(view: dict) -> str:
    values = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in view["values"])
    more = ", ..." if int(numpy.prod(view["shape"])) > len(view["values"]) else ""
    return f"{view['name']} {tuple(view['shape'])} [{values}{more}]"


@dataclass
class Step:
    """One event of the trace: an op's forward, an op's backward, or a gradient reaching a leaf."""

    index: int
    phase: str  # "forward" | "backward" | "accumulate"
    op: str
    layer: str
    formula: str = ""
    inputs: list = field(default_factory=list)  # views of the op's inputs (forward)
    output: dict | None = None  # view of its output (forward)
    grad_output: dict | None = None  # ∂J/∂y flowing in (backward); the gradient added (accumulate)
    grad_inputs: list = field(default_factory=list)  # ∂J/∂x_i sent to each input (backward)
    check: dict | None = None  # finite-difference check of this op's backward

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [], "")}


@dataclass
class Trace:
    steps: list
    loss: float

    def forward(self) -> list:
        return [s for s in self.steps if s.phase == "forward"]

    def backward(self) -> list:
        return [s for s in self.steps if s.phase != "forward"]

    def failed_checks(self) -> list:
        return [s for s in self.steps if s.check is not None and not s.check["ok"]]

    def to_dict(self) -> dict:
        return {"loss": self.loss, "steps": [s.to_dict() for s in self.steps]}

    def format(self) -> str:
        lines = ["forward (call order)"]
        for s in self.forward():
            lines.append(f"  #{s.index:<3d} {s.op:<14s} [{s.layer or '-'}]  {s.formula}")
            lines.append("        in   " + "   ".join(_fmt(v) for v in s.inputs))
            lines.append("        out  " + _fmt(s.output))
        lines.append(f"loss J = {self.loss:.6g}")
        lines.append("backward (the engine's order: reverse topological)")
        for s in self.backward():
            if s.phase == "accumulate":
                lines.append(f"  #{s.index:<3d} {s.grad_output['name']}.grad += {_fmt(s.grad_output).split(' ', 1)[1]}")
                continue
            check = s.check
            verdict = "" if check is None else (
                f"   check: {'ok' if check['ok'] else 'FAIL'} rel.err {check['rel_error']:.1e}"
                + ("" if check["checked"] == check["total"] else f" ({check['checked']}/{check['total']} sampled)")
                + (f" ({check['kinks']} at kinks: subgradient)" if check.get("kinks") else ""))
            lines.append(f"  #{s.index:<3d} {s.op:<14s} [{s.layer or '-'}]  dJ/dy {_fmt(s.grad_output)}{verdict}")
            for v in s.grad_inputs:
                lines.append("        -> " + _fmt(v))
        failed = self.failed_checks()
        lines.append(f"finite-difference checks: {sum(1 for s in self.steps if s.check)} ops, "
                     f"{len(failed)} failed" + (": " + ", ".join(f"#{s.index} {s.op}" for s in failed) if failed else ""))
        return "\n".join(lines)


def _as_tensors(inputs) -> list:
    items = list(inputs) if isinstance(inputs, (tuple, list)) else [inputs]
    return [x if isinstance(x, Tensor) else Tensor(x) for x in items]


def trace(model_or_fn, inputs, loss=None, check: bool = True, max_check_elements: int = 64,
          input_names=None) -> Trace:
    """Run ``model_or_fn(*inputs)`` and ``loss(output).backward()``, recording every op.

    ``loss``: a function of the output giving the scalar J (default: the output itself when it
    has one element, else its sum).  Parameters are named as in ``state_dict``; inputs ``x`` (or
    ``input_names``); intermediate tensors ``t<k>``, the output of step k.  Leaf gradients are
    accumulated into ``.grad`` as in any backward pass (zero them afterwards if you train).
    """
    tensors = _as_tensors(inputs)
    names: dict[int, str] = {}
    if isinstance(model_or_fn, Module):
        names.update({id(p): n for n, p in model_or_fn.named_parameters()})
    default = ["x"] if len(tensors) == 1 else [f"x{i}" for i in range(len(tensors))]
    for t, n in zip(tensors, input_names or default):
        names[id(t)] = n
    stack = LayerStack()
    recorder = Recorder(stack)
    with enable_grad(), recorder.installed(), layer_scope(model_or_fn, stack):
        out = model_or_fn(*tensors)
        stack.names.append("(loss)")
        objective = loss(out) if loss is not None else (out if out.size == 1 else out.sum())
        stack.names.pop()
        if objective.size != 1:
            raise ValueError(f"trace: the loss must be a single number, got shape {objective.shape}")
        if not objective.requires_grad:
            raise ValueError("trace: nothing requires a gradient (no parameter or input with requires_grad=True)")
        objective.backward()
    return _steps(recorder, names, float(objective.item()), check, max_check_elements)


def _steps(recorder: Recorder, names: dict, loss_value: float, check: bool, max_check_elements: int) -> Trace:
    steps, forward_of = [], {}

    def name(t):
        return names.setdefault(id(t), "const") if t is not None else "None"

    for kind, fn, a, b, c, layer, _ in recorder.events:
        index = len(steps) + 1
        if kind == "forward":
            inputs, out, options = a, b, c
            forward_of[id(fn)] = (inputs, options)
            step = Step(index, "forward", type(fn).__name__, layer, formula_of(type(fn)),
                        inputs=[_view(name(t), t.data) for t in inputs if t is not None])
            names[id(out)] = f"t{index}"
            step.output = _view(f"t{index}", out.data)
        elif kind == "leaf":
            step = Step(index, "accumulate", "grad", layer, grad_output=_view(name(a), b))
        else:
            out, g, grads = a, b, c
            inputs, options = forward_of[id(fn)]
            step = Step(index, "backward", type(fn).__name__, layer, formula_of(type(fn)),
                        grad_output=_view(names.get(id(out), "y"), g))
            wanted = []
            for t, gi in zip(inputs, list(grads) + [None] * (len(inputs) - len(grads))):
                flows = t is not None and gi is not None and t.requires_grad
                wanted.append(flows)
                if flows:
                    step.grad_inputs.append(_view(f"dJ/d{name(t)}", unbroadcast(gi, t.data.shape)))
            if check:
                result = check_op(type(fn), [t.data if t is not None else None for t in inputs], options, g,
                                  wanted, max_elements=max_check_elements)
                step.check = result.to_dict() if result is not None else None
        steps.append(step)
    return Trace(steps, loss_value)
