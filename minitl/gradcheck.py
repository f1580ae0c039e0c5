"""Gradient checking: the engine's backward against central finite differences in float64.

For a function y = f(x_1, ..., x_k) and a random upstream gradient v (same shape as y),
the scalar J = Σ v ⊙ f(x) has

    analytic  ∂J/∂x_i[j]   from one ``backward(v)`` through the engine, and
    numeric   ∂J/∂x_i[j] ≈ (J(x_i[j] + ε) − J(x_i[j] − ε)) / 2ε      (central difference, error O(ε²)).

Projecting on a random v (not on ``y.sum()``) makes an error that only shows in some output
elements, or a transposed/permuted gradient, visible.  Every input tensor with
``requires_grad=True`` is checked, element by element; an element passes when
|analytic − numeric| ≤ atol + rtol·|numeric|.  The report names the input and its worst
element (index, analytic value, numeric value).

    >>> import minitl, numpy as np
    >>> x = minitl.Tensor(np.random.rand(3, 4), requires_grad=True)
    >>> minitl.gradcheck(lambda t: (t * t).sum(axis=1), [x])    # raises GradcheckError on mismatch
    GradcheckResult(ok=True, ...)

The inputs are copied to float64 first (so a float32 tensor can be passed); integer inputs
(class targets) and non-tensors are passed through unchanged.  Before every evaluation of
``fn`` minitl's generator is reseeded with ``seed``, so a random op (dropout) draws the same
mask each time; the generator's state is restored afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy

from . import backend
from . import random as mt_random
from .tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """The analytic gradient of some input disagrees with the finite-difference one."""

    def __init__(self, result: GradcheckResult):
        self.result = result
        super().__init__(result.describe())


@dataclass
class InputReport:
    """How one differentiable input fared: its worst element and the largest absolute error."""

    name: str
    shape: tuple
    ok: bool
    max_abs_error: float
    worst_index: tuple | None = None  # the element furthest beyond the tolerance (or with the largest error)
    analytic: float | None = None
    numeric: float | None = None
    note: str = ""

    def describe(self) -> str:
        status = "ok" if self.ok else "MISMATCH"
        text = f"{self.name} (shape {self.shape}): {status}, max |analytic - numeric| = {self.max_abs_error:.3g}"
        if self.worst_index is not None:
            text += (f"; worst element {self.worst_index}: analytic {self.analytic:.10g}, "
                     f"numeric {self.numeric:.10g}")
        if self.note:
            text += f" ({self.note})"
        return text


@dataclass
class GradcheckResult:
    """Outcome of :func:`gradcheck`; truthy when every input passed."""

    ok: bool
    inputs: list = field(default_factory=list)  # one InputReport per differentiable input
    eps: float = 1e-6
    atol: float = 1e-5
    rtol: float = 1e-4

    def __bool__(self) -> bool:
        return self.ok

    def describe(self) -> str:
        head = (f"gradcheck {'passed' if self.ok else 'FAILED'} "
                f"(central differences, eps={self.eps:g}, atol={self.atol:g}, rtol={self.rtol:g}):")
        return "\n".join([head] + ["  " + r.describe() for r in self.inputs])

    def __repr__(self) -> str:
        return f"GradcheckResult(ok={self.ok}, inputs={[r.name for r in self.inputs]})"


def _to_float64(value):
    """A float64 copy of a floating tensor (keeping requires_grad); anything else unchanged."""
    if isinstance(value, Tensor) and value.dtype.kind == "f":
        return Tensor(value.data.astype(numpy.float64), requires_grad=value.requires_grad)
    return value


def _outputs(result) -> list:
    outs = list(result) if isinstance(result, (tuple, list)) else [result]
    for out in outs:
        if not isinstance(out, Tensor):
            raise TypeError(f"gradcheck: fn must return a Tensor (or a tuple of them), got {type(out).__name__}")
    return outs


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-4, seed: int = 0,
              raise_exception: bool = True) -> GradcheckResult:
    """Check ``fn``'s analytic gradients against central finite differences in float64.

    ``inputs``: a sequence of arguments (``fn(*inputs)``) or a dict (``fn(**inputs)``, the
    keys name the inputs in the report).  Every :class:`Tensor` among them with
    ``requires_grad=True`` is checked.  ``fn`` returns a Tensor or a tuple of Tensors.

    Returns a :class:`GradcheckResult` (truthy when all inputs pass); with
    ``raise_exception=True`` (default) a failure raises :class:`GradcheckError`, whose
    message names the input and its worst element (index, analytic, numeric).
    """
    names, values, call = _bind(fn, inputs)
    checked = [(name, v) for name, v in zip(names, values) if isinstance(v, Tensor) and v.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input tensor has requires_grad=True, nothing to check")

    saved_state = mt_random.get_state()  # the seed and every generator, host and device
    try:
        projections = _analytic(call, checked, numpy.random.default_rng(seed), seed)

        def objective() -> float:
            """J = Σ v ⊙ f(x) at the inputs' current values (no graph)."""
            mt_random.manual_seed(seed)
            with no_grad():
                results = _outputs(call())
            xp = backend.get_array_module(results[0].data)
            return float(sum(backend.to_numpy(xp.sum(r.data * p)) for r, p in zip(results, projections)))

        reports = []
        for name, tensor in checked:
            analytic = (backend.to_numpy(tensor.grad.data).astype(numpy.float64)
                        if tensor.grad is not None else numpy.zeros(tensor.shape))
            note = "" if tensor.grad is not None else "backward gave no gradient; taken as 0"
            reports.append(_compare(name, analytic, _numeric(tensor, objective, eps), atol, rtol, note))
    finally:
        mt_random.set_state(saved_state)
        for _, v in checked:
            v.grad = None

    result = GradcheckResult(all(r.ok for r in reports), reports, eps, atol, rtol)
    if raise_exception and not result.ok:
        raise GradcheckError(result)
    return result


