"""``mpiexec -n N minitl finetune`` just works: the same model as one process, one log, one cache, resumable."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy
import pytest

pytest.importorskip("PIL")

from cli_helpers import make_workspace  # noqa: E402

from minitl.train.checkpoint import load_checkpoint  # noqa: E402

from .conftest import ROOT, mpiexec_path, needs_mpi, run_ranks, run_single  # noqa: E402

pytestmark = needs_mpi


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("mpi"), train=11)  # 33 images, 66 mirrored rows


def _finetune(ws, out, cache, *extra):
    return ["-m", "minitl", "finetune", "--weights", ws / "tiny.npz", "--data", ws / "data", "--cache-dir", cache,
            "--out", out, "--mode", "features", "--lr", "0.1", "--hidden", "16", "--prefetch", "0",
            "--batch-size", "8", *extra]


def _arrays(path):
    with numpy.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files if k != "__minitl_metadata__"}


def _assert_same_model(a, b, rtol=1e-5, atol=1e-6):
    a, b = _arrays(a), _arrays(b)
    assert a.keys() == b.keys()
    for name in a:
        numpy.testing.assert_allclose(a[name], b[name], rtol=rtol, atol=atol, err_msg=name)


def test_two_ranks_train_the_model_one_process_trains_and_write_the_same_cache(workspace, tmp_path):
    two = run_ranks(2, _finetune(workspace, tmp_path / "two", tmp_path / "cache2", "--epochs", "4"))
    one = run_single(_finetune(workspace, tmp_path / "one", tmp_path / "cache1", "--epochs", "4"))
    _assert_same_model(tmp_path / "two" / "model.npz", tmp_path / "one" / "model.npz")
    # rank 0 alone speaks: one result, one header
    assert two.stdout.count("test accuracy:") == 1 == one.stdout.count("test accuracy:")
    assert two.stdout.count("backbone:") == 1
    assert "on 2 ranks" in two.stdout
    # the features two ranks extracted in shards and rank 0 cached equal the single process's entries
    entries = sorted(p.name for p in (tmp_path / "cache1").iterdir())
    assert entries == sorted(p.name for p in (tmp_path / "cache2").iterdir()) and entries
    for name in entries:
        if name.endswith(".npy"):
            numpy.testing.assert_allclose(numpy.load(tmp_path / "cache2" / name), numpy.load(tmp_path / "cache1" / name),
                                          rtol=1e-6, atol=1e-7, err_msg=name)


def test_distributed_flag_outside_mpiexec_is_one_clear_error(workspace, tmp_path):
    result = run_single(_finetune(workspace, tmp_path / "x", tmp_path / "c", "--distributed"), check=False)
    assert result.returncode == 2
    assert "mpiexec -n N" in result.stderr and "Traceback" not in result.stderr


def _rank_pids(marker: str, rank: str) -> list[int]:
    """PIDs of python processes whose command line contains ``marker`` and whose PMI_RANK is ``rank``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read().decode(errors="replace")
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
        except OSError:
            continue
        if marker in cmdline and "minitl" in cmdline and f"PMI_RANK={rank}".encode() in environ:
            pids.append(int(entry))
    return pids


def test_a_rank_that_dies_stops_the_job_and_resume_continues_at_any_world_size(workspace, tmp_path):
    out, epochs = tmp_path / "killed", "30"
    command = [mpiexec_path(), "-n", "2", sys.executable, *map(str, _finetune(workspace, out, tmp_path / "c", "--epochs", epochs))]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    job = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "checkpoint.npz").exists():
            assert job.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
            time.sleep(0.02)
        victims = _rank_pids(str(out), "1")
        assert victims, "rank 1 not found"
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        stdout, stderr = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode != 0  # the job stops: MPI's launcher ends the other rank and says why
    # MPICH's launcher says why on stdout; the surviving rank's progress bars fill stderr, so search both whole
    # (a tail of stdout + stderr lost the launcher's message whenever the bars ran past 3,000 characters)
    said = stdout + "\n" + stderr
    assert "BAD TERMINATION" in said or "killed" in said.lower() or "signal" in said.lower(), (stdout[-1500:], stderr[-1500:])
    state = load_checkpoint(out / "checkpoint.npz")  # the last checkpoint is intact
    assert 1 <= state["epoch"] < int(epochs)
    copy = tmp_path / "killed-2"
    shutil.copytree(out, copy)
    run_single(["-m", "minitl", "finetune", "--resume", "--out", out])
    run_ranks(2, ["-m", "minitl", "finetune", "--resume", "--out", copy])
    straight = run_single(_finetune(workspace, tmp_path / "straight", tmp_path / "c", "--epochs", epochs))
    assert straight.returncode == 0
    _assert_same_model(out / "model.npz", tmp_path / "straight" / "model.npz", rtol=1e-4, atol=1e-5)
    _assert_same_model(copy / "model.npz", tmp_path / "straight" / "model.npz", rtol=1e-4, atol=1e-5)
