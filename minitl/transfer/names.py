"""Name maps: other frameworks' weight names -> minitl's (= torchvision's), with layout conversions.

torchvision / PyTorch: identical names; ``module.`` (DataParallel) is stripped.  BatchNorm's step
counter ``num_batches_tracked`` is kept; files without it (ONNX, Keras) leave the model's own.

Keras ResNet50 (``keras.applications``):
    conv1_conv                -> conv1            kernel HWIO -> OIHW, bias
    conv1_bn                  -> bn1              gamma, beta, moving_mean, moving_variance
                                                  -> weight, bias, running_mean, running_var
    conv{s}_block{b}_{i}_conv -> layer{s-1}.{b-1}.conv{i}        (i = 1, 2, 3)
    conv{s}_block{b}_0_conv   -> layer{s-1}.{b-1}.downsample.0   (the projection shortcut)
    ..._{i}_bn / ..._0_bn     -> bn{i} / downsample.1
    predictions               -> fc               dense kernel (in, out) transposed -> (out, in)
"""
from __future__ import annotations

import re
from collections import OrderedDict

import numpy

from .errors import WeightsError

BN_FIELDS = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}


def torch_names(state) -> tuple[OrderedDict, list]:
    """A PyTorch state_dict, cleaned: (state, rows). Rows: (source, target or None, shape, shape, note)."""
    out, rows = OrderedDict(), []
    prefix = "module." if state and all(name.startswith("module.") for name in state) else ""
    for name, array in state.items():
        target = name[len(prefix):]
        out[target] = array
        rows.append((name, target, tuple(array.shape), tuple(array.shape), "strip 'module.'" if prefix else ""))
    return out, rows


def _keras_target(layer: str) -> str | None:
    if layer == "conv1_conv":
        return "conv1"
    if layer == "conv1_bn":
        return "bn1"
    if layer in ("predictions", "fc1000", "fc"):
        return "fc"
    match = re.fullmatch(r"conv(\d+)_block(\d+)_(\d+)_(conv|bn)", layer)
    if not match:
        return None
    stage, block, index, kind = int(match[1]) - 1, int(match[2]) - 1, int(match[3]), match[4]
    prefix = f"layer{stage}.{block}"
    if index == 0:
        return f"{prefix}.downsample.{0 if kind == 'conv' else 1}"
    return f"{prefix}.{kind}{index}"


def keras_resnet_names(keras_state) -> tuple[OrderedDict, list]:
    """Keras ResNet50 ``layer/weight`` arrays -> minitl names and layouts: (state, rows)."""
    out, rows = OrderedDict(), []
    for key, array in keras_state.items():
        layer, _, weight = key.rpartition("/")
        target = _keras_target(layer)
        if target is None:
            rows.append((key, None, tuple(array.shape), (), "unused: no minitl counterpart"))
            continue
        note = ""
        if weight == "kernel" and array.ndim == 4:
            value, note = array.transpose(3, 2, 0, 1), "conv kernel HWIO -> OIHW"
            name = f"{target}.weight"
        elif weight == "kernel" and array.ndim == 2:
            value, note = array.T, "dense kernel (in, out) transposed -> (out, in)"
            name = f"{target}.weight"
        elif weight == "bias":
            value, name = array, f"{target}.bias"
        elif weight in BN_FIELDS:
            value, name = array, f"{target}.{BN_FIELDS[weight]}"
            note = f"{weight} -> {BN_FIELDS[weight]}"
        else:
            rows.append((key, None, tuple(array.shape), (), f"unused: unknown Keras weight {weight!r}"))
            continue
        if name in out:
            raise WeightsError(f"two Keras weights map to {name!r} (second: {key!r})")
        out[name] = numpy.ascontiguousarray(value)
        rows.append((key, name, tuple(array.shape), tuple(value.shape), note))
    if not out:
        raise WeightsError("no Keras ResNet layer names (conv1_conv, conv2_block1_1_conv, ..., predictions) found")
    return out, rows


# EfficientNet-Lite (EfficientNet-PyTorch layout): leading underscores dropped, the flat block list
# grouped into stages.  _blocks.{i}.X -> layer{s}.{j}.X, with block i the j-th of stage s.
EFFICIENTNET_LITE0_REPEATS = (1, 2, 2, 3, 3, 4, 1)


def is_efficientnet_state(state) -> bool:
    return "_conv_stem.weight" in state and any(name.startswith("_blocks.") for name in state)


def efficientnet_names(state, repeats=EFFICIENTNET_LITE0_REPEATS) -> tuple[OrderedDict, list]:
    """EfficientNet-PyTorch names -> minitl's: ``_conv_stem`` -> ``conv_stem``, ``_blocks.5._bn1`` ->
    ``layer3.1.bn1`` (block 5 is the second of stage 3), ``_fc`` -> ``fc``."""
    stage_of = [(s, j) for s, count in enumerate(repeats, start=1) for j in range(count)]
    out, rows = OrderedDict(), []
    for name, array in state.items():
        parts = name.split(".")
        if parts[0] == "_blocks":
            index = int(parts[1]) if parts[1].isdigit() else -1
            if not 0 <= index < len(stage_of):
                raise WeightsError(f"{name}: block {parts[1]} beyond the {len(stage_of)} blocks of EfficientNet-Lite0")
            stage, j = stage_of[index]
            target = ".".join([f"layer{stage}", str(j)] + [p.lstrip("_") for p in parts[2:]])
        else:
            target = ".".join(p.lstrip("_") for p in parts)
        out[target] = array
        rows.append((name, target, tuple(array.shape), tuple(array.shape), "EfficientNet-PyTorch names"))
    return out, rows
