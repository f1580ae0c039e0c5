"""PyTorch ``.pth`` / ``.pt`` state_dicts, read **without torch**, through a restricted unpickler.

``torch.save`` writes a pickle whose tensors point at raw storages:

* zip format (default since PyTorch 1.6): ``<name>/data.pkl`` (the pickle), ``<name>/data/<key>``
  (one file of raw bytes per storage), ``<name>/byteorder``;
* legacy format: a magic-number pickle, a protocol pickle, a sys-info pickle, the main pickle,
  a pickled list of storage keys, then each storage as ``[u64 count][bytes]``.

A tensor is pickled as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``
with the storage passed as a *persistent id* ``("storage", torch.FloatStorage, key, location, numel)``.
The pickle is read by :mod:`.torch_pickle`'s restricted unpickler (no torch, no arbitrary globals).
"""
from __future__ import annotations

import io
import os
import struct
import zipfile
from collections import OrderedDict

from .errors import CorruptFileError, UnsafeFileError, WeightsError, brief, reading
from .limits import Budget
from .torch_pickle import RestrictedUnpickler, Storage, StoredTensor

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def read(path) -> tuple[OrderedDict, dict]:
    """(name -> array, metadata) from a ``torch.save``'d state_dict (zip or legacy format)."""
    path = os.fspath(path)
    with open(path, "rb") as handle:
        head = handle.read(4)
    with reading(path, "PyTorch"):
        budget = Budget(path)
        if head[:2] == b"PK":
            obj = _read_zip(path, budget)
        else:
            with open(path, "rb") as handle:
                obj = _read_legacy(handle, budget)
        return _state_dict_of(obj, budget), {}


def _read_entry(archive, name, budget):
    info = archive.getinfo(name)
    budget.take(info.file_size, f"archive entry {brief(name)}")
    with archive.open(info) as member:
        data = member.read(info.file_size)
        if len(data) != info.file_size or member.read(1):
            raise CorruptFileError(f"archive entry {brief(name)} is not the size its header says")
    return data


def _read_zip(path, budget):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise CorruptFileError("zip archive without exactly one data.pkl: not a torch.save file")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = _read_entry(archive, prefix + "byteorder", budget)[:16].decode("ascii").strip()
            if byteorder not in ("little", "big"):
                raise CorruptFileError(f"unknown byteorder {brief(byteorder)}")
        storages, entries = {}, set(names)

        def load_storage(storage_type, key, numel):
            if key not in storages:
                entry = prefix + "data/" + key
                if entry not in entries:
                    raise CorruptFileError(f"storage {brief(key)} is missing from the archive")
                storage = Storage(storage_type.dtype, numel)
                storage.fill(_read_entry(archive, entry, budget), byteorder, budget)
                if storage.array.size < numel:
                    raise CorruptFileError(f"storage {brief(key)} holds {storage.array.size} items, {numel} expected")
                storages[key] = storage
            return storages[key]

        return RestrictedUnpickler(io.BytesIO(_read_entry(archive, pickles[0], budget)), load_storage).load()


def _read_legacy(handle, budget):
    """The pre-1.6 format: several pickles back to back, then the raw storages."""

    def refuse(storage_type, key, numel):  # the header pickles hold no tensors
        raise UnsafeFileError("storage reference in a header pickle")

    size = os.fstat(handle.fileno()).st_size
    magic = RestrictedUnpickler(handle, refuse).load()
    if not isinstance(magic, int) or magic != LEGACY_MAGIC:
        raise CorruptFileError("not a PyTorch file (neither a zip archive nor the legacy magic number)")
    RestrictedUnpickler(handle, refuse).load()  # protocol version
    sys_info = RestrictedUnpickler(handle, refuse).load()
    little = not isinstance(sys_info, dict) or sys_info.get("little_endian", True) is not False
    pending = {}  # key -> storage, filled once the pickle is read

    def load_storage(storage_type, key, numel):
        if key not in pending:
            pending[key] = Storage(storage_type.dtype, numel)
        return pending[key]

    obj = RestrictedUnpickler(handle, load_storage).load()
    keys = RestrictedUnpickler(handle, refuse).load()
    if not isinstance(keys, list):
        raise CorruptFileError("legacy storage key list missing")
    for key in keys:
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            raise CorruptFileError(f"legacy storage key {brief(key)} is not a name")
        key = str(key)
        (count,) = struct.unpack("<q" if little else ">q", _read_exact(handle, 8))
        storage = pending.get(key)
        if storage is None:
            raise CorruptFileError(f"storage {brief(key)} listed but never used")
        left = size - handle.tell()
        if count < 0 or count * storage.itemsize > left:
            raise CorruptFileError(f"storage {brief(key)} claims {count:,} items; the file has {left:,} bytes left")
        budget.take(count * storage.itemsize, f"storage {brief(key)}")
        storage.fill(_read_exact(handle, count * storage.itemsize), "little" if little else "big", budget)
    return obj


def _read_exact(handle, n):
    data = handle.read(n)
    if len(data) != n:
        raise CorruptFileError(f"file ends early (wanted {n} bytes, got {len(data)})")
    return data


def _state_dict_of(obj, budget: Budget | None = None) -> OrderedDict:
    """The name -> array mapping inside what was unpickled (a state_dict or a checkpoint holding one)."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(v, StoredTensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, dict):
        raise WeightsError(f"holds a {type(obj).__name__}, not a state_dict (name -> tensor)")
    state = OrderedDict()
    for name, value in obj.items():
        if isinstance(value, StoredTensor):
            if not isinstance(name, str):
                raise CorruptFileError(f"a tensor is stored under {brief(name)}, not a name")
            state[name] = value.materialize(budget)
    if not state:
        names = [brief(k, 30) for k in list(obj)[:8]]
        raise WeightsError(f"no tensors found (keys: {', '.join(names)})")
    return state
