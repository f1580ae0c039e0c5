"""Run one format's fuzz cases in this process and report each outcome (run as a subprocess by test_fuzz.py).

    python tests/fuzz/fuzz_runner.py FORMAT COUNT SEED WORKDIR   -> WORKDIR/FORMAT.jsonl, one line per case

Each case's file is loaded through the public API (and, for weight formats, `minitl weights inspect`
in-process).  Outcomes:

    identical   loaded, bit-identical to the valid file
    changed     loaded other values: allowed only where no checksum guards them, and every loaded
                element's bytes must occur in the file (nothing read from outside it)
    refused     minitl's error (one line, naming the file) — or, for the feature cache, a miss
    FAIL ...    anything else: another exception, a multi-line message, a hang (over TIMEOUT seconds of
                CPU time, in this process or in the reader's child processes, or WALL_TIMEOUT
                seconds of wall time: the machine may be shared), values from outside the file,
                a CLI traceback

The last line holds the peak RSS of the process and of the reader's child processes.  A crash
(SIGSEGV) shows as the subprocess's return code, with the case in progress named in
WORKDIR/FORMAT.progress.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fuzz_generate as gen  # noqa: E402

TIMEOUT = 5.0  # CPU seconds per case: for the load, and again for the CLI
WALL_TIMEOUT = 60.0  # wall seconds per case: catches a reader blocked without using CPU


class Hang(BaseException):
    """Raised by the timer: a BaseException, so no reader's ``except Exception`` can swallow it."""


def _alarm(signum, frame):
    raise Hang()


def _start_timers():
    signal.setitimer(signal.ITIMER_PROF, TIMEOUT)
    signal.setitimer(signal.ITIMER_REAL, WALL_TIMEOUT)


def _stop_timers():
    signal.setitimer(signal.ITIMER_PROF, 0)
    signal.setitimer(signal.ITIMER_REAL, 0)


def _windows(data: bytes, sizes) -> dict:
    return {k: {data[i : i + k] for i in range(len(data) - k + 1)} for k in sizes}


def _outside(arrays, data: bytes) -> str | None:
    """The name of an array holding an element whose bytes occur nowhere in the file (either byte order)."""
    arrays = [(n, np.asarray(a)) for n, a in arrays]
    windows = _windows(data, {a.dtype.itemsize for _, a in arrays if a.size})
    for name, array in arrays:
        if not array.size:
            continue
        k = array.dtype.itemsize
        flat = np.ascontiguousarray(array).reshape(-1).view(f"V{k}")
        for element in np.unique(flat)[:100_000]:
            raw = bytes(element)
            if raw not in windows[k] and raw[::-1] not in windows[k]:
                return name
    return None


def _flatten(tree, prefix=""):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _flatten(value, f"{prefix}/{key}")
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from _flatten(value, f"{prefix}/{i}")
    else:
        yield prefix, tree


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return type(a) is type(b) and a == b


class Format:
    """How to write a case of one format and load it through the public API."""

    def __init__(self, fmt, workdir):
        self.fmt, self.workdir = fmt, workdir
        self.path = os.path.join(workdir, "case" + gen.SUFFIX[fmt])
        if fmt == "feature_cache":
            from minitl.train.features import FeatureCache

            self.cache = FeatureCache(os.path.join(workdir, "cache"))
            self.path = self.cache.paths("k")[0]
            os.makedirs(self.cache.directory, exist_ok=True)

    def write(self, data: bytes, index: int = 0) -> str:
        """Write the case; returns the path of the file that holds the case's bytes."""
        if self.fmt != "feature_cache":
            with open(self.path, "wb") as handle:
                handle.write(data)
            return self.path
        x_path, y_path, meta = self.cache.paths("k")
        valid_x, valid_y = self.valid, gen.feature_cache_labels()
        target = y_path if index % 4 == 3 else x_path
        for path, raw in ((x_path, valid_x), (y_path, valid_y)):
            with open(path, "wb") as handle:
                handle.write(data if path == target else raw)
        with open(meta, "w") as handle:
            handle.write("{}")
        return target

    def files(self):
        """The files a load reads (all of them count as 'the file' for the outside-read check)."""
        return self.cache.paths("k")[:2] if self.fmt == "feature_cache" else [self.path]

    def load(self):
        """Flat [(name, value)] of what loaded, or None for a cache miss; raises whatever the API raises."""
        if self.fmt == "checkpoint":
            from minitl.train.checkpoint import load_checkpoint

            return list(_flatten(load_checkpoint(self.path)))
        if self.fmt == "feature_cache":
            loaded = self.cache.load("k")
            if loaded is None:
                return None
            return [("features", np.array(loaded[0])), ("labels", np.array(loaded[1]))]
        from minitl.transfer import read_file

        state = read_file(self.path)[0]
        return [(name, np.asarray(value)) for name, value in state.items()]

    def error_types(self):
        from minitl.transfer import WeightsError

        return (WeightsError,)


