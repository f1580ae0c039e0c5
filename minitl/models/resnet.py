"""ResNet (He et al. 2015, "Deep Residual Learning for Image Recognition"): one configurable builder.

A residual block learns a correction F to its input rather than a whole new mapping:

    y = ReLU( F(x) + shortcut(x) ),   shortcut(x) = x, or a 1×1 conv (+BN) when the shape changes

* basic block (ResNet-18/34):  F = BN(conv3×3(ReLU(BN(conv3×3(x)))))
* bottleneck (ResNet-50/101/152): F = BN(conv1×1(ReLU(BN(conv3×3(ReLU(BN(conv1×1(x))))))))
  — a 1×1 that narrows to ``width``, a 3×3 at that width, a 1×1 that widens to ``width·4``.

Network: stem (7×7/2 conv, BN, ReLU, 3×3/2 max-pool) -> layer1..layer4 (blocks; layer2-4 halve
the resolution in their first block) -> global average pooling -> fc.

The options real pretrained files need:
  ``stride_in_1x1``  torchvision puts a bottleneck's stride in the 3×3 (v1.5); Caffe-era models and
                     Keras's ResNet50 put it in the first 1×1 (v1);
  ``norm``           "batch" (conv without bias, then BatchNorm) or "folded" (BN already folded
                     into the conv: w' = w·γ/√(σ²+ε), b' = β − μ·γ/√(σ²+ε) — a conv with bias);
  ``conv_bias``      Keras's convs carry a bias *and* are followed by BatchNorm;
  ``cifar_stem``     3×3 stride-1 stem conv and no max-pool, for 32×32 images;
  ``maxpool_ceil_mode`` / ``maxpool_padding``  Caffe's pooling rounds the output size up.

Module and ``state_dict`` names are torchvision's (``layer2.0.downsample.0.weight`` ...), so a
torchvision checkpoint maps one to one.
"""
from __future__ import annotations


from .. import nn
from ..data.preprocessing import CAFFE_OPENNSFW, KERAS_CAFFE, TORCHVISION_IMAGENET
from .base import ImageModel


def _norm_layer(channels: int, config: dict):
    """BatchNorm2d after a conv, or Identity where BN was folded into the conv."""
    if config["norm"] == "folded":
        return nn.Identity()
    return nn.BatchNorm2d(channels, eps=config["bn_eps"])


def _norm_relu(norm, relu, x, residual=None):
    """max(0, norm(x) [+ residual]).

    After a BatchNorm2d this is one op, F.batch_norm_relu: the add and the ReLU run in BatchNorm's
    cache-blocked passes instead of two more passes over the activation each way.  The norm's
    forward is called unbound, not as a module call, so what watches module outputs (minitl diff,
    the layer scopes of traces) never takes max(0, BN(x) + r) for the BatchNorm's output: the op
    belongs to the enclosing block.  Folded BatchNorm (nn.Identity): ``relu(norm(x) + residual)``.
    """
    if isinstance(norm, nn.BatchNorm2d):
        return type(norm).forward(norm, x, residual, relu=True)
    out = norm(x)
    return relu(out if residual is None else out + residual)


def _conv(in_channels, out_channels, kernel_size, stride, config, padding=None):
    bias = config["conv_bias"]
    padding = kernel_size // 2 if padding is None else padding
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)


