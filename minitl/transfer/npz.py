"""``.npz``: NumPy's zip of ``.npy`` arrays — the primary exported-arrays format, and minitl's own.

Read entry by entry with the ``.npy`` header checked before anything is allocated
(:func:`read_arrays`, also used for checkpoints); an object array (which would need unpickling)
is refused, never loaded.  minitl's own files carry one extra entry, ``__minitl_metadata__``,
a 1-element *string* array holding JSON (architecture, preprocessing, class names), so
even the metadata needs no pickle.
"""
from __future__ import annotations

import json
import os
import zipfile
from collections import OrderedDict

import numpy

from numpy.lib import format as npy_format

from ..fileio import atomic_write
from .errors import CorruptFileError, UnsafeFileError, WeightsError, brief, one_line, reading
from .limits import Budget, count_of

METADATA_KEY = "__minitl_metadata__"


def read(path) -> tuple[OrderedDict, dict]:
    """(name -> array, metadata) from an ``.npz`` file; every array is read and checked here."""
    path = os.fspath(path)
    state, metadata = OrderedDict(), {}
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic[:2] != b"PK":
        raise CorruptFileError(f"{path}: not an .npz file (no zip signature; starts with {magic!r})")
    with reading(path, ".npz"):
        for name, array in read_arrays(path, text_keys=(METADATA_KEY,)):
            if name == METADATA_KEY:
                metadata = _decode_metadata(path, array)
            else:
                state[name] = array
    return state, metadata


MAX_ENTRIES = 100_000


def read_arrays(path, text_keys=(), budget: Budget | None = None):
    """Yield ``(name, array)`` for each ``.npy`` entry of the zip at ``path``, checked before allocating.

    Each entry's ``.npy`` header (dtype, shape) is parsed first; the entry must hold exactly
    ``header + prod(shape) * itemsize`` bytes (its declared uncompressed size in the zip), that size
    is taken from the file's :class:`~minitl.transfer.limits.Budget` (so a deflate bomb or a header
    claiming 10^12 elements is refused before any allocation), and the data is read in place, in
    bounded chunks; the zip CRC is checked at the end of each entry.  Only numeric dtypes (``biuf``)
    are read, plus unicode text for the names in ``text_keys``; object arrays (pickles) are refused.
    Errors are :class:`WeightsError`; call inside :func:`~minitl.transfer.errors.reading`.
    """
    budget = budget or Budget(path)
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            raise CorruptFileError(f"a zip of {len(infos):,} entries; at most {MAX_ENTRIES:,} are read")
        seen = set()
        for info in infos:
            if not info.filename.endswith(".npy"):
                raise CorruptFileError(f"entry {brief(info.filename)} is not a .npy array")
            name = info.filename[: -len(".npy")]
            if name in seen:
                raise CorruptFileError(f"entry {brief(name)} appears twice")
            seen.add(name)
            budget.take(info.file_size, f"entry {brief(name)}")
            with archive.open(info) as member:
                yield name, _read_npy(member, info.file_size, name, name in text_keys)


def _read_npy(member, declared: int, name: str, text_ok: bool) -> numpy.ndarray:
    version = npy_format.read_magic(member)
    if version not in ((1, 0), (2, 0)):  # 3.0 only adds utf-8 field names of structured dtypes
        raise CorruptFileError(f"entry {brief(name)}: .npy version {version} is not read here")
    header_of = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
    shape, fortran, dtype = header_of(member)  # a literal_eval of a size-limited dict, no pickle
    if dtype.hasobject:
        raise UnsafeFileError(f"entry {brief(name)} is a pickled (object) array; minitl never unpickles weight files")
    if not (dtype.kind in "biuf" or (text_ok and dtype.kind == "U")) or dtype.subdtype is not None:
        raise WeightsError(f"entry {brief(name)} has dtype {dtype}, not a numeric weight array")
    if any(n < 0 for n in shape):
        raise CorruptFileError(f"entry {brief(name)} has a negative dimension in shape {shape}")
    nbytes = count_of(shape) * dtype.itemsize
    header = member.tell()
    if header + nbytes != declared:
        raise CorruptFileError(
            f"entry {brief(name)} declares shape {one_line(shape, 80)} of {dtype} ({nbytes:,} bytes) "
            f"but holds {declared - header:,} bytes"
        )
    array = numpy.empty(count_of(shape), dtype=dtype)
    buffer, filled = array.view(numpy.uint8), 0
    while filled < nbytes:
        got = member.readinto(buffer[filled : filled + CHUNK])
        if not got:
            raise CorruptFileError(f"entry {brief(name)} ends early ({filled:,} of {nbytes:,} bytes)")
        filled += got
    if member.read(1):  # also makes zipfile check the entry's CRC
        raise CorruptFileError(f"entry {brief(name)} holds more bytes than its header says")
    if not dtype.isnative:
        array = array.byteswap().view(dtype.newbyteorder("="))
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


CHUNK = 1 << 20


def _decode_metadata(path, array) -> dict:
    if array.dtype.kind != "U" or array.size != 1:
        raise CorruptFileError(f"{path}: {METADATA_KEY} must be a 1-element string array holding JSON")
    try:
        metadata = json.loads(str(array.reshape(-1)[0]))
    except json.JSONDecodeError as error:
        raise CorruptFileError(f"{path}: {METADATA_KEY} is not valid JSON ({error})") from None
    if not isinstance(metadata, dict):
        raise CorruptFileError(f"{path}: {METADATA_KEY} must hold a JSON object")
    return metadata


def write(path, state, metadata: dict | None = None) -> str:
    """Write name -> array (+ JSON metadata) to ``path`` atomically (temporary file, then rename)."""
    path = os.fspath(path)
    arrays = OrderedDict()
    for name, value in state.items():
        if name == METADATA_KEY:
            raise WeightsError(f"{METADATA_KEY!r} is reserved for metadata")
        array = numpy.asarray(value.numpy() if hasattr(value, "numpy") else value)
        if array.dtype.kind not in "biuf":
            raise WeightsError(f"entry {name!r} has dtype {array.dtype}: only numeric arrays are saved")
        arrays[name] = array
    if metadata is not None:
        arrays[METADATA_KEY] = numpy.array([json.dumps(metadata, sort_keys=True)])
    return atomic_write(path, lambda handle: numpy.savez(handle, **arrays))

