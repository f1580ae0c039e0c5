"""The one place that knows which array library runs: NumPy on the CPU, CuPy on a GPU.

Every op asks this module for ``xp`` — the array module that owns its inputs — and
never calls ``numpy.`` on tensor data directly (Chainer's ``get_array_module`` idea).

    xp = backend.get_array_module(array)      # numpy, or cupy for a device array
    xp = backend.current()                    # the module new tensors are created with

A backend is a name ("numpy", "cupy"), a device ("cpu", "cuda") and a module.  More
backends (CuPy, or a test stand-in for it) register themselves with :func:`register`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from types import ModuleType

import numpy


@dataclass(frozen=True)
class Backend:
    """An array library and the device its arrays live on."""

    name: str
    device: str
    xp: ModuleType

    def owns(self, array) -> bool:
        return isinstance(array, self.xp.ndarray)


NUMPY = Backend("numpy", "cpu", numpy)
_BACKENDS: dict[str, Backend] = {"numpy": NUMPY}
_DEVICE_TO_BACKEND: dict[str, str] = {"cpu": "numpy"}
_current: Backend = NUMPY


def register(backend: Backend) -> None:
    """Make a backend available to :func:`use` and :func:`get_array_module`."""
    _BACKENDS[backend.name] = backend
    _DEVICE_TO_BACKEND[backend.device] = backend.name


def unregister(name: str) -> None:
    global _current
    backend = _BACKENDS.pop(name)
    if _DEVICE_TO_BACKEND.get(backend.device) == name:
        del _DEVICE_TO_BACKEND[backend.device]
    if _current is backend:
        _current = NUMPY


def available() -> list[str]:
    return list(_BACKENDS)


def get_backend(name_or_device: str | None = None) -> Backend:
    """Look a backend up by name ("numpy", "cupy") or device ("cpu", "cuda")."""
    if name_or_device is None:
        return _current
    key = str(name_or_device)
    if key not in _BACKENDS:
        key = _DEVICE_TO_BACKEND.get(key.split(":")[0], key)
    if key not in _BACKENDS:
        raise ValueError(
            f"unknown backend or device {name_or_device!r}; available: "
            f"{sorted(set(_BACKENDS) | set(_DEVICE_TO_BACKEND))}"
        )
    return _BACKENDS[key]


def use(name: str) -> Backend:
    """Select the backend new tensors are created on: ``use("numpy")`` or ``use("cupy")``."""
    global _current
    _current = get_backend(name)
    return _current


@contextlib.contextmanager
def using(name: str):
    """Temporarily select a backend: ``with backend.using("cupy"): ...``."""
    global _current
    previous = _current
    use(name)
    try:
        yield _current
    finally:
        _current = previous


def current() -> ModuleType:
    """The array module new tensors are created with."""
    return _current.xp


def backend_of(array) -> Backend:
    """The backend that owns ``array`` (NumPy for host arrays and Python scalars)."""
    if isinstance(array, (numpy.ndarray, numpy.generic, int, float, bool)):
        return NUMPY
    for backend in _BACKENDS.values():
        if backend.owns(array):
            return backend
    return NUMPY


def get_array_module(*arrays) -> ModuleType:
    """``xp`` for these arrays: the first non-host array decides, else NumPy."""
    for array in arrays:
        backend = backend_of(array)
        if backend is not NUMPY:
            return backend.xp
    return numpy


def to_numpy(array) -> numpy.ndarray:
    """Copy an array to the host (the only device->host door besides ``Tensor.item``)."""
    if isinstance(array, numpy.ndarray):
        return array
    backend = backend_of(array)
    if backend is NUMPY:
        return numpy.asarray(array)
    return backend.xp.asnumpy(array)


def to_device(array, device: str):
    """Copy an array onto ``device`` ("cpu", "cuda", or a backend name)."""
    target = get_backend(device)
    if backend_of(array) is target:
        return array
    host = to_numpy(array)
    return host if target is NUMPY else target.xp.asarray(host)


def scatter_add(xp: ModuleType, target, index, values) -> None:
    """target[index] += values, summing repeated indices (the backward of gather)."""
    if xp is numpy:
        numpy.add.at(target, index, values)
    else:  # CuPy spells it cupyx.scatter_add; stand-ins may provide it on xp itself
        add_at = getattr(xp, "scatter_add", None)
        if add_at is None:
            import cupyx  # noqa: PLC0415 (only on a CuPy backend)

            add_at = cupyx.scatter_add
        add_at(target, index, values)


def erf(xp: ModuleType, x):
    """The error function on either backend (GELU needs it)."""
    if xp is numpy:
        import scipy.special  # noqa: PLC0415

        return scipy.special.erf(x)
    special = getattr(xp, "special_erf", None)
    if special is not None:
        return special(x)
    import cupyx.scipy.special  # noqa: PLC0415

    return cupyx.scipy.special.erf(x)


def blas_info() -> str:
    """Which BLAS NumPy runs on, and its kernel (via threadpoolctl where installed)."""
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415
    except ImportError:
        return "unknown (install threadpoolctl to see it)"
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    if not pools:
        return "none found"
    return ", ".join(
        f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')}, {p.get('num_threads')} threads)"
        for p in pools
    )