def _peak_rss() -> int:
    """Peak resident memory of this process image or any child it waited for (the ``.h5`` reader parses
    in a forked child), in bytes.  Linux: VmHWM from /proc/self/status, the high-water mark of this
    program's own memory; ru_maxrss there keeps the forking parent's mark across fork + exec, so under
    pytest-xdist it reported the worker's size (656 MiB after a full run), not ours.  A forked child's
    ru_maxrss starts from this process's size at the fork: an upper bound of its own peak."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return max(children, int(line.split()[1]) * 1024)
    except OSError:
        pass
    return max(children, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def _children_cpu() -> float:
    """CPU seconds used by the children this process has waited for (the reader's child processes):
    ITIMER_PROF counts only this process, so each load's children are checked against TIMEOUT too."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cli(path):
    from minitl.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["weights", "inspect", path])
    return code, err.getvalue()


def run_case(fmt_obj, label, data, index, expected, checksummed) -> str:
    target = fmt_obj.write(data, index)
    _start_timers()
    try:
        try:
            began = _children_cpu()
            loaded = fmt_obj.load()
            if _children_cpu() - began > TIMEOUT:
                raise Hang()
        except fmt_obj.error_types() as error:
            text = str(error)
            if "\n" in text or len(text) > 1200 or fmt_obj.path not in text and target not in text:
                return f"FAIL message not one line naming the file: {text[:300]!r}"
            loaded = "refused"
        except Hang:
            return f"FAIL hang over {TIMEOUT:g} s"
        except BaseException as error:  # noqa: BLE001 - the point: nothing else may escape
            return f"FAIL escaped {type(error).__module__}.{type(error).__name__}: {str(error)[:200]}"
        if fmt_obj.fmt in gen.WEIGHTS:
            _start_timers()  # the command line gets its own 5 s
            try:
                began = _children_cpu()
                code, err = _cli(fmt_obj.path)
                if _children_cpu() - began > TIMEOUT:
                    raise Hang()
            except Hang:
                return f"FAIL CLI hang over {TIMEOUT:g} s"
            except BaseException as error:  # noqa: BLE001
                return f"FAIL CLI escaped {type(error).__name__}: {str(error)[:200]}"
            if code not in (0, 2) or (code == 2 and (err.count("\n") != 1 or not err.startswith("minitl weights: error:"))):
                return f"FAIL CLI exit {code}, stderr {err[:300]!r}"
            if loaded == "refused" and code != 2:  # (a loaded file may still fail inspect's later steps)
                return "FAIL the CLI accepted a file the API refused"
        _stop_timers()
    except Hang:
        return f"FAIL hang over {TIMEOUT:g} s"
    finally:
        _stop_timers()
    if loaded == "refused" or loaded is None:
        return "refused"
    if len(loaded) == len(expected) and all(n == m and _same(a, b) for (n, a), (m, b) in zip(loaded, expected)):
        return "identical"
    if checksummed:
        return "FAIL loaded changed values although a checksum guards them"
    raw = b""
    for path in fmt_obj.files():
        with open(path, "rb") as handle:
            raw += handle.read()
    outside = _outside([(n, v) for n, v in loaded if isinstance(v, np.ndarray)], raw)
    if outside is not None:
        return f"FAIL {outside}: values that occur nowhere in the file (read outside it)"
    return "changed"


def main(fmt, count, seed, workdir):
    signal.signal(signal.SIGALRM, _alarm)
    signal.signal(signal.SIGPROF, _alarm)
    os.makedirs(workdir, exist_ok=True)
    fmt_obj = Format(fmt, workdir)
    valid = gen.valid_bytes(fmt, workdir)
    fmt_obj.valid = valid
    fmt_obj.write(valid)
    expected = fmt_obj.load()
    cases = [("valid", valid, False)] + gen.mutants(fmt, valid, count, seed)
    cases += [(f"hostile: {label}", data, None) for label, data in gen.hostile(fmt, workdir)]
    progress = os.path.join(workdir, f"{fmt}.progress")
    began = time.process_time() + _children_cpu()
    with open(os.path.join(workdir, f"{fmt}.jsonl"), "w") as out:
        for index, (label, data, rezipped) in enumerate(cases):
            with open(progress, "w") as handle:
                handle.write(label)
            checksummed = fmt in gen.ZIPPED and rezipped is False and label != "valid"
            outcome = run_case(fmt_obj, label, data, index, expected, checksummed)
            if rezipped is None and outcome != "refused":  # a hostile case must be refused
                outcome = outcome if outcome.startswith("FAIL") else f"FAIL hostile case loaded ({outcome})"
            if label == "valid" and outcome != "identical":
                outcome = f"FAIL the valid file did not load identically ({outcome})"
            out.write(json.dumps({"case": label, "outcome": outcome}) + "\n")
            out.flush()
        peak = _peak_rss()
        out.write(json.dumps({"summary": True, "cases": len(cases), "peak_rss": peak,
                              "cpu_seconds": round(time.process_time() + _children_cpu() - began, 2)}) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
