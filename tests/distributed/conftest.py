"""Multi-rank tests: each starts ``mpiexec -n R python SCRIPT ...`` and checks what rank 0 wrote."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def mpiexec_path() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"  # the mpich wheel installs it into the environment
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _skip_reason() -> str | None:
    try:
        import mpi4py  # noqa: F401, PLC0415
    except ImportError:
        return "mpi4py is not installed (pip install 'minitl[mpi]')"
    if mpiexec_path() is None:
        return "no mpiexec on PATH (the mpich wheel or a system MPI provides one)"
    return None


SKIP_REASON = _skip_reason()
needs_mpi = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")


def run_ranks(n: int, args, timeout: float = 120, check: bool = True, env_extra=None):
    """``mpiexec -n n python args...`` from the repository root; returns the CompletedProcess."""
    command = [mpiexec_path(), "-n", str(n)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               **(env_extra or {}))
    result = subprocess.run(command + [sys.executable, *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"mpiexec -n {n} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def run_single(args, timeout: float = 120, check: bool = True):
    """The same script as one plain process (a world of one)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    result = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"single process failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result
