"""PyTorch ``.pth`` / ``.pt`` state_dicts, read **without torch**, through a restricted unpickler.

``torch.save`` writes a pickle whose tensors point at raw storages:

* zip format (default since PyTorch 1.6): ``<name>/data.pkl`` (the pickle), ``<name>/data/<key>``
  (one file of raw bytes per storage), ``<name>/byteorder``;
* legacy format: a magic-number pickle, a protocol pickle, a sys-info pickle, the main pickle,
  a pickled list of storage keys, then each storage as ``[u64 count][bytes]``.

A tensor is pickled as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``
with the storage passed as a *persistent id* ``("storage", torch.FloatStorage, key, location, numel)``.
The unpickler below admits only those rebuild functions, the storage types and
``collections.OrderedDict``; any other global (``os.system`` in a ``__reduce__``, say) is refused
*before* anything is called, with :class:`UnsafeFileError`.  Tensors are rebuilt as NumPy arrays
with ``as_strided`` after checking the view lies inside its storage.
"""
from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict

import numpy

from .errors import CorruptFileError, UnsafeFileError, WeightsError

STORAGE_DTYPES = {
    "FloatStorage": numpy.float32, "DoubleStorage": numpy.float64, "HalfStorage": numpy.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": numpy.int64, "IntStorage": numpy.int32,
    "ShortStorage": numpy.int16, "CharStorage": numpy.int8, "ByteStorage": numpy.uint8, "BoolStorage": numpy.bool_,
}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _StorageType:
    """Stands in for ``torch.FloatStorage`` & co.: only remembers the dtype."""

    def __init__(self, name):
        self.name, self.dtype = name, STORAGE_DTYPES[name]


class _Storage:
    """A storage's raw items as a flat NumPy array (filled later in the legacy format)."""

    def __init__(self, dtype, numel: int):
        self.dtype, self.numel, self.array = dtype, numel, None

    def fill(self, raw: bytes, byteorder: str) -> None:
        if self.dtype == "bfloat16":
            bits = numpy.frombuffer(raw, dtype=("<" if byteorder == "little" else ">") + "u2")
            self.array = (bits.astype(numpy.uint32) << 16).view(numpy.float32)
            return
        dt = numpy.dtype(self.dtype).newbyteorder("<" if byteorder == "little" else ">")
        if len(raw) % dt.itemsize:
            raise CorruptFileError(f"storage of {len(raw)} bytes is not a whole number of {dt} items")
        self.array = numpy.frombuffer(raw, dtype=dt)


class _StorageView:
    """Legacy format: a storage that is a slice of another (``view_metadata``)."""

    def __init__(self, root: _Storage, offset: int):
        self.root, self.offset = root, offset


class _Tensor:
    """What ``_rebuild_tensor_v2`` returns here: a view description, materialised as a NumPy array."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def materialize(self) -> numpy.ndarray:
        storage, offset = self.storage, self.offset
        if isinstance(storage, _StorageView):
            storage, offset = storage.root, offset + storage.offset
        flat = storage.array
        if flat is None:
            raise CorruptFileError("a tensor's storage bytes are missing")
        size, stride = self.size, self.stride
        native = flat.dtype.newbyteorder("=")
        if any(n == 0 for n in size):
            return numpy.zeros(size, dtype=native)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= flat.size or numpy.prod(size, dtype=numpy.float64) > 1024.0 * flat.size:
            raise CorruptFileError(
                f"tensor view (offset {offset}, size {size}, stride {stride}) runs past its storage of {flat.size} items"
            )
        view = numpy.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=tuple(s * flat.itemsize for s in stride), writeable=False
        )
        return numpy.array(view, dtype=native, copy=True)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])."""
    if not isinstance(storage, (_Storage, _StorageView)):
        raise UnsafeFileError("tensor rebuild called without a storage")
    try:
        offset, size, stride = int(storage_offset), tuple(int(n) for n in size), tuple(int(s) for s in stride)
    except (TypeError, ValueError):
        raise CorruptFileError("tensor rebuild with a non-integer offset, size or stride") from None
    if len(size) != len(stride) or offset < 0 or any(n < 0 for n in size) or any(s < 0 for s in stride):
        raise CorruptFileError(f"bad tensor view: offset {offset}, size {size}, stride {stride}")
    return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *_state):
    """torch._utils._rebuild_parameter(data, requires_grad, hooks): a Parameter is just its tensor here."""
    if not isinstance(data, _Tensor):
        raise UnsafeFileError("parameter rebuild called without a tensor")
    return data


