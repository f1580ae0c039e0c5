"""A tiny image-folder dataset and a tiny backbone .npz for command-line tests (shared by several test files)."""
from __future__ import annotations

import json
import os

import numpy as np

import minitl

COLOURS = ["red", "green", "blue"]


def make_workspace(root, train_per_class: int = 10, test_per_class: int = 4):
    """root/data/train|test/<colour>/*.png (10x10, the class is the dominant channel) and root/tiny.npz."""
    from PIL import Image  # noqa: PLC0415

    from minitl.train import TinyNet  # noqa: PLC0415

    rng = np.random.default_rng(0)
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for c, colour in enumerate(COLOURS):
            os.makedirs(root / "data" / split / colour)
            for i in range(n):
                image = rng.integers(0, 80, (10, 10, 3)).astype(np.uint8)
                image[..., c] += 170
                Image.fromarray(image).save(root / "data" / split / colour / f"{i}.png")
    minitl.manual_seed(3)
    backbone = TinyNet(8, width=16)
    arrays = dict(backbone.state_dict())
    arrays["__minitl_metadata__"] = np.array([json.dumps({"arch": "tiny", "input_size": 8,
                                                          "preprocessing": backbone.preprocessing})])
    np.savez(root / "tiny.npz", **arrays)
    return root