class BasicBlock(nn.Module):
    """y = ReLU( BN(conv3×3(ReLU(BN(conv3×3(x))))) + shortcut(x) )."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int, downsample, config: dict):
        super().__init__()
        self.conv1 = _conv(in_channels, width, 3, stride, config)
        self.bn1 = _norm_layer(width, config)
        self.relu = nn.ReLU()
        self.conv2 = _conv(width, width, 3, 1, config)
        self.bn2 = _norm_layer(width, config)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = _norm_relu(self.bn1, self.relu, self.conv1(x))
        return _norm_relu(self.bn2, self.relu, self.conv2(out), identity)


class Bottleneck(nn.Module):
    """y = ReLU( BN(conv1×1(ReLU(BN(conv3×3(ReLU(BN(conv1×1(x)))))))) + shortcut(x) ).

    The stride sits in the 3×3 (torchvision) or in the first 1×1 (``stride_in_1x1``: Caffe, Keras).
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int, downsample, config: dict):
        super().__init__()
        out_channels = width * config["expansion"]
        stride_1x1, stride_3x3 = (stride, 1) if config["stride_in_1x1"] else (1, stride)
        self.conv1 = _conv(in_channels, width, 1, stride_1x1, config)
        self.bn1 = _norm_layer(width, config)
        self.conv2 = _conv(width, width, 3, stride_3x3, config)
        self.bn2 = _norm_layer(width, config)
        self.conv3 = _conv(width, out_channels, 1, 1, config)
        self.bn3 = _norm_layer(out_channels, config)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = _norm_relu(self.bn1, self.relu, self.conv1(x))
        out = _norm_relu(self.bn2, self.relu, self.conv2(out))
        return _norm_relu(self.bn3, self.relu, self.conv3(out), identity)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(ImageModel):
    """The configurable ResNet; ``resnet18`` ... ``resnet152`` and ``resnet50_1by2`` are settings of it.

    block: "basic" | "bottleneck";  layers: blocks per stage, e.g. (3, 4, 6, 3);
    widths: each stage's inner width (bottleneck outputs are ``width · expansion``);
    num_classes: size of ``fc`` (None: no head, ``forward`` returns the pooled features).
    """

    DEFAULTS = dict(
        block="basic", layers=(2, 2, 2, 2), widths=(64, 128, 256, 512), num_classes=1000, in_channels=3,
        stem_width=64, stem_kernel=7, stem_stride=2, cifar_stem=False,
        maxpool_ceil_mode=False, maxpool_padding=1,
        stride_in_1x1=False, norm="batch", conv_bias=None, bn_eps=1e-5, expansion=None,
        zero_init_residual=False,
    )

    @classmethod
    def make_config(cls, **overrides) -> dict:
        """The full, checked configuration (defaults filled in) for these overrides."""
        unknown = set(overrides) - set(cls.DEFAULTS)
        if unknown:
            raise ValueError(f"unknown ResNet option(s) {sorted(unknown)}; options: {', '.join(cls.DEFAULTS)}")
        config = {**cls.DEFAULTS, **overrides}
        if config["block"] not in BLOCKS:
            raise ValueError(f"block must be 'basic' or 'bottleneck', got {config['block']!r}")
        if config["norm"] not in ("batch", "folded"):
            raise ValueError(f"norm must be 'batch' or 'folded' (BN folded into conv bias), got {config['norm']!r}")
        config["layers"], config["widths"] = tuple(config["layers"]), tuple(config["widths"])
        if len(config["layers"]) != len(config["widths"]) or not config["layers"]:
            raise ValueError(f"layers {config['layers']} and widths {config['widths']} need the same, non-zero length")
        if config["conv_bias"] is None:
            config["conv_bias"] = config["norm"] == "folded"
        if config["norm"] == "folded" and not config["conv_bias"]:
            raise ValueError("norm='folded' needs conv_bias=True: the folded BatchNorm lives in the conv bias")
        if config["expansion"] is None:
            config["expansion"] = BLOCKS[config["block"]].expansion
        return config

    def __init__(self, **options):
        super().__init__()
        config = self.make_config(**options)
        self.config = config
        Block = BLOCKS[config["block"]]
        expansion = config["expansion"] if config["block"] == "bottleneck" else 1

        if config["cifar_stem"]:
            self.conv1 = _conv(config["in_channels"], config["stem_width"], 3, 1, config)
        else:
            k = config["stem_kernel"]
            self.conv1 = _conv(config["in_channels"], config["stem_width"], k, config["stem_stride"], config)
        self.bn1 = _norm_layer(config["stem_width"], config)
        self.relu = nn.ReLU()
        if config["cifar_stem"]:
            self.maxpool = nn.Identity()
        else:
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=config["maxpool_padding"], ceil_mode=config["maxpool_ceil_mode"])

        channels = config["stem_width"]
        for index, (blocks, width) in enumerate(zip(config["layers"], config["widths"])):
            stride = 1 if index == 0 else 2
            layer = nn.Sequential()
            for b in range(blocks):
                downsample = None
                out_channels = width * expansion
                if b == 0 and (stride != 1 or channels != out_channels):
                    downsample = nn.Sequential(_conv(channels, out_channels, 1, stride, config, padding=0))
                    if config["norm"] == "batch":
                        downsample.append(nn.BatchNorm2d(out_channels, eps=config["bn_eps"]))
                layer.append(Block(channels, width, stride if b == 0 else 1, downsample, config))
                channels = out_channels
            setattr(self, f"layer{index + 1}", layer)
        self.num_stages = len(config["layers"])
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten(1)
        self.num_classes = config["num_classes"]
        self.fc = nn.Linear(channels, config["num_classes"]) if config["num_classes"] else nn.Identity()
        self.preprocessing = TORCHVISION_IMAGENET
        self._init_weights()

    def _init_weights(self):
        """torchvision's init (see ImageModel._init_weights), and with ``zero_init_residual`` the last
        BatchNorm γ of every residual branch 0, so each block starts as the identity."""
        super()._init_weights()
        if self.config["zero_init_residual"] and self.config["norm"] == "batch":
            for module in self.modules():
                last = getattr(module, "bn3", None) if isinstance(module, Bottleneck) else getattr(module, "bn2", None)
                if isinstance(module, (Bottleneck, BasicBlock)) and isinstance(last, nn.BatchNorm2d):
                    nn.init.zeros_(last.weight)

    def stages(self) -> list:
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def feature_steps(self):
        steps = [("conv1", self.conv1), ("bn1", self.bn1), ("relu", self.relu), ("maxpool", self.maxpool)]
        steps += [(f"layer{i + 1}", stage) for i, stage in enumerate(self.stages())]
        steps += [("avgpool", self.avgpool), ("flatten", self.flatten), ("fc", self.fc)]
        return steps

    def forward_features(self, x):
        """The pooled backbone output: (N, num_features) = flatten(avgpool(layer4(...stem(x))))."""
        x = self.maxpool(_norm_relu(self.bn1, self.relu, self.conv1(x)))
        for stage in self.stages():
            x = stage(x)
        return self.flatten(self.avgpool(x))

    def forward(self, x):
        return self.fc(self.forward_features(x))

    def extra_repr(self) -> str:
        c = self.config
        return f"arch={self.arch}, block={c['block']}, layers={c['layers']}, widths={c['widths']}, norm={c['norm']}"


