"""The one place that knows which array library runs: NumPy on the CPU, CuPy on a GPU.

Every op asks this module for ``xp`` — the array module that owns its inputs — and
never calls ``numpy.`` on tensor data directly (Chainer's ``get_array_module`` idea).

    xp = backend.get_array_module(array)      # numpy, or cupy for a device array
    xp = backend.current()                    # the module new tensors are created with

A backend is a name ("numpy", "cupy"), a device ("cpu", "cuda"), its array module and,
for CuPy, the ``cupyx`` companion module (scatter-add, special functions).  CuPy is never
imported at ``import minitl``: the first request for "cupy"/"cuda" checks that a GPU is
usable (:func:`gpu_status`) and registers the backend, or raises one
:class:`DeviceUnavailableError` saying why not.  Other backends (the test suite's strict
CuPy stand-in) register themselves with :func:`register`.
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
    extras: ModuleType | None = None  # the cupyx-like companion module of a device backend

    def owns(self, array) -> bool:
        return isinstance(array, self.xp.ndarray)


NUMPY = Backend("numpy", "cpu", numpy)
_BACKENDS: dict[str, Backend] = {"numpy": NUMPY}
_DEVICE_TO_BACKEND: dict[str, str] = {"cpu": "numpy"}
_current: Backend = NUMPY


class DeviceUnavailableError(RuntimeError):
    """A device (``cuda``) was asked for where none is usable; the message says why."""


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
    base, _, index = key.partition(":")
    if index and index != "0":
        raise ValueError(
            f"device {key!r}: minitl computes on one device of each kind ({base} or {base}:0); "
            "choose the GPU with CUDA_VISIBLE_DEVICES"
        )
    if key not in _BACKENDS:
        key = _DEVICE_TO_BACKEND.get(base, key)
    if key not in _BACKENDS and key.split(":")[0] in ("cupy", "cuda", "gpu"):
        return _cupy_backend(name_or_device)
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
    if type(array).__module__.split(".")[0] == "cupy":  # a CuPy array made outside minitl
        return _cupy_backend("cuda")
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


def extras(xp: ModuleType) -> ModuleType:
    """The ``cupyx``-like companion module of a device array module."""
    for backend in _BACKENDS.values():
        if backend.xp is xp and backend.extras is not None:
            return backend.extras
    raise ValueError(f"no companion (cupyx) module registered for array module {getattr(xp, '__name__', xp)!r}")


def scatter_add(xp: ModuleType, target, index, values) -> None:
    """target[index] += values, summing repeated indices (the backward of gather)."""
    if xp is numpy:
        numpy.add.at(target, index, values)
    else:  # CuPy spells it cupyx.scatter_add (an atomic add on the device)
        extras(xp).scatter_add(target, index, values)


def index_add_rows(xp: ModuleType, target, index, rows) -> None:
    """target[index[k], :] += rows[k, :] for every k, summing repeated indices (an embedding's backward).

    ``index`` 1-D integers, ``rows`` (len(index), D), ``target`` (V, D).  NumPy: the sum as a sparse
    (unique ids x occurrences) 0/1 matrix times ``rows`` — one sparse GEMM, measured 4x faster than
    ``numpy.add.at`` for 4,096 ids into a 30,522 x 384 table; CuPy: ``cupyx.scatter_add`` (atomic adds).
    """
    if xp is not numpy:
        extras(xp).scatter_add(target, index, rows)
        return
    if index.size == 0:
        return
    import scipy.sparse  # noqa: PLC0415

    unique, position = numpy.unique(index, return_inverse=True)
    ones = numpy.ones(index.size, dtype=rows.dtype)
    gather = scipy.sparse.csr_matrix((ones, (position.reshape(-1), numpy.arange(index.size))),
                                     shape=(unique.size, index.size))
    target[unique] += gather @ rows


def ignore_overflow():
    """A context in which NumPy's floating-point overflow (e.g. e^{v} for v > 88 in float32 -> inf) is
    not warned about, where inf is the intended limit (1 / (1 + inf) = 0).  CuPy never warns."""
    return numpy.errstate(over="ignore")


_blas_controller = None


def single_thread_blas(xp: ModuleType):
    """A context in which NumPy's BLAS runs on one thread (a no-op on a GPU, or without threadpoolctl).

    For stacks or loops of small GEMMs (attention's per-head Q Kᵀ, 128 x 32 x 128; a recurrent
    layer's steps, also as ``one_blas_thread``): each BLAS call wakes and joins its threads, which
    costs more than the product itself, and a descheduled worker thread stalls every step;
    measured 25x faster on one thread for 192 such products on this 2-core machine under load.  threadpoolctl is optional (imported
    lazily, looked up once).
    """
    global _blas_controller
    if xp is not numpy:
        return contextlib.nullcontext()
    if _blas_controller is None:
        try:
            from threadpoolctl import ThreadpoolController  # noqa: PLC0415
        except ImportError:
            _blas_controller = False
        else:
            _blas_controller = ThreadpoolController().select(user_api="blas")
    return _blas_controller.limit(limits=1) if _blas_controller else contextlib.nullcontext()


def erf(xp: ModuleType, x):
    """The error function on either backend (GELU needs it)."""
    if xp is numpy:
        import scipy.special  # noqa: PLC0415

        return scipy.special.erf(x)
    return extras(xp).scipy.special.erf(x)


# ============================================================================ the GPU (CuPy)
_gpu_status: dict | None = None


def gpu_status(refresh: bool = False) -> dict:
    """Whether a CUDA GPU is usable through CuPy, and if not, why not.

    Returns ``{"usable": bool, "reason": str, "cupy": version or None, "cuda_driver": int,
    "cuda_runtime": int, "devices": int, "device_name": str or None}``; the checks run in
    order: CuPy importable -> NVIDIA driver present -> driver new enough for CuPy's CUDA ->
    at least one device -> a tiny kernel runs.  Cached; ``refresh=True`` checks again.
    """
    global _gpu_status
    if _gpu_status is not None and not refresh:
        return dict(_gpu_status)
    status = {"usable": False, "reason": "", "cupy": None, "cuda_driver": None, "cuda_runtime": None,
              "devices": 0, "device_name": None}
    _gpu_status = status
    try:
        import cupy  # noqa: PLC0415
    except ImportError as error:
        status["reason"] = f"CuPy is not installed (pip install 'minitl[gpu]'): {error}"
        return dict(status)
    except Exception as error:  # a broken CuPy install raises all sorts at import
        status["reason"] = f"CuPy failed to import: {type(error).__name__}: {error}"
        return dict(status)
    status["cupy"] = cupy.__version__
    for check in (_driver_problem, _device_problem):  # each fills in what it finds; a reason stops the checks
        reason = check(cupy, status)
        if reason:
            status["reason"] = reason
            return dict(status)
    status["usable"] = True
    status["reason"] = f"{status['device_name']} (CUDA driver {_cuda_version(status['cuda_driver'])})"
    return dict(status)


def _driver_problem(cupy, status: dict) -> str:
    """Why the NVIDIA driver cannot serve this CuPy ('' when it can); records the CUDA versions."""
    runtime = cupy.cuda.runtime
    try:
        status["cuda_runtime"] = runtime.runtimeGetVersion()
    except Exception:  # noqa: BLE001 - reported through the driver check below
        pass
    try:
        status["cuda_driver"] = runtime.driverGetVersion()
    except Exception as error:  # noqa: BLE001
        return f"no NVIDIA driver (CuPy {cupy.__version__} imported): {error}"
    if not status["cuda_driver"]:
        return f"no NVIDIA driver found (CuPy {cupy.__version__} imports, but libcuda is not installed)"
    if status["cuda_runtime"] and status["cuda_driver"] < status["cuda_runtime"] // 1000 * 1000:
        return (f"the NVIDIA driver supports CUDA {_cuda_version(status['cuda_driver'])} but this CuPy is built for "
                f"CUDA {_cuda_version(status['cuda_runtime'])}: install the CuPy wheel matching the driver "
                "(cupy-cuda12x for CUDA 12, cupy-cuda13x for CUDA 13)")
    return ""


def _device_problem(cupy, status: dict) -> str:
    """Why no CUDA device runs kernels ('' when device 0 does); records the device count and name."""
    runtime = cupy.cuda.runtime
    try:
        status["devices"] = runtime.getDeviceCount()
    except Exception as error:  # noqa: BLE001
        return f"no CUDA device: {type(error).__name__}: {error}"
    if status["devices"] == 0:
        return "no CUDA device visible (check CUDA_VISIBLE_DEVICES)"
    try:
        name = runtime.getDeviceProperties(0)["name"]
        status["device_name"] = name.decode() if isinstance(name, bytes) else str(name)
        total = (cupy.arange(4, dtype=numpy.float32) * 2).sum().item()
        if total != 12.0:
            raise RuntimeError(f"a test kernel computed {total}, expected 12.0")
    except Exception as error:  # noqa: BLE001
        return f"the CUDA device does not run kernels: {type(error).__name__}: {error}"
    return ""


def _cuda_version(code) -> str:
    return f"{code // 1000}.{code % 1000 // 10}" if code else "none"


def _cupy_backend(requested) -> Backend:
    """Register the CuPy backend on first use, or raise one clear error saying why it cannot be."""
    if "cupy" in _BACKENDS:
        return _BACKENDS["cupy"]
    status = gpu_status()
    if not status["usable"]:
        raise DeviceUnavailableError(
            f"device {str(requested)!r} asked for, but no GPU is usable here: {status['reason']}. "
            "Use the CPU instead (device='cpu', --device cpu)."
        )
    import cupy  # noqa: PLC0415
    import cupyx  # noqa: PLC0415
    import cupyx.scipy.special  # noqa: F401, PLC0415 (erf)

    register(Backend("cupy", "cuda", cupy, cupyx))
    return _BACKENDS["cupy"]


def synchronize(device=None) -> None:
    """Wait for queued device work (timing); nothing to do on the CPU."""
    cuda = getattr(get_backend(device).xp, "cuda", None)
    if cuda is not None:
        cuda.runtime.deviceSynchronize()


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


# the same context for the recurrent layers' step loops (h_{t-1} W_hhᵀ, (32 × 128)·(128 × 512)): one home
one_blas_thread = single_thread_blas
