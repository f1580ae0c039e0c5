"""Fashion-MNIST (Zalando, MIT licence): 70,000 28×28 grayscale photographs of clothing, 10 classes.

Found, in order, in ``--data DIR`` (when given), ``$MINITL_FASHION_MNIST``, and
``/usr/share/datasets/fashion-mnist/`` — where Debian's package ``dataset-fashion-mnist``
installs it.  Files (``.gz`` or not)::

    train-images-idx3-ubyte  train-labels-idx1-ubyte   60,000 training images
    t10k-images-idx3-ubyte   t10k-labels-idx1-ubyte    10,000 test images

The same layout is MNIST's, so :func:`load_idx_split` reads MNIST too.
"""
from __future__ import annotations

import os

import numpy

from .datasets import ArrayDataset
from .idx import IDXError, read_idx

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
# a coarse grouping of the ten classes (the auxiliary task of the multi-task experiment, issue 15)
FASHION_MNIST_COARSE = {
    "tops": ["T-shirt/top", "Pullover", "Coat", "Shirt"],
    "bottoms and dresses": ["Trouser", "Dress"],
    "footwear": ["Sandal", "Sneaker", "Ankle boot"],
    "bag": ["Bag"],
}
SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
ENV_VAR = "MINITL_FASHION_MNIST"
INSTALL_HINT = (
    "install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu; files go to "
    f"{SYSTEM_DIR}/), or pass --data DIR with train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz"
)
_PREFIX = {"train": "train", "test": "t10k"}


def _find_file(folder: str, stem: str) -> str | None:
    for name in (stem + ".gz", stem):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def has_idx_files(folder) -> bool:
    """Whether ``folder`` holds an MNIST-layout training split (images and labels)."""
    folder = os.fspath(folder)
    return bool(_find_file(folder, "train-images-idx3-ubyte") and _find_file(folder, "train-labels-idx1-ubyte"))


def candidate_dirs(data_dir=None) -> list[str]:
    if data_dir is not None:
        return [os.fspath(data_dir)]
    dirs = []
    if os.environ.get(ENV_VAR):
        dirs.append(os.environ[ENV_VAR])
    dirs.append(SYSTEM_DIR)
    return dirs


def find_fashion_mnist(data_dir=None) -> str:
    """The folder holding Fashion-MNIST, or FileNotFoundError saying where it looked and how to get it."""
    dirs = candidate_dirs(data_dir)
    for folder in dirs:
        if has_idx_files(folder):
            return folder
    raise FileNotFoundError(f"Fashion-MNIST not found (looked in {', '.join(dirs)}): {INSTALL_HINT}")


def load_idx_split(folder, split: str = "train", classes=None, name: str = "fashion-mnist") -> ArrayDataset:
    """An MNIST-layout split from ``folder``: images uint8 (N, 28, 28), labels int64 (N,)."""
    if split not in _PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = os.fspath(folder)
    prefix = _PREFIX[split]
    image_path = _find_file(folder, f"{prefix}-images-idx3-ubyte")
    label_path = _find_file(folder, f"{prefix}-labels-idx1-ubyte")
    if image_path is None or label_path is None:
        raise FileNotFoundError(f"{folder}: {prefix}-images-idx3-ubyte(.gz) / {prefix}-labels-idx1-ubyte(.gz) missing")
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.dtype != numpy.uint8:
        raise IDXError(f"{image_path}: expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise IDXError(f"{label_path}: expected {len(images)} labels to match {image_path}, got shape {labels.shape}")
    return ArrayDataset(images, labels.astype(numpy.int64), classes or FASHION_MNIST_CLASSES, name=f"{name}-{split}")


def load_fashion_mnist(split: str = "train", data_dir=None) -> ArrayDataset:
    """Fashion-MNIST ``split`` ("train": 60,000, "test": 10,000), from the first folder that has it."""
    return load_idx_split(find_fashion_mnist(data_dir), split, FASHION_MNIST_CLASSES)