def _named(model: ResNet, arch: str, preprocessing=TORCHVISION_IMAGENET, class_names=None) -> ResNet:
    model.arch, model.preprocessing, model.class_names = arch, preprocessing, class_names
    return model


def resnet18(num_classes=1000, **options) -> ResNet:
    """ResNet-18: basic blocks (2, 2, 2, 2), torchvision layout (11.7 M parameters)."""
    return _named(ResNet(block="basic", layers=(2, 2, 2, 2), num_classes=num_classes, **options), "resnet18")


def resnet34(num_classes=1000, **options) -> ResNet:
    """ResNet-34: basic blocks (3, 4, 6, 3)."""
    return _named(ResNet(block="basic", layers=(3, 4, 6, 3), num_classes=num_classes, **options), "resnet34")


def resnet50(num_classes=1000, **options) -> ResNet:
    """ResNet-50: bottlenecks (3, 4, 6, 3), stride in the 3×3 (torchvision v1.5; 25.6 M parameters)."""
    return _named(ResNet(block="bottleneck", layers=(3, 4, 6, 3), num_classes=num_classes, **options), "resnet50")


def resnet101(num_classes=1000, **options) -> ResNet:
    """ResNet-101: bottlenecks (3, 4, 23, 3)."""
    return _named(ResNet(block="bottleneck", layers=(3, 4, 23, 3), num_classes=num_classes, **options), "resnet101")


