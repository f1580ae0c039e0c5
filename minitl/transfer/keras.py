"""Keras ``.h5`` weight files (via h5py, an optional extra), read into ``layer/weight -> array``.

Two layouts exist:

* legacy HDF5 (Keras 2 / tf.keras ``save_weights('x.h5')``, the published ImageNet weight files, and
  Keras 3 ``model.save('x.h5')`` under ``model_weights/``): the root (or ``model_weights``) has an
  attribute ``layer_names``; each layer group has ``weight_names`` such as ``conv1_conv/kernel:0``;
* Keras 3 ``.weights.h5``: ``layers/<object name>/vars/<i>``, with the layer's name in the
  ``vars`` group's ``name`` attribute and the variables in creation order.

Only what a weight file needs is followed: plain links inside the file, numeric datasets stored
in it.  External links, soft links, external raw storage and virtual datasets (all of which
can make HDF5 read *other* files on the machine) are refused, and each dataset's size is
checked against the file's budget before it is read.  What libhdf5 allocates while parsing
(attributes, variable-length strings, chunk indexes) is bounded by reading in a child process
with limited address space and CPU time (:mod:`minitl.transfer.isolate`).

Arrays stay in Keras's layouts here (conv kernels HWIO, dense kernels (in, out)); the name map
(:mod:`minitl.transfer.names`) converts them.
"""
from __future__ import annotations

import os
from collections import OrderedDict

import numpy

from .errors import CorruptFileError, UnsafeFileError, WeightsError, brief, reading
from .isolate import read_in_child
from .limits import Budget, count_of

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
    """(``layer/weight`` -> array, metadata) from a Keras ``.h5`` file, parsed in a bounded child process.

    libhdf5 allocates what a damaged file claims before it notices the damage (a variable-length
    string claiming 3 GB is allocated and zero-filled first), so the file is parsed in a forked
    child whose address space and CPU time are limited (:mod:`minitl.transfer.isolate`).
    """
    _h5py()  # "needs h5py" is said here; the child inherits the imported module
    return read_in_child(_read, path, "HDF5")


def _read(path) -> tuple[OrderedDict, dict]:
    h5py = _h5py()
    path = os.fspath(path)
    with reading(path, "HDF5"):
        access = _Access(h5py, Budget(path))
        with h5py.File(path, "r") as handle:
            root = access.child(handle, "model_weights") if _has(handle, "model_weights") else handle
            if "layer_names" in root.attrs:
                state = _read_legacy(root, access)
            elif _has(root, "layers") and isinstance(access.child(root, "layers"), h5py.Group):
                state = _read_keras3(access.child(root, "layers"), access)
            else:
                raise WeightsError("an HDF5 file without Keras weights (no layer_names, no layers/ group)")
            metadata = {"keras_version": _text(handle.attrs.get("keras_version", b""))}
        if not state:
            raise WeightsError("the Keras file holds no weights")
    return state, metadata


def _has(group, name) -> bool:
    return group.get(name, getlink=True) is not None


class _Access:
    """Walks an HDF5 file only through links that stay inside it, and reads only plain numeric datasets.

    Refused (:class:`UnsafeFileError`): external links (another file), soft links (a path that
    might lead through one, and never needed by Keras), datasets stored in external raw files or
    assembled from other files (virtual), and any non-numeric dtype.  Each dataset's size is taken
    from the file's budget before it is read.
    """

    def __init__(self, h5py, budget):
        self.h5py, self.budget = h5py, budget

    def child(self, group, path):
        node = group
        for part in str(path).split("/"):
            if not part:
                continue
            if not isinstance(node, self.h5py.Group):
                raise CorruptFileError(f"{brief(path)}: {brief(part)} is inside a dataset, not a group")
            link = node.get(part, getlink=True)
            if link is None:
                raise CorruptFileError(f"{brief(path)} is missing from the file")
            if isinstance(link, self.h5py.ExternalLink):
                raise UnsafeFileError(
                    f"{brief(path)} is an external link to {brief(link.filename)}: minitl reads nothing outside the file"
                )
            if not isinstance(link, self.h5py.HardLink):
                raise UnsafeFileError(f"{brief(path)} is a {type(link).__name__}: only plain (hard) links are followed")
            node = node[part]
        return node

    def array(self, group, path) -> numpy.ndarray:
        dataset = self.child(group, path)
        if not isinstance(dataset, self.h5py.Dataset):
            raise CorruptFileError(f"{brief(path)} is a group, not a weight array")
        if dataset.external:
            raise UnsafeFileError(f"{brief(path)} keeps its data in external files: minitl reads nothing outside the file")
        if dataset.is_virtual:
            raise UnsafeFileError(f"{brief(path)} is a virtual dataset (data mapped from other files): refused")
        dtype = dataset.dtype
        if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
            raise WeightsError(f"{brief(path)} has dtype {dtype}, not a numeric weight array")
        shape = dataset.shape
        if shape is None:
            raise CorruptFileError(f"{brief(path)} is an empty (null) dataset")
        nbytes = count_of(shape) * dtype.itemsize
        if dataset.id.get_create_plist().get_nfilters() == 0 and nbytes > self.budget.file_size:
            raise CorruptFileError(
                f"{brief(path)} claims {nbytes:,} bytes of uncompressed data in a {self.budget.file_size:,}-byte file"
            )
        self.budget.take(nbytes, f"dataset {brief(path)}")
        array = numpy.empty(shape, dtype=dtype.newbyteorder("="))
        if array.size:
            dataset.read_direct(array)
        return array


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    raise CorruptFileError(f"expected a name, found {brief(value)}")


def _names(attrs, key) -> list:
    """A list-of-names attribute (``layer_names``, ``weight_names``): strings only."""
    names = attrs.get(key, [])
    if isinstance(names, (str, bytes)) or getattr(names, "ndim", 1) != 1:
        raise CorruptFileError(f"attribute {key} is not a list of names")
    return [_text(n.item() if isinstance(n, numpy.generic) else n) for n in names]


def _read_legacy(root, access) -> OrderedDict:
    state = OrderedDict()
    for layer in _names(root.attrs, "layer_names"):
        group = access.child(root, layer)
        for weight in _names(group.attrs, "weight_names"):
            short = weight.split("/")[-1].split(":")[0]
            state[f"{layer}/{short}"] = access.array(group, weight)
    return state


def _read_keras3(layers, access) -> OrderedDict:
    h5py = access.h5py
    found = []
    for key in layers:
        group = access.child(layers, key)
        vars_group = access.child(group, "vars") if isinstance(group, h5py.Group) and _has(group, "vars") else None
        if vars_group is None or not isinstance(vars_group, h5py.Group) or not len(vars_group):
            continue
        name = _text(vars_group.attrs.get("name", key))
        kind = "bn" if name.endswith("_bn") else "conv" if name.endswith("_conv") else "dense"
        names = VAR_NAMES[kind]
        count = len(vars_group)
        if count > len(names):
            raise WeightsError(f"layer {brief(name)} has {count} variables, a {kind} layer has at most {len(names)}")
        found.append((name, [(names[i], access.array(vars_group, str(i))) for i in range(count)]))
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
