"""The restricted unpickler behind :mod:`minitl.transfer.pytorch`: reads a ``torch.save`` pickle without torch.

A tensor is pickled as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``
with the storage passed as a *persistent id* ``("storage", torch.FloatStorage, key, location, numel)``.
This unpickler admits only those rebuild functions, the storage types and
``collections.OrderedDict``; any other global (``os.system`` in a ``__reduce__``, say) is refused
*before* anything is called, with :class:`UnsafeFileError`.  It is Python's own pure-Python
unpickler with three limits added: at most ``MAX_PICKLE_OPS`` opcodes and ``MAX_PICKLE_DEPTH``
nested MARKs (a "billion laughs" pickle stops early), and BUILD (``__setstate__`` / attribute
assignment) only on an OrderedDict (a state_dict's ``_metadata``, ignored) — never on the
allowed functions or the tensor stand-ins; and dictionary keys / set items only of atoms
(str, bytes, numbers, None): hashing a tuple of tuples of ... sharing one memo entry would
take forever.  Nothing read from the file is ever ``str()``-ed
whole (a pickle can make a list whose repr is exponentially long).

Tensors are rebuilt as NumPy arrays with ``as_strided`` after checking, with exact integers,
that the view (offset, sizes, strides) lies inside its storage — and inside the slice of the
storage a legacy view names — and that it has no more elements than the storage: a stride-0
view cannot turn 16 bytes into 64 GiB.  Every byte allocated is taken from the file's size
budget (:mod:`minitl.transfer.limits`), so a count in a header is checked against the file's
remaining bytes before anything is read.
"""
from __future__ import annotations

import io
import os
import pickle
from collections import OrderedDict

import numpy

from .errors import CorruptFileError, UnsafeFileError, brief
from .limits import Budget, count_of

STORAGE_DTYPES = {
    "FloatStorage": numpy.float32, "DoubleStorage": numpy.float64, "HalfStorage": numpy.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": numpy.int64, "IntStorage": numpy.int32,
    "ShortStorage": numpy.int16, "CharStorage": numpy.int8, "ByteStorage": numpy.uint8, "BoolStorage": numpy.bool_,
}


MAX_PICKLE_OPS = 5_000_000
MAX_PICKLE_DEPTH = 64


class _StorageType:
    """Stands in for ``torch.FloatStorage`` & co.: only remembers the dtype."""

    def __init__(self, name):
        self.name, self.dtype = name, STORAGE_DTYPES[name]


class Storage:
    """A storage's raw items as a flat NumPy array (filled later in the legacy format)."""

    def __init__(self, dtype, numel: int):
        self.dtype, self.numel, self.array = dtype, numel, None

    @property
    def itemsize(self) -> int:
        return 2 if self.dtype == "bfloat16" else numpy.dtype(self.dtype).itemsize

    def fill(self, raw: bytes, byteorder: str, budget: Budget) -> None:
        if len(raw) % self.itemsize:
            raise CorruptFileError(f"storage of {len(raw)} bytes is not a whole number of {self.itemsize}-byte items")
        if self.dtype == "bfloat16":
            budget.take(2 * len(raw), "a bfloat16 storage widened to float32")
            bits = numpy.frombuffer(raw, dtype=("<" if byteorder == "little" else ">") + "u2")
            self.array = (bits.astype(numpy.uint32) << 16).view(numpy.float32)
            return
        dt = numpy.dtype(self.dtype).newbyteorder("<" if byteorder == "little" else ">")
        self.array = numpy.frombuffer(raw, dtype=dt)


class _StorageView:
    """Legacy format: a storage that is a slice ``[offset, offset + size)`` of another (``view_metadata``)."""

    def __init__(self, root: Storage, offset: int, size: int):
        self.root, self.offset, self.size = root, offset, size