def resnet152(num_classes=1000, **options) -> ResNet:
    """ResNet-152: bottlenecks (3, 8, 36, 3)."""
    return _named(ResNet(block="bottleneck", layers=(3, 8, 36, 3), num_classes=num_classes, **options), "resnet152")


RESNET50_1BY2 = dict(
    block="bottleneck", layers=(3, 4, 6, 3), widths=(32, 64, 128, 256), stem_width=64,
    stride_in_1x1=True, maxpool_ceil_mode=True, maxpool_padding=0, norm="folded",
)
OPENNSFW_CLASSES = ("sfw", "nsfw")


def resnet50_1by2(num_classes=2, **options) -> ResNet:
    """Half-width Caffe-style ResNet-50 (Yahoo open_nsfw's backbone, ImageNet-pretrained then fine-tuned).

    Stem 64; bottleneck widths 32/64/128/256, outputs 128/256/512/1024; stride in the first 1×1;
    3×3/2 max-pool with ceil_mode; BatchNorm folded into the convs (conv with bias); 2-class head
    (sfw, nsfw).  Input 224×224 BGR in [0, 255] minus the means 104/117/123.
    """
    model = ResNet(**{**RESNET50_1BY2, "num_classes": num_classes, **options})
    return _named(model, "resnet50_1by2", CAFFE_OPENNSFW, list(OPENNSFW_CLASSES) if num_classes == 2 else None)


KERAS_RESNET50 = dict(
    block="bottleneck", layers=(3, 4, 6, 3), stride_in_1x1=True, conv_bias=True, bn_eps=1.001e-5,
)


def keras_resnet50(num_classes=1000, **options) -> ResNet:
    """``keras.applications.ResNet50``'s layout: stride in the first 1×1, convs with bias *and* BatchNorm (ε = 1.001e-5).

    Keras pads the stem max-pool with zeros (after a ReLU, the same as −∞ padding).
    """
    model = ResNet(**{**KERAS_RESNET50, "num_classes": num_classes, **options})
    return _named(model, "keras_resnet50", KERAS_CAFFE)


def fold_batchnorm(model: ResNet) -> ResNet:
    """A copy of ``model``'s weights with every BatchNorm folded into the conv before it (eval-mode maths).

    BN(conv(x)) = γ (w*x + b − μ) / √(σ² + ε) + β  =  w'*x + b',
    w' = w · γ/√(σ²+ε),  b' = (b − μ) · γ/√(σ²+ε) + β.
    Returns a new ResNet with ``norm="folded"`` that computes what ``model`` computes in eval mode.
    """
    import numpy

    if model.config["norm"] == "folded":
        raise ValueError("the model's BatchNorm is already folded")
    folded = ResNet(**{**model.config, "norm": "folded", "conv_bias": True})
    folded.arch, folded.preprocessing, folded.class_names = None, model.preprocessing, model.class_names
    source = model.state_dict()
    state = {}
    modules = dict(model.named_modules())
    for name, module in modules.items():
        if not isinstance(module, nn.Conv2d):
            continue
        bn_name = name[:-1] + "1" if name.endswith("downsample.0") else name.replace("conv", "bn")
        bn = modules.get(bn_name)
        w = source[f"{name}.weight"].astype(numpy.float64)
        b = source[f"{name}.bias"].astype(numpy.float64) if f"{name}.bias" in source else numpy.zeros(w.shape[0])
        if isinstance(bn, nn.BatchNorm2d):
            scale = source[f"{bn_name}.weight"] / numpy.sqrt(source[f"{bn_name}.running_var"].astype(numpy.float64) + bn.eps)
            w = w * scale[:, None, None, None]
            b = (b - source[f"{bn_name}.running_mean"]) * scale + source[f"{bn_name}.bias"]
        state[f"{name}.weight"], state[f"{name}.bias"] = w.astype(numpy.float32), b.astype(numpy.float32)
    for key in ("fc.weight", "fc.bias"):
        if key in source:
            state[key] = source[key]
    folded.load_state_dict(state)
    return folded
