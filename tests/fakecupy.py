"""A strict, test-only stand-in for the subset of CuPy that minitl uses, backed by NumPy.

Real CuPy installs and imports without a GPU but cannot allocate an array, and there is no
CPU emulation, so CI would never run the device code path.  This module plays CuPy's part
in the test suite (backend "fakecupy", device "fakecuda") and is *stricter* than a plain
NumPy alias, refusing what real CuPy refuses:

* implicit conversion to NumPy: ``numpy.asarray(x)`` / ``x.__array__()`` raise TypeError,
  and NumPy functions or ufuncs called on a device array raise TypeError;
* NumPy arrays passed into device ops (``x + numpy_array``, ``fakecupy.exp(numpy_array)``);
* host arrays (NumPy arrays, lists) used as indices or assigned into device arrays;
* reductions return 0-d *device* arrays, never host scalars (``x.sum()`` stays on device).

It counts host<->device transfers in :data:`transfers` — ``asarray``/``array`` of host data
(host->device), ``asnumpy``/``.get()``/``.item()``/``.tolist()``/``bool()``/``float()``/
``int()``/``repr()`` (device->host, each one synchronising on a real GPU) — so a test can
assert the transfer budget of a training step.

It records every CuPy function, method, attribute and keyword argument minitl uses
(:data:`USED`).  When real CuPy is installed, each new use is checked at once against it
(``inspect.signature``, or the signature line of a Cython docstring), and a use the
installed CuPy lacks raises :class:`CupyAPIError` in the test that made it, so the
stand-in cannot drift into an API that CuPy does not have.

Names mirror CuPy: ``fakecupy.ndarray``, ``fakecupy.asnumpy``, ``fakecupy.random.default_rng``,
``fakecupy.lib.stride_tricks``, and the companion ``fakecupy.cupyx`` (``scatter_add``,
``scipy.special.erf``).  Everything else reachable on ``numpy`` is offered under the same
name (wrapped), and checked against CuPy when used.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import re
import threading
import types

import numpy as _np

# ============================================================================ bookkeeping
USED: dict[str, set] = {}  # "cupy.zeros" -> keyword names used with it
_CHECKED: dict[tuple, str | None] = {}  # (name, keyword or None) -> problem or None
_lock = threading.Lock()
check_against_cupy = True  # tests may switch the live check off to inspect USED themselves


class CupyAPIError(AssertionError):
    """minitl used a CuPy function, attribute or keyword that the installed CuPy lacks."""


class Transfers:
    """Counts of host->device and device->host copies, with a short log of where they happened."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.h2d = 0
        self.d2h = 0
        self.log: list[tuple[str, str]] = []

    def _count(self, direction: str, what: str) -> None:
        if direction == "h2d":
            self.h2d += 1
        else:
            self.d2h += 1
        self.log.append((direction, what))

    def snapshot(self) -> tuple[int, int]:
        return self.h2d, self.d2h

    def __repr__(self) -> str:
        return f"Transfers(h2d={self.h2d}, d2h={self.d2h}, log={self.log})"


transfers = Transfers()


@contextlib.contextmanager
def counting():
    """``with counting() as t: ...`` — t.h2d / t.d2h / t.log count the transfers inside the block."""
    outer = (transfers.h2d, transfers.d2h, len(transfers.log))
    window = Transfers()
    try:
        yield window
    finally:
        window.h2d = transfers.h2d - outer[0]
        window.d2h = transfers.d2h - outer[1]
        window.log = transfers.log[outer[2]:]


def _record(name: str, kwargs=()) -> None:
    keys = USED.get(name)
    if keys is not None and (not kwargs or keys.issuperset(kwargs)):
        return  # seen (and checked) before: the common, fast case
    with _lock:
        keys = USED.setdefault(name, set())
        new = [k for k in kwargs if k not in keys]
        keys.update(kwargs)
    if not check_against_cupy:
        return
    for key in [None, *new]:
        problem = api_problem(name, key)
        if problem:
            raise CupyAPIError(problem)


