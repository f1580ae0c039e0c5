"""Image transforms: resizing, the per-image pipeline of a pretrained backbone, and augmentation (random, seeded).

Every transform is a callable ``t(image, rng) -> image`` on one (H, W) or (H, W, C) array;
``rng`` is a ``numpy.random.Generator`` (ignored by deterministic transforms), so a run is
repeatable: the loader hands each batch its own generator derived from (seed, epoch, batch).

The pipeline for a pretrained backbone (:class:`ImagePipeline`; what the backbone expects is a
:class:`~minitl.data.preprocessing.Preprocessing`)::

    decode -> grayscale to 3 channels -> resize to the input size -> augment
           -> x ← x · (pixel_range / 255)      (rescale: 1/255 for [0, 1] models, 1 for Caffe)
           -> reorder channels (RGB or BGR)
           -> x ← (x − mean) / std             (per channel; Caffe models: mean only)
           -> (H, W, C) to (C, H, W), float32

Geometric augmentations map every output pixel p = (row, col) to an input position about the
image centre c = ((H − 1)/2, (W − 1)/2),

    p_in = c + A (p − c)

and interpolate bilinearly there (``scipy.ndimage.affine_transform``); A is

    shear by angle θ:   [[1, 0], [−tan θ, 1]]    (row y shifts right by tan θ · (y − c_y))
    zoom by factor s:   [[1/s, 0], [0, 1/s]]       (s > 1 magnifies, s < 1 shrinks)
"""
from __future__ import annotations

import math

import numpy

from ..shapes import pair
from .preprocessing import Preprocessing

# ============================================================================ deterministic
def to_rgb(image) -> numpy.ndarray:
    """(H, W) or (H, W, 1) grayscale -> (H, W, 3) by repeating the channel; RGBA -> RGB."""
    image = numpy.asarray(image)
    if image.ndim == 2:
        return numpy.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3:
        raise ValueError(f"to_rgb: expected an image (H, W) or (H, W, C), got shape {image.shape}")
    channels = image.shape[2]
    if channels == 1:
        return numpy.repeat(image, 3, axis=2)
    if channels == 3:
        return image
    if channels == 4:
        return image[:, :, :3]
    raise ValueError(f"to_rgb: cannot make 3 channels out of {channels}")


def _source_index(out_size: int, in_size: int):
    """Half-pixel-centre bilinear sampling along one axis: (i0, i1, weight of i1).

    src = (dst + ½)·(in/out) − ½, clamped to [0, in − 1] (as PIL, OpenCV and
    torch's ``interpolate(..., align_corners=False)``)."""
    scale = in_size / out_size
    src = (numpy.arange(out_size, dtype=numpy.float64) + 0.5) * scale - 0.5
    src = numpy.clip(src, 0.0, in_size - 1)
    i0 = numpy.floor(src).astype(numpy.int64)
    i1 = numpy.minimum(i0 + 1, in_size - 1)
    return i0, i1, (src - i0).astype(numpy.float32)


