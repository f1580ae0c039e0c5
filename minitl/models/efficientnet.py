"""EfficientNet-Lite (Tan & Le 2019; the Lite variants for mobile): MBConv blocks, ReLU6, no SE.

    stem:     conv 3×3/2 (32) → BN → ReLU6
    MBConv:   expand 1×1 (C → tC) → BN → ReLU6      (omitted when t = 1)
              depthwise k×k/s (groups = tC) → BN → ReLU6
              project 1×1 (tC → C') → BN            (linear bottleneck: no activation)
              + input, when s = 1 and C = C'        (inverted residual)
    head:     conv 1×1 (1280) → BN → ReLU6 → global average pool → dropout → Linear(1000)

Lite0 stages (repeats, kernel, stride, expansion t, channels in → out), from the reference
builder: (1,3,1,1,32→16) (2,3,2,6,16→24) (2,5,2,6,24→40) (3,3,2,6,40→80) (3,5,1,6,80→112)
(4,5,2,6,112→192) (1,3,1,6,192→320).  Convolutions pad as TensorFlow's "SAME" (uneven: the
extra pixel after), since the weights were trained that way.  A depthwise convolution is
``conv2d(groups=C)``: each channel convolved with its own k×k kernel.

minitl names: ``conv_stem``, ``bn0``, ``layer1.0.depthwise_conv`` ..., ``conv_head``, ``bn1``,
``fc``; the reference's ``_blocks.{i}`` are grouped into the seven stages ``layer1`` … ``layer7``
(the name map is in minitl/transfer/names.py and shown by ``minitl weights audit``).
"""
from __future__ import annotations

from .. import functional as F
from .. import nn
from .base import ImageModel
from ..data.preprocessing import Preprocessing

# (repeats, kernel, stride, expansion, in channels, out channels) per stage
LITE0_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))

# TensorFlow's EfficientNet-Lite input: (x − 127) / 128 on 0..255 pixels, 224×224 (resize 256, centre crop)
LITE_PREPROCESSING = Preprocessing(
    mean=(127.0 / 255, 127.0 / 255, 127.0 / 255), std=(128.0 / 255, 128.0 / 255, 128.0 / 255),
    source="EfficientNet-Lite (TensorFlow lite builder): (x - 127) / 128, RGB, 224x224",
)


class SameConv2d(nn.Conv2d):
    """A convolution padded as TensorFlow's "SAME": out = ceil(in / stride), extra padding after."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x):
        (k, _), (s, _) = self.kernel_size, self.stride
        top, bottom = F.same_padding(x.shape[2], k, s)
        left, right = F.same_padding(x.shape[3], k, s)
        if self.groups == self.in_channels == self.out_channels:  # depthwise: pads unevenly itself, no copy
            return F.depthwise_conv2d(x, self.weight, self.bias, s, (top, bottom, left, right))
        return super().forward(F.pad2d(x, (left, right, top, bottom)))


class MBConv(nn.Module):
    """Mobile inverted bottleneck: expand 1×1 → depthwise k×k → project 1×1, residual when shapes match."""

    def __init__(self, c_in, c_out, kernel, stride, expansion, eps=1e-3, momentum=0.01):
        super().__init__()
        wide = c_in * expansion
        if expansion != 1:
            self.expand_conv = SameConv2d(c_in, wide, 1)
            self.bn0 = nn.BatchNorm2d(wide, eps=eps, momentum=momentum)
        self.depthwise_conv = SameConv2d(wide, wide, kernel, stride=stride, groups=wide)
        self.bn1 = nn.BatchNorm2d(wide, eps=eps, momentum=momentum)
        self.project_conv = SameConv2d(wide, c_out, 1)
        self.bn2 = nn.BatchNorm2d(c_out, eps=eps, momentum=momentum)
        self.residual = stride == 1 and c_in == c_out
        self.expansion = expansion

    def forward(self, x):
        h = x
        if self.expansion != 1:
            h = F.relu6(self.bn0(self.expand_conv(h)))
        h = F.relu6(self.bn1(self.depthwise_conv(h)))
        h = self.bn2(self.project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite(ImageModel):
    """EfficientNet-Lite with torch-style modules; ``num_classes`` 0: no classifier."""

    def __init__(self, stages=LITE0_STAGES, num_classes=1000, stem=32, head=1280, dropout=0.2):
        super().__init__()
        self.conv_stem = SameConv2d(3, stem, 3, stride=2)
        self.bn0 = nn.BatchNorm2d(stem, eps=1e-3, momentum=0.01)
        for index, (repeats, kernel, stride, expansion, c_in, c_out) in enumerate(stages, start=1):
            blocks = [MBConv(c_in if r == 0 else c_out, c_out, kernel, stride if r == 0 else 1, expansion)
                      for r in range(repeats)]
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
        self.stage_count = len(stages)
        self.conv_head = SameConv2d(stages[-1][5], head, 1)
        self.bn1 = nn.BatchNorm2d(head, eps=1e-3, momentum=0.01)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.dropout = nn.Dropout(dropout)
        self.num_features, self.num_classes = head, num_classes
        self.fc = nn.Linear(head, num_classes) if num_classes else nn.Identity()
        self.preprocessing = LITE_PREPROCESSING

    def _stem(self, x):
        return F.relu6(self.bn0(self.conv_stem(x)))

    def _head_conv(self, x):
        return F.relu6(self.bn1(self.conv_head(x)))

    def feature_steps(self):
        stages = [(f"layer{i}", getattr(self, f"layer{i}")) for i in range(1, self.stage_count + 1)]
        return [("conv_stem", self._stem)] + stages + [("conv_head", self._head_conv), ("avgpool", self.avgpool),
                                                        ("flatten", self.flatten)]

    def forward_features(self, x):
        """The pooled features (N, 1280)."""
        for _, step in self.feature_steps():
            x = step(x)
        return x

    def forward(self, x):
        return self.fc(self.dropout(self.forward_features(x)))


def efficientnet_lite0(num_classes=1000, **options) -> EfficientNetLite:
    """EfficientNet-Lite0: 4.7 M parameters, ImageNet-1k top-1 ~75 % at 224×224."""
    model = EfficientNetLite(LITE0_STAGES, num_classes=num_classes, **options)
    model.arch = "efficientnet_lite0"
    return model
