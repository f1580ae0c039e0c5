"""``.safetensors``: an 8-byte little-endian header length, a JSON header, then raw tensor bytes.

    [u64 N][N bytes JSON: {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}][data]

The format holds no code by design.  This reader applies the format's own rules before
touching the data, so a damaged or hostile header is an error, never a shifted or
out-of-bounds read:

* the header is at least 2 bytes, at most 100 MiB and inside the file, UTF-8 JSON starting
  with ``{`` (trailing spaces allowed), with no duplicate keys;
* each entry has exactly ``dtype``, ``shape`` (non-negative integers) and ``data_offsets``
  (two integers, ``begin <= end``), and ``end - begin = prod(shape) * itemsize`` (exact
  integers, so a shape product cannot overflow);
* taken in order, the entries cover the data section exactly: the first begins at 0, each
  begins where the previous ended, the last ends at the end of the file (no holes, no
  overlaps, no trailing bytes);
* ``__metadata__``, if present, maps strings to strings.

bfloat16 is widened to float32.  Why this reader and not the ``safetensors`` package (in the
``weights`` extra): see SECURITY.md — in short, the same rules in ~100 lines of NumPy work
without the extra and read BF16 into NumPy (the package's NumPy loader cannot), and the
package is used in the tests as an independent reference for what is accepted.
"""
from __future__ import annotations

import json
import os
import struct
from collections import OrderedDict

import numpy

from .errors import CorruptFileError, WeightsError, brief, reading
from .limits import Budget, count_of

DTYPES = {
    "F64": numpy.float64, "F32": numpy.float32, "F16": numpy.float16,
    "I64": numpy.int64, "I32": numpy.int32, "I16": numpy.int16, "I8": numpy.int8,
    "U64": numpy.uint64, "U32": numpy.uint32, "U16": numpy.uint16, "U8": numpy.uint8, "BOOL": numpy.bool_,
    "BF16": "bfloat16",
}
MAX_HEADER = 100 * 1024 * 1024
ENTRY_KEYS = {"dtype", "shape", "data_offsets"}


def read(path) -> tuple[OrderedDict, dict]:
    """(name -> array, the header's ``__metadata__`` string map) from a ``.safetensors`` file."""
    path = os.fspath(path)
    with reading(path, ".safetensors"):
        return _read(path)


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise CorruptFileError(f".safetensors header has the key {brief(key)} twice")
        out[key] = value
    return out


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read(path):
    with open(path, "rb") as handle:
        blob = handle.read()
    if len(blob) < 8:
        raise CorruptFileError(f"truncated .safetensors file ({len(blob)} bytes, no header)")
    (header_size,) = struct.unpack("<Q", blob[:8])
    if not 2 <= header_size <= min(MAX_HEADER, len(blob) - 8):
        raise CorruptFileError(
            f"not a .safetensors file or truncated (header claims {header_size} bytes, file has {len(blob) - 8})"
        )
    text = blob[8 : 8 + header_size]
    if not text.startswith(b"{"):
        raise CorruptFileError(".safetensors header is not valid JSON (it must start with '{')")
    try:
        header = json.loads(text.decode("utf-8").rstrip(" "), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptFileError(f".safetensors header is not valid JSON ({error})") from None
    if not isinstance(header, dict):
        raise CorruptFileError(".safetensors header must be a JSON object")
    data = memoryview(blob)[8 + header_size :]
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CorruptFileError("__metadata__ must be a JSON object of strings")
    entries = sorted((_entry(name, info) for name, info in header.items()), key=lambda e: (e[0], e[4]))
    position = 0
    for begin, name, dtype_name, shape, end in entries:
        if begin != position:
            what = "overlaps the previous tensor" if begin < position else f"leaves a hole of {begin - position} bytes"
            raise CorruptFileError(f"tensor {brief(name)} starts at byte {begin}: it {what} (truncated or corrupted)")
        position = end
    if position != len(data):
        raise CorruptFileError(
            f"the tensors cover {position} bytes of the {len(data)}-byte data section: "
            + ("truncated" if position > len(data) else "trailing bytes after the last tensor")
        )
    budget = Budget(path, len(blob))
    state = OrderedDict()
    for begin, name, dtype_name, shape, end in entries:  # file order
        raw = data[begin:end]
        budget.take(2 * (end - begin) if dtype_name == "BF16" else end - begin, f"tensor {brief(name)}")
        if dtype_name == "BF16":  # the top 16 bits of a float32
            array = (numpy.frombuffer(raw, dtype="<u2").astype(numpy.uint32) << 16).view(numpy.float32)
        else:
            array = numpy.frombuffer(raw, dtype=numpy.dtype(DTYPES[dtype_name]).newbyteorder("<"))
        state[name] = array.reshape(shape).astype(array.dtype.newbyteorder("="), copy=True)
    return state, metadata


def _entry(name, info):
    """(begin, name, dtype, shape, end) of one header entry, every field checked."""
    if not isinstance(info, dict) or set(info) != ENTRY_KEYS:
        raise CorruptFileError(
            f"bad header entry for {brief(name)}: needs exactly the keys dtype, shape, data_offsets"
        )
    dtype_name, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(shape, list) or not all(_is_int(n) and n >= 0 for n in shape):
        raise CorruptFileError(f"bad header entry for {brief(name)}: shape must be a list of non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)):
        raise CorruptFileError(f"bad header entry for {brief(name)}: data_offsets must be two integers")
    if not isinstance(dtype_name, str) or dtype_name not in DTYPES:
        raise WeightsError(f"tensor {brief(name)} has dtype {brief(dtype_name)}, which minitl does not read")
    begin, end = offsets
    itemsize = 2 if dtype_name == "BF16" else numpy.dtype(DTYPES[dtype_name]).itemsize
    if not 0 <= begin <= end or end - begin != count_of(shape) * itemsize:
        raise CorruptFileError(
            f"tensor {brief(name)} (dtype {dtype_name}, shape {tuple(shape) if len(shape) < 9 else '...'}) has data "
            f"offsets [{begin}, {end}] that do not fit its size: truncated or corrupted"
        )
    return begin, name, dtype_name, shape, end
