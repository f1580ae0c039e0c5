"""The house rules of every benchmark, in one place (``minitl bench`` and ``benchmarks/*.py``):

* each measurement runs in its own **worker process** (a fresh interpreter: no warm caches,
  no OpenBLAS threads still spinning from the competitor's call);
* the workers' environment drops ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` (they would
  change OpenBLAS's kernel choice), and may pin the BLAS/OpenMP thread count for everyone;
* the competitors are **alternated**: A B in one round, B A in the next, so neither always
  runs first or right after the other;
* the figures are **medians** over the rounds.

A worker prints its results as JSON objects, one a line; :func:`run_worker` returns them.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
SOURCE_ROOT = str(Path(__file__).resolve().parents[2])  # the checkout minitl runs from


def overrides_in_environment() -> list:
    """Which of :data:`OPENBLAS_OVERRIDES` are set here (and so unset for the workers): for the report."""
    return [name for name in OPENBLAS_OVERRIDES if name in os.environ]


def worker_env(threads: int | None = None) -> dict:
    """This environment without the OpenBLAS overrides, minitl's checkout first on PYTHONPATH (a
    worker imports the same minitl from a source tree), and ``threads`` BLAS/OpenMP threads if given."""
    env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_OVERRIDES}
    env["PYTHONPATH"] = SOURCE_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if threads:
        for name in THREAD_VARIABLES:
            env[name] = str(threads)
    return env


@dataclass
class WorkerResult:
    """What a worker printed (the JSON lines, parsed), its exit status and the end of its stderr."""

    records: list = field(default_factory=list)
    returncode: int | None = 0
    stderr: str = ""
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and bool(self.records)

    def last(self, what: str = "worker") -> dict:
        """The last JSON object printed; RuntimeError (with the worker's stderr) if it failed."""
        if not self.ok:
            why = "ran past its time limit" if self.timed_out else f"exited with status {self.returncode}"
            raise RuntimeError(f"{what} {why}:\n{self.stderr.strip()[-3000:]}")
        return self.records[-1]


def run_worker(command: list, timeout: float | None = None, threads: int | None = None, extra_env: dict | None = None,
               launcher: list | None = None, cwd=None) -> WorkerResult:
    """Run ``[*launcher, sys.executable, *command]`` in :func:`worker_env` (plus ``extra_env``);
    parse each JSON line it prints.  ``launcher``: e.g. ``["mpiexec", "-n", "4"]``."""
    env = {**worker_env(threads), **{k: str(v) for k, v in (extra_env or {}).items()}}
    argv = [*map(str, launcher or []), sys.executable, *map(str, command)]
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd)
        out, err, code, timed_out = done.stdout, done.stderr, done.returncode, False
    except subprocess.TimeoutExpired as expired:
        out = expired.stdout.decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        err = expired.stderr.decode() if isinstance(expired.stderr, bytes) else (expired.stderr or "")
        code, timed_out = None, True
    records = []
    for line in out.splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict):
            records.append(item)
    return WorkerResult(records, code, err, timed_out)


def alternated(names, turn: int) -> list:
    """The order of the competitors at ``turn`` (0, 1, 2 ...): as given, then reversed, and so on."""
    names = list(names)
    return names if turn % 2 == 0 else names[::-1]


def median(values) -> float:
    """The median of the rounds' figures (each round one sample per competitor)."""
    return statistics.median(list(values))


def load_average(digits: int = 2) -> list | None:
    """The 1, 5 and 15 minute load averages (recorded beside every figure: the machine may be shared)."""
    return [round(v, digits) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def seed_major(seeds, runs: dict, run_one, line, after=None, load_digits: int = 2) -> dict:
    """Every run of one seed, then the next seed (a run cut short still holds whole seeds):
    ``{name: [row per seed]}``, each row ``{"seed": seed, **run_one(name, spec, seed)}``; as soon as a row
    is done, ``seed <seed> <line(name, row)>  load <load average>`` is printed and ``after(results)`` called
    (e.g. to rewrite the result file, so that partial results survive a kill)."""
    results = {name: [] for name in runs}
    for seed in seeds:
        for name, spec in runs.items():
            row = {"seed": seed, **run_one(name, spec, seed)}
            results[name].append(row)
            print(f"seed {seed} {line(name, row)}  load {load_average(load_digits)}", flush=True)
            if after is not None:
                after(results)
    return results


def write_results(path, payload: dict, command: str, machine: str = "shared with other jobs") -> Path:
    """``payload`` + load after, machine and the command, as JSON at ``path`` (folders made): the record
    every benchmark leaves in benchmarks/results/."""
    import platform  # noqa: PLC0415

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {**payload, "load_after": load_average(),
              "machine": f"{platform.node()}, {os.cpu_count()} CPUs, {machine}", "command": command}
    path.write_text(json.dumps(record, indent=1))
    return path
