"""NumPy (CPU) against CuPy (GPU): the same minitl graphs, timed fairly on both.

What is measured, per op (matmul, conv2d forward / backward, max-pool forward / backward,
BatchNorm forward / backward) over a sweep of batch sizes, and per model (ResNet-18/50 eval
forward and training step: forward, cross-entropy, backward, SGD step, reading the loss):

* the median time of a call, on each backend, and the speed-up numpy / cupy;
* the first-call time on its own (on the GPU it includes compiling the CUDA kernels);
* the largest absolute difference between the two backends' outputs (same seeded inputs and
  weights; for a backward the input gradients, for a training step the loss and a gradient);
* the smallest batch from which the GPU is faster (and stays faster for every larger batch);
* host<->device copies of an input batch, on their own rows (the op rows exclude them).

How: both sides in float32 with the data already resident on their device; each backend runs
in its own worker process, NumPy and CuPy alternated round by round (A B B A ...), and the
reported time is the median over rounds of each round's median — OpenBLAS threads spin after a
call and distort whatever runs next in the same process.  GPU times come from CUDA events
recorded around the call after warm-up; the first call is timed with the wall clock and a
device synchronisation.  A NumPy call that takes seconds (a ResNet-50 training step) has
nothing to warm up, so its first call is that round's sample (flagged ``first_call_is_sample``).  On a machine without a usable GPU only the NumPy side runs, and the
report says why the GPU side was skipped.

    from minitl import bench
    result = bench.run(bench.Config(preset="quick"))
    print(bench.format_table(result))
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy

from . import __version__, backend

# ============================================================================ what to run
# op -> (shape parameters of one sample, batch sweep); a "batch" is the leading dimension
PRESETS: dict[str, dict] = {
    # a sanity run for a 2-core CPU: a minute or two
    "quick": {
        "ops": {
            "matmul": ({"n": 512}, [16, 128, 1024]),
            "conv2d.fwd": ({"c": 32, "hw": 28}, [1, 4, 16]),
            "conv2d.bwd": ({"c": 32, "hw": 28}, [1, 4, 16]),
            "max_pool2d.fwd": ({"c": 32, "hw": 56}, [1, 4, 16]),
            "max_pool2d.bwd": ({"c": 32, "hw": 56}, [1, 4, 16]),
            "batch_norm.fwd": ({"c": 32, "hw": 28}, [1, 4, 16]),
            "batch_norm.bwd": ({"c": 32, "hw": 28}, [1, 4, 16]),
            "copy.h2d": ({"c": 3, "hw": 64}, [16]),
            "copy.d2h": ({"c": 3, "hw": 64}, [16]),
        },
        "models": {"resnet18": ({"hw": 64}, [2])},
        "target_s": 0.2,
    },
    # the GPU check: ResNet's own layer sizes at 224x224
    "full": {
        "ops": {
            "matmul": ({"n": 1024}, [1, 16, 128, 1024, 4096]),
            "conv2d.fwd": ({"c": 64, "hw": 56}, [1, 4, 16, 64]),
            "conv2d.bwd": ({"c": 64, "hw": 56}, [1, 4, 16, 64]),
            "max_pool2d.fwd": ({"c": 64, "hw": 112}, [1, 4, 16, 64]),
            "max_pool2d.bwd": ({"c": 64, "hw": 112}, [1, 4, 16, 64]),
            "batch_norm.fwd": ({"c": 64, "hw": 56}, [1, 4, 16, 64]),
            "batch_norm.bwd": ({"c": 64, "hw": 56}, [1, 4, 16, 64]),
            "copy.h2d": ({"c": 3, "hw": 224}, [64]),
            "copy.d2h": ({"c": 3, "hw": 224}, [64]),
        },
        "models": {"resnet18": ({"hw": 224}, [1, 16, 64]), "resnet50": ({"hw": 224}, [1, 64])},
        "target_s": 0.5,
    },
}
MODEL_KINDS = ("train", "fwd")  # the training step first: the headline of a time-boxed run


@dataclasses.dataclass
class Config:
    """A benchmark run.  ``ops`` / ``models`` pick from the preset (None: all of it)."""

    preset: str = "quick"
    ops: list | None = None
    models: list | None = None
    batches: list | None = None  # override every sweep
    model_batches: list | None = None  # override the models' sweeps
    rounds: int = 5
    device: str = "auto"  # auto: GPU side if usable; cpu: NumPy only; cuda: fail unless a GPU is usable
    time_limit_s: float | None = None  # stop starting rounds that would not finish in time
    out_dir: str | None = None  # where workers leave outputs (a temporary folder when None)
    verbose: bool = False


@dataclasses.dataclass(frozen=True)
class Case:
    op: str  # "conv2d.fwd", "resnet50.train", "copy.h2d", ...
    batch: int
    params: dict

    @property
    def id(self) -> str:
        return f"{self.op}@{self.batch}"


def plan(config: Config) -> list[Case]:
    """The cases of a run, ops first, then models from small to large."""
    if config.preset not in PRESETS:
        raise ValueError(f"unknown preset {config.preset!r}; choose from {sorted(PRESETS)}")
    preset = PRESETS[config.preset]
    cases = []
    ops = preset["ops"] if config.ops is None else _pick(preset["ops"], config.ops, "op")  # [] for none
    for op, (params, batches) in ops.items():
        for batch in config.batches or batches:
            cases.append(Case(op, int(batch), dict(params)))
    models = preset["models"] if config.models is None else _pick(preset["models"], config.models, "model")
    for name, (params, batches) in models.items():
        for kind in MODEL_KINDS:
            for batch in config.model_batches or config.batches or batches:
                cases.append(Case(f"{name}.{kind}", int(batch), dict(params)))
    return cases


def _pick(table: dict, names, what: str) -> dict:
    chosen = {}
    for name in names:
        matches = {k: v for k, v in table.items() if k == name or k.split(".")[0] == name}
        if not matches:
            known = sorted({k.split(".")[0] for k in table} | set(table))
            raise ValueError(f"unknown {what} {name!r}; known: {', '.join(known)}")
        chosen.update(matches)
    return chosen


# ============================================================================ building a case on a backend
class Skip(Exception):
    """This case cannot run here (the op or model is not in this minitl yet, no copy on the CPU)."""


def _host(rng, *shape):
    return rng.standard_normal(shape, dtype=numpy.float32)


def _prepare(case: Case, device: str):
    """(setup, step): ``setup()`` runs untimed before each call, ``step()`` is the timed call
    and returns the device arrays whose values are compared across backends."""
    import minitl  # noqa: PLC0415
    import minitl.functional as F  # noqa: PLC0415

    rng = numpy.random.default_rng(0)  # the same inputs on every backend
    minitl.manual_seed(0)
    name, _, kind = case.op.partition(".")
    b, p = case.batch, case.params

    def tensor(array, grad=False):
        return minitl.Tensor(array, requires_grad=grad, device=device)

    def need(fn):
        if not hasattr(F, fn):
            raise Skip(f"minitl.functional has no {fn} in this checkout")
        return getattr(F, fn)

    nothing = lambda: None  # noqa: E731

    if name == "copy":
        if backend.get_backend(device).name == "numpy":
            raise Skip("no copy on the CPU")
        xp = backend.get_backend(device).xp
        host = _host(rng, b, p["c"], p["hw"], p["hw"])
        resident = xp.asarray(host)
        if kind == "h2d":
            return nothing, lambda: [xp.asarray(host)]

        def readback():
            xp.asnumpy(resident)
            return []

        return nothing, readback

    if name == "matmul":
        a, w = tensor(_host(rng, b, p["n"])), tensor(_host(rng, p["n"], p["n"]) / math.sqrt(p["n"]))

        def step():
            with minitl.no_grad():
                return [(a @ w).data]

        return nothing, step

    if name in ("conv2d", "max_pool2d", "batch_norm"):
        fn = need(name)
        c, hw = p["c"], p["hw"]
        x = tensor(_host(rng, b, c, hw, hw), grad=kind == "bwd")
        if name == "conv2d":
            w = tensor(_host(rng, c, c, 3, 3) * math.sqrt(2 / (9 * c)), grad=kind == "bwd")
            forward, grads = (lambda: fn(x, w, None, stride=1, padding=1)), [x, w]
        elif name == "max_pool2d":
            forward, grads = (lambda: fn(x, 3, stride=2, padding=1)), [x]
        else:
            gamma, beta = tensor(1 + 0.1 * _host(rng, c), grad=kind == "bwd"), tensor(0.1 * _host(rng, c), grad=kind == "bwd")
            mean, var = minitl.zeros(c, device=device), minitl.ones(c, device=device)
            forward = lambda: fn(x, mean, var, gamma, beta, training=True)  # noqa: E731
            grads = [x, gamma, beta]
        if kind == "fwd":

            def step():
                with minitl.no_grad():
                    return [forward().data]

            return nothing, step
        state = {}

        def setup():
            for t in grads:
                t.grad = None
            state["y"] = forward()
            if "g" not in state:
                state["g"] = tensor(_host(rng, *state["y"].shape))

        def step():
            state["y"].backward(state["g"])
            return [t.grad.data for t in grads]

        return setup, step

    if name.startswith("resnet"):
        try:
            from . import models  # noqa: PLC0415
        except ImportError:
            models = None
        if models is None or not hasattr(models, name):
            raise Skip(f"minitl.models has no {name} in this checkout")
        model = getattr(models, name)(num_classes=1000).to(device)
        x = tensor(_host(rng, b, 3, p["hw"], p["hw"]))
        if kind == "fwd":
            model.eval()

            def step():
                with minitl.no_grad():
                    return [model(x).data]

            return nothing, step
        model.train()
        y = tensor(rng.integers(0, 1000, size=b))
        params = [q for q in model.parameters() if q.requires_grad]
        optimizer = _sgd(params)
        first = next(iter(model.parameters()))

        def step():
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            grad = first.grad.data.copy()
            optimizer.step()
            loss.item()  # a training loop reads its loss: the step's one synchronising read
            return [loss.data, grad]

        return nothing, step
    raise ValueError(f"unknown benchmark op {case.op!r}")


def _sgd(params, lr=0.01, momentum=0.9):
    """minitl.optim.SGD where it exists; otherwise the same update written out (v <- m v + g, w <- w - lr v)."""
    try:
        from .optim import SGD  # noqa: PLC0415

        return SGD(params, lr=lr, momentum=momentum)
    except ImportError:
        pass
    import minitl  # noqa: PLC0415

    class _Plain:
        def __init__(self):
            self.velocity = [None] * len(params)

        def zero_grad(self):
            for q in params:
                q.grad = None

        def step(self):
            with minitl.no_grad():
                for i, q in enumerate(params):
                    if q.grad is None:
                        continue
                    g = q.grad.data
                    v = g if self.velocity[i] is None else momentum * self.velocity[i] + g
                    self.velocity[i] = v
                    q.data -= lr * v

    return _Plain()


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
        setup, step = _prepare(case, device)
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
def _worker_env() -> dict:
    env = dict(os.environ)
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # would change OpenBLAS's kernel choice
        env.pop(key, None)
    root = str(Path(__file__).resolve().parent.parent)  # run from a source tree (PYTHONPATH=.) too
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _run_worker(device, cases, target_s, save_dir, timeout, log) -> tuple[dict, list]:
    spec = {"device": device, "cases": [dataclasses.asdict(c) for c in cases], "target_s": target_s,
            "save_dir": str(save_dir) if save_dir else None}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        proc = subprocess.run([sys.executable, "-m", "minitl.bench", "--worker", f.name], capture_output=True,
                              text=True, timeout=timeout, env=_worker_env())
        out, err, timed_out = proc.stdout, proc.stderr, False
    except subprocess.TimeoutExpired as expired:
        out = expired.stdout.decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        err, timed_out = "", True
    finally:
        os.unlink(f.name)
    info, records = {}, []
    for line in out.splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "worker" in item:
            info = item["info"]
        else:
            records.append(item)
    if timed_out:
        log(f"  {device} worker stopped at the time limit after {len(records)} of {len(cases)} cases")
    elif not records and err:
        raise RuntimeError(f"benchmark worker on {device} failed:\n{err.strip()[-2000:]}")
    return info, records


def run(config: Config, log=None) -> dict:
    """Run the benchmark; returns the result dictionary (see :func:`summarise`)."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    cases = plan(config)
    status = backend.gpu_status()
    if config.device == "cuda" and not status["usable"]:
        raise backend.DeviceUnavailableError(
            f"--device cuda asked for, but no GPU is usable here: {status['reason']}. Use --device cpu."
        )
    devices = ["cpu"]
    gpu_skipped = None
    if config.device == "cpu":
        gpu_skipped = "--device cpu asked for the NumPy side only"
    elif status["usable"]:
        devices.append("cuda")
    else:
        gpu_skipped = f"no usable GPU: {status['reason']}"
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
        order = devices[::-1] if r % 2 == 0 else devices
        for device in order:
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


