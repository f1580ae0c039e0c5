"""A pretrained backbone Φ with a new head: ŷ = head(Φ(x)).

    head:  g = global average pool of Φ(x)       g_c = (1/HW) Σ_{h,w} Φ(x)_{c,h,w}
           h = ReLU(W₁ g + b₁)                    Dense(512, ReLU)
           ŷ = W₂ h + b₂                          Dense(n_classes): logits for softmax cross-entropy

The backbone is cut into *segments* run in order — for a ResNet: ``stem`` (conv1, bn1, relu,
maxpool), ``layer1`` … ``layer4``.  Training "from segment k" runs segments[:k] frozen (no graph,
or from a cache of their output) and segments[k:] + head with gradients; that single mechanism
gives all three modes:

    scratch    k = 0              everything trains, random init
    features   k = all segments   the head alone, on cached pooled features
    finetune   k = all − N        the last N stages and the head, on cached activations
"""
from __future__ import annotations

import hashlib

import numpy

from .. import nn
from ..tensor import Tensor, no_grad

POOL_NAMES = ("avgpool", "flatten", "fc", "global_pool", "classifier", "head")


class ClassifierHead(nn.Module):
    """Global average pooling → Dense(hidden, ReLU) → Dense(num_classes).  Pooled (N, C) input
    (cached features) skips the pooling."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 512):
        super().__init__()
        self.in_features, self.hidden, self.num_classes = in_features, hidden, num_classes
        self.fc1 = nn.Linear(in_features, hidden)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden, num_classes)

    @staticmethod
    def pool(x: Tensor) -> Tensor:
        """g_c = (1/HW) Σ_{h,w} x_{c,h,w} for (N, C, H, W); (N, C) passes through."""
        if x.ndim == 4:
            return x.mean(axis=(2, 3))
        if x.ndim == 2:
            return x
        raise ValueError(f"ClassifierHead expects features (N, C, H, W) or (N, C), got {x.shape}")

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.relu(self.fc1(self.pool(x))))

    def extra_repr(self) -> str:
        return f"pool -> {self.in_features} -> {self.hidden} (ReLU) -> {self.num_classes}"


def backbone_segments(backbone) -> list:
    """[(name, callable)] that composed give the backbone's features (before global pooling).

    Uses ``feature_steps()`` (minitl's ImageModels) — grouping the steps before the first stage
    into one ``stem`` — or, failing that, the whole ``forward_features`` as one segment.
    """
    steps = backbone.feature_steps() if hasattr(backbone, "feature_steps") else None
    if not steps:
        fn = getattr(backbone, "forward_features", None) or backbone
        return [("features", fn)]
    steps = [(name, fn) for name, fn in steps if name not in POOL_NAMES]
    stage_names = set(stage_names_of(backbone, steps))
    segments, stem = [], []
    for name, fn in steps:
        if name in stage_names:
            if stem:
                segments.append(("stem", _chain(stem)))
                stem = []
            segments.append((name, fn))
        else:
            stem.append(fn)
    if stem:
        segments.append(("tail", _chain(stem)))
    return segments


def stage_names_of(backbone, steps=None) -> list[str]:
    """The names of the backbone's stages (``layer1`` … ``layer4`` for a ResNet)."""
    steps = steps if steps is not None else backbone.feature_steps()
    names = [name for name, _ in steps if name.startswith("layer") and name[5:].isdigit()]
    return names or [name for name, _ in steps if name not in POOL_NAMES]


def _chain(fns):
    def run(x):
        for fn in fns:
            x = fn(x)
        return x

    return run


class TransferModel(nn.Module):
    """``backbone`` (any Module with ``feature_steps()`` or ``forward_features``) + a new head."""

    def __init__(self, backbone, num_classes: int, hidden: int = 512, feature_dim: int | None = None,
                 probe_shape=None):
        super().__init__()
        self.backbone = backbone
        object.__setattr__(self, "segments", backbone_segments(backbone))
        if feature_dim is None:
            feature_dim = getattr(backbone, "num_features", None)
        if feature_dim is None:
            if probe_shape is None:
                raise ValueError("TransferModel: give feature_dim, or probe_shape to measure it")
            with backbone.evaluating(), no_grad():  # a probe must not touch BatchNorm statistics
                feature_dim = self.features(Tensor(numpy.zeros((1,) + tuple(probe_shape), numpy.float32))).shape[1]
        self.head = ClassifierHead(int(feature_dim), num_classes, hidden)

    @property
    def segment_names(self) -> list[str]:
        return [name for name, _ in self.segments]

    @property
    def stage_names(self) -> list[str]:
        return [name for name in self.segment_names if name not in ("stem", "tail")] or self.segment_names

    def run_segments(self, x: Tensor, start: int = 0, stop: int | None = None) -> Tensor:
        for _, fn in self.segments[start:stop]:
            x = fn(x)
        return x

    def features(self, x: Tensor) -> Tensor:
        """The pooled features g = pool(Φ(x)), shape (N, C)."""
        return ClassifierHead.pool(self.run_segments(x))

    def forward_from(self, x: Tensor, start: int) -> Tensor:
        """Logits from the input of segment ``start`` (``start`` = len(segments): pooled features)."""
        return self.head(self.run_segments(x, start))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.run_segments(x))

    def cut_for(self, unfreeze: int) -> int:
        """The segment index where the last ``unfreeze`` stages begin."""
        stages = self.stage_names
        if not 0 <= unfreeze <= len(stages):
            raise ValueError(f"cannot unfreeze {unfreeze} stages: the backbone has {len(stages)} ({', '.join(stages)})")
        if unfreeze == 0:
            return len(self.segments)
        return self.segment_names.index(stages[-unfreeze])

    def segment_modules(self, start: int, stop: int | None = None) -> list:
        """The sub-modules behind segments[start:stop] (by name; the stem is its steps' modules)."""
        names = self.segment_names[start:stop]
        modules = []
        for name in names:
            if name in self.backbone._modules:
                modules.append(self.backbone._modules[name])
            elif name in ("stem", "tail", "features"):
                stage_set = set(self.stage_names)
                seen_stage = False
                for child_name, child in self.backbone.named_children():
                    if child_name in stage_set:
                        seen_stage = True
                    elif name == "features" or (name == "stem") != seen_stage:
                        if child_name not in POOL_NAMES:
                            modules.append(child)
        return modules


