"""Optimizers and learning-rate schedules: w ← w − η ∂J/∂w and its refinements.

    optimizer.py     Optimizer base: parameter groups, state, zero_grad, state_dict
    sgd.py           SGD (momentum, Nesterov, weight decay, Keras time-based decay)
    adam.py          Adam, AdamW (decoupled weight decay)
    lr_scheduler.py  StepLR, CosineAnnealingLR (with linear warm-up), TimeBasedDecay, LinearWarmupDecay
"""
from . import lr_scheduler
from .adam import Adam, AdamW
from .lr_scheduler import CosineAnnealingLR, LinearWarmupDecay, StepLR, TimeBasedDecay
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_scheduler", "StepLR", "CosineAnnealingLR", "TimeBasedDecay",
           "LinearWarmupDecay"]