def _legacy_rebuild_tensor(storage, storage_offset, size, stride):
    return _rebuild_tensor(storage, storage_offset, size, stride)


ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _legacy_rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only tensor-rebuild functions, storage types and OrderedDict."""

    def __init__(self, file, load_storage):
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module, name):
        if (module, name) in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeFileError(
            f"refused to load global {module}.{name}: a weight file may only hold tensors "
            "(tensor-rebuild functions, storages, OrderedDict); nothing was executed"
        )

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage" or len(pid) < 5:
            raise UnsafeFileError(f"unexpected persistent id {str(pid)[:80]}: only tensor storages are allowed")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise UnsafeFileError(f"persistent id names {str(storage_type)[:80]}, not a storage type")
        storage = self._load_storage(storage_type, key, int(pid[4]))
        view = pid[5] if len(pid) > 5 else None
        if view is not None:  # legacy: (view_key, offset, view_size)
            return _StorageView(storage, int(view[1]))
        return storage


def read(path) -> tuple[OrderedDict, dict]:
    """(name -> array, metadata) from a ``torch.save``'d state_dict (zip or legacy format)."""
    path = os.fspath(path)
    with open(path, "rb") as handle:
        head = handle.read(4)
    try:
        if head[:2] == b"PK":
            obj = _read_zip(path)
        else:
            with open(path, "rb") as handle:
                obj = _read_legacy(handle, path)
        return _state_dict_of(obj, path), {}
    except WeightsError as error:
        if str(error).startswith(path):
            raise
        raise type(error)(f"{path}: {error}") from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error, IndexError,
            KeyError, TypeError, ValueError, AttributeError, OSError, UnicodeDecodeError) as error:
        raise CorruptFileError(
            f"{path}: truncated or corrupted PyTorch file ({type(error).__name__}: {error})"
        ) from None


def _read_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise CorruptFileError("zip archive without exactly one data.pkl: not a torch.save file")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = archive.read(prefix + "byteorder").decode("ascii").strip()
            if byteorder not in ("little", "big"):
                raise CorruptFileError(f"unknown byteorder {byteorder!r}")
        storages = {}

        def load_storage(storage_type, key, numel):
            if key not in storages:
                entry = prefix + "data/" + key
                if entry not in names:
                    raise CorruptFileError(f"storage {key!r} is missing from the archive")
                storage = _Storage(storage_type.dtype, numel)
                storage.fill(archive.read(entry), byteorder)
                if storage.array.size < numel:
                    raise CorruptFileError(f"storage {key!r} holds {storage.array.size} items, {numel} expected")
                storages[key] = storage
            return storages[key]

        return RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), load_storage).load()


def _read_legacy(handle, path):
    """The pre-1.6 format: several pickles back to back, then the raw storages."""

    def refuse(storage_type, key, numel):  # the header pickles hold no tensors
        raise UnsafeFileError("storage reference in a header pickle")

    magic = RestrictedUnpickler(handle, refuse).load()
    if magic != LEGACY_MAGIC:
        raise CorruptFileError("not a PyTorch file (neither a zip archive nor the legacy magic number)")
    RestrictedUnpickler(handle, refuse).load()  # protocol version
    sys_info = RestrictedUnpickler(handle, refuse).load()
    little = not isinstance(sys_info, dict) or sys_info.get("little_endian", True)
    pending = {}  # key -> storage, filled once the pickle is read

    def load_storage(storage_type, key, numel):
        if key not in pending:
            pending[key] = _Storage(storage_type.dtype, numel)
        return pending[key]

    obj = RestrictedUnpickler(handle, load_storage).load()
    keys = RestrictedUnpickler(handle, refuse).load()
    if not isinstance(keys, list):
        raise CorruptFileError("legacy storage key list missing")
    for key in keys:
        key = str(key)
        (count,) = struct.unpack("<q" if little else ">q", _read_exact(handle, 8))
        storage = pending.get(key)
        if storage is None:
            raise CorruptFileError(f"storage {key!r} listed but never used")
        itemsize = 2 if storage.dtype == "bfloat16" else numpy.dtype(storage.dtype).itemsize
        if count < 0 or count > 1 << 40:
            raise CorruptFileError(f"storage {key!r} claims {count} items")
        storage.fill(_read_exact(handle, count * itemsize), "little" if little else "big")
    return obj


def _read_exact(handle, n):
    data = handle.read(n)
    if len(data) != n:
        raise CorruptFileError(f"file ends early (wanted {n} bytes, got {len(data)})")
    return data


def _state_dict_of(obj, path) -> OrderedDict:
    """The name -> array mapping inside what was unpickled (a state_dict or a checkpoint holding one)."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(v, _Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: holds a {type(obj).__name__}, not a state_dict (name -> tensor)")
    state = OrderedDict()
    for name, value in obj.items():
        if isinstance(value, _Tensor):
            state[str(name)] = value.materialize()
        elif name == "_metadata" or not isinstance(value, (dict, list)):
            continue
    if not state:
        raise WeightsError(f"{path}: no tensors found (keys: {', '.join(map(str, list(obj)[:8]))})")
    return state