def set_trainable(model: TransferModel, start: int) -> tuple[list, list]:
    """Freeze segments[:start], unfreeze segments[start:] and the head; returns (trainable, frozen) modules."""
    frozen = model.segment_modules(0, start)
    trainable = model.segment_modules(start) + [model.head]
    model.backbone.requires_grad_(False)
    for module in trainable:
        module.requires_grad_(True)
    return trainable, frozen


def batchnorm_modules(modules) -> list:
    """Every BatchNorm layer inside ``modules`` (by class name, so any BatchNorm variant counts)."""
    found = []
    for module in modules:
        for sub in module.modules():
            if "BatchNorm" in type(sub).__name__ and sub not in found:
                found.append(sub)
    return found


def state_digest(named_arrays) -> dict:
    """name -> sha256 of the exact bytes: the bitwise check that frozen parameters did not move."""
    digests = {}
    for name, value in named_arrays:
        array = numpy.ascontiguousarray(value.numpy() if hasattr(value, "numpy") else value)
        digests[name] = hashlib.sha256(memoryview(array).cast("B")).hexdigest()
    return digests


def weights_digest(module) -> str:
    """One sha256 over every parameter and buffer (names, shapes, bytes): the weights' identity."""
    h = hashlib.sha256()
    for name, array in module.state_dict().items():
        array = numpy.ascontiguousarray(array)
        h.update(f"{name}{array.dtype.str}{array.shape}".encode())
        h.update(memoryview(array).cast("B"))
    return h.hexdigest()
