"""A float64 finite-difference check of one op's backward, with the gradient that really flowed in.

For an op y = f(x_1, ..., x_k) and the upstream gradient g = ∂J/∂y it received in a backward
pass, the scalar J(x) = Σ g ⊙ f(x) has

    analytic   ∂J/∂x_i  = the op's ``backward(g)``                       (float64 re-run of the op)
    numeric    ∂J/∂x_i[j] ≈ (J(x_i[j] + ε) − J(x_i[j] − ε)) / 2ε           (central difference)

and the check reports the relative error max|analytic − numeric| / max(|analytic|, |numeric|)
over the checked elements (all of them, or a seeded sample of ``max_elements`` per input).
Where the one-sided differences disagree the op has a kink there (ReLU at 0, a tie in a
max-pool window): no derivative exists, and the check asks instead that the engine's value be a
subgradient, between the left and the right derivative; such elements are counted as ``kinks``.
``minitl.gradcheck`` checks whole functions with a random projection; this checks one recorded
node of a real graph, so a trace can say which op's chain rule is wrong.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy

from .. import backend
from .. import random as mt_random
from ..tensor import Tensor, enable_grad, no_grad

RTOL = 1e-5
KINK = 1e-3  # one-sided differences further apart than this (relative) mark a kink


@dataclass
class OpCheck:
    ok: bool
    rel_error: float
    checked: int  # elements checked, over all differentiable inputs
    total: int  # elements of those inputs
    kinks: int = 0  # checked elements where the op is not differentiable (subgradient checked)

    def describe(self) -> str:
        sample = "" if self.checked == self.total else f", {self.checked} of {self.total} elements sampled"
        kinks = f", {self.kinks} at kinks" if self.kinks else ""
        return f"{'ok' if self.ok else 'FAIL'} (rel. error {self.rel_error:.1e}{sample}{kinks})"

    def to_dict(self) -> dict:
        return {"ok": self.ok, "rel_error": self.rel_error, "checked": self.checked, "total": self.total,
                "kinks": self.kinks}


def _copy_options(options: dict) -> dict:
    """Fresh copies of array options (BatchNorm updates its running statistics in place)."""
    return {k: (v.copy() if hasattr(v, "shape") and hasattr(v, "copy") else v) for k, v in options.items()}


def check_op(fn_class, inputs, options: dict, grad_output, wanted, max_elements: int = 64,
             eps: float = 1e-6, seed: int = 0) -> OpCheck | None:
    """Check ``fn_class``'s backward at ``inputs`` (arrays or None) against central differences.

    ``wanted[i]``: whether input i received a gradient (only those are checked).  Returns None
    when no floating-point input wants one.
    """
    positions = [i for i, a in enumerate(inputs) if a is not None and wanted[i] and a.dtype.kind == "f"]
    if not positions:
        return None
    tensors = []
    for i, a in enumerate(inputs):
        if a is None:
            tensors.append(None)
        elif a.dtype.kind == "f":
            tensors.append(Tensor(a.astype(numpy.float64, copy=True), requires_grad=i in positions))
        else:
            tensors.append(Tensor(a.copy()))
    xp = backend.get_array_module(grad_output)
    g = grad_output.astype(numpy.float64)
    saved_seed, saved_state = mt_random._seed, mt_random.get_state()
    try:  # every evaluation draws the same random numbers (a dropout mask), as gradcheck does
        mt_random.manual_seed(seed)
        with enable_grad():
            out = fn_class.apply(*tensors, **_copy_options(options))
        out.backward(g)

        def objective() -> float:
            mt_random.manual_seed(seed)
            with no_grad():
                y = fn_class.apply(*tensors, **_copy_options(options))
            return float(xp.sum(g * y.data))

        return _compare(tensors, positions, objective, max_elements, eps, seed)
    finally:
        mt_random.manual_seed(saved_seed)
        mt_random.set_state(saved_state)


def _compare(tensors, positions, objective, max_elements, eps, seed) -> OpCheck:
    """Analytic gradients (already in ``tensors[i].grad``) against central differences of ``objective``."""
    rng = numpy.random.default_rng(seed)
    base = objective()
    analytics = {}
    for i in positions:
        t = tensors[i]
        analytics[i] = backend.to_numpy(t.grad.data) if t.grad is not None else numpy.zeros(t.shape)
        t.grad = None
    # one-sided differences this far apart (or more) are a kink, not rounding noise near a zero gradient
    floor = KINK * max((float(numpy.abs(a).max()) for a in analytics.values() if a.size), default=0.0)
    worst, scale, checked, total, kinks = 0.0, 0.0, 0, 0, 0
    for i in positions:
        t, analytic = tensors[i], analytics[i]
        size = t.size
        total += size
        flat = numpy.arange(size) if size <= max_elements else numpy.sort(rng.choice(size, max_elements, replace=False))
        for j in flat:
            index = numpy.unravel_index(int(j), t.shape)
            original = t.data[index].copy()
            t.data[index] = original + eps
            plus = objective()
            t.data[index] = original - eps
            minus = objective()
            t.data[index] = original
            a = float(analytic[index])
            right, left = (plus - base) / eps, (base - minus) / eps
            scale = max(scale, abs(a), abs(right), abs(left))
            if abs(right - left) > max(KINK * max(abs(right), abs(left)), floor):  # no derivative: a subgradient?
                kinks += 1
                low, high = min(left, right), max(left, right)
                worst = max(worst, low - a, a - high, 0.0)
            else:
                worst = max(worst, abs(a - (plus - minus) / (2 * eps)))
            checked += 1
    rel = worst / scale if scale > 0 else (0.0 if worst == 0 else float("inf"))
    return OpCheck(bool(rel <= RTOL), float(rel), checked, total, kinks)
