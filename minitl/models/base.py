"""Feature extraction shared by the image models: ``forward_features`` and ``extract``.

A model lists its top-level steps in forward order (``feature_steps``); ``extract`` runs them and
keeps the outputs asked for by name — a top-level step (``"layer3"``) or one nested inside a
``Sequential`` (``"layer3.1"``, ``"features.28"``) — and stops after the last one it needs.
"""
from __future__ import annotations

from collections import OrderedDict

from .. import nn


class ImageModel(nn.Module):
    """Base of minitl's pretrained-style image models (ResNet, VGG)."""

    arch: str | None = None
    preprocessing = None  # a Preprocessing
    class_names: list | None = None

    def feature_steps(self):  # pragma: no cover - interface
        """[(name, callable)] in forward order; "flatten" gives forward_features."""
        raise NotImplementedError

    def forward_features(self, x):  # pragma: no cover - interface
        raise NotImplementedError

    def _init_weights(self, linear_std: float | None = None) -> None:
        """torchvision's initialisation: convolutions W ~ N(0, 2/fan_out) (He, for ReLU), BatchNorm
        γ = 1, β = 0, biases 0; with ``linear_std`` (VGG: 0.01) linear layers W ~ N(0, linear_std²),
        b = 0 (else they keep nn.Linear's own initialisation)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear) and linear_std is not None:
                nn.init.normal_(module.weight, 0.0, linear_std)
                nn.init.zeros_(module.bias)

    def layer_names(self) -> list[str]:
        """Every name ``extract`` accepts: top-level steps and the children of Sequential stages."""
        names = []
        for name, step in self.feature_steps():
            names.append(name)
            if isinstance(step, nn.Sequential):
                names.extend(f"{name}.{child}" for child, _ in step.named_children())
        return names

    def extract(self, x, layers) -> OrderedDict:
        """Named intermediate activations: ``{"layer3": a3, "layer4": a4}`` for ``layers=["layer3", "layer4"]``."""
        if isinstance(layers, str):
            layers = [layers]
        known = self.layer_names()
        unknown = [name for name in layers if name not in known]
        if unknown:
            raise ValueError(f"unknown layer name(s) {unknown}; {type(self).__name__} has: {', '.join(known)}")
        wanted, found = set(layers), {}
        for name, step in self.feature_steps():
            if not wanted - found.keys():
                break
            nested = [w for w in wanted if w.startswith(name + ".")]
            if nested and isinstance(step, nn.Sequential):
                for child, module in step.named_children():
                    x = module(x)
                    if f"{name}.{child}" in wanted:
                        found[f"{name}.{child}"] = x
            else:
                x = step(x)
            if name in wanted:
                found[name] = x
        return OrderedDict((name, found[name]) for name in layers)

    @property
    def metadata(self) -> dict:
        """What minitl's ``.npz`` files record about this model (architecture, preprocessing, class names)."""
        return {
            "arch": self.arch,
            "num_classes": getattr(self, "num_classes", None),
            "preprocessing": self.preprocessing.to_dict() if self.preprocessing is not None else None,
            "class_names": list(self.class_names) if self.class_names else None,
        }
