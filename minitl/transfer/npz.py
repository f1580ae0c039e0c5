"""``.npz``: NumPy's zip of ``.npy`` arrays — the primary exported-arrays format, and minitl's own.

Read with ``numpy.load(allow_pickle=False)`` always: an object array (which would need
unpickling) is refused.  minitl's own files carry one extra entry, ``__minitl_metadata__``,
a 1-element *string* array holding JSON (architecture, preprocessing, class names), so
even the metadata needs no pickle.
"""
from __future__ import annotations

import json
import os
import zipfile
from collections import OrderedDict

import numpy

from ..fileio import atomic_write
from .errors import CorruptFileError, UnsafeFileError, WeightsError

METADATA_KEY = "__minitl_metadata__"


def read(path) -> tuple[OrderedDict, dict]:
    """(name -> array, metadata) from an ``.npz`` file; every array is read and checked here."""
    path = os.fspath(path)
    state, metadata = OrderedDict(), {}
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic[:2] != b"PK":
        raise CorruptFileError(f"{path}: not an .npz file (no zip signature; starts with {magic!r})")
    try:
        with numpy.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, numpy.lib.npyio.NpzFile):
                raise CorruptFileError(f"{path}: a single .npy array, not an .npz archive of named arrays")
            for name in archive.files:
                array = archive[name]  # lazily read: errors surface here, inside the try
                if name == METADATA_KEY:
                    metadata = _decode_metadata(path, array)
                    continue
                if array.dtype.kind not in "biuf":
                    raise WeightsError(f"{path}: entry {name!r} has dtype {array.dtype}, not a numeric weight array")
                state[name] = array
    except WeightsError:
        raise
    except FileNotFoundError:
        raise
    except ValueError as error:
        if "allow_pickle" in str(error) or "Object arrays" in str(error):
            raise UnsafeFileError(
                f"{path}: contains a pickled (object) array; minitl never unpickles weight files"
            ) from None
        raise CorruptFileError(f"{path}: not a readable .npz file ({error})") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, UnicodeDecodeError) as error:
        raise CorruptFileError(f"{path}: truncated or corrupted .npz file ({type(error).__name__}: {error})") from None
    return state, metadata


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

