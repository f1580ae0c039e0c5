"""Checkpoints: a nested structure of arrays and plain values in one ``.npz``, written atomically.

The structure (dicts, lists, numbers, strings, None, NumPy arrays — a model's state_dict, an
optimizer's state_dict, the RNG state, the history) is split into

    arrays    stored as ``a0``, ``a1``, … entries of the archive
    the rest  JSON in a 1-element string array ``__tree__``, with {"__array__": i} where array i was

so loading needs no pickle (read by :func:`minitl.transfer.npz.read_arrays`: headers checked,
sizes budgeted, CRCs verified).  Writing goes to a temporary file in the same folder, flushed
and fsync'ed, then ``os.replace``-d over the old checkpoint: a run killed mid-write leaves the
previous checkpoint intact.  The checkpoint it replaces is kept as ``<name>.prev.npz``, so when
the newest one is damaged anyway (a truncated copy, a flipped bit — the zip CRC catches it),
:func:`load_latest_checkpoint` falls back to the one before, and says so.
"""
from __future__ import annotations

import json
import os

import numpy

from ..fileio import atomic_write
from ..transfer.errors import CorruptFileError, WeightsError, one_line, reading
from ..transfer.npz import read_arrays

FORMAT = "minitl-checkpoint-1"


class CheckpointError(CorruptFileError):
    """A checkpoint that cannot be read or does not belong to this run (a ``ValueError``)."""


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
            index = value["__array__"]
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(arrays):
                raise CheckpointError(f"array reference {index!r} out of range (the file holds {len(arrays)})")
            return arrays[index]
        if set(value) == {"__intkeys__"}:
            return {int(k): _unpack(v, arrays) for k, v in value["__intkeys__"].items()}
        if set(value) == {"__tuple__"}:
            return tuple(_unpack(v, arrays) for v in value["__tuple__"])
        return {k: _unpack(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_unpack(v, arrays) for v in value]
    return value


def previous_path(path) -> str:
    """``checkpoint.npz`` -> ``checkpoint.prev.npz``: where the checkpoint before the newest is kept."""
    root, ext = os.path.splitext(os.fspath(path))
    return f"{root}.prev{ext or '.npz'}"


def save_checkpoint(path, tree: dict, keep_previous: bool = True) -> str:
    """Write ``tree`` to ``path`` atomically (see the module docstring); the checkpoint it replaces
    becomes ``<name>.prev.npz`` (``keep_previous``)."""
    path = os.fspath(path)
    arrays: list = []
    packed = _pack({"format": FORMAT, **tree}, arrays)
    entries = {f"a{i}": array for i, array in enumerate(arrays)}
    entries["__tree__"] = numpy.array([json.dumps(packed)])
    if keep_previous and os.path.isfile(path):
        os.replace(path, previous_path(path))  # a kill from here on leaves .prev, which resume falls back to
    return atomic_write(path, lambda handle: numpy.savez(handle, **entries))


def load_checkpoint(path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (never unpickles); any damage is a
    :class:`CheckpointError` naming the file, in one line."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with reading(path, "checkpoint"):
            entries = dict(read_arrays(path, text_keys=("__tree__",)))
            text = entries.pop("__tree__", None)
            if text is None or text.dtype.kind != "U" or text.size != 1:
                raise CorruptFileError("no __tree__ entry: not a minitl checkpoint")
            names = [f"a{i}" for i in range(len(entries))]
            if sorted(entries) != sorted(names):
                raise CorruptFileError(f"array entries {sorted(entries)[:5]} are not a0 ... a{len(entries) - 1}")
            tree = _unpack(json.loads(str(text.reshape(-1)[0])), [entries[n] for n in names])
            if not isinstance(tree, dict) or tree.get("format") != FORMAT:
                found = tree.get("format") if isinstance(tree, dict) else None
                raise CorruptFileError(f"unknown checkpoint format {found!r} (expected {FORMAT})")
    except WeightsError as error:
        problem = str(error).removeprefix(f"{path}: ")
        raise CheckpointError(one_line(f"{path}: not a readable minitl checkpoint ({problem})")) from None
    return tree


def load_latest_checkpoint(path, log=print) -> tuple[dict, str]:
    """(tree, the file it came from): ``path``, or — when that is missing or damaged — the previous
    checkpoint ``<name>.prev.npz``, with a message through ``log``.  Both unusable: CheckpointError."""
    path = os.fspath(path)
    previous = previous_path(path)
    try:
        return load_checkpoint(path), path
    except (CheckpointError, FileNotFoundError) as error:
        if not os.path.isfile(previous):
            raise
        problem = error
    try:
        tree = load_checkpoint(previous)
    except CheckpointError as error:
        raise CheckpointError(f"no usable checkpoint: {problem}; and {error}") from None
    log(f"{path} is unusable ({problem}); falling back to the previous checkpoint {previous} (one epoch earlier)")
    return tree, previous