def _box_reduce(image, fy: int, fx: int):
    """Average non-overlapping fy×fx blocks (the anti-aliasing step before shrinking)."""
    h, w = image.shape[0] // fy * fy, image.shape[1] // fx * fx
    cropped = image[:h, :w]
    shape = (h // fy, fy, w // fx, fx) + image.shape[2:]
    return cropped.reshape(shape).mean(axis=(1, 3))


def resize(image, size, antialias: bool = True) -> numpy.ndarray:
    """Bilinear resize of an (H, W) or (H, W, C) image to ``size`` = (height, width), float32.

    out(y, x) = Σ over the 4 neighbours of the source point (half-pixel centres) of
    (1 − |Δy|)(1 − |Δx|) · in.  With ``antialias``, shrinking by 2× or more first averages
    whole blocks so fine detail does not alias.
    """
    image = numpy.asarray(image, dtype=numpy.float32)
    if image.ndim not in (2, 3):
        raise ValueError(f"resize: expected an image (H, W) or (H, W, C), got shape {image.shape}")
    out_h, out_w = pair(size, "size")
    if out_h < 1 or out_w < 1:
        raise ValueError(f"resize: target size must be positive, got {(out_h, out_w)}")
    if antialias:  # shrinking f× (f ≥ 2): average f×f blocks first
        fy, fx = max(1, image.shape[0] // out_h), max(1, image.shape[1] // out_w)
        if fy > 1 or fx > 1:
            image = _box_reduce(image, fy, fx)
    in_h, in_w = image.shape[:2]
    if (in_h, in_w) == (out_h, out_w):
        return image.copy()
    y0, y1, wy = _source_index(out_h, in_h)
    x0, x1, wx = _source_index(out_w, in_w)
    extra = (None,) * (image.ndim - 2)
    wy = wy[(slice(None), None) + extra]
    wx = wx[(slice(None),) + extra]
    rows = image[y0] * (1 - wy) + image[y1] * wy
    return (rows[:, x0] * (1 - wx) + rows[:, x1] * wx).astype(numpy.float32)


# ============================================================================ augmentation
def affine(image, matrix, order: int = 1, mode: str = "nearest", cval: float = 0.0) -> numpy.ndarray:
    """out(p) = in(c + A (p − c)) for every output pixel p = (row, col), about the centre c;
    bilinear (``order=1``); outside the image: ``mode`` "nearest" (repeat the edge) or "constant"."""
    from scipy import ndimage  # noqa: PLC0415 (scipy is a runtime dependency)

    image = numpy.asarray(image, dtype=numpy.float32)
    matrix = numpy.asarray(matrix, dtype=numpy.float64)
    centre = (numpy.array(image.shape[:2], dtype=numpy.float64) - 1) / 2
    offset = centre - matrix @ centre
    if image.ndim == 2:
        return ndimage.affine_transform(image, matrix, offset=offset, order=order, mode=mode, cval=cval)
    return numpy.stack(
        [ndimage.affine_transform(image[:, :, c], matrix, offset=offset, order=order, mode=mode, cval=cval)
         for c in range(image.shape[2])], axis=2,
    )


def shear(image, angle: float, mode: str = "nearest", cval: float = 0.0) -> numpy.ndarray:
    """Horizontal shear by ``angle`` (radians): out(y, x) = in(y, x − tan(angle)·(y − c_y))."""
    t = math.tan(angle)
    return affine(image, [[1.0, 0.0], [-t, 1.0]], mode=mode, cval=cval)


def zoom(image, factor: float, mode: str = "nearest", cval: float = 0.0) -> numpy.ndarray:
    """Zoom about the centre: out(p) = in(c + (p − c)/factor); factor > 1 magnifies."""
    if factor <= 0:
        raise ValueError(f"zoom factor must be positive, got {factor}")
    return affine(image, [[1.0 / factor, 0.0], [0.0, 1.0 / factor]], mode=mode, cval=cval)


def crop_with_padding(image, top: int, left: int, size, padding: int, fill: float = 0.0) -> numpy.ndarray:
    """Pad every side with ``padding`` pixels of ``fill``, then take the ``size`` window at (top, left)
    of the padded image: out(y, x) = padded(top + y, left + x)."""
    image = numpy.asarray(image)
    h, w = pair(size, "size")
    pad = [(padding, padding), (padding, padding)] + [(0, 0)] * (image.ndim - 2)
    padded = numpy.pad(image, pad, mode="constant", constant_values=fill)
    if not (0 <= top <= padded.shape[0] - h and 0 <= left <= padded.shape[1] - w):
        raise ValueError(f"crop at ({top}, {left}) of size {(h, w)} leaves the padded image {padded.shape[:2]}")
    return padded[top:top + h, left:left + w]


class RandomHorizontalFlip:
    """Mirror left-right with probability p: out(y, x) = in(y, W − 1 − x)."""

    def __init__(self, p: float = 0.5):
        self.p = float(p)

    def __call__(self, image, rng):
        return image[:, ::-1] if rng.random() < self.p else image

    def config(self):
        return {"hflip": self.p}


class RandomShear:
    """Shear by an angle θ ~ U(−max_angle, max_angle) radians (the recipe's ``shear_range=0.2``)."""

    def __init__(self, max_angle: float = 0.2, mode: str = "nearest"):
        self.max_angle, self.mode = float(max_angle), mode

    def __call__(self, image, rng):
        return shear(image, rng.uniform(-self.max_angle, self.max_angle), mode=self.mode)

    def config(self):
        return {"shear": self.max_angle}


class RandomZoom:
    """Zoom by a factor s ~ U(1 − amount, 1 + amount) (the recipe's ``zoom_range=0.2``)."""

    def __init__(self, amount: float = 0.2, mode: str = "nearest"):
        if not 0 <= amount < 1:
            raise ValueError(f"zoom amount must be in [0, 1), got {amount}")
        self.amount, self.mode = float(amount), mode

    def __call__(self, image, rng):
        return zoom(image, rng.uniform(1 - self.amount, 1 + self.amount), mode=self.mode)

    def config(self):
        return {"zoom": self.amount}


class RandomCrop:
    """Pad by ``padding`` then crop the original size (or ``size``) at a uniformly random offset."""

    def __init__(self, padding: int = 4, size=None, fill: float = 0.0):
        self.padding, self.size, self.fill = int(padding), size, float(fill)

    def __call__(self, image, rng):
        size = self.size if self.size is not None else image.shape[:2]
        h, w = pair(size, "size")
        top = int(rng.integers(0, image.shape[0] + 2 * self.padding - h + 1))
        left = int(rng.integers(0, image.shape[1] + 2 * self.padding - w + 1))
        return crop_with_padding(image, top, left, (h, w), self.padding, self.fill)

    def config(self):
        return {"crop_padding": self.padding, "crop_size": self.size}


class Compose:
    """Apply transforms in order, each with the same generator."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, image, rng=None):
        for transform in self.transforms:
            image = transform(image, rng)
        return image

    def config(self):
        return [t.config() if hasattr(t, "config") else type(t).__name__ for t in self.transforms]


def augmentation(hflip: bool = True, shear: float = 0.2, zoom: float = 0.2, crop_padding: int = 0) -> Compose:
    """The recipe's augmentation (flip, shear 0.2, zoom 0.2), optionally with random crop after padding."""
    steps = []
    if shear:
        steps.append(RandomShear(shear))
    if zoom:
        steps.append(RandomZoom(zoom))
    if crop_padding:
        steps.append(RandomCrop(crop_padding))
    if hflip:
        steps.append(RandomHorizontalFlip())
    return Compose(steps)


# ============================================================================ the pipeline
class ImagePipeline:
    """decode output -> 3 channels -> resize -> [augment] -> :meth:`Preprocessing.normalize`
    (rescale, channel order, mean/std, CHW).

    ``pipeline(image, rng)`` gives one (3, H, W) float32 array; ``config()`` is a JSON-able
    description (part of the feature-cache key).
    """

    def __init__(self, spec: Preprocessing, augment=None):
        self.spec, self.augment = spec, augment

    def __call__(self, image, rng=None):
        image = to_rgb(image)
        image = resize(image, self.spec.input_size)
        if self.augment is not None:
            image = self.augment(image, rng if rng is not None else numpy.random.default_rng(0))
        return self.spec.normalize(image)[0]

    def config(self) -> dict:
        return {"spec": self.spec.key(),
                "augment": self.augment.config() if hasattr(self.augment, "config") else repr(self.augment)}
