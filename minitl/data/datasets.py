"""Datasets: indexable collections of (image, label) pairs, as NumPy arrays.

A dataset here is anything with

    len(ds)                  number of samples
    ds[i]                    (image, label): image (H, W) or (H, W, C) array, label an int
    ds.classes               class names, index = label
    ds.targets               all labels as an int64 array (for stratified subsets)
    ds.fingerprint()         a string that changes when the data changes (feature-cache key)

:class:`ArrayDataset` holds arrays in memory (MNIST, CIFAR, ``.npz``); ImageFolder
(:mod:`minitl.data.images`) decodes files lazily.  Nothing here knows about tensors.
"""
from __future__ import annotations

import hashlib
import os

import numpy


class Dataset:
    """Base class: subclasses define ``__len__``, ``__getitem__``, ``classes``, ``targets``."""

    classes: list = []
    name: str = "dataset"
    in_memory: bool = False  # True: get_batch is one array gather (no per-file decoding)

    def __len__(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def __getitem__(self, index):  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def targets(self) -> numpy.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def fingerprint(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def get_batch(self, indices):
        """(images, labels) for these indices: stacked arrays (images must share a shape)."""
        items = [self[int(i)] for i in indices]
        return numpy.stack([x for x, _ in items]), numpy.asarray([y for _, y in items], dtype=numpy.int64)


class InMemoryDataset(Dataset):
    """Samples held in memory beside an int64 ``labels`` array (one per sample).

    The protocol comes from two hooks: ``_sample(i)`` (the sample ``ds[i]`` pairs with its label) and
    ``_gather(indices)`` (a batch of samples); ``fingerprint()`` is the sha256 of ``_fingerprint_tag``,
    what ``_hash_samples(h)`` feeds in and the class names, computed once.
    """

    in_memory = True
    labels: numpy.ndarray
    _fingerprint_tag = b"InMemoryDataset"
    _fingerprint = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self._sample(index), int(self.labels[index])

    @property
    def targets(self) -> numpy.ndarray:
        return self.labels

    def get_batch(self, indices):
        indices = numpy.asarray(indices, dtype=numpy.int64)
        return self._gather(indices), self.labels[indices]

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            h = hashlib.sha256(self._fingerprint_tag)
            self._hash_samples(h)
            h.update("\0".join(self.classes).encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


def _hash_array(h, array) -> None:
    array = numpy.ascontiguousarray(array)
    h.update(f"{array.dtype.str}{array.shape}".encode())
    h.update(memoryview(array).cast("B"))


class ArrayDataset(InMemoryDataset):
    """Images and labels held in arrays: ``images`` (N, H, W) or (N, H, W, C), ``labels`` (N,) ints."""

    _fingerprint_tag = b"ArrayDataset"

    def __init__(self, images, labels, classes=None, name: str = "arrays"):
        images, labels = numpy.asarray(images), numpy.asarray(labels)
        if images.ndim not in (3, 4):
            raise ValueError(f"ArrayDataset: images must have shape (N, H, W) or (N, H, W, C), got {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(
                f"ArrayDataset: labels must have shape ({len(images)},) to match images {images.shape}, "
                f"got {labels.shape}"
            )
        if labels.dtype.kind not in "iu":
            if labels.dtype.kind == "f" and numpy.all(labels == numpy.round(labels)):
                labels = labels.astype(numpy.int64)
            else:
                raise ValueError(f"ArrayDataset: labels must be integer class indices, got dtype {labels.dtype}")
        labels = labels.astype(numpy.int64)
        if len(labels) and labels.min() < 0:
            raise ValueError(f"ArrayDataset: negative label {int(labels.min())}")
        if classes is None:
            classes = [str(i) for i in range(int(labels.max()) + 1 if len(labels) else 0)]
        classes = [str(c) for c in classes]
        if len(labels) and labels.max() >= len(classes):
            raise ValueError(f"ArrayDataset: label {int(labels.max())} but only {len(classes)} class names")
        self.images, self.labels, self.classes, self.name = images, labels, classes, name

    def _sample(self, index):
        return self.images[index]

    def _gather(self, indices):
        return self.images[indices]

    def _hash_samples(self, h) -> None:
        _hash_array(h, self.images)
        _hash_array(h, self.labels)

    def __repr__(self) -> str:
        return f"ArrayDataset({self.name!r}, {len(self)} images {self.images.shape[1:]}, {len(self.classes)} classes)"


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices`` (in that order)."""

    def __init__(self, dataset, indices, name: str | None = None):
        self.dataset = dataset
        self.indices = numpy.asarray(indices, dtype=numpy.int64)
        if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= len(dataset)):
            raise ValueError(f"Subset: indices out of range 0..{len(dataset) - 1}")
        self.classes = dataset.classes
        self.in_memory = getattr(dataset, "in_memory", False)
        self.name = name or f"{getattr(dataset, 'name', 'dataset')}[{len(self.indices)}]"

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]

    @property
    def targets(self) -> numpy.ndarray:
        return self.dataset.targets[self.indices]

    def get_batch(self, indices):
        return self.dataset.get_batch(self.indices[numpy.asarray(indices, dtype=numpy.int64)])

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.dataset.fingerprint().encode())
        _hash_array(h, self.indices)
        return h.hexdigest()


class MirroredDataset(Dataset):
    """Every sample of ``dataset`` and then its left-right mirror: 2N samples, i and i + N alike but
    flipped (the horizontal-flip augmentation made once, for caches of features)."""

    def __init__(self, dataset):
        self.dataset, self.classes = dataset, dataset.classes
        self.in_memory = getattr(dataset, "in_memory", False)
        self.name = f"{getattr(dataset, 'name', 'dataset')}+mirrored"

    def __len__(self) -> int:
        return 2 * len(self.dataset)

    def __getitem__(self, index):
        n = len(self.dataset)
        image, label = self.dataset[index % n]
        return (numpy.ascontiguousarray(image[:, ::-1]) if index >= n else image), label

    @property
    def targets(self) -> numpy.ndarray:
        return numpy.concatenate([self.dataset.targets, self.dataset.targets])

    def get_batch(self, indices):
        indices = numpy.asarray(indices, dtype=numpy.int64)
        n = len(self.dataset)
        images, labels = self.dataset.get_batch(indices % n)
        images = images.copy()
        flip = indices >= n
        images[flip] = images[flip][:, :, ::-1]
        return images, labels

    def fingerprint(self) -> str:
        return hashlib.sha256((self.dataset.fingerprint() + "+mirrored").encode()).hexdigest()


def stratified_indices(targets, per_class: int | None = None, fraction: float | None = None, seed: int = 0):
    """Indices choosing ``per_class`` samples of every class (or ``fraction`` of each), at random
    under ``seed``; returned sorted.  Raises if a class has fewer samples than asked."""
    targets = numpy.asarray(targets)
    rng = numpy.random.default_rng(seed)
    chosen = []
    for label in numpy.unique(targets):
        members = numpy.flatnonzero(targets == label)
        count = per_class if per_class is not None else max(1, int(round(fraction * len(members))))
        if count > len(members):
            raise ValueError(f"class {int(label)} has {len(members)} samples, {count} asked for")
        chosen.append(rng.choice(members, size=count, replace=False))
    return numpy.sort(numpy.concatenate(chosen)) if chosen else numpy.zeros(0, dtype=numpy.int64)


def stratified_subset(dataset, per_class: int, seed: int = 0) -> Subset:
    """``per_class`` samples of every class, chosen at random under ``seed``."""
    indices = stratified_indices(dataset.targets, per_class=per_class, seed=seed)
    return Subset(dataset, indices, name=f"{dataset.name}[{per_class}/class, seed {seed}]")


def random_subset(dataset, count: int, seed: int = 0) -> Subset:
    """``count`` samples chosen at random (without replacement) under ``seed``."""
    if count > len(dataset):
        raise ValueError(f"asked for {count} samples of a dataset of {len(dataset)}")
    indices = numpy.sort(numpy.random.default_rng(seed).choice(len(dataset), size=count, replace=False))
    return Subset(dataset, indices, name=f"{dataset.name}[{count}, seed {seed}]")


def train_val_split(dataset, val_fraction: float = 0.2, seed: int = 0) -> tuple[Subset, Subset]:
    """A stratified split into (train, held-out) with ``val_fraction`` of each class held out."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    held = stratified_indices(dataset.targets, fraction=val_fraction, seed=seed)
    rest = numpy.setdiff1d(numpy.arange(len(dataset)), held)
    if len(rest) == 0:
        raise ValueError(f"dataset of {len(dataset)} samples is too small to hold out {val_fraction:.0%}")
    name = getattr(dataset, "name", "dataset")
    return Subset(dataset, rest, name=f"{name}-train"), Subset(dataset, held, name=f"{name}-heldout")


def load_npz_dataset(path, split: str | None = None, name: str | None = None) -> ArrayDataset:
    """An ArrayDataset from a ``.npz`` file, read with ``allow_pickle=False``.

    Keys: ``x``/``images`` and ``y``/``labels`` — or, with ``split`` ("train"/"test"),
    ``x_train``/``y_train`` ... — and optionally ``classes`` (an array of strings).
    """
    path = os.fspath(path)
    try:
        archive = numpy.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such .npz file: {path}") from None
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path}: not a readable .npz archive ({error})") from error
    with archive:
        keys = set(archive.files)
        suffix = f"_{split}" if split else ""
        x_key = next((k for k in (f"x{suffix}", f"images{suffix}") if k in keys), None)
        y_key = next((k for k in (f"y{suffix}", f"labels{suffix}") if k in keys), None)
        if x_key is None or y_key is None:
            want = f"x{suffix}/images{suffix} and y{suffix}/labels{suffix}"
            raise ValueError(f"{path}: needs arrays {want}; found keys {sorted(keys)}")
        try:
            images, labels = archive[x_key], archive[y_key]
            classes = archive["classes"].tolist() if "classes" in keys else None
        except ValueError as error:  # object arrays need pickle: refused
            raise ValueError(f"{path}: {error} (minitl never unpickles data: store plain numeric/string arrays)") \
                from error
    return ArrayDataset(images, labels, classes, name=name or f"{os.path.basename(path)}{suffix}")


def npz_has_splits(path) -> bool:
    with numpy.load(os.fspath(path), allow_pickle=False) as archive:
        return any(k in archive.files for k in ("x_train", "images_train"))
