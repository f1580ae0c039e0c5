"""``--data D``: turn one path (or a dataset name) into a training split and a held-out split.

    (nothing) / "fashion-mnist"      Fashion-MNIST from /usr/share/datasets/fashion-mnist/
    DIR with train-images-idx3-ubyte  an MNIST-layout folder (Fashion-MNIST, MNIST)
    DIR with data_batch_1.bin         CIFAR-10 (train.bin/test.bin: CIFAR-100, fine labels)
    DIR with train/ [test/ | val/]    image folders, a sub-folder per class
    DIR with class sub-folders        image folders; a stratified part held out
    FILE.npz                          x_train/y_train/x_test/y_test, or x/y (part held out)
    "digits"                          scikit-learn's 8×8 digits (part held out)
    "imdb", "rotten-tomatoes", FILE.csv, DIR of <class>/*.txt    text: see minitl.data.text.sources

When the source has no test split, ``val_fraction`` of every class is held out (seeded).
"""
from __future__ import annotations

import os

import numpy
from dataclasses import dataclass, field

from .datasets import load_npz_dataset, npz_has_splits, stratified_subset, train_val_split
from .fashion_mnist import FASHION_MNIST_CLASSES, find_fashion_mnist, has_idx_files, load_idx_split

FASHION_NAMES = ("fashion-mnist", "fashion_mnist", "fashionmnist")


@dataclass
class DataSplits:
    train: object
    test: object
    classes: list
    name: str
    heldout: str = "test split"  # how the evaluation split was made
    notes: list = field(default_factory=list)
    unit: str = "images"  # what a sample is ("texts" for text data)
    skipped: list = field(default_factory=list)  # undecodable images left out (--skip-bad-images): {"path", "error"}

    def describe(self) -> str:
        return (f"{self.name}: {len(self.train)} training {self.unit}, {len(self.test)} test {self.unit} "
                f"({self.heldout}), {len(self.classes)} classes")


def _image_folder_splits(root, val_fraction, seed, skip_bad=False):
    from .images import ImageFolder as Folder  # noqa: PLC0415 (Pillow is optional)

    def ImageFolder(*args, **kwargs):  # noqa: N802
        return Folder(*args, skip_bad=skip_bad, **kwargs)

    for train_name in ("train", "training"):
        train_dir = os.path.join(root, train_name)
        if os.path.isdir(train_dir):
            train = ImageFolder(train_dir, name=f"{os.path.basename(os.path.normpath(root))}/{train_name}")
            for test_name in ("test", "val", "validation", "valid"):
                test_dir = os.path.join(root, test_name)
                if os.path.isdir(test_dir):
                    test = ImageFolder(test_dir, classes=train.classes,
                                       name=f"{os.path.basename(os.path.normpath(root))}/{test_name}")
                    return train, test, f"{test_name}/ folder"
            a, b = train_val_split(train, val_fraction, seed)
            return a, b, f"{val_fraction:.0%} of {train_name}/ held out, seed {seed}"
    full = ImageFolder(root)
    a, b = train_val_split(full, val_fraction, seed)
    return a, b, f"{val_fraction:.0%} held out, seed {seed}"


def open_data(spec=None, val_fraction: float = 0.2, seed: int = 0, train_per_class: int | None = None,
              test_per_class: int | None = None, skip_bad_images: bool = False) -> DataSplits:
    """Resolve ``spec`` to :class:`DataSplits`; optionally keep ``train_per_class`` training and
    ``test_per_class`` evaluation samples of every class (stratified, seeded subsets).
    ``skip_bad_images``: image folders leave out files that do not decode (``splits.skipped``)."""
    from .text.sources import is_text_spec, open_text_data  # noqa: PLC0415

    if is_text_spec(spec):
        return open_text_data(spec, val_fraction, seed, train_per_class, test_per_class)
    if spec is None or str(spec).lower() in FASHION_NAMES:
        folder = find_fashion_mnist()
        train, test = load_idx_split(folder, "train"), load_idx_split(folder, "test")
        splits = DataSplits(train, test, train.classes, "fashion-mnist", "official 10,000-image test split")
    elif str(spec).lower() == "digits":
        splits = _digits_splits(val_fraction, seed)
    else:
        splits = _path_splits(os.fspath(spec), val_fraction, seed, skip_bad_images)
    if train_per_class:
        splits.train = stratified_subset(splits.train, train_per_class, seed)
        splits.notes.append(f"training subset: {train_per_class} per class, seed {seed}")
    if test_per_class:
        splits.test = stratified_subset(splits.test, test_per_class, seed + 1)
        splits.notes.append(f"evaluation subset: {test_per_class} per class, seed {seed + 1}")
    return splits


