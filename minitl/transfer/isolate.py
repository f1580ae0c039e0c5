"""Run a reader in a forked child process with bounded memory and CPU time; its arrays come back over a pipe.

For readers whose parsing happens inside a C library that minitl cannot bound from Python.  libhdf5
is the case in point: a Keras ``.h5`` whose variable-length string (in the ``layer_names``
attribute) claims a length of ~3 GB makes libhdf5 allocate and zero-fill that much *before* it
looks up the string and reports the damage, and no h5py call tells the length in advance.  So
``read_in_child(read, path, kind)`` forks, and the child, before calling ``read(path)``, lowers
its own limits:

    address space  RLIMIT_AS  = (address space at the fork) + budget(file) + SLACK    (SLACK = 256 MiB)
    CPU time       RLIMIT_CPU = 60 s + 1 s per 32 MiB of budget(file)
    core files     RLIMIT_CORE = 0

(``budget(file)`` is :mod:`limits`' ``max(64 MiB, 8 x file size)`` or ``MINITL_MAX_LOAD_BYTES``).
An allocation past the limit fails inside the library, which reports it as an error; a crash
(SIGSEGV) or CPU exhaustion kills only the child.  Either way the caller gets one
:class:`WeightsError` line naming the file.

The child sends plain records on a pipe (never a pickle); the parent trusts none of them more than
a file: names and JSON are length-limited, arrays must be numeric and fit the same budget.

    b"A" <u32 n> name (UTF-8, n bytes) <.npy: magic, header, raw data>     one array
    b"M" <u32 n> JSON object of strings                                   the metadata
    b"E" <u32 n> JSON {"type": error class name, "message": one line}     the reader's error
    b"Z"                                                                   the end

Where ``os.fork`` does not exist (Windows) the reader runs in-process; where ``/proc/self/status``
does not (macOS) the address-space limit is left out (the CPU limit stays).
"""
from __future__ import annotations

import json
import os
import signal
import struct
from collections import OrderedDict

import numpy

from .errors import (
    ArchitectureMismatchError,
    CorruptFileError,
    SizeLimitError,
    UnsafeFileError,
    WeightsError,
    _with_path,
    one_line,
    reading,
)
from .limits import Budget, count_of

SLACK = 256 * 2**20  # the library's own overhead beyond the arrays (chunk cache, decompression buffers, parsing)
CPU_SECONDS = 60
CPU_BYTES_PER_SECOND = 32 * 2**20
MAX_RECORD = 2**20  # a name or a JSON record
ERRORS = {cls.__name__: cls for cls in (WeightsError, CorruptFileError, UnsafeFileError, SizeLimitError,
                                        ArchitectureMismatchError)}


def read_in_child(read, path, kind: str):
    """``read(path) -> (OrderedDict name -> array, dict str -> str)``, run in a bounded child process."""
    path = os.fspath(path)
    with open(path, "rb"):  # a missing or unreadable file fails here, as with an in-process reader
        pass
    if not hasattr(os, "fork"):
        return read(path)
    with reading(path, kind):
        budget = Budget(path)
        receive, send = os.pipe()
        _widen(send)
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(receive)
            _child(send, read, path, kind, budget.limit)
        os.close(send)
        status = None
        try:
            with os.fdopen(receive, "rb") as stream:
                result = _receive(stream, budget)
            status = _wait(pid)
        finally:
            if status is None:  # interrupted (Ctrl-C, a timer) or a malformed record: the child goes too
                _kill(pid)
        if isinstance(result, tuple):
            return result
        if result is not None:
            raise result
        raise _death(status, path, kind, budget.limit)


# ------------------------------------------------------------------ the child
def _child(fd, read, path, kind, budget_limit):
    code = 1
    try:
        _quiet()
        with os.fdopen(fd, "wb") as out:
            try:
                with reading(path, kind):  # MemoryError, a library's OSError, ...: one WeightsError
                    _set_limits(budget_limit)
                    state, metadata = read(path)
            except WeightsError as error:
                _record(out, b"E", json.dumps({"type": type(error).__name__, "message": str(error)}).encode())
            else:
                for name, array in state.items():
                    _send_array(out, name, array)
                _record(out, b"M", json.dumps({str(k): str(v) for k, v in metadata.items()}).encode())
            out.write(b"Z")
        code = 0
    except BaseException:  # noqa: BLE001 - the child must end here, whatever happened
        pass
    finally:
        os._exit(code)