class StoredTensor:
    """What ``_rebuild_tensor_v2`` returns here: a view description, materialised as a NumPy array."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def materialize(self, budget: Budget | None = None) -> numpy.ndarray:
        """The tensor as a fresh NumPy array; every index is checked to lie inside the storage first."""
        storage, base, extent = self.storage, 0, None
        if isinstance(storage, _StorageView):
            storage, base, extent = storage.root, storage.offset, storage.size
        flat = storage.array
        if flat is None:
            raise CorruptFileError("a tensor's storage bytes are missing")
        if extent is None:
            extent = flat.size
        elif base + extent > flat.size:
            raise CorruptFileError(f"storage view [{base}, {base + extent}) runs past its storage of {flat.size} items")
        offset, size, stride = self.offset, self.size, self.stride
        native = flat.dtype.newbyteorder("=")
        count = count_of(size)
        if count == 0:
            return numpy.zeros(size, dtype=native)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= extent or count > extent:
            raise CorruptFileError(
                f"tensor view (offset {offset}, size {size}, stride {stride}) runs past its storage of {extent} items"
                + (" (or repeats its items)" if count > extent else "")
            )
        if budget is not None:
            budget.take(count * flat.itemsize, "a tensor")
        view = numpy.lib.stride_tricks.as_strided(
            flat[base + offset :], shape=size, strides=tuple(s * flat.itemsize for s in stride), writeable=False
        )
        return numpy.array(view, dtype=native, copy=True)


def _ints(values, what):
    if not isinstance(values, (tuple, list)) or len(values) > 64:
        raise CorruptFileError(f"tensor rebuild with a {what} that is not a short tuple of integers")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise CorruptFileError(f"tensor rebuild with a non-integer {what}")
    return tuple(values)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])."""
    if not isinstance(storage, (Storage, _StorageView)):
        raise UnsafeFileError("tensor rebuild called without a storage")
    (offset,), size, stride = _ints((storage_offset,), "offset"), _ints(size, "size"), _ints(stride, "stride")
    if len(size) != len(stride) or offset < 0 or any(n < 0 for n in size) or any(s < 0 for s in stride):
        raise CorruptFileError(f"bad tensor view: offset {offset}, size {size}, stride {stride}")
    return StoredTensor(storage, offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *_state):
    """torch._utils._rebuild_parameter(data, requires_grad, hooks): a Parameter is just its tensor here."""
    if not isinstance(data, StoredTensor):
        raise UnsafeFileError("parameter rebuild called without a tensor")
    return data


def _legacy_rebuild_tensor(storage, storage_offset, size, stride):
    return _rebuild_tensor(storage, storage_offset, size, stride)


class _StateDict(OrderedDict):
    """``collections.OrderedDict`` as unpickled here: the one type BUILD may touch (its ``_metadata``, dropped)."""


ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): _StateDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _legacy_rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


def _load_build(self):
    """BUILD: only a state_dict's attribute dict onto an OrderedDict; anything else is refused."""
    state, target = self.stack[-1], self.stack[-2]
    if type(target) is not _StateDict or not isinstance(state, dict):
        raise UnsafeFileError(
            f"refused to set the state of {brief(target)} (pickle BUILD): a weight file may only set a "
            "state_dict's metadata; nothing was executed"
        )
    self.stack.pop()  # the state (``_metadata``: per-module version numbers) is not needed


def _load_mark(self, mark=pickle._Unpickler.dispatch[pickle.MARK[0]]):
    if len(self.metastack) >= MAX_PICKLE_DEPTH:
        raise UnsafeFileError(f"pickle nested deeper than {MAX_PICKLE_DEPTH} levels: not a state_dict")
    mark(self)


ATOMS = (str, bytes, int, float, bool, type(None))


def _atomic_keys(function, keys_of):
    """SETITEM(S) / ADDITEMS / FROZENSET hash their keys: only atoms (hashing a nested tuple can take forever)."""

    def step(self):
        if not all(isinstance(key, ATOMS) for key in keys_of(self.stack)):
            raise CorruptFileError("a dictionary key or set item that is not a name or a number: not a state_dict")
        function(self)

    return step