def _digits_splits(val_fraction: float, seed: int) -> DataSplits:
    """scikit-learn's 8x8 digits as 0-255 pixels, ``val_fraction`` of them held out."""
    from . import digits  # noqa: PLC0415 (scikit-learn is optional)

    from .datasets import ArrayDataset  # noqa: PLC0415

    images, labels = digits.load_digits(flatten=False)  # (N, 1, 8, 8) in [0, 1]
    pixels = numpy.round(images[:, 0] * 255).astype(numpy.uint8)
    full = ArrayDataset(pixels, labels, [str(i) for i in range(10)], name="digits")
    train, test = train_val_split(full, val_fraction, seed)
    return DataSplits(train, test, full.classes, "digits", f"{val_fraction:.0%} held out, seed {seed}")


def _path_splits(path: str, val_fraction: float, seed: int, skip_bad_images: bool) -> DataSplits:
    """A .npz archive or a folder (IDX files, CIFAR binaries, or images in class sub-folders)."""
    name = os.path.basename(os.path.normpath(path))
    if os.path.isfile(path):
        return _npz_splits(path, name, val_fraction, seed)
    if os.path.isdir(path):
        return _folder_splits(path, name, val_fraction, seed, skip_bad_images)
    hint = ""
    if os.path.basename(path).lower() in FASHION_NAMES:
        hint = f" (for Fashion-MNIST from its usual place, use --data fashion-mnist; {find_hint()})"
    raise FileNotFoundError(f"--data {path}: no such file or folder{hint}")


def _npz_splits(path: str, name: str, val_fraction: float, seed: int) -> DataSplits:
    """x_train/y_train (+ x_test/y_test, or ``val_fraction`` held out) from an .npz archive."""
    if not path.endswith(".npz"):
        raise ValueError(f"--data {path}: a file must be a .npz archive (x_train, y_train, ...); "
                         "for images give a folder with a sub-folder per class")
    if npz_has_splits(path):
        train, test = load_npz_dataset(path, "train"), load_npz_dataset(path, "test")
        if train.classes != test.classes and len(test.classes) <= len(train.classes):
            test.classes = train.classes
        return DataSplits(train, test, train.classes, name, "x_test/y_test arrays")
    full = load_npz_dataset(path)
    train, test = train_val_split(full, val_fraction, seed)
    return DataSplits(train, test, full.classes, name, f"{val_fraction:.0%} held out, seed {seed}")


def _folder_splits(path: str, name: str, val_fraction: float, seed: int, skip_bad_images: bool) -> DataSplits:
    """An MNIST-layout (IDX) folder, a CIFAR binary folder, or image files in class sub-folders."""
    from .cifar import find_cifar_dir, load_cifar10, load_cifar100  # noqa: PLC0415

    cifar = find_cifar_dir(path)
    if has_idx_files(path):
        classes = FASHION_MNIST_CLASSES if "fashion" in path.lower() else [str(i) for i in range(10)]
        train = load_idx_split(path, "train", classes, name=name)
        test = load_idx_split(path, "test", classes, name=name)
        return DataSplits(train, test, classes, name, "t10k test split")
    if cifar is not None:
        loader = load_cifar10 if cifar[0] == "cifar10" else load_cifar100
        train, test = loader(path, "train"), loader(path, "test")
        return DataSplits(train, test, train.classes, cifar[0], "official test split")
    train, test, how = _image_folder_splits(path, val_fraction, seed, skip_bad_images)
    splits = DataSplits(train, test, train.classes, name, how)
    for part in {id(p): p for p in (train, test, getattr(train, "dataset", None),
                                    getattr(test, "dataset", None))}.values():
        splits.skipped.extend(getattr(part, "skipped", []))
    splits.skipped = list({s["path"]: s for s in splits.skipped}.values())
    if splits.skipped:
        splits.notes.append(f"skipped {len(splits.skipped)} image(s) that do not decode "
                            "(--skip-bad-images; listed in run.json)")
    return splits


def find_hint() -> str:
    try:
        return f"found in {find_fashion_mnist()}"
    except FileNotFoundError as error:
        return str(error)
