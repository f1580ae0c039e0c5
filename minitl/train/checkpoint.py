"""Checkpoints: a nested structure of arrays and plain values in one ``.npz``, written atomically.

The structure (dicts, lists, numbers, strings, None, NumPy arrays — a model's state_dict, an
optimizer's state_dict, the RNG state, the history) is split into

    arrays    stored as ``a0``, ``a1``, … entries of the archive
    the rest  JSON in a 1-element string array ``__tree__``, with {"__array__": i} where array i was

so loading needs no pickle (``numpy.load(..., allow_pickle=False)``).  Writing goes to a
temporary file in the same folder, flushed and fsync'ed, then ``os.replace``-d over the old
checkpoint: a run killed mid-write leaves the previous checkpoint intact.
"""
from __future__ import annotations

import json
import os

import numpy

from ..fileio import atomic_write

FORMAT = "minitl-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not belong to this run."""


def _pack(value, arrays: list):
    if isinstance(value, numpy.ndarray):
        arrays.append(value)
        return {"__array__": len(arrays) - 1}
    if hasattr(value, "numpy") and hasattr(value, "shape"):  # a Tensor
        return _pack(numpy.asarray(value.numpy()), arrays)
    if isinstance(value, dict):
        packed = {}
        for key, item in value.items():
            packed[str(key)] = _pack(item, arrays)
        if any(not isinstance(k, str) for k in value):
            return {"__intkeys__": packed}
        return packed
    if isinstance(value, (list, tuple)):
        return {"__tuple__": [_pack(v, arrays) for v in value]} if isinstance(value, tuple) else \
            [_pack(v, arrays) for v in value]
    if isinstance(value, numpy.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a checkpoint")


def _unpack(value, arrays):
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            return arrays[value["__array__"]]
        if set(value) == {"__intkeys__"}:
            return {int(k): _unpack(v, arrays) for k, v in value["__intkeys__"].items()}
        if set(value) == {"__tuple__"}:
            return tuple(_unpack(v, arrays) for v in value["__tuple__"])
        return {k: _unpack(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_unpack(v, arrays) for v in value]
    return value


def save_checkpoint(path, tree: dict) -> str:
    """Write ``tree`` to ``path`` atomically (see the module docstring)."""
    arrays: list = []
    packed = _pack({"format": FORMAT, **tree}, arrays)
    entries = {f"a{i}": array for i, array in enumerate(arrays)}
    entries["__tree__"] = numpy.array([json.dumps(packed)])
    return atomic_write(path, lambda handle: numpy.savez(handle, **entries))


def load_checkpoint(path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (never unpickles)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with numpy.load(path, allow_pickle=False) as archive:
            tree = json.loads(str(archive["__tree__"][0]))
            count = sum(1 for name in archive.files if name.startswith("a"))
            arrays = [archive[f"a{i}"] for i in range(count)]
    except (ValueError, OSError, KeyError, EOFError) as error:
        raise CheckpointError(f"{path}: not a readable minitl checkpoint ({type(error).__name__}: {error})") from error
    tree = _unpack(tree, arrays)
    if tree.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {tree.get('format')!r} (expected {FORMAT})")
    return tree
