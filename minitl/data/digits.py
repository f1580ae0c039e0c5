"""scikit-learn's handwritten digits: 1,797 real 8×8 grey images of the digits 0–9 (UCI, 43 writers).

The data ships inside scikit-learn (``sklearn/datasets/data/digits.csv.gz``, 64 pixel values
0–16 then the label, one image per line).  It is read straight from that file — no network,
and without importing scikit-learn — so scikit-learn must be installed but is not loaded.

    images, labels = load_digits()                    # (1797, 64) float32 in [0, 1], (1797,) int64
    images, labels = load_digits(flatten=False)       # (1797, 1, 8, 8)
    (x_tr, y_tr), (x_te, y_te) = train_test_split_digits(test_fraction=0.25, seed=0)

Returns NumPy arrays; this module knows nothing of tensors.
"""
from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy

INSTALL_HINT = "pip install scikit-learn  (or: pip install 'minitl[test]')"
NUM_CLASSES = 10


def digits_path() -> Path:
    """The digits file bundled with the installed scikit-learn, or FileNotFoundError saying how to get it."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the digits dataset ships with scikit-learn, which is not installed: {INSTALL_HINT}")
    for location in spec.submodule_search_locations:
        path = Path(location) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"scikit-learn is installed but its digits file (sklearn/datasets/data/digits.csv.gz) is missing; "
        f"reinstall it: {INSTALL_HINT}"
    )


def load_digits(flatten: bool = True, path=None) -> tuple[numpy.ndarray, numpy.ndarray]:
    """(images, labels): images float32 in [0, 1] — (N, 64), or (N, 1, 8, 8) with ``flatten=False`` —
    and labels int64 in 0..9.  Pixel values 0–16 are divided by 16."""
    path = Path(path) if path is not None else digits_path()
    try:
        with gzip.open(path, "rt") as f:
            table = numpy.loadtxt(f, delimiter=",", dtype=numpy.int64, ndmin=2)
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"cannot read the digits file {path}: {error}") from error
    if table.shape[1] != 65:
        raise ValueError(f"digits file {path}: expected 65 columns (64 pixels + label), got {table.shape[1]}")
    pixels, labels = table[:, :64], table[:, 64]
    if pixels.min() < 0 or pixels.max() > 16 or labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise ValueError(f"digits file {path}: pixel values outside 0..16 or labels outside 0..9")
    images = (pixels / 16.0).astype(numpy.float32)
    if not flatten:
        images = images.reshape(-1, 1, 8, 8)
    return images, labels.astype(numpy.int64)


def train_test_split_digits(test_fraction: float = 0.25, seed: int = 0, flatten: bool = True):
    """((x_train, y_train), (x_test, y_test)): a seeded, per-class (stratified) random split."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    images, labels = load_digits(flatten=flatten)
    rng = numpy.random.default_rng(seed)
    test = numpy.zeros(len(labels), dtype=bool)
    for c in range(NUM_CLASSES):
        members = numpy.flatnonzero(labels == c)
        chosen = rng.permutation(members)[: int(round(test_fraction * len(members)))]
        test[chosen] = True
    train_idx, test_idx = numpy.flatnonzero(~test), numpy.flatnonzero(test)
    train_idx = rng.permutation(train_idx)
    return (images[train_idx], labels[train_idx]), (images[test_idx], labels[test_idx])
