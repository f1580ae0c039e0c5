"""Keras ``.h5`` weight files (via h5py, an optional extra), read into ``layer/weight -> array``.

Two layouts exist:

* legacy HDF5 (Keras 2 / tf.keras ``save_weights('x.h5')``, the published ImageNet weight files, and
  Keras 3 ``model.save('x.h5')`` under ``model_weights/``): the root (or ``model_weights``) has an
  attribute ``layer_names``; each layer group has ``weight_names`` such as ``conv1_conv/kernel:0``;
* Keras 3 ``.weights.h5``: ``layers/<object name>/vars/<i>``, with the layer's name in the
  ``vars`` group's ``name`` attribute and the variables in creation order.

Arrays stay in Keras's layouts here (conv kernels HWIO, dense kernels (in, out)); the name map
(:mod:`minitl.transfer.names`) converts them.
"""
from __future__ import annotations

import os
from collections import OrderedDict

import numpy

from .errors import CorruptFileError, WeightsError

# variable order of the Keras 3 format, by layer kind
VAR_NAMES = {
    "conv": ["kernel", "bias"],
    "bn": ["gamma", "beta", "moving_mean", "moving_variance"],
    "dense": ["kernel", "bias"],
}


def _h5py():
    try:
        import h5py
    except ImportError:
        raise WeightsError("reading Keras .h5 files needs h5py: pip install 'minitl[weights]'") from None
    return h5py


def read(path) -> tuple[OrderedDict, dict]:
    """(``layer/weight`` -> array, metadata) from a Keras ``.h5`` file."""
    h5py = _h5py()
    path = os.fspath(path)
    try:
        with h5py.File(path, "r") as handle:
            root = handle["model_weights"] if "model_weights" in handle else handle
            if "layer_names" in root.attrs:
                state = _read_legacy(root)
            elif "layers" in root and isinstance(root["layers"], h5py.Group):
                state = _read_keras3(root["layers"], h5py)
            else:
                raise WeightsError(f"{path}: an HDF5 file without Keras weights (no layer_names, no layers/ group)")
            metadata = {"keras_version": _text(handle.attrs.get("keras_version", b""))}
    except WeightsError as error:
        if str(error).startswith(path):
            raise
        raise type(error)(f"{path}: {error}") from None
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise CorruptFileError(f"{path}: truncated or corrupted HDF5 file ({type(error).__name__}: {error})") from None
    if not state:
        raise WeightsError(f"{path}: the Keras file holds no weights")
    return state, metadata


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _read_legacy(root) -> OrderedDict:
    state = OrderedDict()
    for layer in (_text(n) for n in root.attrs["layer_names"]):
        group = root[layer]
        for weight in (_text(n) for n in group.attrs.get("weight_names", [])):
            short = weight.split("/")[-1].split(":")[0]
            state[f"{layer}/{short}"] = numpy.array(group[weight], copy=True)
    return state


def _read_keras3(layers, h5py) -> OrderedDict:
    found = []
    for key in layers:
        group = layers[key]
        vars_group = group.get("vars") if isinstance(group, h5py.Group) else None
        if vars_group is None or not len(vars_group):
            continue
        name = _text(vars_group.attrs.get("name", key))
        kind = "bn" if name.endswith("_bn") else "conv" if name.endswith("_conv") else "dense"
        names = VAR_NAMES[kind]
        count = len(vars_group)
        if count > len(names):
            raise WeightsError(f"layer {name!r} has {count} variables, a {kind} layer has at most {len(names)}")
        found.append((name, [(names[i], numpy.array(vars_group[str(i)], copy=True)) for i in range(count)]))
    state = OrderedDict()
    for name, variables in sorted(found, key=lambda item: _layer_order(item[0])):
        for short, array in variables:
            state[f"{name}/{short}"] = array
    return state


def _layer_order(name):
    """conv1 < conv2_block1_0 < conv2_block1_1 < ... < predictions (the network's own order)."""
    import re

    match = re.fullmatch(r"conv(\d+)_block(\d+)_(\d+)_(conv|bn)", name)
    if match:
        return (1, int(match[1]), int(match[2]), int(match[3]), match[4] == "bn", name)
    if name.startswith("conv1"):
        return (0, 0, 0, 0, name.endswith("_bn"), name)
    return (2, 0, 0, 0, False, name)
