"""Stochastic gradient descent, with momentum, Nesterov momentum, weight decay and Keras' time-based decay."""
from __future__ import annotations

from .optimizer import Optimizer, cache_pieces, required, update_pieces


class SGD(Optimizer):
    r"""Stochastic gradient descent: step against the gradient of the loss J.

    Plain SGD, with learning rate η:

        w_{t+1} = w_t − η ∂J/∂w_t

    With weight decay λ (an L2 penalty ½λ‖w‖² added to J), the gradient used is

        g_t = ∂J/∂w_t + λ w_t

    With momentum μ (PyTorch's formulation, dampening τ = 0 by default), a velocity buffer
    accumulates past gradients, starting from the first gradient itself:

        b_1 = g_1,   b_t = μ b_{t−1} + (1 − τ) g_t
        w_{t+1} = w_t − η b_t                              (classical momentum)
        w_{t+1} = w_t − η (g_t + μ b_t)                    (Nesterov momentum, ``nesterov=True``)

    Nesterov's form evaluates the step "ahead" along the velocity; written this way it needs
    no second forward pass (Sutskever et al. 2013; identical to ``torch.optim.SGD``).

    Time-based decay (Keras' ``decay`` argument, the classic fine-tuning recipe
    ``SGD(lr=1e-3, momentum=0.9, nesterov=True, decay=1e-6)``) shrinks the learning rate with
    the number t of steps already taken (t = 0 at the first step):

        η_t = η / (1 + decay · t)

    ``t`` is counted per parameter group in ``group["iterations"]`` (saved by ``state_dict``).
    ``lr`` stays the base rate η, so a learning-rate scheduler can still set it.
    """

    def __init__(self, params, lr=required, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, decay: float = 0.0, dampening: float = 0.0):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                        weight_decay=weight_decay, decay=decay)
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        for key in ("momentum", "weight_decay", "decay", "dampening"):
            if group[key] < 0.0:
                raise ValueError(f"SGD: {key} must be >= 0, got {group[key]}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum > 0 and zero dampening")
        group.setdefault("iterations", 0)

    def effective_lr(self, group: dict) -> float:
        """η_t = η / (1 + decay · t), the rate the next step uses."""
        return group["lr"] / (1.0 + group["decay"] * group["iterations"])

    def _update_group(self, group: dict) -> None:
        lr = self.effective_lr(group)
        momentum, dampening, nesterov = group["momentum"], group["dampening"], group["nesterov"]
        weight_decay = group["weight_decay"]
        pieces = []  # (first step?, (w, grad, *buffer)) per cache piece of every parameter
        for p, grad, state in self._params_with_grad(group):
            first = bool(momentum) and state.get("momentum_buffer") is None
            if first:
                state["momentum_buffer"] = p.data.copy()  # its memory; b_1 = g_1 is written below
            buffers = (state["momentum_buffer"],) if momentum else ()
            pieces += [(first, piece) for piece in cache_pieces(p.data, grad, *buffers)]

        def update(item):  # in place, one piece
            first, (w, grad_piece, *buffer) = item
            g = grad_piece + weight_decay * w if weight_decay else grad_piece  # never modify .grad itself
            if momentum:
                b = buffer[0]
                if first:
                    b[...] = g                                  # b_1 = g_1
                else:
                    b *= momentum                               # b_t = μ b_{t−1} + (1 − τ) g_t
                    b += g if dampening == 0 else (1 - dampening) * g
                g = g + momentum * b if nesterov else b
            w -= lr * g                                         # w ← w − η g, in place

        update_pieces(update, pieces)
        group["iterations"] += 1
