"""Learning-rate schedules η(t): each scheduler sets ``group["lr"]`` from a closed-form formula.

Call ``scheduler.step()`` once per epoch (or once per iteration — t simply counts the calls);
t = 0 before the first call, when each group's rate is its base rate η₀ (the ``lr`` the group
had when the scheduler was made, kept as ``group["initial_lr"]``).

    StepLR            η(t) = η₀ · γ^⌊t / step_size⌋
    CosineAnnealingLR η(t) = η₀ · (s + (1 − s) t / W)                                  t < W (linear warm-up)
                      η(t) = η_min + ½ (η₀ − η_min)(1 + cos(π (t − W) / (T − W)))       W ≤ t ≤ T
                      η(t) = η_min                                                      t > T
    TimeBasedDecay    η(t) = η₀ / (1 + decay · t)                                       (Keras)
    LinearWarmupDecay η(t) = η₀ · t / W  (t < W),  η₀ · max(0, (T − t) / (T − W))  (t ≥ W)  (BERT fine-tuning)
"""
from __future__ import annotations

import math

from .optimizer import Optimizer


class LRScheduler:
    """Base class: subclasses give :meth:`lr_at` (t, base rate) -> rate."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not a minitl optimizer")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            if last_epoch == -1:
                group["initial_lr"] = group["lr"]
            elif "initial_lr" not in group:
                raise KeyError("param 'initial_lr' is not specified in param_groups when resuming a scheduler")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = max(last_epoch, 0)
        self._apply()

    def lr_at(self, t: int, base_lr: float) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    def get_last_lr(self) -> list[float]:
        """The rate of each group as last set."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def step(self) -> None:
        """Advance t by one and set every group's rate to η(t)."""
        self.last_epoch += 1
        self._apply()

    def _apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(self.last_epoch, base)

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)
        self._apply()


class StepLR(LRScheduler):
    """η(t) = η₀ · γ^⌊t / step_size⌋: multiply the rate by γ every ``step_size`` steps."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t: int, base_lr: float) -> float:
        return base_lr * self.gamma ** (t // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from η₀ to ``eta_min`` over ``T_max`` steps, after an optional linear warm-up.

        t < W:       η(t) = η₀ · (s + (1 − s) · t / W)        W = ``warmup_steps``, s = ``warmup_start_factor``
        W ≤ t ≤ T:   η(t) = η_min + ½ (η₀ − η_min)(1 + cos(π (t − W) / (T − W)))
        t > T:       η(t) = η_min

    Without warm-up this is SGDR's schedule without restarts (Loshchilov & Hutter 2017), the
    closed form of ``torch.optim.lr_scheduler.CosineAnnealingLR``.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, warmup_steps: int = 0,  # noqa: N803
                 warmup_start_factor: float = 0.0, last_epoch: int = -1):
        if T_max < 1 or not 0 <= warmup_steps < T_max:
            raise ValueError(f"CosineAnnealingLR: need T_max >= 1 and 0 <= warmup_steps < T_max, "
                             f"got T_max={T_max}, warmup_steps={warmup_steps}")
        if not 0.0 <= warmup_start_factor <= 1.0:
            raise ValueError(f"CosineAnnealingLR: warmup_start_factor must be in [0, 1], got {warmup_start_factor}")
        self.T_max, self.eta_min = int(T_max), eta_min
        self.warmup_steps, self.warmup_start_factor = int(warmup_steps), warmup_start_factor
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t: int, base_lr: float) -> float:
        w, s = self.warmup_steps, self.warmup_start_factor
        if t < w:
            return base_lr * (s + (1 - s) * t / w)
        if t > self.T_max:
            return self.eta_min
        progress = (t - w) / (self.T_max - w)
        return self.eta_min + 0.5 * (base_lr - self.eta_min) * (1 + math.cos(math.pi * progress))


class TimeBasedDecay(LRScheduler):
    """η(t) = η₀ / (1 + decay · t) — Keras' time-based decay, as a scheduler (per call of ``step``).

    ``SGD(..., decay=d)`` applies the same formula per optimizer step by itself; use one or the other.
    """

    def __init__(self, optimizer: Optimizer, decay: float, last_epoch: int = -1):
        if decay < 0:
            raise ValueError(f"TimeBasedDecay: decay must be >= 0, got {decay}")
        self.decay = decay
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t: int, base_lr: float) -> float:
        return base_lr / (1 + self.decay * t)


class LinearWarmupDecay(LRScheduler):
    """Linear warm-up to η₀ over W steps, then linear decay to 0 at step T (BERT's fine-tuning schedule,
    Hugging Face's ``get_linear_schedule_with_warmup``); call ``step()`` after every optimizer step.

        t < W:   η(t) = η₀ · t / W
        t ≥ W:   η(t) = η₀ · max(0, (T − t) / (T − W))
    """

    def __init__(self, optimizer: Optimizer, total_steps: int, warmup_steps: int = 0, last_epoch: int = -1):
        if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"LinearWarmupDecay: need total_steps >= 1 and 0 <= warmup_steps <= total_steps, "
                             f"got total_steps={total_steps}, warmup_steps={warmup_steps}")
        self.total_steps, self.warmup_steps = int(total_steps), int(warmup_steps)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t: int, base_lr: float) -> float:
        w, total = self.warmup_steps, self.total_steps
        if t < w:
            return base_lr * t / w
        return base_lr * max(0.0, (total - t) / max(1, total - w))
