"""Joint objectives of several tasks trained together (multi-task learning).

Task k has a loss L_k (its examples' mean loss, over the examples that carry a label for it).

    fixed weights         J = Σ_k λ_k L_k                              (λ_k ≥ 0 chosen by the user)
    uncertainty weights   J = Σ_k exp(−s_k) L_k + s_k                  (Kendall, Gal & Cipolla 2018)

In the second rule s_k = log σ_k² is learned with the network: a task whose loss stays high
(noisy, hard) gets a smaller weight exp(−s_k), and the + s_k term stops every weight from
collapsing to 0.  ∂J/∂s_k = 1 − exp(−s_k) L_k, so at the optimum exp(−s_k) = 1 / L_k.
"""
from __future__ import annotations

from ..tensor import Tensor


def task_terms(losses: dict, weights: dict | None = None, log_vars: Tensor | None = None) -> dict:
    """Each task's summand of the joint loss, by name: λ_k L_k, or exp(−s_k) L_k + s_k when
    ``log_vars`` (a (K,) tensor of s_k, in the order of ``losses``) is given.  Their sum is J."""
    names = list(losses)
    if log_vars is not None:
        if weights is not None:
            raise ValueError("task_terms: give fixed weights or log_vars (uncertainty weighting), not both")
        if tuple(log_vars.shape) != (len(names),):
            raise ValueError(f"task_terms: log_vars must have shape ({len(names)},), got {log_vars.shape}")
        terms = {}
        for k, name in enumerate(names):
            s_k = log_vars[k]
            terms[name] = (-s_k).exp() * losses[name] + s_k
        return terms
    weights = weights or {}
    unknown = set(weights) - set(names)
    if unknown:
        raise ValueError(f"task_terms: weights for unknown task(s) {sorted(unknown)}; tasks are {names}")
    for name, value in weights.items():
        if not float(value) >= 0.0:
            raise ValueError(f"task_terms: the weight of task {name!r} must be >= 0, got {value}")
    return {name: losses[name] * float(weights.get(name, 1.0)) for name in names}


def joint_loss(losses: dict, weights: dict | None = None, log_vars: Tensor | None = None) -> Tensor:
    """J = Σ_k λ_k L_k (missing weights are 1), or Σ_k exp(−s_k) L_k + s_k with ``log_vars``."""
    terms = list(task_terms(losses, weights, log_vars).values())
    if not terms:
        raise ValueError("joint_loss: no task losses given")
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total