def _max_diffs(out_dir: Path, case_id: str):
    a_path, b_path = out_dir / "cpu" / f"{case_id}.npz", out_dir / "cuda" / f"{case_id}.npz"
    if not (a_path.exists() and b_path.exists()):
        return None, None
    with numpy.load(a_path, allow_pickle=False) as a, numpy.load(b_path, allow_pickle=False) as b:
        abs_diff = rel = 0.0
        for key in a.files:
            x, y = a[key].astype(numpy.float64), b[key].astype(numpy.float64)
            if x.shape != y.shape:
                return float("nan"), float("nan")
            if x.size:
                d = float(numpy.max(numpy.abs(x - y)))
                abs_diff = max(abs_diff, d)
                rel = max(rel, d / max(float(numpy.max(numpy.abs(x))), 1e-30))
    return abs_diff, rel


def summarise(config, cases, records, infos, out_dir, rounds_done, gpu_skipped) -> dict:
    """Medians over rounds, speed-ups, max differences, and where the GPU starts to win."""
    names = {"cpu": "numpy", "cuda": "cupy"}
    rows = []
    for case in cases:
        row = {"case": case.id, "op": case.op, "batch": case.batch, "params": case.params}
        for device, name in names.items():
            got = records.get(device, {}).get(case.id, [])
            timed = [g for g in got if "median_s" in g]
            if timed:
                row[name] = {
                    "median_s": statistics.median(g["median_s"] for g in timed),
                    "first_call_s": timed[0]["first_call_s"],
                    "round_medians_s": [g["median_s"] for g in timed],
                    "rounds": len(timed),
                    "first_call_is_sample": any(g.get("first_call_is_sample") for g in timed),
                }
            elif got:
                row[name] = {k: got[0][k] for k in ("skipped", "error") if k in got[0]}
            elif device in records and rounds_done:
                row[name] = {"skipped": "not reached: the time limit stopped the worker first"}
        t_cpu = row.get("numpy", {}).get("median_s")
        t_gpu = row.get("cupy", {}).get("median_s")
        row["speedup"] = t_cpu / t_gpu if t_cpu and t_gpu else None
        if case.op.startswith("copy."):
            nbytes = 4 * case.batch * case.params["c"] * case.params["hw"] ** 2
            row["bytes"] = nbytes
            if t_gpu:
                row["gb_per_s"] = nbytes / t_gpu / 1e9
        row["max_abs_diff"], row["max_rel_diff"] = _max_diffs(out_dir, case.id)
        rows.append(row)
    return {
        "meta": {
            "minitl": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
            "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
            "preset": config.preset, "rounds_asked": config.rounds, "rounds_done": rounds_done,
            "dtype": "float32", "workers": infos, "gpu": backend.gpu_status(), "gpu_skipped": gpu_skipped,
            "method": "each backend in its own process, alternated per round; median over rounds of per-round "
                      "medians; GPU: CUDA events after warm-up; first call: wall clock incl. synchronisation; "
                      "NumPy calls >= 4x the per-case time target: the first call is the round's sample",
        },
        "rows": rows,
        "gpu_wins_from_batch": gpu_wins_from(rows),
    }


