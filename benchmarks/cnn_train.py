"""CNN training step, minitl vs PyTorch CPU: quiet, and under a load the benchmark makes itself.

    python benchmarks/cnn_train.py                        # ResNet-18 CIFAR quiet + loaded, ResNet-50, layers
    python benchmarks/cnn_train.py --rounds 3 --iters 3   # the reduced form (a quiet 2-core machine: ~5 min)
    python benchmarks/cnn_train.py --tiny                 # dry run: tiny sizes, seconds

Cases (float32, random data, SGD with momentum 0.9 and weight decay 5e-4, cross-entropy):
  resnet18    ResNet-18 with the CIFAR stem (3×3/1 conv, no max-pool), 32×32, batch 64, 10 classes
  resnet50    ResNet-50 (torchvision v1.5), 224×224, batch 16, 1000 classes

One training step = zero the gradients, forward + loss (timed as "forward"), backward, optimizer
step — each phase timed on its own, the step is their sum.  A worker process (``--worker``)
builds one framework's model, runs ``--warmup`` steps, then times ``--iters`` steps and reports
the medians.  Both networks are the same architecture with the same initialisation rule; minitl
builds its ResNet with ``minitl.models``, PyTorch with tests/torch_reference.py (plain torch,
torchvision's structure).

**Controlled load** (``--load``): for the loaded rounds the parent starts one busy process per core
(a single-threaded NumPy loop of element-wise work on a 2 MiB array, the kind of neighbour a
laptop has), lets it settle for a second, runs both frameworks' workers alternated, then stops it.
Each round runs a quiet pair and a loaded pair, so both conditions see the same drift of the
machine.  Reported: the quiet ratio and the loaded ratio (PyTorch step time ÷ minitl step time,
> 1 means minitl is faster), each as the ratio of medians and as the median of per-round ratios.

**Like for like** (``--same-malloc``, default on): ``import minitl`` keeps freed host memory for
reuse (minitl.host_memory: glibc's mmap threshold 32 MiB, trim threshold 1 GiB), which PyTorch does
not do by default.  Each round therefore also runs PyTorch with the same glibc settings (the
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` environment variables), placed before the
quiet pair in odd rounds and after it in even ones; its ratio against minitl's quiet rounds is the
``same-malloc`` row: what is left when both frameworks get the allocator setting.

**Per-layer table** (``--layers``): every distinct convolution of the ResNet-18 CIFAR network
(shape, stride, count in the network) timed as conv → BatchNorm → ReLU, forward and
forward+backward, and the convolution alone forward+backward (the difference is BatchNorm +
ReLU's share), in each framework's own worker process; the count-weighted sum is set beside
the whole step so the share of the convolution units is visible.

House rules (minitl/bench/harness.py): fresh process per measurement, frameworks alternated
(A B, then B A), medians over rounds, OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset for the
workers (the BLAS kernel each worker ran is reported).  Results: benchmarks/results/cnn_train.json
and .md (``--out``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from minitl.bench import harness  # noqa: E402

CASES = {
    "resnet18": dict(arch="resnet18", cifar=True, batch=64, size=32, classes=10),
    "resnet50": dict(arch="resnet50", cifar=False, batch=16, size=224, classes=1000),
}
TINY = {
    "resnet18": dict(arch="resnet18", cifar=True, batch=4, size=8, classes=10),
    "resnet50": dict(arch="resnet50", cifar=False, batch=2, size=32, classes=10),
}
FRAMEWORKS = ("minitl", "torch")
# quiet; quiet with PyTorch given glibc's malloc settings minitl makes for itself (minitl.host_memory); loaded
CONDITIONS = ("quiet", "same-malloc", "loaded")
# the distinct convolutions of ResNet-18 with the CIFAR stem at 32×32: (name, Cin, Cout, k, stride, H_in, count)
LAYERS = [
    ("stem 3→64 3×3", 3, 64, 3, 1, 32, 1),
    ("64@32 3×3", 64, 64, 3, 1, 32, 4),
    ("64→128 3×3/2", 64, 128, 3, 2, 32, 1),
    ("64→128 1×1/2 (shortcut)", 64, 128, 1, 2, 32, 1),
    ("128@16 3×3", 128, 128, 3, 1, 16, 3),
    ("128→256 3×3/2", 128, 256, 3, 2, 16, 1),
    ("128→256 1×1/2 (shortcut)", 128, 256, 1, 2, 16, 1),
    ("256@8 3×3", 256, 256, 3, 1, 8, 3),
    ("256→512 3×3/2", 256, 512, 3, 2, 8, 1),
    ("256→512 1×1/2 (shortcut)", 256, 512, 1, 2, 8, 1),
    ("512@4 3×3", 512, 512, 3, 1, 4, 3),
]
BUSY_LOOP = ("import numpy as np\n"
             "a = np.random.default_rng(0).random(1 << 18)\n"
             "b = np.empty_like(a)\n"
             "while True:\n"
             "    np.multiply(a, 1.0000001, out=b); np.add(b, 1e-9, out=a)\n")


# ============================================================================ workers
def _blas() -> list:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{k: info.get(k) for k in ("user_api", "internal_api", "version", "num_threads", "architecture")}
            for info in threadpool_info()]


def _minitl_step(spec):
    import numpy as np

    import minitl
    from minitl import models, optim
    from minitl.functional import cross_entropy

    minitl.manual_seed(0)
    options = dict(num_classes=spec["classes"])
    if spec["cifar"]:
        options["cifar_stem"] = True
    model = getattr(models, spec["arch"])(**options)
    model.train()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(0)
    x = minitl.Tensor(rng.standard_normal((spec["batch"], 3, spec["size"], spec["size"])).astype(np.float32))
    y = rng.integers(0, spec["classes"], spec["batch"])

    def forward():
        opt.zero_grad()
        return cross_entropy(model(x), y)

    def backward(loss):
        loss.backward()

    def step():
        opt.step()

    return forward, backward, step, lambda loss: float(loss.item())


def _torch_step(spec):
    import numpy as np
    import torch

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import torch_reference as ref

    torch.manual_seed(0)
    model = getattr(ref, spec["arch"])(num_classes=spec["classes"])
    if spec["cifar"]:
        model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        model.maxpool = torch.nn.Identity()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((spec["batch"], 3, spec["size"], spec["size"])).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, spec["classes"], spec["batch"]))

    def forward():
        opt.zero_grad(set_to_none=True)
        return torch.nn.functional.cross_entropy(model(x), y)

    def backward(loss):
        loss.backward()

    def step():
        opt.step()

    return forward, backward, step, lambda loss: float(loss.item())


def worker_step(framework: str, spec: dict, warmup: int, iters: int) -> dict:
    """Time ``iters`` training steps after ``warmup``: per phase and in total (medians, seconds)."""
    forward, backward, step, value = (_minitl_step if framework == "minitl" else _torch_step)(spec)
    phases = {"forward": [], "backward": [], "optimizer": [], "step": []}
    losses = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        loss = forward()
        losses.append(value(loss))  # reading the loss: part of the forward, as in a training loop
        t1 = time.perf_counter()
        backward(loss)
        t2 = time.perf_counter()
        step()
        t3 = time.perf_counter()
        if i >= warmup:
            for name, seconds in (("forward", t1 - t0), ("backward", t2 - t1), ("optimizer", t3 - t2), ("step", t3 - t0)):
                phases[name].append(seconds)
    out = {f"{name}_s": statistics.median(v) for name, v in phases.items()}
    out.update(step_times_s=[round(v, 4) for v in phases["step"]], losses=[round(v, 4) for v in losses],
               blas=_blas(), framework=framework, loadavg=harness.load_average())
    if framework == "minitl":
        from minitl.functional import parallel

        from minitl import host_memory

        out["minitl_threads"] = parallel.threads()
        out["host_memory"] = host_memory.status()
    if framework == "torch":
        import torch

        out["torch_threads"] = torch.get_num_threads()
        out["torch_version"] = torch.__version__
    return out


def worker_layers(framework: str, batch: int, warmup: int, iters: int, layers) -> dict:
    """conv → BN → ReLU per distinct layer, forward and forward+backward, and the convolution alone
    forward+backward (what is left is BatchNorm + ReLU's): medians, seconds."""
    import numpy as np

    rng = np.random.default_rng(0)
    rows = []
    for name, cin, cout, k, stride, h, count in layers:
        x = rng.standard_normal((batch, cin, h, h)).astype(np.float32)
        w = (rng.standard_normal((cout, cin, k, k)) * (2 / (cin * k * k)) ** 0.5).astype(np.float32)
        fns = _layer_fns(framework, x, w, stride, k // 2)
        times = {key: [] for key in fns}
        for i in range(warmup + iters):
            for key, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                if i >= warmup:
                    times[key].append(time.perf_counter() - t0)
        rows.append({"layer": name, "count": count, **{f"{key}_s": statistics.median(v) for key, v in times.items()}})
    return {"framework": framework, "layers": rows, "loadavg": harness.load_average()}


def _layer_fns(framework, x, w, stride, padding) -> dict:
    """{"fwd", "fwdbwd", "conv_fwdbwd"}: conv → BN → ReLU forward, forward+backward; the conv alone forward+backward.

    minitl runs BatchNorm + ReLU as the fused op its ResNet uses (F.batch_norm_relu), PyTorch as
    BatchNorm2d then ReLU (as torchvision's ResNet); each framework gets its input in the memory layout
    its network hands the layer (minitl: NHWC after the stem; PyTorch: its default NCHW)."""
    if framework == "minitl":
        import numpy as np

        import minitl
        from minitl import functional as F

        if x.shape[1] > 3:  # in the network every convolution but the stem reads NHWC memory (a conv's output)
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        xt = minitl.Tensor(x, requires_grad=True)
        wt = minitl.Tensor(w, requires_grad=True)
        gamma = minitl.Tensor(np.ones(w.shape[0], np.float32), requires_grad=True)
        beta = minitl.Tensor(np.zeros(w.shape[0], np.float32), requires_grad=True)

        def run(grad, with_norm=True):
            with (minitl.enable_grad() if grad else minitl.no_grad()):
                y = F.conv2d(xt, wt, stride=stride, padding=padding)
                if with_norm:
                    y = F.batch_norm_relu(y, None, None, gamma, beta, training=True)
                if grad:
                    xt.grad = wt.grad = gamma.grad = beta.grad = None
                    y.sum().backward()
    else:
        import torch

        xt = torch.from_numpy(x).requires_grad_(True)
        wt = torch.from_numpy(w).requires_grad_(True)
        bn = torch.nn.BatchNorm2d(w.shape[0], track_running_stats=False)

        def run(grad, with_norm=True):
            with torch.set_grad_enabled(grad):
                y = torch.nn.functional.conv2d(xt, wt, stride=stride, padding=padding)
                if with_norm:
                    y = torch.relu(bn(y))
                if grad:
                    xt.grad = wt.grad = None
                    bn.zero_grad(set_to_none=True)
                    y.sum().backward()
    return {"fwd": lambda: run(False), "fwdbwd": lambda: run(True), "conv_fwdbwd": lambda: run(True, with_norm=False)}


# ============================================================================ the controlled load
class Load:
    """One busy single-threaded process per core, for the loaded rounds (``with Load(n): ...``)."""

    def __init__(self, processes: int):
        self.processes, self.procs = processes, []

    def __enter__(self):
        env = harness.worker_env(threads=1)
        self.procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP], env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL) for _ in range(self.processes)]
        time.sleep(1.5)  # imports done, loops spinning
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []


