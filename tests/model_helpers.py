"""Small models for tests that need a real network but not its cost (tests/ is on sys.path)."""
from __future__ import annotations

import numpy as np

from minitl import models


def small_resnet(block="basic", layers=(1, 1, 1, 1), **overrides):
    """A ResNet with torchvision's structure (names, stages, downsampling) at toy widths, 3 classes."""
    options = dict(block=block, layers=layers, widths=(4, 8, 8, 8), stem_width=8, num_classes=3)
    options.update(overrides)
    return models.ResNet(**options)


def randomize(model, seed=0):
    """Random weights and non-trivial running statistics, set through load_state_dict."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, value in model.state_dict().items():
        if name.endswith("running_var"):
            state[name] = (0.5 + rng.random(value.shape)).astype(value.dtype)
        elif value.dtype.kind == "f":
            state[name] = (0.3 * rng.standard_normal(value.shape)).astype(value.dtype)
        else:
            state[name] = value
    model.load_state_dict(state)
    return model