# ============================================================================ checking against real CuPy
def _real_cupy():
    try:
        import cupy  # noqa: PLC0415
        import cupyx  # noqa: PLC0415
        import cupyx.scipy.special  # noqa: F401, PLC0415
    except Exception:  # noqa: BLE001 - CuPy absent or broken: nothing to check against
        return None
    return cupy


def _resolve(name: str):
    """The real CuPy object called ``name`` ("cupy.ndarray.sum", "cupyx.scatter_add"), or raise AttributeError."""
    cupy = _real_cupy()
    parts = name.split(".")
    obj = cupy if parts[0] == "cupy" else __import__("cupyx")
    if parts[0] == "cupyx" and len(parts) > 2 and parts[1] == "scipy":
        import cupyx.scipy.special  # noqa: F401, PLC0415
    for i, part in enumerate(parts[1:], 1):
        if not hasattr(obj, part):
            raise AttributeError(f"{'.'.join(parts[:i])} has no attribute {part!r}")
        obj = getattr(obj, part)
    return obj


_DOC_SIGNATURE = re.compile(r"^\s*[\w.]+\((.*)\)")


def _parameter_names(obj) -> set | None:
    """Keyword names ``obj`` accepts; None if it takes **kwargs; raises ValueError if unknowable."""
    cupy = _real_cupy()
    call_doc = None
    if isinstance(obj, (cupy.ufunc, type(cupy.matmul))):  # ufuncs / gufuncs: documented Args of __call__
        call_doc = type(obj).__call__.__doc__
        return _doc_args(call_doc)
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        names = set()
        for p in signature.parameters.values():
            if p.kind is p.VAR_KEYWORD:
                return None
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                names.add(p.name)
        return names
    doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
    match = _DOC_SIGNATURE.match(doc[0]) if doc else None
    if match is None:
        raise ValueError(f"cannot read the signature of {obj!r}")
    names = set()
    for token in match.group(1).split(","):
        token = token.strip().split("=")[0].strip()
        if token.startswith("**"):
            return None
        if token and not token.startswith("*") and token not in ("self", "/"):
            names.add(token)
    return names


def _doc_args(doc: str) -> set:
    """Names listed in a Google-style ``Args:`` section (CuPy ufunc docstrings)."""
    lines = (doc or "").splitlines()
    names, indent, inside = set(), None, False
    for line in lines:
        if line.strip() == "Args:":
            inside = True
            continue
        if not inside or not line.strip():
            continue
        width = len(line) - len(line.lstrip())
        if indent is None:
            indent = width
        if width < indent:
            break
        match = re.match(r"\s*(\w+)\s*(\(.*\))?:", line)
        if width == indent and match:
            names.add(match.group(1))
    names.discard("args")
    return names


def api_problem(name: str, keyword: str | None = None) -> str | None:
    """Why real CuPy cannot do what the stand-in was asked (None when it can, or CuPy is absent)."""
    key = (name, keyword)
    if key in _CHECKED:
        return _CHECKED[key]
    problem = None
    if _real_cupy() is not None:
        try:
            obj = _resolve(name)
        except AttributeError as error:
            problem = f"minitl used {name}, which the installed CuPy lacks ({error})"
        else:
            if keyword is not None:
                try:
                    names = _parameter_names(obj)
                except ValueError as error:
                    problem = f"minitl passed keyword {keyword!r} to {name}, whose signature cannot be checked ({error})"
                else:
                    if names is not None and keyword not in names:
                        problem = (
                            f"minitl passed keyword {keyword!r} to {name}, which the installed CuPy does not accept "
                            f"(it accepts {sorted(names)})"
                        )
    _CHECKED[key] = problem
    return problem


