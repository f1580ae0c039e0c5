"""The ``.h5`` reader parses in a bounded child process (minitl/transfer/isolate.py).

The regression case: one flipped byte in the length of a variable-length string (the
``layer_names`` attribute) made libhdf5 allocate and zero-fill that length (~3 GB in the slow
fuzz run's mutant #40 of seed 1) before reporting the damage; no h5py call tells the length in
advance.  The file here claims 1 GiB: the read must end in one error line naming the file, and
the peak memory of the reading process and its children must stay far below the claim.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from collections import OrderedDict

import numpy as np
import pytest

from minitl.transfer import CorruptFileError, SizeLimitError, UnsafeFileError
from minitl.transfer import isolate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLAIM = 2**30  # bytes the damaged string length asks for
BOUND = 512 * 2**20  # peak RSS of the reading process and its children

PEAK = """
import json, resource, sys
from minitl.transfer import WeightsError, read_file
try:
    read_file(sys.argv[1])
    outcome = "loaded"
except WeightsError as error:
    outcome = type(error).__name__ + ": " + str(error)
own = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"outcome": outcome, "peak": max(own, children)}))
"""


def _vlen_bomb(path):
    """A valid Keras .h5 whose layer_names string 'fc' (a vlen element: u32 length, heap address, index)
    claims CLAIM + 2 bytes instead of 2."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = [b"fc"]  # a list of bytes: stored as variable-length strings
        group = handle.create_group("fc")
        group.attrs["weight_names"] = [b"fc/kernel:0"]
        group.create_group("fc").create_dataset("kernel:0", data=np.ones((2, 3), np.float32))
    data = path.read_bytes()
    heap = data.index(b"GCOL")  # the global heap collection holding the strings (base address 0)
    element = struct.pack("<IQI", 2, heap, 1)
    assert data.count(element) == 1
    path.write_bytes(data.replace(element, struct.pack("<IQI", CLAIM + 2, heap, 1)))
    return path


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak RSS from /proc (Linux)")
def test_h5_string_length_bomb_is_refused_within_bounded_memory(tmp_path):
    path = _vlen_bomb(tmp_path / "bomb.h5")
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", PEAK, str(path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": ROOT, "OPENBLAS_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["outcome"].startswith("SizeLimitError: " + str(path)), result["outcome"]
    assert "\n" not in result["outcome"] and "MINITL_MAX_LOAD_BYTES" in result["outcome"]
    assert result["peak"] < BOUND, f"peak RSS {result['peak'] / 2**20:.0f} MiB for a {CLAIM / 2**20:.0f} MiB claim"
    print(f"refused in {time.monotonic() - began:.1f} s wall, peak RSS {result['peak'] / 2**20:.0f} MiB")


def test_h5_string_length_bomb_loads_nothing_in_process(tmp_path):
    from minitl.transfer import read_file

    path = _vlen_bomb(tmp_path / "bomb.h5")
    with pytest.raises(SizeLimitError, match="ran out of memory"):
        read_file(path)


# ------------------------------------------------------------------ the child process itself
def _file(tmp_path):
    path = tmp_path / "any.bin"
    path.write_bytes(b"x" * 100)
    return str(path)


def test_arrays_and_metadata_come_back_unchanged(tmp_path):
    rng = np.random.default_rng(0)
    state = OrderedDict([
        ("w", rng.standard_normal((3, 4)).astype(np.float32)),
        ("fortran", np.asfortranarray(rng.standard_normal((2, 5)))),
        ("scalar", np.array(7, np.int8)),
        ("empty", np.zeros((0, 4), np.float16)),
        ("mask", np.array([True, False])),
        ("ü/name:0", np.arange(5, dtype=np.uint64)),
    ])
    got, metadata = isolate.read_in_child(lambda path: (state, {"keras_version": "2.4"}), _file(tmp_path), "test")
    assert list(got) == list(state) and metadata == {"keras_version": "2.4"}
    for name, array in state.items():
        assert got[name].dtype == array.dtype and got[name].shape == array.shape
        assert np.array_equal(got[name], array)


def test_the_readers_error_type_and_message_pass_through(tmp_path):
    path = _file(tmp_path)

    def refuse(path):
        raise UnsafeFileError("an external link to /etc/passwd")

    with pytest.raises(UnsafeFileError, match=f"^{path}: an external link to /etc/passwd$"):
        isolate.read_in_child(refuse, path, "test")


def test_a_crash_in_the_library_is_one_error_naming_the_file(tmp_path):
    import ctypes

    path = _file(tmp_path)
    with pytest.raises(CorruptFileError, match=f"^{path}: the test library crashed on this file \\(signal SIGSEGV\\)"):
        isolate.read_in_child(lambda path: ctypes.string_at(0), path, "test")


def test_an_allocation_past_the_budget_fails_in_the_child(tmp_path):
    path = _file(tmp_path)  # 100 bytes: budget 64 MiB, so the child may map 64 + 256 MiB more
    with pytest.raises(SizeLimitError, match=f"^{path}: reading this test file ran out of memory"):
        isolate.read_in_child(lambda path: ({"big": np.ones(2**30, np.uint8)}, {}), path, "test")


def test_cpu_time_is_limited(tmp_path, monkeypatch):
    monkeypatch.setattr(isolate, "CPU_SECONDS", 1)
    monkeypatch.setattr(isolate, "CPU_BYTES_PER_SECOND", 2**62)

    def spin(path):
        while True:
            pass

    with pytest.raises(CorruptFileError, match="took more than 1 s of CPU time"):
        isolate.read_in_child(spin, _file(tmp_path), "test")


def test_an_interrupted_read_leaves_no_child_behind(tmp_path):
    import signal

    marker = tmp_path / "pid"

    def hang(path):
        marker.write_text(str(os.getpid()))
        time.sleep(120)

    class Interrupted(BaseException):
        pass

    def interrupt(signum, frame):
        raise Interrupted()

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 2.0)
        with pytest.raises(Interrupted):
            isolate.read_in_child(hang, _file(tmp_path), "test")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(int(marker.read_text()), 0)