def _counted(function):
    def step(self):
        self._ops += 1
        if self._ops > MAX_PICKLE_OPS:
            raise UnsafeFileError(f"pickle longer than {MAX_PICKLE_OPS:,} operations: not a state_dict")
        function(self)

    return step


_DISPATCH = dict(pickle._Unpickler.dispatch)
_DISPATCH[pickle.BUILD[0]] = _load_build
_DISPATCH[pickle.MARK[0]] = _load_mark
for _code, _keys in ((pickle.SETITEM, lambda s: s[-2:-1]), (pickle.SETITEMS, lambda s: s[0::2]),
                     (pickle.ADDITEMS, lambda s: s), (pickle.FROZENSET, lambda s: s)):
    _DISPATCH[_code[0]] = _atomic_keys(_DISPATCH[_code[0]], _keys)
_DISPATCH = {code: _counted(function) for code, function in _DISPATCH.items()}


class _BoundedReader:
    """A file's ``read``/``readline``/``readinto`` that never ask for more than what is left of it.

    (A pickle FRAME or BINBYTES8 opcode may claim gigabytes; a buffered ``read(n)`` would allocate
    ``n`` bytes before finding the file shorter.)
    """

    def __init__(self, handle, end: int):
        self.handle, self.end = handle, end

    def _left(self, n):
        left = max(0, self.end - self.handle.tell())
        return left if n is None or n < 0 else min(int(n), left)

    def read(self, n=-1):
        return self.handle.read(self._left(n))

    def readline(self, n=-1):
        return self.handle.readline(self._left(n))

    def readinto(self, buffer):
        view = memoryview(buffer)
        return self.handle.readinto(view[: self._left(len(view))])


class RestrictedUnpickler(pickle._Unpickler):
    """An Unpickler that resolves only tensor-rebuild functions, storage types and OrderedDict.

    Python's pure-Python unpickler with a counted dispatch table (at most ``MAX_PICKLE_OPS``
    opcodes, ``MAX_PICKLE_DEPTH`` nested MARKs) and BUILD restricted to OrderedDicts.
    """

    dispatch = _DISPATCH

    def __init__(self, file, load_storage):
        if not isinstance(file, (io.BytesIO, _BoundedReader)):
            file = _BoundedReader(file, os.fstat(file.fileno()).st_size) if hasattr(file, "fileno") else file
        super().__init__(file)
        self._load_storage = load_storage
        self._ops = 0

    def find_class(self, module, name):
        if (module, name) in ALLOWED_GLOBALS:
            return ALLOWED_GLOBALS[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeFileError(
            f"refused to load global {brief(module, 80)[1:-1]}.{brief(name, 80)[1:-1]}: a weight file may only "
            "hold tensors (tensor-rebuild functions, storages, OrderedDict); nothing was executed"
        )

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage":
            raise UnsafeFileError(f"unexpected persistent id {brief(pid)}: only tensor storages are allowed")
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(storage_type, _StorageType):
            raise UnsafeFileError(f"persistent id names {brief(storage_type)}, not a storage type")
        if not isinstance(key, (str, int)) or isinstance(key, bool) or not isinstance(numel, int) or numel < 0:
            raise CorruptFileError(f"persistent id with key {brief(key)} and size {brief(numel)}")
        storage = self._load_storage(storage_type, str(key), numel)
        view = pid[5] if len(pid) > 5 else None
        if view is None:
            return storage
        # legacy: (view_key, offset, view_size)
        if not isinstance(view, tuple) or len(view) != 3:
            raise CorruptFileError(f"storage view metadata {brief(view)} is not (key, offset, size)")
        (offset, size) = _ints(view[1:], "storage view")
        if offset < 0 or size < 0:
            raise CorruptFileError(f"storage view at offset {offset} of size {size}")
        return _StorageView(storage, offset, size)