def _quiet():
    """The child's stderr goes to /dev/null and faulthandler is off: if the library crashes, the parent's
    one-line error is all the user sees (no "Fatal Python error" dump, no glibc abort message)."""
    import faulthandler

    faulthandler.disable()
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)


def _set_limits(budget_limit):
    import resource

    seconds = CPU_SECONDS + budget_limit // CPU_BYTES_PER_SECOND
    _lower(resource, resource.RLIMIT_CORE, 0)
    _lower(resource, resource.RLIMIT_CPU, seconds)
    mapped = _address_space()
    if mapped is not None:
        _lower(resource, resource.RLIMIT_AS, mapped + budget_limit + SLACK)


def _lower(resource, which, value):
    soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    if soft == resource.RLIM_INFINITY or value < soft:
        resource.setrlimit(which, (value, hard))


def _address_space():
    """This process's mapped address space in bytes (``VmSize``), or None where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _record(out, tag, payload):
    out.write(tag + struct.pack("<I", len(payload)) + payload)


class _Writer:
    """Not a file object to NumPy, so ``write_array`` writes in chunks through ``.write`` (never ``tofile``)."""

    def __init__(self, out):
        self.write = out.write


def _send_array(out, name, array):
    _record(out, b"A", str(name).encode("utf-8"))
    array = numpy.asarray(array)
    if not array.flags.c_contiguous or array.dtype.hasobject:
        numpy.lib.format.write_array(_Writer(out), array, allow_pickle=False)
        return
    fmt = numpy.lib.format
    fmt.write_array_header_2_0(out, fmt.header_data_from_array_1_0(array))
    out.write(memoryview(array.reshape(-1)).cast("B"))  # straight from the array's memory, no copy


# ------------------------------------------------------------------ the parent
def _receive(stream, budget):
    """(state, metadata), the child's error, or None when the records stop early (the child died)."""
    state = OrderedDict()
    metadata = None
    while True:
        tag = stream.read(1)
        if tag == b"Z" and metadata is not None:
            return state, metadata
        if tag not in (b"A", b"M", b"E"):
            return None
        payload = _payload(stream)
        if payload is None:
            return None
        if tag == b"E":
            return _error(payload)
        if tag == b"M":
            metadata = json.loads(payload)
            if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
                raise CorruptFileError("the reader returned malformed metadata")
            continue
        array = _receive_array(stream, budget, payload.decode("utf-8"))
        if array is None:
            return None
        state[payload.decode("utf-8")] = array


def _payload(stream):
    head = stream.read(4)
    if len(head) < 4:
        return None
    (size,) = struct.unpack("<I", head)
    if size > MAX_RECORD:
        raise CorruptFileError(f"the reader sent a {size:,}-byte record")
    payload = stream.read(size)
    return payload if len(payload) == size else None


def _error(payload):
    record = json.loads(payload)
    cls = ERRORS.get(record.get("type"), CorruptFileError)
    return cls(one_line(record.get("message", "")))


def _receive_array(stream, budget, name):
    fmt = numpy.lib.format
    try:
        version = fmt.read_magic(stream)
        header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = header(stream)
    except (ValueError, EOFError):
        return None
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise CorruptFileError(f"the reader returned {name} as dtype {dtype}")
    budget.take(count_of(shape) * dtype.itemsize, f"array {name}")
    array = numpy.empty(shape, dtype=dtype, order="F" if fortran else "C")
    view = memoryview(array.reshape(-1, order="A")).cast("B")
    filled = 0
    while filled < len(view):
        got = stream.readinto(view[filled:])
        if not got:
            return None
        filled += got
    return array


def _death(status, path, kind, budget_limit) -> WeightsError:
    """The error for a child that ended without finishing its records."""
    number = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    if number == getattr(signal, "SIGXCPU", None):
        seconds = CPU_SECONDS + budget_limit // CPU_BYTES_PER_SECOND
        return CorruptFileError(f"{path}: reading this {kind} file took more than {seconds} s of CPU time; refused")
    how = f"signal {signal.Signals(number).name}" if number else f"exit status {os.WEXITSTATUS(status)}"
    return CorruptFileError(_with_path(path, f"the {kind} library crashed on this file ({how}); refused"))


def _widen(fd, size=2**20):
    """A 1 MiB pipe buffer where Linux allows it (default 64 KiB): 16x fewer switches between the processes."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (ImportError, OSError):
        pass


def _wait(pid) -> int:
    """The child's exit status (0 where SIGCHLD is ignored and the system reaped it already)."""
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _wait(pid)