def problems() -> list[str]:
    """Every recorded use the installed CuPy lacks (empty when all exist, or CuPy is absent)."""
    found = []
    for name, keys in sorted(USED.items()):
        for key in [None, *sorted(keys)]:
            problem = api_problem(name, key)
            if problem:
                found.append(problem)
    return found


# ============================================================================ the device array
_HOST_SCALARS = (bool, int, float, complex, _np.generic)


def _refuse_host(value, where: str):
    raise TypeError(
        f"{where}: got a host {type(value).__name__} where a device array is needed "
        "(CuPy refuses NumPy arrays in device ops; copy it with cupy.asarray(...) explicitly)"
    )


_PLAIN = (int, float, bool, type(None), slice, str, type(Ellipsis), _np.dtype, type)


def _dev(value, where: str):
    """A device array's NumPy payload; scalars pass; host arrays are refused."""
    kind = type(value)
    if kind is ndarray:
        return value._a
    if kind in _PLAIN:
        return value
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, _np.ndarray):
        _refuse_host(value, where)
    if isinstance(value, (list, tuple)):
        return type(value)(_dev(v, where) for v in value)
    if isinstance(value, dict):
        return {k: _dev(v, where) for k, v in value.items()}
    return value


def _index(index, where: str):
    """Unwrap an index: device arrays, ints, slices, None, Ellipsis; host arrays and lists refused."""
    kind = type(index)
    if kind in _PLAIN:
        return index
    if kind is ndarray:
        return index._a
    if kind is tuple:
        return tuple(i if type(i) in _PLAIN else _index(i, where) for i in index)
    if isinstance(index, ndarray):
        return index._a
    if isinstance(index, (_np.ndarray, list)):
        raise TypeError(
            f"{where}: a host {type(index).__name__} used as an index of a device array "
            "(make the index a device array, e.g. cupy.arange(n), so no hidden host->device copy happens)"
        )
    return index


def _wrap(value):
    """NumPy results -> device arrays (scalars from reductions become 0-d device arrays)."""
    if type(value) is _np.ndarray:
        out = object.__new__(ndarray)
        out._a = value
        return out
    if isinstance(value, _np.ndarray):
        return ndarray._from(value)
    if isinstance(value, _np.generic):
        return ndarray._from(_np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _wrap_number(value):
    """Like :func:`_wrap`, and Python numbers too (CuPy returns 0-d arrays from array functions)."""
    if isinstance(value, (bool, int, float, complex)) and not isinstance(value, _np.generic):
        return ndarray._from(_np.asarray(value))
    return _wrap(value)


class ndarray:  # noqa: N801 (CuPy's name)
    """A device array: a NumPy array that may only be reached through CuPy's API."""

    __slots__ = ("_a",)
    __array_ufunc__ = None  # NumPy ufuncs on a device array raise TypeError, as with CuPy
    __array_priority__ = 100  # CuPy's; minitl.Tensor's higher priority wins reflected ops
    __hash__ = None

    def __init__(self, shape, dtype=float, order="C"):
        _record("cupy.ndarray", [k for k, v in (("dtype", dtype), ("order", order)) if v is not None])
        self._a = _np.empty(shape, dtype=dtype, order=order)

    @classmethod
    def _from(cls, array: _np.ndarray) -> ndarray:
        out = object.__new__(cls)
        out._a = array
        return out

    # ---------------------------------------------------------------- refusals
    def __array__(self, *args, **kwargs):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy array "
            "explicitly."
        )

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(
            f"numpy.{func.__name__} called on a device array: NumPy functions do not accept CuPy arrays "
            "(use the array module xp = backend.get_array_module(array))"
        )

    @property
    def data(self):
        raise AttributeError("ndarray.data is a CuPy MemoryPointer: the stand-in does not model it")

    # ---------------------------------------------------------------- metadata (host, no transfer)
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    T = property(lambda self: ndarray._from(self._a.T))

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        for i in range(len(self._a)):
            yield ndarray._from(self._a[i])

    # ---------------------------------------------------------------- device -> host (counted)
    def get(self, stream=None, order="C", out=None, blocking=True):
        transfers._count("d2h", f"get {self.shape}")
        return _np.array(self._a, order=order)

    def item(self):
        transfers._count("d2h", "item")
        return self._a.item()

    def tolist(self):
        transfers._count("d2h", f"tolist {self.shape}")
        return self._a.tolist()

    def __bool__(self):
        transfers._count("d2h", "bool()")
        return bool(self._a)

    def __float__(self):
        transfers._count("d2h", "float()")
        return float(self._a)

    def __int__(self):
        transfers._count("d2h", "int()")
        return int(self._a)

    def __complex__(self):
        transfers._count("d2h", "complex()")
        return complex(self._a)

    def __repr__(self):
        transfers._count("d2h", "repr()")
        return f"fakecupy.{self._a!r}"

    __str__ = __repr__

    def __format__(self, spec):
        transfers._count("d2h", "format()")
        return format(self._a, spec)

    # ---------------------------------------------------------------- indexing
    def __getitem__(self, index):
        return _wrap(self._a[_index(index, "ndarray.__getitem__")])

    def __setitem__(self, index, value):
        self._a[_index(index, "ndarray.__setitem__")] = _dev(value, "ndarray.__setitem__ value")

    # ---------------------------------------------------------------- every other method: NumPy's, wrapped
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self._a, name)
        qualname = f"cupy.ndarray.{name}"
        if not callable(attr):
            _record(qualname)
            return _wrap(attr)

        def method(*args, **kwargs):
            _record(qualname, kwargs)
            return _wrap(attr(*_dev(args, qualname), **_dev(kwargs, qualname)))

        return method