# ============================================================================ the parent
def _worker(args, framework, mode, case_spec=None, timeout=1800, extra_env=None):
    command = [os.path.abspath(__file__), "--worker", framework, "--mode", mode, "--warmup", args.warmup,
               "--iters", args.iters, "--spec", json.dumps(case_spec or {})]
    done = harness.run_worker(command, timeout=timeout, extra_env=extra_env)
    if not done.ok:
        return {"framework": framework, "error": (done.stderr or "no output").strip()[-600:]}
    return done.records[-1]


def _pair(args, case, spec, condition, turn, runs, log):
    for fw in harness.alternated(FRAMEWORKS, turn):
        _one(args, case, spec, condition, fw, runs, log)


def _one(args, case, spec, condition, fw, runs, log, extra_env=None):
    result = _worker(args, fw, "step", spec, extra_env=extra_env)
    runs[case][condition][fw].append(result)
    shown = (f"step {result['step_s']:.3f} s (fwd {result['forward_s']:.3f}, bwd {result['backward_s']:.3f}, "
             f"opt {result['optimizer_s']:.3f})" if "step_s" in result else "ERROR " + result["error"][-300:])
    log(f"  {case:<9} {condition:<11} {fw:<7} {shown}")


def _same_malloc(args, case, spec, runs, log):
    """PyTorch once more, with glibc set as minitl sets it for itself (host_memory), for the like-for-like ratio."""
    from minitl import host_memory

    env = {"MALLOC_MMAP_THRESHOLD_": host_memory.MMAP_THRESHOLD, "MALLOC_TRIM_THRESHOLD_": host_memory.TRIM_THRESHOLD}
    _one(args, case, spec, "same-malloc", "torch", runs, log, extra_env=env)


