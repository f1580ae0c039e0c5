"""One multi-task training step, with the gradient-conflict diagnostic.

Each task k contributes a gradient to the shared part of the network,

    g_k = ∂(term_k)/∂θ_s        term_k = λ_k L_k  (or exp(−s_k) L_k + s_k),   Σ_k g_k = ∂J/∂θ_s,

and whether the tasks help or fight each other shows in their geometry:

    ‖g_k‖ = √(Σ_i g_{k,i}²)          cos(g_a, g_b) = ⟨g_a, g_b⟩ / (‖g_a‖ ‖g_b‖)

cos > 0: a step for one task is also a step for the other; cos < 0: they pull the shared
weights apart (gradient conflict).  Two levels are measured:

    "representation"  g_k = ∂term_k/∂z on the shared output z = φ(x) (an (N, D) array per batch):
                      exact and nearly free — each head's backward stops at z, and the trunk is
                      back-propagated once with Σ_k g_k;
    "parameters"      g_k = ∂term_k/∂θ_s on the trunk's trainable parameters (exact): the trunk's
                      graph of this one forward is back-propagated once per task with
                      ``retain_graph=True`` (the same dropout masks and BatchNorm batch statistics
                      for every task, so a fine-tuned backbone in training mode is measured as it
                      is trained), and the parameters' .grad is Σ_k g_k, the joint gradient
                      (linearity).  Costs one extra trunk backward per extra task.

The representation level compares the tasks example by example: when the tasks label disjoint
examples (two domains, each example labelled for its own), their rows of ∂J/∂z never overlap and the
cosine is 0 by construction — there only the parameter level says whether the tasks agree.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy

from ..tensor import Tensor

LEVELS = ("representation", "parameters")


def gradient_conflict(grads: dict) -> dict:
    """``grads``: {task: list of arrays} (one task's gradient, possibly in several pieces).

    Returns {"norm": {task: ‖g_k‖}, "cos": {"a|b": cos(g_a, g_b) or None when a norm is 0}},
    accumulated in float64 and read from the device once.
    """
    names = list(grads)
    if not names:
        return {"norm": {}, "cos": {}}
    pieces = {name: [g for g in grads[name] if g is not None] for name in names}
    first = next((p[0] for p in pieces.values() if p), None)
    if first is None:
        return {"norm": {name: 0.0 for name in names}, "cos": {}}
    xp = Tensor(first).xp
    k = len(names)
    wide = {name: [g.astype(numpy.float64) for g in pieces[name]] for name in names}
    gram = []  # upper triangle of the Gram matrix ⟨g_a, g_b⟩, one device array per entry
    for a in range(k):
        for b in range(a, k):
            total = xp.zeros((), dtype=numpy.float64)
            for ga, gb in zip(wide[names[a]], wide[names[b]]):
                total = total + (ga * gb).sum()  # elementwise, not a BLAS dot: no thread wake-up per pair
            gram.append(total)
    values = Tensor(xp.stack(gram)).numpy().tolist()  # the one device->host read
    matrix = numpy.zeros((k, k))
    index = 0
    for a in range(k):
        for b in range(a, k):
            matrix[a, b] = matrix[b, a] = values[index]
            index += 1
    norms = numpy.sqrt(numpy.maximum(numpy.diag(matrix), 0.0))
    cos = {}
    for a in range(k):
        for b in range(a + 1, k):
            denominator = norms[a] * norms[b]
            cos[f"{names[a]}|{names[b]}"] = float(matrix[a, b] / denominator) if denominator > 0 else None
    return {"norm": {name: float(norms[i]) for i, name in enumerate(names)}, "cos": cos}


@dataclass
class StepResult:
    outputs: dict  # {task: logits Tensor}
    losses: dict  # {task: L_k as float}
    joint: float  # J
    conflict: dict = field(default_factory=dict)  # {level: gradient_conflict(...)}


def multitask_step(model, x: Tensor, targets: dict, levels=("representation",)) -> StepResult:
    """Forward, per-task backward and the conflict diagnostic for one batch; leaves ∂J/∂w in every
    trainable parameter's ``.grad`` (zero them before, step the optimizer after), as ``J.backward()``
    would.  ``model``: a :class:`minitl.nn.MultiTask`; ``levels``: a subset of :data:`LEVELS`."""
    unknown = set(levels) - set(LEVELS)
    if unknown:
        raise ValueError(f"conflict levels must be among {', '.join(LEVELS)}; got {sorted(unknown)}")
    z = model.shared(x)
    cut = Tensor(z.data, requires_grad=True)  # the heads' graphs end here: ∂term_k/∂z per task
    outputs = model.forward_heads(cut)
    losses = model.losses(outputs, targets)
    terms = model.terms(losses)
    feature_grads = {}
    for name, term in terms.items():
        cut.grad = None
        term.backward()  # each task's own head (and s_k) get their gradient here
        feature_grads[name] = cut.grad.data
    values = {name: float(loss.item()) for name, loss in losses.items()}
    joint = float(sum(float(term.item()) for term in terms.values()))
    conflict = {}
    if "representation" in levels:
        conflict["representation"] = gradient_conflict({name: [g] for name, g in feature_grads.items()})
    trunk_params = [p for p in model.shared.parameters() if p.requires_grad]
    if z.requires_grad and trunk_params:
        if "parameters" in levels:
            before = [p.grad for p in trunk_params]
            per_task = {}
            names = list(feature_grads)
            for index, name in enumerate(names):
                for p in trunk_params:
                    p.grad = None
                # one graph, back-propagated once per task: the last pass may free it
                z.backward(feature_grads[name], retain_graph=index < len(names) - 1)
                per_task[name] = [p.grad.data if p.grad is not None else None for p in trunk_params]
            for i, p in enumerate(trunk_params):  # .grad = what was there + Σ_k g_k  (linearity)
                parts = [per_task[name][i] for name in per_task if per_task[name][i] is not None]
                total = before[i].data if before[i] is not None else None
                for part in parts:
                    total = part.copy() if total is None else total + part
                p.grad = Tensor(total) if total is not None else None
            conflict["parameters"] = gradient_conflict(per_task)
        else:
            total = None
            for g in feature_grads.values():
                total = g if total is None else total + g
            z.backward(total)
    elif "parameters" in levels:
        conflict["parameters"] = {"norm": {}, "cos": {}, "note": "the shared trunk has no trainable parameters"}
    return StepResult(outputs, values, joint, conflict)