def _binary(op_name):
    op = getattr(_np.ndarray, op_name)

    def method(self, other):
        if isinstance(other, ndarray):
            other = other._a
        elif isinstance(other, _np.ndarray):
            _refuse_host(other, f"ndarray.{op_name}")
        elif not isinstance(other, _HOST_SCALARS):
            return NotImplemented  # let e.g. minitl.Tensor's reflected operator run
        result = op(self._a, other)
        if result is NotImplemented:
            return result
        if op_name.startswith("__i"):  # in place: keep this wrapper
            self._a = result
            return self
        return _wrap(result)

    method.__name__ = op_name
    return method


for _name in (
    "add", "radd", "sub", "rsub", "mul", "rmul", "truediv", "rtruediv", "floordiv", "rfloordiv", "mod", "rmod",
    "pow", "rpow", "matmul", "rmatmul", "and", "rand", "or", "ror", "xor", "rxor", "lshift", "rshift",
    "lt", "le", "gt", "ge", "eq", "ne",
    "iadd", "isub", "imul", "itruediv", "ifloordiv", "imod", "ipow", "iand", "ior", "ixor",
):
    setattr(ndarray, f"__{_name}__", _binary(f"__{_name}__"))

for _name in ("neg", "pos", "abs", "invert"):
    setattr(ndarray, f"__{_name}__", (lambda op: lambda self: _wrap(op(self._a)))(getattr(_np.ndarray, f"__{_name}__")))


# ============================================================================ module-level functions
class _Ufunc:
    """A CuPy ufunc: callable, with ``at``/``reduce``/``accumulate``/``outer``."""

    def __init__(self, qualname: str, ufunc):
        self._name, self._u = qualname, ufunc

    def __call__(self, *args, **kwargs):
        _record(self._name, kwargs)
        return _wrap(self._u(*_dev(args, self._name), **_dev(kwargs, self._name)))

    def at(self, a, indices, b=None):
        _record(f"{self._name}.at")
        args = () if b is None else (_dev(b, f"{self._name}.at"),)
        self._u.at(_dev(a, f"{self._name}.at"), _index(indices, f"{self._name}.at"), *args)

    def __getattr__(self, name):
        if name in ("reduce", "accumulate", "outer", "reduceat"):
            qualname = f"{self._name}.{name}"

            def method(*args, **kwargs):
                _record(qualname, kwargs)
                return _wrap(getattr(self._u, name)(*_dev(args, qualname), **_dev(kwargs, qualname)))

            return method
        _record(f"{self._name}.{name}")
        return getattr(self._u, name)


