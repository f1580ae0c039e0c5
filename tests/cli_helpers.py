"""Shared by the CLI tests: a tiny image folder and a tiny backbone, and running ``minitl`` in-process."""
from __future__ import annotations

import json
import os

import numpy as np

import minitl
from minitl.cli import main

COLOURS = ["blue", "green", "red"]


def make_workspace(root, classes=COLOURS, train=10, test=4):
    """root/data/train|test/<colour>/*.png (10x10, the class is the dominant channel) and root/tiny.npz."""
    from PIL import Image  # noqa: PLC0415

    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("test", test)):
        for c, colour in enumerate(classes):
            os.makedirs(root / "data" / split / colour, exist_ok=True)
            for i in range(n):
                image = rng.integers(0, 80, (10, 10, 3)).astype(np.uint8)
                image[..., c % 3] += 170
                Image.fromarray(image).save(root / "data" / split / colour / f"{i}.png")
    from minitl.train import TinyNet  # noqa: PLC0415

    minitl.manual_seed(3)
    backbone = TinyNet(8, width=16)
    arrays = dict(backbone.state_dict())
    arrays["__minitl_metadata__"] = np.array([json.dumps({"arch": "tiny", "input_size": 8,
                                                          "preprocessing": backbone.preprocessing.to_dict()})])
    np.savez(root / "tiny.npz", **arrays)
    return root


def run(capsys, *argv):
    """(exit code, stdout, stderr) of ``minitl ARGV`` run in this process."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def common(ws, cache=None):
    """Flags for a fast run on the workspace (tiny backbone, tiny head, no prefetch thread)."""
    return ["--weights", ws / "tiny.npz", "--data", ws / "data", "--cache-dir", cache or ws / "cache", "--lr", "0.1",
            "--hidden", "32", "--prefetch", "0", "--batch-size", "4"]
