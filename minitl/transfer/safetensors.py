"""``.safetensors``: an 8-byte little-endian header length, a JSON header, then raw tensor bytes.

    [u64 N][N bytes JSON: {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}][data]

The format holds no code by design; this reader is ~50 lines of NumPy, so it needs no
extra package, and it checks every offset and size before touching the data (a damaged
header is an error, not an out-of-bounds read).  bfloat16 is widened to float32.
"""
from __future__ import annotations

import json
import os
import struct
from collections import OrderedDict

import numpy

from .errors import CorruptFileError, WeightsError

DTYPES = {
    "F64": numpy.float64, "F32": numpy.float32, "F16": numpy.float16,
    "I64": numpy.int64, "I32": numpy.int32, "I16": numpy.int16, "I8": numpy.int8,
    "U64": numpy.uint64, "U32": numpy.uint32, "U16": numpy.uint16, "U8": numpy.uint8, "BOOL": numpy.bool_,
    "BF16": "bfloat16",
}
MAX_HEADER = 100 * 1024 * 1024


def read(path) -> tuple[OrderedDict, dict]:
    """(name -> array, the header's ``__metadata__`` string map) from a ``.safetensors`` file."""
    path = os.fspath(path)
    with open(path, "rb") as handle:
        blob = handle.read()
    if len(blob) < 8:
        raise CorruptFileError(f"{path}: truncated .safetensors file ({len(blob)} bytes, no header)")
    (header_size,) = struct.unpack("<Q", blob[:8])
    if header_size > min(MAX_HEADER, len(blob) - 8):
        raise CorruptFileError(
            f"{path}: not a .safetensors file or truncated (header claims {header_size} bytes, file has {len(blob) - 8})"
        )
    try:
        header = json.loads(blob[8 : 8 + header_size].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptFileError(f"{path}: .safetensors header is not valid JSON ({error})") from None
    if not isinstance(header, dict):
        raise CorruptFileError(f"{path}: .safetensors header must be a JSON object")
    data = memoryview(blob)[8 + header_size :]
    metadata = header.pop("__metadata__", None) or {}
    entries = []
    for name, info in header.items():
        try:
            dtype_name, shape, (begin, end) = info["dtype"], [int(n) for n in info["shape"]], info["data_offsets"]
            begin, end = int(begin), int(end)
        except (TypeError, KeyError, ValueError) as error:
            raise CorruptFileError(f"{path}: bad header entry for {name!r} ({error!r})") from None
        if dtype_name not in DTYPES:
            raise WeightsError(f"{path}: tensor {name!r} has dtype {dtype_name}, which minitl does not read")
        itemsize = 2 if dtype_name == "BF16" else numpy.dtype(DTYPES[dtype_name]).itemsize
        count = int(numpy.prod(shape, dtype=numpy.int64)) if shape else 1
        if any(n < 0 for n in shape) or not 0 <= begin <= end <= len(data) or end - begin != count * itemsize:
            raise CorruptFileError(
                f"{path}: tensor {name!r} (dtype {dtype_name}, shape {tuple(shape)}) has data offsets "
                f"[{begin}, {end}] that do not fit its size or the file ({len(data)} data bytes): truncated or corrupted"
            )
        entries.append((begin, name, dtype_name, shape, end))
    state = OrderedDict()
    for begin, name, dtype_name, shape, end in sorted(entries):  # file order
        raw = data[begin:end]
        if dtype_name == "BF16":  # the top 16 bits of a float32
            array = (numpy.frombuffer(raw, dtype="<u2").astype(numpy.uint32) << 16).view(numpy.float32)
        else:
            array = numpy.frombuffer(raw, dtype=numpy.dtype(DTYPES[dtype_name]).newbyteorder("<"))
        state[name] = array.reshape(shape).astype(array.dtype.newbyteorder("="), copy=True)
    if not isinstance(metadata, dict):
        raise CorruptFileError(f"{path}: __metadata__ must be a JSON object")
    return state, metadata
