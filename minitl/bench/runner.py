"""Running ``minitl bench``: timing inside a worker, and the parent that alternates the workers.

Both sides compute in float32 with the data already resident on their device; each backend
runs in its own worker process (:mod:`.harness`), NumPy and CuPy alternated round by round
(A B, B A ...), and the reported time is the median over rounds of each round's median —
OpenBLAS threads spin after a call and distort whatever runs next in the same process.  GPU
times come from CUDA events recorded around the call after warm-up; the first call is timed
with the wall clock and a device synchronisation.  A NumPy call that takes seconds (a ResNet-50
training step) has nothing to warm up, so its first call is that round's sample (flagged
``first_call_is_sample``).
"""
from __future__ import annotations

import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy

from .. import backend
from . import harness
from .cases import PRESETS, Case, Config, Skip, plan, prepare
from .report import summarise


# ============================================================================ timing (inside a worker)
class _Clock:
    """Wall clock on the CPU; CUDA events on a GPU (the time the device spent, after warm-up)."""

    def __init__(self, xp):
        self.cuda = getattr(xp, "cuda", None) if xp is not numpy else None

    def sync(self):
        if self.cuda is not None:
            self.cuda.runtime.deviceSynchronize()

    def wall(self, fn):
        self.sync()
        start = time.perf_counter()
        out = fn()
        self.sync()
        return out, time.perf_counter() - start

    def timed(self, fn):
        if self.cuda is None:
            return self.wall(fn)
        start, end = self.cuda.Event(), self.cuda.Event()
        start.record()
        out = fn()
        end.record()
        end.synchronize()
        return out, self.cuda.get_elapsed_time(start, end) / 1e3


def measure(case: Case, device: str, target_s: float = 0.3, max_reps: int = 20, save_to: Path | None = None) -> dict:
    """First call (wall clock, synchronised), warm-up, then timed calls for about ``target_s``."""
    bk = backend.get_backend(device)
    clock = _Clock(bk.xp)
    with backend.using(bk.name):
        setup, step = prepare(case, device)
        setup()
        outputs, first = clock.wall(step)
        if save_to is not None:
            host = [backend.to_numpy(o).astype(numpy.float32, copy=False) for o in outputs]
            numpy.savez(save_to, *host)
        warmup = 1 if bk.name == "numpy" else 2  # the first call warmed NumPy up already
        heavy = bk.name == "numpy" and first >= max(4 * target_s, 1.0)
        for _ in range(0 if heavy else warmup - 1):
            setup()
            step()
        # a NumPy call of seconds (ResNet-50 training at batch 64) has nothing to warm up: its first call is
        # the round's sample, so a time-boxed run still gets several rounds (flagged in the record)
        times = [first] if heavy else []
        while not heavy:
            setup()
            _, seconds = clock.timed(step)
            times.append(seconds)
            if len(times) >= max_reps or sum(times) >= target_s:
                break
    return {"case": case.id, "backend": bk.name, "first_call_s": first, "times_s": times,
            "median_s": statistics.median(times), "first_call_is_sample": heavy}


def worker(spec: dict) -> None:
    """Run every case of one round on one backend, printing one JSON line per case as it ends."""
    device = spec["device"]
    save = Path(spec["save_dir"]) if spec.get("save_dir") else None
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
    print(json.dumps({"worker": spec["device"], "info": _worker_info(device)}), flush=True)
    for raw in spec["cases"]:
        case = Case(raw["op"], raw["batch"], raw["params"])
        try:
            record = measure(case, device, spec["target_s"], save_to=save / f"{case.id}.npz" if save else None)
        except Skip as why:
            record = {"case": case.id, "skipped": str(why)}
        except Exception as error:  # noqa: BLE001 - one failing case must not lose the others
            record = {"case": case.id, "error": f"{type(error).__name__}: {error}"}
        print(json.dumps(record), flush=True)


def _worker_info(device: str) -> dict:
    bk = backend.get_backend(device)
    info = {"backend": bk.name, "device": bk.device}
    if bk.name == "numpy":
        info["blas"] = backend.blas_info()
    else:
        status = backend.gpu_status()
        info.update(gpu=status.get("device_name"), cupy=status.get("cupy"),
                    cuda_driver=status.get("cuda_driver"), cuda_runtime=status.get("cuda_runtime"))
    return info


# ============================================================================ the run (parent process)
def _run_worker(device, cases, target_s, save_dir, timeout, log) -> tuple[dict, list]:
    spec = {"device": device, "cases": [dataclasses.asdict(c) for c in cases], "target_s": target_s,
            "save_dir": str(save_dir) if save_dir else None}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        done = harness.run_worker(["-m", "minitl.bench", "--worker", f.name], timeout=timeout)
    finally:
        os.unlink(f.name)
    info = next((item["info"] for item in done.records if "worker" in item), {})
    records = [item for item in done.records if "worker" not in item]
    if done.timed_out:
        log(f"  {device} worker stopped at the time limit after {len(records)} of {len(cases)} cases")
    elif not records and done.stderr:
        raise RuntimeError(f"benchmark worker on {device} failed:\n{done.stderr.strip()[-2000:]}")
    return info, records


def _devices(config: Config) -> tuple[list, str | None]:
    """The devices to measure, and why the GPU side is skipped (None when it runs)."""
    status = backend.gpu_status()
    if config.device == "cuda" and not status["usable"]:
        raise backend.DeviceUnavailableError(
            f"--device cuda asked for, but no GPU is usable here: {status['reason']}. Use --device cpu."
        )
    if config.device == "cpu":
        return ["cpu"], "--device cpu asked for the NumPy side only"
    if status["usable"]:
        return ["cpu", "cuda"], None
    return ["cpu"], f"no usable GPU: {status['reason']}"


def run(config: Config, log=None) -> dict:
    """Run the benchmark; returns the result dictionary (see :func:`minitl.bench.report.summarise`)."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    cases = plan(config)
    devices, gpu_skipped = _devices(config)
    if gpu_skipped:
        log(f"GPU side skipped: {gpu_skipped}")
    target_s = PRESETS[config.preset]["target_s"]
    start = time.perf_counter()
    out_dir = Path(config.out_dir or tempfile.mkdtemp(prefix="minitl-bench-"))
    records: dict[str, dict[str, list]] = {d: {} for d in devices}
    infos: dict[str, dict] = {}
    rounds_done, round_seconds = 0, []
    for r in range(config.rounds):
        elapsed = time.perf_counter() - start
        if config.time_limit_s is not None and round_seconds:
            if elapsed + max(round_seconds) > config.time_limit_s:
                log(f"stopping after {rounds_done} rounds: another would pass the {config.time_limit_s:.0f} s limit")
                break
        remaining = None if config.time_limit_s is None else max(config.time_limit_s - elapsed, 1.0)
        round_start = time.perf_counter()
        # B A, A B, ...: neither side always runs first; the GPU opens, so a time box never starves it
        for device in harness.alternated(devices, r + 1):
            save = out_dir / device if r == 0 else None
            left = None if remaining is None else max(remaining - (time.perf_counter() - round_start), 1.0)
            log(f"round {r + 1}/{config.rounds}: {device} ({len(cases)} cases)")
            info, got = _run_worker(device, cases, target_s, save, left, log)
            infos[device] = info or infos.get(device, {})
            for item in got:
                records[device].setdefault(item["case"], []).append(item)
        round_seconds.append(time.perf_counter() - round_start)
        rounds_done += 1
    result = summarise(config, cases, records, infos, out_dir, rounds_done, gpu_skipped)
    result["meta"]["wall_s"] = round(time.perf_counter() - start, 2)
    return result