def gpu_wins_from(rows) -> dict:
    """op -> the smallest batch from which the GPU is faster at every larger batch measured (None: never)."""
    by_op: dict[str, list] = {}
    for row in rows:
        if row["op"].startswith("copy.") or row.get("speedup") is None:
            continue
        by_op.setdefault(row["op"], []).append((row["batch"], row["speedup"]))
    wins = {}
    for op, points in by_op.items():
        points.sort()
        start = None
        for batch, speedup in points:
            if speedup > 1.0:
                start = batch if start is None else start
            else:
                start = None
        wins[op] = start
    return wins


# ============================================================================ reporting
def _fmt_time(seconds) -> str:
    if seconds is None:
        return "—"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def _cell(row, name, key="median_s"):
    entry = row.get(name)
    if entry is None:
        return "—"
    if "skipped" in entry:
        return "skip"
    if "error" in entry:
        return "error"
    return _fmt_time(entry.get(key))


def format_table(result: dict) -> str:
    """The result as a plain-text table."""
    header = ["case", "numpy", "cupy", "speed-up", "1st numpy", "1st cupy", "max |diff|"]
    lines = []
    for row in result["rows"]:
        speed = f"{row['speedup']:.1f}×" if row.get("speedup") else "—"
        diff = f"{row['max_abs_diff']:.2e}" if row.get("max_abs_diff") is not None else "—"
        if row.get("gb_per_s"):
            diff = f"{row['gb_per_s']:.1f} GB/s"
        lines.append([row["case"], _cell(row, "numpy"), _cell(row, "cupy"), speed,
                      _cell(row, "numpy", "first_call_s"), _cell(row, "cupy", "first_call_s"), diff])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    text = ["  ".join(str(x).ljust(w) for x, w in zip(header, widths))]
    text.append("  ".join("-" * w for w in widths))
    text += ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)) for line in lines]
    meta = result["meta"]
    notes = [f"rounds: {meta['rounds_done']} of {meta['rounds_asked']} asked; float32; {meta['method']}"]
    if meta.get("load_average_at_end"):
        notes.append(f"machine: {meta['cpu_count']} CPUs, load average at the end {meta['load_average_at_end']} "
                     "(other work running distorts the CPU times)")
    if meta.get("gpu_skipped"):
        notes.append(f"GPU side skipped: {meta['gpu_skipped']}")
    else:
        wins = ", ".join(f"{op}: {b if b is not None else 'never'}" for op, b in result["gpu_wins_from_batch"].items())
        notes.append(f"GPU faster from batch: {wins}")
    why: dict[str, list] = {}  # reason -> ops (batches folded together)
    for r in result["rows"]:
        for name in ("numpy", "cupy"):
            entry = r.get(name) or {}
            reason = entry.get("skipped") or entry.get("error")
            if reason:
                ops = why.setdefault(f"{name}: {reason}", [])
                if r["op"] not in ops:
                    ops.append(r["op"])
    for reason, ops in why.items():
        notes.append(f"not measured ({', '.join(ops)}) on {reason}")
    return "\n".join(text + [""] + notes)