# functions whose results are host metadata in CuPy too (shapes, dtypes, flags about types)
_HOST_RESULT = {"shape", "ndim", "size", "result_type", "can_cast", "promote_types", "min_scalar_type",
                "iinfo", "finfo", "isscalar", "dtype", "issubdtype", "broadcast_shapes"}


def _function(qualname: str, func, host_result: bool = False):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        _record(qualname, kwargs)
        result = func(*_dev(args, qualname), **_dev(kwargs, qualname))
        return result if host_result else _wrap_number(result)

    return wrapper


class _Namespace(types.SimpleNamespace):
    """A sub-module of the stand-in (``fakecupy.linalg``, ``fakecupy.lib.stride_tricks``): NumPy's, wrapped."""

    def __init__(self, qualname: str, source, **members):
        super().__init__(**members)
        object.__setattr__(self, "_qualname", qualname)
        object.__setattr__(self, "_source", source)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _member(f"{self._qualname}.{name}", getattr(self._source, name), name)


def _member(qualname: str, obj, name: str):
    _record(qualname)
    if isinstance(obj, _np.ufunc):
        return _Ufunc(qualname, obj)
    if isinstance(obj, type) or obj is None or isinstance(obj, (bool, int, float, str, _np.dtype)):
        return obj  # dtypes (cupy.float32 is numpy.float32), constants (pi, inf, newaxis)
    if callable(obj):
        return _function(qualname, obj, host_result=name in _HOST_RESULT)
    if isinstance(obj, types.ModuleType):
        return _Namespace(qualname, obj)
    return obj


