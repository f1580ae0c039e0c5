"""Image files: decoding (Pillow, the optional ``images`` extra) and a folder per class.

    data/train/<class name>/*.png      ->  ImageFolder("data/train")

Class names are the sub-folder names, sorted; label i is ``classes[i]``.  Errors name the
problem: no class folders, an empty class folder, a class folder the training split does not
know, a file that does not decode, a name that is not UTF-8, a symlink loop or dangling link.
"""
from __future__ import annotations

import hashlib
import os

import numpy

from .datasets import Dataset

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _pil():
    try:
        from PIL import Image  # noqa: PLC0415
    except ImportError as error:
        raise ImportError("reading image files needs Pillow: pip install 'minitl[images]'") from error
    return Image


def load_image(path, mode: str = "RGB") -> numpy.ndarray:
    """Decode an image file into a uint8 array: (H, W, 3) for mode "RGB", (H, W) for "L"."""
    Image = _pil()
    path = os.fspath(path)
    try:
        with Image.open(path) as image:
            image.load()
            if mode and image.mode != mode:
                image = image.convert(mode)
            return numpy.asarray(image, dtype=numpy.uint8).copy()
    except FileNotFoundError:
        raise FileNotFoundError(f"no such image file: {path}") from None
    except Exception as error:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ...
        raise ValueError(f"cannot decode image file {path}: {type(error).__name__}: {error}") from error


def save_image(path, array) -> None:
    """Write a uint8 (H, W) or (H, W, 3) array as an image file (format from the extension)."""
    Image = _pil()
    Image.fromarray(numpy.asarray(array, dtype=numpy.uint8)).save(os.fspath(path))


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _check_name(path: str, what: str) -> None:
    """A name minitl can print, hash and write to run.json: valid UTF-8 (os.listdir escapes other bytes)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        raise ValueError(f"{what} name is not valid UTF-8: {shown}; rename it") from None


def _checked_file(path: str) -> str:
    """``path`` if it names a readable file (a symlink loop or a dangling link is an error naming it)."""
    _check_name(path, "image file")
    try:
        os.stat(path)
    except OSError as error:
        raise ValueError(f"cannot read image file {path}: {error.strerror or error}") from None
    return path


def _decode_problem(path: str) -> str | None:
    """Why ``path`` does not decode (Pillow's header and integrity check), or None if it does."""
    Image = _pil()
    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as error:  # noqa: BLE001 - PIL raises UnidentifiedImageError, OSError, SyntaxError, ...
        return f"{type(error).__name__}: {error}"
    return None


class ImageFolder(Dataset):
    """A folder per class: ``root/<class>/<image>``; images decoded lazily, as RGB uint8 (H, W, 3).

    ``classes`` fixes the class list (a test split must use the training split's classes): a
    sub-folder not in it is an error, and a class without a folder simply has no samples here.
    ``mode="L"`` decodes to grayscale (H, W).  ``skip_bad``: check every file once (Pillow's
    ``verify``) and leave out those that do not decode, listed in ``skipped``; by default a file
    that does not decode is an error when it is read.
    """

    def __init__(self, root, classes=None, mode: str = "RGB", name: str | None = None, skip_bad: bool = False):
        _pil()  # fail early, with the install hint, if Pillow is missing
        root = os.fspath(root)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"image folder not found: {root}")
        folders = sorted(d for d in os.listdir(root) if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))
        for folder in folders:
            _check_name(os.path.join(root, folder), "class folder")
        if not folders:
            loose = [f for f in os.listdir(root) if _is_image(f)]
            hint = f" (found {len(loose)} loose image files: put each class in its own sub-folder)" if loose else ""
            raise ValueError(f"{root}: no class folders; expected {root}/<class name>/<image files>{hint}")
        if classes is None:
            classes = folders
        else:
            classes = [str(c) for c in classes]
            unknown = [f for f in folders if f not in classes]
            if unknown:
                raise ValueError(
                    f"{root}: unknown class folder(s) {unknown}: not among the training classes {classes}"
                )
        self.root, self.classes, self.mode = root, list(classes), mode
        self.name = name or os.path.basename(os.path.normpath(root))
        self.samples: list[tuple[str, int]] = []
        self.skipped: list[dict] = []  # with skip_bad: {"path", "error"} of each file that does not decode
        for folder in folders:
            directory = os.path.join(root, folder)
            files = sorted(f for f in os.listdir(directory) if _is_image(f))
            if not files:
                raise ValueError(
                    f"{root}: class folder {folder!r} has no image files ({', '.join(IMAGE_EXTENSIONS)})"
                )
            label = self.classes.index(folder)
            for f in files:
                path = _checked_file(os.path.join(directory, f))
                problem = _decode_problem(path) if skip_bad else None
                if problem is None:
                    self.samples.append((path, label))
                else:
                    self.skipped.append({"path": path, "error": problem})
            if skip_bad and not any(label == l for _, l in self.samples[-len(files):]):
                raise ValueError(f"{root}: class folder {folder!r} has no image that decodes ({len(files)} skipped)")
        self._targets = numpy.asarray([label for _, label in self.samples], dtype=numpy.int64)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index):
        path, label = self.samples[index]
        return load_image(path, self.mode), label

    @property
    def targets(self) -> numpy.ndarray:
        return self._targets

    def get_batch(self, indices):
        items = [self[int(i)] for i in indices]
        shapes = {x.shape for x, _ in items}
        if len(shapes) > 1:
            raise ValueError(f"{self.root}: images of different sizes {sorted(shapes)} cannot be stacked; "
                             "resize them (a transform) first")
        return numpy.stack([x for x, _ in items]), numpy.asarray([y for _, y in items], dtype=numpy.int64)

    def fingerprint(self) -> str:
        """Relative paths, sizes and modification times of every file, and the labels."""
        h = hashlib.sha256(f"ImageFolder{self.mode}".encode())
        for path, label in self.samples:
            stat = os.stat(path)
            h.update(f"{os.path.relpath(path, self.root)}\0{stat.st_size}\0{stat.st_mtime_ns}\0{label}\n".encode())
        h.update("\0".join(self.classes).encode())
        return h.hexdigest()

    def __repr__(self) -> str:
        return f"ImageFolder({self.root!r}, {len(self)} images, {len(self.classes)} classes)"