def run(args, log=print) -> dict:
    table = TINY if args.tiny else CASES
    cases = [c for c in args.cases.split(",") if c]
    load_cases = set(c for c in args.load_cases.split(",") if c) if args.load else set()
    runs = {c: {cond: {fw: [] for fw in FRAMEWORKS} for cond in CONDITIONS} for c in cases}
    cores = os.cpu_count() or 1
    started = time.time()
    layers = None  # first, on the machine as the quiet rounds find it (not after the loaded rounds)
    if args.layers:
        layer_list = [(n, ci, co, k, s, max(2, h // 8) if args.tiny else h, cnt) for n, ci, co, k, s, h, cnt in LAYERS]
        if args.tiny:
            layer_list = [(n, min(ci, 16), min(co, 16), k, s, h, cnt) for n, ci, co, k, s, h, cnt in layer_list]
        layers = {}
        for fw in FRAMEWORKS:
            result = _worker(args, fw, "layers", {"batch": table["resnet18"]["batch"], "layers": layer_list})
            layers[fw] = result
            log(f"  layers {fw}: {'done' if 'layers' in result else 'ERROR ' + result['error'][-300:]}")
    for r in range(args.rounds):
        log(f"round {r + 1}/{args.rounds}  (load average {harness.load_average()})")
        for case in cases:
            if args.same_malloc and r % 2:  # alternated: before the quiet pair, then after it
                _same_malloc(args, case, table[case], runs, log)
            _pair(args, case, table[case], "quiet", r, runs, log)
            if args.same_malloc and not r % 2:
                _same_malloc(args, case, table[case], runs, log)
            if case in load_cases:
                with Load(args.load_processes or cores):
                    _pair(args, case, table[case], "loaded", r + 1, runs, log)
    return summarise(args, runs, layers, started, cases, load_cases)


def _summary(results):
    good = [x for x in results if "step_s" in x]
    if not good:
        return {"error": results[0].get("error") if results else "not run"}
    out = {f"{k}_s": harness.median(x[f"{k}_s"] for x in good) for k in ("forward", "backward", "optimizer", "step")}
    out["step_s_rounds"] = [round(x["step_s"], 4) for x in good]
    out["loadavg_rounds"] = [x.get("loadavg") for x in good]
    out["blas"] = good[0].get("blas")
    for key in ("torch_threads", "torch_version", "minitl_threads", "host_memory"):
        if key in good[0]:
            out[key] = good[0][key]
    return out


def _ratio(entry):
    """PyTorch step time ÷ minitl step time (> 1: minitl faster): of the medians, the median per round, and the
    per-round range (how far one round of this machine's noise moves the ratio)."""
    mt, th = entry.get("minitl", {}), entry.get("torch", {})
    if "step_s" not in mt or "step_s" not in th:
        return None
    pairs = [b / a for a, b in zip(mt["step_s_rounds"], th["step_s_rounds"])]
    return {"of_medians": th["step_s"] / mt["step_s"], "per_round_median": statistics.median(pairs),
            "per_round_range": [min(pairs), max(pairs)]}


def summarise(args, runs, layers, started, cases, load_cases) -> dict:
    result = {
        "benchmark": "cnn training step", "tiny": bool(args.tiny), "rounds": args.rounds, "warmup": args.warmup,
        "iters_per_worker": args.iters, "load_processes": (args.load_processes or os.cpu_count()) if load_cases else 0,
        "command": "python benchmarks/cnn_train.py " + " ".join(sys.argv[1:]),
        "openblas_overrides_unset_for_workers": harness.overrides_in_environment(),
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "loadavg_at_end": harness.load_average()},
        "cases": {},
    }
    for case in cases:
        spec = (TINY if args.tiny else CASES)[case]
        entry = {"spec": spec}
        for cond in CONDITIONS:
            if cond == "loaded" and case not in load_cases or cond == "same-malloc" and not args.same_malloc:
                continue
            results = dict(runs[case][cond])
            if cond == "same-malloc":  # minitl's side is its quiet run of the same rounds (its settings are its own)
                results["minitl"] = runs[case]["quiet"]["minitl"]
            entry[cond] = {fw: _summary(res) for fw, res in results.items()}
            entry[cond]["torch_over_minitl"] = _ratio(entry[cond])
        q, l_ = entry["quiet"].get("torch_over_minitl"), entry.get("loaded", {}).get("torch_over_minitl")
        if q and l_:
            entry["loaded_minus_quiet_ratio"] = l_["of_medians"] - q["of_medians"]
        result["cases"][case] = entry
    if layers is not None:
        result["layers"] = layers
    result["wall_seconds"] = round(time.time() - started, 1)
    return result


# ============================================================================ report
def _fmt_ratio(r):
    if not r:
        return "–"
    spread = f", {r['per_round_range'][0]:.2f}–{r['per_round_range'][1]:.2f}×" if "per_round_range" in r else ""
    return f"**{r['of_medians']:.2f}×** (per round {r['per_round_median']:.2f}×{spread})"


def markdown(result) -> str:
    lines = ["# CNN training step: minitl vs PyTorch CPU" + (" (TINY dry run: sizes not meaningful)" if result["tiny"] else ""),
             "", f"`{result['command']}` — each framework in its own process, alternated, {result['rounds']} rounds; "
             f"per worker the median of {result['iters_per_worker']} steps after {result['warmup']} warm-up; figures: "
             f"medians over rounds. Ratio = PyTorch step time ÷ minitl step time (> 1: minitl faster).", "",
             f"Machine: {result['machine']['cpu_count']} CPUs, {result['machine']['platform']}; load average at the end "
             f"{result['machine']['loadavg_at_end']}; OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset for the workers "
             f"(were set here: {result['openblas_overrides_unset_for_workers'] or 'none'}).", ""]
    blas_line, memory_line = {}, None
    for case, entry in result["cases"].items():
        s = entry["spec"]
        lines += [f"## {case}: {s['size']}×{s['size']}, batch {s['batch']}, {s['classes']} classes"
                  + (", CIFAR stem" if s["cifar"] else ""), "",
                  "| condition | framework | step s | forward | backward | optimizer | per round (s) | ratio |",
                  "|---|---|---:|---:|---:|---:|---|---|"]
        for cond in CONDITIONS:
            if cond not in entry:
                continue
            for fw in FRAMEWORKS:
                if cond == "same-malloc" and fw == "minitl":
                    continue  # its quiet row
                e = entry[cond][fw]
                if "error" in e:
                    lines.append(f"| {cond} | {fw} | error: {e['error'][-80:]!r} | | | | | |")
                    continue
                st = e["step_s"]
                shares = " | ".join(f"{e[k + '_s']:.3f} ({100 * e[k + '_s'] / st:.0f}%)" for k in ("forward", "backward", "optimizer"))
                ratio = _fmt_ratio(entry[cond]["torch_over_minitl"]) if fw == "minitl" or cond == "same-malloc" else ""
                lines.append(f"| {cond} | {fw} | {st:.3f} | {shares} | {', '.join(f'{v:.2f}' for v in e['step_s_rounds'])} | {ratio} |")
                if fw == "minitl" and e.get("blas"):
                    blas_line["minitl"] = "minitl: " + "; ".join(
                        f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')}, {b.get('num_threads')} threads)"
                        for b in e["blas"] if b.get("user_api") == "blas") + f", {e.get('minitl_threads', '?')} chunk threads"
                    memory_line = e.get("host_memory")
                if fw == "torch" and e.get("torch_threads"):
                    blas_line["torch"] = f"PyTorch {e.get('torch_version')} ({e['torch_threads']} threads)"
        if "loaded_minus_quiet_ratio" in entry:
            q, l_ = entry["quiet"]["torch_over_minitl"], entry["loaded"]["torch_over_minitl"]
            lines += ["", f"Quiet ratio {q['of_medians']:.2f}×, loaded ratio {l_['of_medians']:.2f}× "
                      f"({result['load_processes']} busy processes): loaded − quiet = {entry['loaded_minus_quiet_ratio']:+.2f} "
                      f"(target ≥ −0.10: {'met' if entry['loaded_minus_quiet_ratio'] >= -0.1 else 'missed'})."]
        lines.append("")
    if blas_line:
        lines += [f"BLAS kernel (threadpoolctl, in the workers): {'; '.join(blas_line.values())}", ""]
    if memory_line:
        lines += [f"Host memory in the minitl workers: {memory_line} (minitl.host_memory, applied by `import minitl`). "
                  "The `same-malloc` row runs PyTorch with the same glibc settings (MALLOC_MMAP_THRESHOLD_, "
                  "MALLOC_TRIM_THRESHOLD_) and sets it against minitl's quiet rounds: the like-for-like ratio.", ""]
    if "layers" in result:
        lines += _layers_md(result)
    return "\n".join(lines) + "\n"


def _layers_md(result):
    lay = result["layers"]
    if any("layers" not in lay.get(fw, {}) for fw in FRAMEWORKS):
        return ["Per-layer table: a worker failed: " + "; ".join(str(lay.get(fw, {}).get("error", ""))[-200:] for fw in FRAMEWORKS)]
    lines = ["## Per layer: conv → BatchNorm → ReLU of ResNet-18 CIFAR (batch as above), ms", "",
             "| layer | × in net | minitl fwd | torch fwd | minitl fwd+bwd | torch fwd+bwd | speed vs torch (fwd+bwd) | "
             "conv alone fwd+bwd: minitl / torch | BN+ReLU (the rest): minitl / torch | minitl share of sum |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    mt, th = lay["minitl"]["layers"], lay["torch"]["layers"]
    total_m = sum(r["fwdbwd_s"] * r["count"] for r in mt)
    total_t = sum(r["fwdbwd_s"] * r["count"] for r in th)
    conv_m = sum(r.get("conv_fwdbwd_s", 0) * r["count"] for r in mt)
    conv_t = sum(r.get("conv_fwdbwd_s", 0) * r["count"] for r in th)
    for a, b in zip(mt, th):
        conv = f"{1e3 * a.get('conv_fwdbwd_s', 0):.1f} / {1e3 * b.get('conv_fwdbwd_s', 0):.1f}"
        rest = (f"{1e3 * (a['fwdbwd_s'] - a.get('conv_fwdbwd_s', 0)):.1f} / "
                f"{1e3 * (b['fwdbwd_s'] - b.get('conv_fwdbwd_s', 0)):.1f}")
        lines.append(f"| {a['layer']} | {a['count']} | {1e3 * a['fwd_s']:.1f} | {1e3 * b['fwd_s']:.1f} | "
                     f"{1e3 * a['fwdbwd_s']:.1f} | {1e3 * b['fwdbwd_s']:.1f} | {b['fwdbwd_s'] / a['fwdbwd_s']:.2f}× | "
                     f"{conv} | {rest} | {100 * a['fwdbwd_s'] * a['count'] / total_m:.0f}% |")
    lines.append(f"| **sum × count** | | | | {1e3 * total_m:.0f} | {1e3 * total_t:.0f} | {total_t / total_m:.2f}× | "
                 f"{1e3 * conv_m:.0f} / {1e3 * conv_t:.0f} | {1e3 * (total_m - conv_m):.0f} / {1e3 * (total_t - conv_t):.0f} | |")
    lines += ["", f"Load average during the layer workers: minitl {lay['minitl'].get('loadavg')}, torch {lay['torch'].get('loadavg')} "
              "(one worker each, run once before the rounds).", ""]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps per worker")
    parser.add_argument("--iters", type=int, default=3, help="timed training steps per worker (median)")
    parser.add_argument("--cases", default="resnet18,resnet50", help="comma-separated subset of " + ",".join(CASES))
    parser.add_argument("--load", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure under one busy process per core (default on)")
    parser.add_argument("--load-cases", default="resnet18", help="cases measured under load too")
    parser.add_argument("--load-processes", type=int, default=0, help="busy processes (default: one per core)")
    parser.add_argument("--layers", action=argparse.BooleanOptionalAction, default=True, help="per-layer table")
    parser.add_argument("--same-malloc", action=argparse.BooleanOptionalAction, default=True,
                        help="also run PyTorch with the glibc malloc settings minitl makes for itself (like-for-like)")
    parser.add_argument("--tiny", action="store_true", help="dry run with tiny sizes (checks the plumbing only)")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "cnn_train"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(args.spec)
        if args.mode == "layers":
            out = worker_layers(args.worker, spec["batch"], args.warmup, args.iters, spec["layers"])
        else:
            out = worker_step(args.worker, spec, args.warmup, args.iters)
        print(json.dumps(out))
        return 0
    if args.tiny and args.out == parser.get_default("out"):
        args.out += "-tiny"
    result = run(args)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".json", "w") as handle:
        json.dump(result, handle, indent=2)
    text = markdown(result)
    with open(args.out + ".md", "w") as handle:
        handle.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
