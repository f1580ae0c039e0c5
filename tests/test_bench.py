"""The NumPy-vs-CuPy benchmark harness: its plan, its arithmetic, its device code path (run on the
CuPy stand-in in-process, which is never a benchmark target) and the CPU-only command line."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from minitl import backend, bench
from minitl.functional import parallel
from minitl.cli import main


def test_plan_picks_ops_and_models_from_the_preset():
    cases = bench.plan(bench.Config(preset="quick", ops=["conv2d"], models=[], batches=[3, 5]))
    assert [c.id for c in cases] == ["conv2d.fwd@3", "conv2d.fwd@5", "conv2d.bwd@3", "conv2d.bwd@5"]
    full = bench.plan(bench.Config(preset="full"))
    ops = {c.op for c in full}
    assert {"matmul", "conv2d.fwd", "conv2d.bwd", "max_pool2d.fwd", "batch_norm.bwd", "copy.h2d",
            "resnet18.fwd", "resnet18.train", "resnet50.fwd", "resnet50.train"} <= ops
    assert any(c.id == "resnet50.train@64" and c.params["hw"] == 224 for c in full)
    with pytest.raises(ValueError, match="unknown op 'convolution'"):
        bench.plan(bench.Config(ops=["convolution"]))
    with pytest.raises(ValueError, match="unknown preset"):
        bench.plan(bench.Config(preset="huge"))


@pytest.mark.parametrize(
    "points, expected",
    [
        ([(1, 0.5), (4, 1.2), (16, 0.9), (64, 3.0)], 64),  # wins at 4, loses again at 16: from 64
        ([(1, 2.0), (4, 3.0)], 1),
        ([(1, 0.2), (4, 0.9)], None),
        ([(16, 1.5), (1, 0.5), (4, 1.1)], 4),  # order of rows does not matter
    ],
)
def test_gpu_wins_from_the_smallest_batch_after_which_it_always_wins(points, expected):
    rows = [{"op": "conv2d.fwd", "batch": b, "speedup": s} for b, s in points]
    rows.append({"op": "copy.h2d", "batch": 64, "speedup": None})
    assert bench.gpu_wins_from(rows) == {"conv2d.fwd": expected}


def test_device_code_path_of_the_harness_on_the_stand_in(tmp_path):
    """measure() on a device backend (the stand-in here; CuPy on a GPU): same outputs as NumPy, diffs computed."""
    cases = [bench.Case("matmul", 3, {"n": 8}), bench.Case("copy.h2d", 2, {"c": 3, "hw": 4}),
             bench.Case("copy.d2h", 2, {"c": 3, "hw": 4})]
    cases += [bench.Case(f"{op}.{kind}", 2, {"c": 4, "hw": 6}) for op in ("conv2d", "max_pool2d", "batch_norm")
              for kind in ("fwd", "bwd")]
    cases += [bench.Case(f"resnet18.{kind}", 2, {"hw": 32}) for kind in ("train", "fwd")]
    with parallel.using_threads(1):  # the stand-in runs serially, so NumPy does here too: the same conv paths
        for case in cases:
            for device, folder in (("cpu", "cpu"), ("fakecuda", "cuda")):
                (tmp_path / folder).mkdir(exist_ok=True)
                try:
                    record = bench.measure(case, device, target_s=0.001, save_to=tmp_path / folder / f"{case.id}.npz")
                except bench.Skip as why:
                    assert device == "cpu" and "no copy" in str(why)
                    continue
                assert record["median_s"] > 0 and record["first_call_s"] > 0 and len(record["times_s"]) >= 1
    for case in cases:
        if not case.op.startswith("copy."):
            abs_diff, rel_diff = bench.max_diffs(tmp_path, case.id)
            assert abs_diff == 0.0 and rel_diff == 0.0, case  # the stand-in computes with NumPy: bit-identical
    assert bench.max_diffs(tmp_path, "copy.h2d@2") == (None, None)
    assert backend.get_backend().name == "numpy", "measure() restores the backend"


def test_summary_speedup_and_table_from_recorded_rounds(tmp_path):
    cases = [bench.Case("matmul", 4, {"n": 8}), bench.Case("copy.h2d", 4, {"c": 3, "hw": 8})]
    rec = lambda t: {"median_s": t, "first_call_s": 10 * t}  # noqa: E731
    records = {
        "cpu": {"matmul@4": [rec(0.03), rec(0.01), rec(0.02)], "copy.h2d@4": [{"skipped": "no copy on the CPU"}]},
        "cuda": {"matmul@4": [rec(0.002), rec(0.001), rec(0.003)], "copy.h2d@4": [rec(0.0005)]},
    }
    result = bench.summarise(bench.Config(rounds=3), cases, records, {}, tmp_path, 3, None)
    matmul, copy = result["rows"]
    assert matmul["numpy"]["median_s"] == 0.02 and matmul["cupy"]["median_s"] == 0.002
    assert matmul["speedup"] == pytest.approx(10.0)
    assert matmul["numpy"]["first_call_s"] == pytest.approx(0.3)
    assert copy["gb_per_s"] == pytest.approx(4 * 4 * 3 * 64 / 0.0005 / 1e9)
    table = bench.format_table(result)
    assert "10.0×" in table and "GB/s" in table and "skip" in table
    assert result["gpu_wins_from_batch"] == {"matmul": 4}


def test_cli_bench_on_a_cpu_only_machine_runs_numpy_and_says_why_gpu_was_skipped(tmp_path, capsys):
    status = backend.gpu_status()
    if status["usable"]:
        pytest.skip("a GPU is usable here: the GPU side would run")
    code = main(["bench", "--ops", "matmul", "--no-models", "--batches", "2", "--rounds", "2",
                 "--out", str(tmp_path), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "GPU side skipped" in out and status["reason"] in out
    result = json.loads((tmp_path / "bench_quick.json").read_text())
    assert result["meta"]["gpu_skipped"].endswith(status["reason"])
    assert result["meta"]["rounds_done"] == 2
    (row,) = result["rows"]
    assert row["case"] == "matmul@2" and len(row["numpy"]["round_medians_s"]) == 2 and "cupy" not in row
    assert row["numpy"]["median_s"] == np.median(row["numpy"]["round_medians_s"])
    assert (tmp_path / "bench_quick.txt").exists()


def test_cli_bench_device_cuda_without_gpu_is_one_clear_error(capsys):
    if backend.gpu_status()["usable"]:
        pytest.skip("a GPU is usable here")
    assert main(["bench", "--device", "cuda", "--no-models", "--ops", "matmul"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no GPU is usable" in err[0] and "--device cpu" in err[0]


def test_run_alternates_backends_in_separate_workers_and_respects_the_time_limit(monkeypatch, tmp_path):
    """The parent's orchestration with a (pretended) usable GPU: GPU first, then alternation, medians."""
    import time

    calls = []

    def fake_worker(device, cases, target_s, save_dir, timeout, log):
        calls.append(device)
        time.sleep(0.05)
        t = 0.01 if device == "cpu" else 0.002
        return {"backend": device}, [{"case": c.id, "median_s": t * len(calls), "first_call_s": 1.0} for c in cases]

    monkeypatch.setattr(bench.runner, "_run_worker", fake_worker)
    monkeypatch.setattr(backend, "gpu_status", lambda refresh=False: {"usable": True, "reason": "pretend", "device_name": "X"})
    config = bench.Config(ops=["matmul"], models=[], batches=[8], rounds=4, out_dir=str(tmp_path))
    result = bench.run(config, log=lambda m: None)
    assert calls == ["cuda", "cpu", "cpu", "cuda", "cuda", "cpu", "cpu", "cuda"]
    (row,) = result["rows"]
    assert row["numpy"]["round_medians_s"] == pytest.approx([0.02, 0.03, 0.06, 0.07])
    assert row["cupy"]["median_s"] == pytest.approx(np.median([0.002, 0.008, 0.010, 0.016]))
    assert result["meta"]["gpu_skipped"] is None and result["meta"]["rounds_done"] == 4

    calls.clear()
    config.time_limit_s = 0.15  # a round takes ~0.1 s: the second would overrun
    result = bench.run(config, log=lambda m: None)
    assert result["meta"]["rounds_done"] == 1 and calls == ["cuda", "cpu"]

    calls.clear()
    config.device = "cpu"
    config.time_limit_s = None
    result = bench.run(config, log=lambda m: None)
    assert set(calls) == {"cpu"} and "--device cpu" in result["meta"]["gpu_skipped"]


def test_the_shared_worker_harness(monkeypatch):
    """One place for the house rules: OpenBLAS overrides unset, threads pinned, order alternated, JSON lines read."""
    from minitl.bench import harness

    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    env = harness.worker_env(threads=2)
    assert "OPENBLAS_CORETYPE" not in env and env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "2"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == harness.SOURCE_ROOT
    assert harness.overrides_in_environment() == ["OPENBLAS_CORETYPE"]
    assert [harness.alternated("AB", turn) for turn in range(3)] == [["A", "B"], ["B", "A"], ["A", "B"]]
    done = harness.run_worker(["-c", "import json, os; print('not json'); "
                                     "print(json.dumps({'core': os.environ.get('OPENBLAS_CORETYPE')}))"])
    assert done.ok and done.records == [{"core": None}] and done.last() == {"core": None}
    failed = harness.run_worker(["-c", "import sys; sys.exit('broken worker')"])
    assert not failed.ok
    with pytest.raises(RuntimeError, match=r"probe exited with status 1:\s+broken worker"):
        failed.last("probe")
    slow = harness.run_worker(["-c", "import time; print('{\"a\": 1}', flush=True); time.sleep(30)"], timeout=3)
    assert slow.timed_out and slow.records == [{"a": 1}]
