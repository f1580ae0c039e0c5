"""The IDX file format of MNIST and Fashion-MNIST, gzip-compressed or raw.

Layout (all integers big-endian)::

    bytes 0-1   0x00 0x00                      magic: two zero bytes
    byte  2     type code                      0x08 uint8, 0x09 int8, 0x0B int16,
                                               0x0C int32, 0x0D float32, 0x0E float64
    byte  3     ndim                           number of dimensions
    4·ndim      uint32 sizes d_1 ... d_ndim
    the rest    d_1·...·d_ndim values, row-major (C order)

The reader checks every one of these and says which is wrong: bad magic, unknown type code,
a header or body shorter (or longer) than the sizes promise, a broken gzip stream.
"""
from __future__ import annotations

import gzip
import io
import math
import os
import zlib

import numpy

IDX_TYPES = {
    0x08: numpy.dtype(">u1"),
    0x09: numpy.dtype(">i1"),
    0x0B: numpy.dtype(">i2"),
    0x0C: numpy.dtype(">i4"),
    0x0D: numpy.dtype(">f4"),
    0x0E: numpy.dtype(">f8"),
}
_CODE_OF = {dt.newbyteorder("="): code for code, dt in IDX_TYPES.items()}
GZIP_MAGIC = b"\x1f\x8b"


class IDXError(ValueError):
    """An IDX file that is not what its header says (or not IDX at all)."""


GZIP_RATIO, GZIP_FLOOR = 256, 64 * 2 ** 20


def _read_bytes(path) -> bytes:
    """The file's bytes; a gzip stream is inflated to at most max(64 MiB, 256 x its size) (a bomb stops there)."""
    path = os.fspath(path)
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw[:2] != GZIP_MAGIC:  # decide by content, not by the file name
        return raw
    limit = max(GZIP_FLOOR, GZIP_RATIO * len(raw))
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            out = stream.read(limit + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise IDXError(f"{path}: corrupt or truncated gzip stream ({error})") from error
    if len(out) > limit:
        raise IDXError(f"{path}: the gzip stream inflates past {limit:,} bytes ({GZIP_RATIO}x its size): "
                       "not an IDX file (a decompression bomb?)")
    return out


def parse_idx(raw: bytes, name: str = "<bytes>") -> numpy.ndarray:
    """Decode IDX bytes into an array of native byte order (shape from the header)."""
    if len(raw) < 4:
        raise IDXError(f"{name}: {len(raw)} bytes is too short for an IDX header (needs at least 4)")
    if raw[0] != 0 or raw[1] != 0:
        raise IDXError(
            f"{name}: not an IDX file: magic bytes are {raw[0]:#04x} {raw[1]:#04x}, expected 0x00 0x00"
        )
    code, ndim = raw[2], raw[3]
    if code not in IDX_TYPES:
        known = ", ".join(f"{c:#04x}" for c in IDX_TYPES)
        raise IDXError(f"{name}: unknown IDX type code {code:#04x} (known: {known})")
    if ndim == 0:
        raise IDXError(f"{name}: IDX header declares 0 dimensions")
    header_end = 4 + 4 * ndim
    if len(raw) < header_end:
        raise IDXError(f"{name}: truncated header: {ndim} dimensions need {header_end} bytes, file has {len(raw)}")
    shape = tuple(int(d) for d in numpy.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[code]
    expected = math.prod(shape) * dtype.itemsize  # exact: int64 would overflow for huge dimensions
    body = len(raw) - header_end
    if body != expected:
        what = "truncated" if body < expected else "has trailing bytes"
        raise IDXError(
            f"{name}: {what}: header says shape {shape} of {dtype.newbyteorder('=').name} "
            f"({expected} data bytes), found {body}"
        )
    array = numpy.frombuffer(raw, dtype=dtype, offset=header_end).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # native order, writable copy


def read_idx(path) -> numpy.ndarray:
    """Read an IDX file (``.gz`` or raw, detected from the content)."""
    return parse_idx(_read_bytes(path), name=os.fspath(path))


def encode_idx(array) -> bytes:
    """The IDX bytes of an array (for writing test fixtures and small datasets)."""
    array = numpy.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODE_OF:
        raise ValueError(f"IDX cannot store dtype {array.dtype}; use uint8, int8, int16, int32, float32 or float64")
    code = _CODE_OF[native]
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"IDX stores 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, code, array.ndim]) + numpy.asarray(array.shape, dtype=">u4").tobytes()
    return header + numpy.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()


def write_idx(path, array, compress: bool | None = None) -> None:
    """Write an IDX file; gzip-compressed when ``compress`` is true or the name ends in ``.gz``."""
    path = os.fspath(path)
    data = encode_idx(array)
    if compress is None:
        compress = path.endswith(".gz")
    if compress:
        data = gzip.compress(data, mtime=0)
    with open(path, "wb") as handle:
        handle.write(data)