def plot(result: dict, path: str | Path) -> str | None:
    """Time against batch per op (log-log) and the speed-ups; None (and no file) without matplotlib."""
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return None
    ops = [op for op in dict.fromkeys(r["op"] for r in result["rows"]) if not op.startswith("copy.")]
    cols = 3
    nrows = max(1, math.ceil(len(ops) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
    for ax, op in zip(axes.flat, ops):
        rows = [r for r in result["rows"] if r["op"] == op]
        for name, style in (("numpy", "o-"), ("cupy", "s-")):
            pts = [(r["batch"], r[name]["median_s"]) for r in rows if "median_s" in r.get(name, {})]
            if pts:
                ax.plot(*zip(*pts), style, label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(op, fontsize=9)
        ax.set_xlabel("batch")
        ax.set_ylabel("seconds")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(ops):]:
        ax.axis("off")
    meta = result["meta"]
    gpu = (meta.get("workers", {}).get("cuda") or {}).get("gpu") or "GPU skipped"
    fig.suptitle(f"minitl: NumPy ({meta['cpu_count']} CPUs) vs CuPy ({gpu}), float32, median of "
                 f"{meta['rounds_done']} rounds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def write(result: dict, out: str | Path, stem: str) -> dict:
    """Write ``stem``.json, ``stem``.txt (the table) and ``stem``.png into ``out``; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{stem}.json", "table": out / f"{stem}.txt"}
    paths["json"].write_text(json.dumps(result, indent=2, default=str) + "\n")
    paths["table"].write_text(format_table(result) + "\n")
    png = plot(result, out / f"{stem}.png")
    if png:
        paths["png"] = Path(png)
    return {k: str(v) for k, v in paths.items()}


def main(argv=None) -> int:
    """``python -m minitl.bench [minitl bench's options]`` — the benchmark without the rest of the CLI
    (a bare GPU machine: numpy + cupy only, run from the source tree with PYTHONPATH=.).
    ``python -m minitl.bench --worker SPEC.json`` is one worker process of a run."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--worker":
        worker(json.loads(Path(argv[1]).read_text()))
        return 0
    import argparse  # noqa: PLC0415

    from .cli import bench as cli_bench  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m minitl.bench", description=cli_bench.DESCRIPTION)
    cli_bench.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return cli_bench.run(args)
    except (ValueError, RuntimeError) as error:
        print(f"minitl bench: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
