"""Several tasks on one shared representation: a trunk, named heads, one joint loss.

    z     = φ(x; θ_s)                       the shared trunk (a backbone, an encoder, a hidden layer)
    ŷ_k   = h_k(z; θ_k)                     one head per task k
    L_k   = −(1/|M_k|) Σ_{n∈M_k} log softmax(ŷ_{k,n})_{y_{k,n}}
            M_k = {n : y_{k,n} ≠ ignore_index}: examples without a label for task k add nothing
    J     = Σ_k λ_k L_k                     fixed weights (default λ_k = 1), or
    J     = Σ_k exp(−s_k) L_k + s_k         ``weighting="uncertainty"``: learned s_k (Kendall et al. 2018)

The math is in ``functional.cross_entropy`` (ignore_index) and ``functional.multitask``.
"""
from __future__ import annotations

import numpy

from .. import functional as F
from ..tensor import Tensor
from .layers import ModuleDict
from .module import Module, Parameter

WEIGHTINGS = ("fixed", "uncertainty")


class MultiTask(Module):
    """``MultiTask(shared, {"main": head, "aux": head}, weights={"aux": 0.5})``.

    ``forward(x)`` returns ``{task: logits}``; ``losses(outputs, targets)`` the per-task L_k
    (targets: ``{task: int array}``, ``ignore_index`` where a label is missing);
    ``terms(losses)`` each task's summand of J; ``joint_loss(losses)`` J itself.
    """

    def __init__(self, shared: Module, heads: dict, weights: dict | None = None, weighting: str = "fixed",
                 ignore_index: int = -1):
        super().__init__()
        if not heads:
            raise ValueError("MultiTask needs at least one head")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"MultiTask: weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
        if weighting == "uncertainty" and weights:
            raise ValueError("MultiTask: uncertainty weighting learns the weights; do not pass fixed ones too")
        self.shared = shared
        self.heads = ModuleDict(heads)
        self.weighting, self.ignore_index = weighting, int(ignore_index)
        unknown = set(weights or {}) - set(self.heads)
        if unknown:
            raise ValueError(f"MultiTask: weights for unknown task(s) {sorted(unknown)}; tasks are {self.task_names}")
        self.weights = {name: float((weights or {}).get(name, 1.0)) for name in self.heads}
        if weighting == "uncertainty":  # s_k = log σ_k², starting at 0 (every weight exp(0) = 1)
            self.log_vars = Parameter(numpy.zeros(len(self.heads), dtype=numpy.float32))

    @property
    def task_names(self) -> list[str]:
        return list(self.heads)

    def forward_heads(self, z: Tensor) -> dict:
        """{task: h_k(z)} from the shared representation z."""
        return {name: head(z) for name, head in self.heads.items()}

    def forward(self, x: Tensor) -> dict:
        return self.forward_heads(self.shared(x))

    def losses(self, outputs: dict, targets: dict) -> dict:
        """{task: L_k}: cross-entropy over the examples labelled for task k (mean over M_k)."""
        missing = [name for name in self.heads if name not in targets]
        if missing:
            raise ValueError(f"MultiTask: no targets for task(s) {missing} (use {self.ignore_index} for 'no label')")
        return {name: F.cross_entropy(outputs[name], targets[name], ignore_index=self.ignore_index)
                for name in self.heads}

    def terms(self, losses: dict) -> dict:
        """{task: its summand of J}: λ_k L_k, or exp(−s_k) L_k + s_k."""
        if self.weighting == "uncertainty":
            return F.task_terms(losses, log_vars=self.log_vars)
        return F.task_terms(losses, self.weights)

    def joint_loss(self, losses: dict) -> Tensor:
        if self.weighting == "uncertainty":
            return F.joint_loss(losses, log_vars=self.log_vars)
        return F.joint_loss(losses, self.weights)

    def task_weights(self) -> dict:
        """The weight each task's loss has now: λ_k, or exp(−s_k)."""
        if self.weighting == "uncertainty":
            s = self.log_vars.numpy().astype(numpy.float64)
            return {name: float(numpy.exp(-s[k])) for k, name in enumerate(self.heads)}
        return dict(self.weights)

    def extra_repr(self) -> str:
        weights = "learned exp(-s_k)" if self.weighting == "uncertainty" else self.weights
        return f"tasks={self.task_names}, weights={weights}, ignore_index={self.ignore_index}"
