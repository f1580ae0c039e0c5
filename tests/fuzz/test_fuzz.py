"""The fuzz suite of issue 10: every reader, fed a valid file's mutants and hand-written attacks, ends
each case in a correct load or minitl's one-line error — never another exception, a hang over 5 s
of CPU time (or 60 s of wall time: the machine may be shared),
more than MEMORY_BOUND of peak memory, values read from outside the file, or a crash.

Each format runs in its own subprocess (fuzz_runner.py), so a SIGSEGV shows as its return code and
its peak RSS is its own (counting the child processes the ``.h5`` reader parses in).  Default run:
50 mutants per format (+ the valid file + the hostile cases); ``-m slow``: 500 per format.  The
corpus is a pure function of the seed (fuzz_generate.py).
"""
from __future__ import annotations

import collections
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fuzz_generate as gen
import fuzz_runner as runner

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MEMORY_BOUND = 512 * 2 ** 20  # peak RSS of one format's batch, readers' children included (measured: 40-60 MiB)
NEEDS = {"h5": "h5py", "onnx": "onnx"}


def _fuzz(fmt, count, seed, tmp_path):
    module = NEEDS.get(fmt)
    if module and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed")
    workdir = tmp_path / fmt
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "PYTHONWARNINGS": "ignore"}
    limit = runner.TIMEOUT * (count + 40) + 120
    done = subprocess.run([sys.executable, os.path.join(HERE, "fuzz_runner.py"), fmt, str(count), str(seed), str(workdir)],
                          capture_output=True, text=True, timeout=limit, env=env)
    progress = workdir / f"{fmt}.progress"
    in_progress = progress.read_text() if progress.exists() else "?"
    assert done.returncode == 0, f"{fmt}: the reader process died ({done.returncode}) at case {in_progress!r}: {done.stderr[-2000:]}"
    rows = [json.loads(line) for line in (workdir / f"{fmt}.jsonl").read_text().splitlines()]
    summary = rows.pop()
    assert summary.get("summary") and summary["cases"] == len(rows)
    failures = [f"{r['case']}: {r['outcome']}" for r in rows if r["outcome"].startswith("FAIL")]
    assert not failures, f"{fmt}: {len(failures)} of {len(rows)} cases failed:\n" + "\n".join(failures[:20])
    assert summary["peak_rss"] < MEMORY_BOUND, f"{fmt}: peak RSS {summary['peak_rss'] / 2 ** 20:.0f} MiB"
    counts = collections.Counter(r["outcome"] for r in rows)
    assert sum(1 for r in rows if r["case"].startswith("#")) == count
    assert counts["refused"] > 0 and counts["identical"] >= 1
    print(f"{fmt}: {len(rows)} cases {dict(counts)}, peak RSS {summary['peak_rss'] / 2 ** 20:.0f} MiB, "
          f"{summary['cpu_seconds']} s CPU")
    return counts


@pytest.mark.parametrize("fmt", gen.FORMATS)
def test_fuzz(fmt, tmp_path):
    _fuzz(fmt, 50, 0, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", gen.FORMATS)
def test_fuzz_slow(fmt, tmp_path):
    _fuzz(fmt, 500, 1, tmp_path)


# ------------------------------------------------------------------ the checks themselves can fail
def test_outside_read_check_finds_values_not_in_the_file():
    data = np.arange(8, dtype=np.float32).tobytes()
    assert runner._outside([("w", np.arange(8, dtype=np.float32)[::-1])], data) is None  # reordered: fine
    assert runner._outside([("w", np.array([1.0, 123.25], np.float32))], data) == "w"  # 123.25 is not in it


def test_a_hang_cannot_be_swallowed_by_a_reader():
    assert not issubclass(runner.Hang, Exception)  # readers catch Exception; the timer's exception passes them


def test_cases_are_reproducible_from_the_seed():
    valid = bytes(range(256)) * 4
    assert gen.mutants("safetensors", valid, 5, 7) == gen.mutants("safetensors", valid, 5, 7)
    assert gen.mutants("safetensors", valid, 5, 7) != gen.mutants("safetensors", valid, 5, 8)


# ------------------------------------------------------------------ a few through the real command line
@pytest.mark.parametrize("fmt, label", [("pth_legacy", "negative view offset"), ("npz", "1e12 elements"),
                                        ("safetensors", "deep json")])
def test_command_line_subprocess_prints_one_line(fmt, label, tmp_path):
    data = dict(gen.hostile(fmt, str(tmp_path)))[label]
    path = tmp_path / f"hostile{gen.SUFFIX[fmt]}"
    path.write_bytes(data)
    done = subprocess.run([sys.executable, "-m", "minitl", "weights", "inspect", str(path)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("minitl weights: error: ") and str(path) in done.stderr
