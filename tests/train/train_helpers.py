"""Helpers for tests/train: tiny synthetic data and a tiny backbone (each test well under a second)."""
import numpy as np

import minitl
from minitl.data import ArrayDataset, DataSplits
from minitl.train import TinyNet, TransferModel


def make_splits(n_train=60, n_test=30, classes=3, size=8, seed=0):
    """Images whose class shows in their mean colour, so a network can learn them."""
    rng = np.random.default_rng(seed)
    names = [f"c{i}" for i in range(classes)]

    def part(n):
        labels = np.arange(n) % classes
        images = rng.uniform(0, 80, (n, size, size, 3))
        for c in range(classes):
            images[labels == c, :, :, c % 3] += 120
        return ArrayDataset(images.astype(np.uint8), labels, names)

    return DataSplits(part(n_train), part(n_test), names, "synthetic")


def make_model(classes=3, seed=1, hidden=8, width=12):
    minitl.manual_seed(seed)
    backbone = TinyNet(8, width=width)
    return TransferModel(backbone, classes, hidden=hidden)


def spec_of(model):
    return model.backbone.preprocessing