def _bind(fn, inputs):
    """(names, float64 values, call()): ``fn`` bound to float64 copies of ``inputs`` (a sequence or a dict)."""
    if isinstance(inputs, dict):
        names = [str(k) for k in inputs]
        values = [_to_float64(v) for v in inputs.values()]
        return names, values, lambda: fn(**dict(zip(names, values)))
    if isinstance(inputs, Tensor):
        inputs = [inputs]
    values = [_to_float64(v) for v in inputs]
    return [f"input {i}" for i in range(len(values))], values, lambda: fn(*values)


def _analytic(call, checked, rng, seed: int) -> list:
    """One backward of J = Σ v ⊙ f(x) with a random upstream gradient v per output: fills the checked
    inputs' ``.grad``; returns the projections v (on the outputs' devices)."""
    for _, v in checked:
        v.grad = None
    mt_random.manual_seed(seed)
    outs = _outputs(call())
    projections = []
    for out in outs:
        if out.dtype.kind != "f":
            raise TypeError(f"gradcheck: fn returned a {out.dtype} tensor; outputs must be floating point")
        host = rng.standard_normal(out.shape)
        projections.append(backend.to_device(host, out.device).astype(out.dtype))
    differentiable = [(o, p) for o, p in zip(outs, projections) if o.requires_grad]
    if len(differentiable) == 1:
        out, proj = differentiable[0]
        out.backward(proj)
    elif differentiable:  # outputs may share a graph: back-propagate their projections at once
        total = None
        for out, proj in differentiable:
            term = (out * Tensor(proj)).sum()
            total = term if total is None else total + term
        total.backward()
    return projections


def _numeric(tensor, objective, eps: float) -> numpy.ndarray:
    """∂J/∂x[j] ≈ (J(x[j] + ε) − J(x[j] − ε)) / 2ε for every element j of ``tensor`` (changed in place,
    then restored)."""
    numeric = numpy.zeros(tensor.shape)
    data = tensor.data
    for index in numpy.ndindex(*tensor.shape):
        original = data[index].copy()
        data[index] = original + eps
        plus = objective()
        data[index] = original - eps
        minus = objective()
        data[index] = original
        numeric[index] = (plus - minus) / (2 * eps)
    return numeric


def _compare(name, analytic, numeric, atol, rtol, note) -> InputReport:
    if analytic.shape != numeric.shape:
        return InputReport(name, numeric.shape, False, float("inf"),
                           note=f"gradient has shape {analytic.shape}, expected {numeric.shape}")
    if numeric.size == 0:
        return InputReport(name, numeric.shape, True, 0.0, note=note)
    error = numpy.abs(analytic - numeric)
    tolerance = atol + rtol * numpy.abs(numeric)
    ok = bool((error <= tolerance).all())  # a NaN anywhere fails
    with numpy.errstate(divide="ignore", invalid="ignore"):
        excess = numpy.where(numpy.isnan(error), numpy.inf, error / tolerance)
    excess = numpy.nan_to_num(excess, nan=0.0)  # 0/0: exact agreement where the tolerance is 0
    index = tuple(int(i) for i in numpy.unravel_index(int(numpy.argmax(excess)), numeric.shape))
    max_error = float("nan") if numpy.isnan(error).any() else float(error.max())
    return InputReport(name, numeric.shape, ok, max_error, index, float(analytic[index]), float(numeric[index]), note)