def asarray(a, dtype=None, order=None, *, blocking=False):
    """Host data -> device (counted); a device array passes through (cast if asked)."""
    _record("cupy.asarray", [k for k, v in (("dtype", dtype), ("order", order)) if v is not None])
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == _np.dtype(dtype) else ndarray._from(a._a.astype(dtype))
    transfers._count("h2d", f"asarray {type(a).__name__}")
    return ndarray._from(_np.array(a, dtype=dtype, order=order or "K", copy=True))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    _record("cupy.array", [k for k, v in (("dtype", dtype),) if v is not None])
    if isinstance(obj, ndarray):
        return ndarray._from(_np.array(obj._a, dtype=dtype, copy=copy, order=order, ndmin=ndmin))
    transfers._count("h2d", f"array {type(obj).__name__}")
    return ndarray._from(_np.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    """Device -> host (counted); a host array passes through, as in CuPy."""
    _record("cupy.asnumpy", [k for k, v in (("stream", stream), ("out", out)) if v is not None])
    if isinstance(a, ndarray):
        transfers._count("d2h", f"asnumpy {a.shape}")
        return _np.array(a._a, order=order)
    return _np.asarray(a)


def get_array_module(*args):
    _record("cupy.get_array_module")
    return _this if any(isinstance(a, ndarray) for a in args) else _np


# ---------------------------------------------------------------- random numbers drawn on the device
class XORWOW:
    """``cupy.random.XORWOW``'s shape: the generator's whole state lives in device memory,
    ``_state`` (int8 bytes; cuRAND's per-thread states in CuPy, a PCG64 state here), read before
    and written back after every draw, so copying it out and back in rewinds the generator."""

    _LAYOUT = _np.dtype([("state", "<u8", 2), ("inc", "<u8", 2), ("has_uint32", "<u4"), ("uinteger", "<u4")])

    def __init__(self, seed=None):
        self._state = ndarray._from(_np.zeros(self._LAYOUT.itemsize, dtype=_np.int8))
        self._store(_np.random.PCG64(seed).state)

    @staticmethod
    def _split(value):
        return [value & (2**64 - 1), value >> 64]

    def _store(self, state) -> None:
        record = _np.zeros((), dtype=self._LAYOUT)
        record["state"] = self._split(state["state"]["state"])
        record["inc"] = self._split(state["state"]["inc"])
        record["has_uint32"], record["uinteger"] = state["has_uint32"], state["uinteger"]
        self._state._a[...] = _np.frombuffer(record.tobytes(), dtype=_np.int8)

    def _load(self) -> _np.random.PCG64:
        record = _np.frombuffer(self._state._a.tobytes(), dtype=self._LAYOUT)[0]
        bits = _np.random.PCG64()
        bits.state = {"bit_generator": "PCG64",
                      "state": {"state": int(record["state"][0]) | int(record["state"][1]) << 64,
                                "inc": int(record["inc"][0]) | int(record["inc"][1]) << 64},
                      "has_uint32": int(record["has_uint32"]), "uinteger": int(record["uinteger"])}
        return bits


class Generator:
    """``cupy.random.Generator``: draws on the device (no host->device copy) from its bit generator."""

    def __init__(self, bit_generator):
        self.bit_generator = bit_generator

    def __getattr__(self, name):
        qualname = f"cupy.random.Generator.{name}"
        getattr(_np.random.Generator, name)  # AttributeError for what no generator has

        def method(*args, **kwargs):
            _record(qualname, kwargs)
            if "out" in kwargs and kwargs["out"] is not None:
                raise NotImplementedError("the stand-in's Generator does not model out=")
            bits = self.bit_generator._load()
            result = getattr(_np.random.Generator(bits), name)(*_dev(args, qualname), **_dev(kwargs, qualname))
            self.bit_generator._store(bits.state)
            return _wrap(result)

        return method


def _default_rng(seed=None):
    _record("cupy.random.default_rng")
    return Generator(XORWOW(seed))


random = _Namespace("cupy.random", _np.random, default_rng=_default_rng, Generator=Generator, XORWOW=XORWOW)


# ---------------------------------------------------------------- stride tricks (views of device memory)
def _as_strided(x, shape=None, strides=None):
    _record("cupy.lib.stride_tricks.as_strided", [k for k, v in (("shape", shape), ("strides", strides)) if v is not None])
    return ndarray._from(_np.lib.stride_tricks.as_strided(_dev(x, "as_strided"), shape=shape, strides=strides))


lib = _Namespace(
    "cupy.lib", _np.lib,
    stride_tricks=_Namespace("cupy.lib.stride_tricks", _np.lib.stride_tricks, as_strided=_as_strided),
)


# ---------------------------------------------------------------- the companion module, cupyx
def _scatter_add(a, slices, value):
    _record("cupyx.scatter_add")
    _np.add.at(_dev(a, "cupyx.scatter_add"), _index(slices, "cupyx.scatter_add"), _dev(value, "cupyx.scatter_add"))


def _special(name):
    import scipy.special  # noqa: PLC0415

    return _Ufunc(f"cupyx.scipy.special.{name}", getattr(scipy.special, name))


class _Special(types.SimpleNamespace):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _special(name)


cupyx = types.SimpleNamespace(scatter_add=_scatter_add, scipy=types.SimpleNamespace(special=_Special()))


# ---------------------------------------------------------------- everything else: NumPy's name, wrapped
_cache: dict[str, object] = {}


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    if name not in _cache:
        if not hasattr(_np, name):
            raise AttributeError(f"the CuPy stand-in has no {name!r} (NumPy has none either)")
        _cache[name] = _member(f"cupy.{name}", getattr(_np, name), name)
    else:
        _record(f"cupy.{name}")
    return _cache[name]


import sys as _sys  # noqa: E402

_this = _sys.modules[__name__]
