"""The CIFAR-10 / CIFAR-100 binary format ("binary version" of the datasets, not the pickled one).

CIFAR-10: every record is 1 + 3072 bytes::

    <1 byte label 0..9> <1024 bytes red> <1024 bytes green> <1024 bytes blue>

each colour plane a 32×32 image in row-major order.  Files ``data_batch_1.bin`` …
``data_batch_5.bin`` (train), ``test_batch.bin`` (test), class names in ``batches.meta.txt``.

CIFAR-100: every record is 2 + 3072 bytes: <coarse label 0..19> <fine label 0..99> <pixels>.
Files ``train.bin``, ``test.bin``; names in ``fine_label_names.txt`` / ``coarse_label_names.txt``.

The pickled "python version" of CIFAR is refused on purpose (never unpickle untrusted data).
"""
from __future__ import annotations

import os

import numpy

from .datasets import ArrayDataset

PIXELS = 3 * 32 * 32
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class CIFARError(ValueError):
    """A file that is not a well-formed CIFAR binary file."""


def parse_cifar_records(raw: bytes, label_bytes: int, name: str = "<bytes>", num_labels: int | None = None):
    """Decode CIFAR records: returns (images uint8 (N, 32, 32, 3), labels uint8 (N, label_bytes))."""
    record = label_bytes + PIXELS
    if len(raw) == 0 or len(raw) % record:
        raise CIFARError(
            f"{name}: {len(raw)} bytes is not a whole number of {record}-byte CIFAR records "
            f"({label_bytes} label byte(s) + 3072 pixels): truncated or not a CIFAR"
            f"{'-10' if label_bytes == 1 else '-100'} binary file"
        )
    table = numpy.frombuffer(raw, dtype=numpy.uint8).reshape(-1, record)
    labels = table[:, :label_bytes].copy()
    if num_labels is not None and labels[:, -1].max() >= num_labels:
        raise CIFARError(f"{name}: label {int(labels[:, -1].max())} out of range 0..{num_labels - 1}")
    images = table[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()  # planes -> HWC
    return images, labels


def _read(path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _names(path, expected: int, fallback):
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            names = [line.strip() for line in handle if line.strip()]
        if len(names) != expected:
            raise CIFARError(f"{path}: {len(names)} class names, expected {expected}")
        return names
    return fallback


def find_cifar_dir(root) -> tuple[str, str] | None:
    """("cifar10" | "cifar100", folder) if ``root`` (or its cifar-*-batches-bin child) holds CIFAR binaries."""
    root = os.fspath(root)
    for folder in (root, os.path.join(root, "cifar-10-batches-py")):
        if os.path.isfile(os.path.join(folder, "data_batch_1")) and not os.path.isfile(
                os.path.join(folder, "data_batch_1.bin")):
            raise CIFARError(f"{folder} holds the pickled CIFAR 'python version', which minitl refuses to read "
                             "(never unpickle data): use the binary version (cifar-10-binary.tar.gz, *.bin files)")
    for folder in (root, os.path.join(root, "cifar-10-batches-bin"), os.path.join(root, "cifar-100-binary")):
        if os.path.isfile(os.path.join(folder, "data_batch_1.bin")):
            return "cifar10", folder
        if os.path.isfile(os.path.join(folder, "train.bin")) and os.path.isfile(os.path.join(folder, "test.bin")):
            return "cifar100", folder
    return None


def load_cifar10(root, split: str = "train") -> ArrayDataset:
    """CIFAR-10 ``split`` ("train": 5 batches, 50,000 images; "test": 10,000) as an ArrayDataset."""
    found = find_cifar_dir(root)
    if found is None or found[0] != "cifar10":
        raise FileNotFoundError(f"no CIFAR-10 binary files (data_batch_1.bin ...) under {root}")
    folder = found[1]
    files = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images, labels = [], []
    for name in files:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"CIFAR-10 file missing: {path}")
        x, y = parse_cifar_records(_read(path), 1, path, num_labels=10)
        images.append(x)
        labels.append(y[:, 0])
    classes = _names(os.path.join(folder, "batches.meta.txt"), 10, CIFAR10_CLASSES)
    return ArrayDataset(numpy.concatenate(images), numpy.concatenate(labels).astype(numpy.int64), classes,
                        name=f"cifar10-{split}")


def load_cifar100(root, split: str = "train", label: str = "fine") -> ArrayDataset:
    """CIFAR-100 ``split`` with ``label`` "fine" (100 classes) or "coarse" (20 superclasses)."""
    found = find_cifar_dir(root)
    if found is None or found[0] != "cifar100":
        raise FileNotFoundError(f"no CIFAR-100 binary files (train.bin, test.bin) under {root}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if label not in ("fine", "coarse"):
        raise ValueError(f"label must be 'fine' or 'coarse', got {label!r}")
    path = os.path.join(found[1], f"{split}.bin")
    images, labels = parse_cifar_records(_read(path), 2, path)
    column, count = (1, 100) if label == "fine" else (0, 20)
    if labels[:, column].max() >= count:
        raise CIFARError(f"{path}: {label} label {int(labels[:, column].max())} out of range 0..{count - 1}")
    names = _names(os.path.join(found[1], f"{label}_label_names.txt"), count, [str(i) for i in range(count)])
    return ArrayDataset(images, labels[:, column].astype(numpy.int64), names, name=f"cifar100-{label}-{split}")


def encode_cifar_records(images, labels) -> bytes:
    """CIFAR binary bytes for (N, 32, 32, 3) uint8 images and (N,) or (N, k) labels (test fixtures)."""
    images = numpy.asarray(images, dtype=numpy.uint8)
    labels = numpy.asarray(labels, dtype=numpy.uint8).reshape(len(images), -1)
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return numpy.concatenate([labels, planes], axis=1).tobytes()
