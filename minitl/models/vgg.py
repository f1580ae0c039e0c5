"""VGG (Simonyan & Zisserman 2014): stacks of 3×3 convolutions and 2×2 max-pools, then three dense layers.

    features:   [conv3×3(pad 1) → ReLU] × n, MaxPool 2×2/2, ... (five stages: 64, 128, 256, 512, 512)
    avgpool:    adaptive average pooling to 7×7
    classifier: Linear(512·7·7, 4096) → ReLU → Dropout → Linear(4096, 4096) → ReLU → Dropout → Linear(4096, classes)

Names are torchvision's (``features.0.weight`` ... ``classifier.6.bias``).
"""
from __future__ import annotations

from .. import nn
from .base import ImageModel
from ..data.preprocessing import TORCHVISION_IMAGENET

CONFIGS = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


class VGG(ImageModel):
    """cfg: conv widths with "M" for a max-pool; hidden: the classifier's width (4096 in the paper);
    num_classes None: no classifier (``forward`` returns the pooled features)."""

    def __init__(self, cfg=CONFIGS["vgg16"], num_classes=1000, in_channels=3, batch_norm=False,
                 hidden=4096, dropout=0.5, pool_size=7):
        super().__init__()
        layers, channels = [], in_channels
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(2, stride=2))
                continue
            layers.append(nn.Conv2d(channels, item, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(item))
            layers.append(nn.ReLU())
            channels = item
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        self.flatten = nn.Flatten(1)
        self.num_features = channels * pool_size * pool_size
        self.num_classes = num_classes
        self.classifier = nn.Sequential(
            nn.Linear(self.num_features, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        ) if num_classes else nn.Identity()  # None: no classifier, forward returns the pooled features
        self.preprocessing = TORCHVISION_IMAGENET
        self._init_weights(linear_std=0.01)

    def feature_steps(self):
        return [("features", self.features), ("avgpool", self.avgpool), ("flatten", self.flatten),
                ("classifier", self.classifier)]

    def forward_features(self, x):
        """The pooled backbone output: flatten(avgpool(features(x))), (N, 512·7·7)."""
        return self.flatten(self.avgpool(self.features(x)))

    def forward(self, x):
        return self.classifier(self.forward_features(x))


def vgg16(num_classes=1000, **options) -> VGG:
    """VGG-16 (configuration D), torchvision layout: 13 convs + 3 dense layers, 138 M parameters."""
    model = VGG(CONFIGS["vgg16"], num_classes=num_classes, **options)
    model.arch = "vgg16"
    return model
