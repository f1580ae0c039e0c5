"""Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019, decoupled weight decay)."""
from __future__ import annotations

import math

from .. import backend
from .optimizer import Optimizer, cache_pieces, update_pieces


class Adam(Optimizer):
    r"""Adam: per-parameter step sizes from running moments of the gradient.

    With g_t = ∂J/∂w_t (+ λ w_t when ``weight_decay`` λ > 0: an L2 penalty, coupled to the
    gradient as in ``torch.optim.Adam``), β₁, β₂ the moment decays and t = 1, 2, ...:

        m_t = β₁ m_{t−1} + (1 − β₁) g_t              first moment (mean)
        v_t = β₂ v_{t−1} + (1 − β₂) g_t²             second moment (uncentred variance)
        m̂_t = m_t / (1 − β₁ᵗ),  v̂_t = v_t / (1 − β₂ᵗ)   bias corrections (m_0 = v_0 = 0)
        w_{t+1} = w_t − η m̂_t / (√v̂_t + ε)

    ``amsgrad=True`` uses max(v̂) over all steps so far in the denominator (Reddi et al. 2018).
    The state of each parameter — ``step``, ``exp_avg`` (m), ``exp_avg_sq`` (v) — carries
    PyTorch's names.
    """

    decoupled_weight_decay = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        beta1, beta2 = group["betas"]
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), got {group['betas']}")
        if group["eps"] < 0.0 or group["weight_decay"] < 0.0:
            raise ValueError(f"{type(self).__name__}: eps and weight_decay must be >= 0, "
                             f"got eps={group['eps']}, weight_decay={group['weight_decay']}")

    def _update_group(self, group: dict) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        weight_decay, amsgrad = group["weight_decay"], group["amsgrad"]
        pieces = []  # (bias corrections 1 − β₁ᵗ, 1 − β₂ᵗ; (w, g, m, v, *v_max)) per cache piece of every parameter
        for p, grad, state in self._params_with_grad(group):
            xp = backend.get_array_module(p.data)
            if not state:
                state["step"] = 0
                state["exp_avg"] = xp.zeros_like(p.data)
                state["exp_avg_sq"] = xp.zeros_like(p.data)
                if amsgrad:
                    state["max_exp_avg_sq"] = xp.zeros_like(p.data)
            state["step"] += 1
            t = state["step"]
            biases = (1 - beta1**t, 1 - beta2**t)
            buffers = [state["exp_avg"], state["exp_avg_sq"]] + ([state["max_exp_avg_sq"]] if amsgrad else [])
            pieces += [(biases, piece) for piece in cache_pieces(p.data, grad, *buffers)]

        def update(item):  # in place, one piece
            (bias1, bias2), (w, g, m, v, *v_max) = item
            xp = backend.get_array_module(w)
            if weight_decay:
                if self.decoupled_weight_decay:
                    w *= 1 - lr * weight_decay                 # AdamW: w ← w − ηλ w, apart from the gradient
                else:
                    g = g + weight_decay * w                   # Adam: L2 penalty in the gradient
            m *= beta1
            m += (1 - beta1) * g                               # m_t = β₁ m_{t−1} + (1 − β₁) g_t
            v *= beta2
            v += (1 - beta2) * (g * g)                         # v_t = β₂ v_{t−1} + (1 − β₂) g_t²
            if amsgrad:
                xp.maximum(v_max[0], v, out=v_max[0])
                v = v_max[0]
            denom = xp.sqrt(v) / math.sqrt(bias2)              # √v̂_t
            denom += eps
            step = xp.divide(m, denom, out=denom)              # m_t / (√v̂_t + ε), in the same buffer
            step *= lr / bias1
            w -= step                                          # w ← w − η m̂_t / (√v̂_t + ε)

        update_pieces(update, pieces)


class AdamW(Adam):
    r"""AdamW: Adam with *decoupled* weight decay (the optimizer used to fine-tune BERT).

    The decay shrinks the weights directly instead of entering the gradient (and hence the
    moments), so its strength does not depend on the gradient's scale:

        w_t ← w_t − η λ w_t
        then the Adam step of :class:`Adam` with g_t = ∂J/∂w_t (no L2 term).

    Default λ = 0.01, as ``torch.optim.AdamW``.
    """

    decoupled_weight_decay = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, amsgrad: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
