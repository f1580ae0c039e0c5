"""Convolution, max-pool and BatchNorm speed: minitl vs the bare NumPy GEMM vs PyTorch CPU.

The 3×3 convolutions of a CIFAR-style ResNet-18 at batch 64, float32, stride 1, padding 1, no bias:

    64→64 at 32×32,  128→128 at 16×16,  256→256 at 8×8,  512→512 at 4×4

timed forward and forward+backward (gradients for x and the weight) in each of these workers:

    gemm              the bare NumPy GEMM of the same size: X_col (N·H·W, 9C) · W_col (9C, O); for
                      forward+backward the three GEMMs of im2col training (X_col·W, X_colᵀ·dY, dY·W_colᵀ)
    minitl-im2col     minitl.functional.conv2d with Winograd off (im2col + GEMM)
    minitl-winograd   minitl.functional.conv2d with Winograd F(2×2,3×3) forced on
    torch             torch.nn.functional.conv2d (oneDNN)

Each worker also times, on that conv's output, max_pool2d 3×3/2 (padding 1) and BatchNorm in
training mode (forward and forward+backward), reported as a fraction of the same worker's conv.
Every framework gets its native layout: minitl an NCHW-shaped array in NHWC memory (what its
conv2d, BatchNorm and pooling return), PyTorch contiguous NCHW.

Method: each framework runs in its own process (OpenBLAS worker threads spin ~50–100 ms after
each call and would slow whatever runs next in the same process); the workers alternate
A B C D, D C B A, ... for ``--rounds`` (≥ 5) rounds; inside a worker every figure is the median of
``--reps`` timed calls after two warm-up calls; the reported figure is the median over rounds.
"minitl" in the summary is the path ``conv2d`` picks by default (winograd="auto") for that layer.
A profile worker (run once, after the rounds) splits minitl's time into its phases.

    python benchmarks/conv.py                    # writes benchmarks/results/conv.json and conv.md
    python benchmarks/conv.py --rounds 7 --resnet50-memory
    python benchmarks/conv.py --worker torch     # one worker, JSON on stdout

``--resnet50-memory`` also runs minitl's ResNet-50 forward at 224×224, batch 32 (no_grad) once and
records its peak RSS (the bounded im2col workspace is what keeps it small).
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, if set, are removed for the workers.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

from minitl.bench import harness

LAYERS = [(64, 32), (128, 16), (256, 8), (512, 4)]  # (channels, spatial size) of the CIFAR ResNet-18 3×3 convs
BATCH = 64
WORKERS = ["gemm", "minitl-im2col", "minitl-winograd", "torch"]
RESULTS = Path(__file__).resolve().parent / "results"


def _median_time(fn, reps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3  # ms


def _blas() -> list:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["threadpoolctl not installed"]
    return [{k: p.get(k) for k in ("user_api", "internal_api", "version", "architecture", "num_threads")}
            for p in threadpool_info()]


def _inputs(channels: int, size: int):
    import numpy as np

    rng = np.random.default_rng(channels)
    x = rng.standard_normal((BATCH, channels, size, size), dtype=np.float32)
    w = (rng.standard_normal((channels, channels, 3, 3), dtype=np.float32) / np.sqrt(9 * channels)).astype(np.float32)
    gy = rng.standard_normal((BATCH, channels, size, size), dtype=np.float32)
    return x, w, gy


# ============================================================================ workers
def _gemm_worker(reps: int) -> dict:
    import numpy as np

    out = {}
    for channels, size in LAYERS:
        rng = np.random.default_rng(0)
        m, k = BATCH * size * size, 9 * channels
        col = rng.standard_normal((m, k), dtype=np.float32)
        w = rng.standard_normal((k, channels), dtype=np.float32)
        gy = rng.standard_normal((m, channels), dtype=np.float32)

        def three():
            col @ w  # forward
            col.T @ gy  # dJ/dW_col
            gy @ w.T  # dJ/dX_col

        out[f"{channels}@{size}"] = {"fwd": _median_time(lambda: col @ w, reps), "fwdbwd": _median_time(three, reps),
                                     "gflop_fwd": 2 * m * k * channels / 1e9}
    return {"layers": out, "numpy": np.__version__}


def _minitl_worker(reps: int, winograd: bool) -> dict:
    import numpy as np

    import minitl
    import minitl.functional as F
    from minitl.functional import conv as conv_module

    auto = {f"{c}@{s}": conv_module._use_winograd(np, 3, 3, (1, 1), (1, 1), 1, c, c, s, s) for c, s in LAYERS}
    conv_module.set_winograd(winograd)
    out = {}
    for channels, size in LAYERS:
        x_np, w_np, gy_np = _inputs(channels, size)
        nhwc = np.ascontiguousarray(x_np.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # what a conv/BN/ReLU hands on
        gy = np.ascontiguousarray(gy_np.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        w = minitl.Tensor(w_np)
        row = {}
        with minitl.no_grad():
            row["fwd"] = _median_time(lambda: F.conv2d(minitl.Tensor(nhwc), w, padding=1), reps)
        xg, wg = minitl.Tensor(nhwc, requires_grad=True), minitl.Tensor(w_np, requires_grad=True)

        def conv_step():
            y = F.conv2d(xg, wg, padding=1)
            y.backward(gy)
            xg.grad = wg.grad = None

        row["fwdbwd"] = _median_time(conv_step, reps)
        # max-pool 3×3/2 and BatchNorm (train mode) on this conv's output
        y = F.conv2d(minitl.Tensor(nhwc), w, padding=1)
        pool_out = F.max_pool2d(y, 3, 2, 1)
        gp = np.ascontiguousarray(np.ones(pool_out.shape, np.float32).transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        with minitl.no_grad():
            row["pool_fwd"] = _median_time(lambda: F.max_pool2d(y, 3, 2, 1), reps)
        yg = minitl.Tensor(y.data, requires_grad=True)

        def pool_step():
            F.max_pool2d(yg, 3, 2, 1).backward(gp)
            yg.grad = None

        row["pool_fwdbwd"] = _median_time(pool_step, reps)
        bn = minitl.nn.BatchNorm2d(channels)
        with minitl.no_grad():
            row["bn_fwd"] = _median_time(lambda: bn(y), reps)

        def bn_step():
            bn(yg).backward(gy)
            yg.grad = None
            bn.zero_grad()

        row["bn_fwdbwd"] = _median_time(bn_step, reps)
        row["max_abs_vs_float64"] = _check(F, minitl, x_np, w_np)
        out[f"{channels}@{size}"] = row
    return {"layers": out, "minitl": minitl.__version__, "numpy": np.__version__,
            "winograd": winograd, "auto_picks_winograd": auto}


def _check(F, minitl, x_np, w_np) -> float:
    """Largest |float32 result − float64 result| on two samples (the fast path stays accurate)."""
    import numpy as np

    y32 = F.conv2d(minitl.Tensor(x_np[:2]), minitl.Tensor(w_np), padding=1).numpy()
    y64 = F.conv2d(minitl.Tensor(x_np[:2].astype(np.float64)), minitl.Tensor(w_np.astype(np.float64)), padding=1).numpy()
    return float(np.abs(y32 - y64).max())


def _torch_worker(reps: int) -> dict:
    import torch

    out = {}
    for channels, size in LAYERS:
        x_np, w_np, gy_np = _inputs(channels, size)
        x, w, gy = torch.from_numpy(x_np), torch.from_numpy(w_np), torch.from_numpy(gy_np)
        row = {}
        with torch.no_grad():
            row["fwd"] = _median_time(lambda: torch.nn.functional.conv2d(x, w, padding=1), reps)
        xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()

        def conv_step():
            torch.nn.functional.conv2d(xg, wg, padding=1).backward(gy)
            xg.grad = wg.grad = None

        row["fwdbwd"] = _median_time(conv_step, reps)
        with torch.no_grad():
            y = torch.nn.functional.conv2d(x, w, padding=1)
            row["pool_fwd"] = _median_time(lambda: torch.nn.functional.max_pool2d(y, 3, 2, 1), reps)
        yg = y.clone().requires_grad_()
        gp = torch.ones(torch.nn.functional.max_pool2d(y, 3, 2, 1).shape)

        def pool_step():
            torch.nn.functional.max_pool2d(yg, 3, 2, 1).backward(gp)
            yg.grad = None

        row["pool_fwdbwd"] = _median_time(pool_step, reps)
        bn = torch.nn.BatchNorm2d(channels)
        with torch.no_grad():
            row["bn_fwd"] = _median_time(lambda: bn(y), reps)

        def bn_step():
            bn(yg).backward(gy)
            yg.grad = None
            bn.zero_grad()

        row["bn_fwdbwd"] = _median_time(bn_step, reps)
        out[f"{channels}@{size}"] = row
    return {"layers": out, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "torch_mkldnn": bool(torch.backends.mkldnn.is_available())}


def _profile_worker(reps: int) -> dict:
    """minitl's conv phases, timed one by one (the same calls conv2d makes), per layer."""
    import numpy as np

    from minitl.functional import conv as C
    from minitl.functional.im2col import im2col
    from minitl.functional import layout as L
    from minitl.functional import winograd as Wn

    out = {}
    for channels, size in LAYERS:
        x_np, w_np, _ = _inputs(channels, size)
        x = np.ascontiguousarray(x_np.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        row = {}
        xpad = L.pad_nhwc(np, x, 1, 1)
        wcol = C._Kernel(w_np, 1).columns()
        per_sample = size * size * 9 * channels
        chunks = L.batch_chunks(np, BATCH, per_sample * 4, size * size)
        step = chunks[0][1] - chunks[0][0]
        buffer = np.empty(per_sample * step, np.float32)
        y = np.empty((BATCH, size, size, channels), np.float32)
        row["chunk_samples"] = step
        row["pad"] = _median_time(lambda: L.pad_nhwc(np, x, 1, 1), reps)

        def im2col_only():
            for n0, n1 in chunks:
                im2col(np, xpad[n0:n1], 3, 3, size, size, (1, 1), (1, 1), 1, buffer)

        cols = [im2col(np, xpad[n0:n1], 3, 3, size, size, (1, 1), (1, 1), 1).copy() for n0, n1 in chunks]

        def gemm_only():
            for (n0, n1), col in zip(chunks, cols):
                np.matmul(col[0], wcol[0], out=y[n0:n1].reshape(-1, channels))

        def im2col_gemm():
            for n0, n1 in chunks:
                col = im2col(np, xpad[n0:n1], 3, 3, size, size, (1, 1), (1, 1), 1, buffer)
                np.matmul(col[0], wcol[0], out=y[n0:n1].reshape(-1, channels))

        row["im2col_copy"] = _median_time(im2col_only, reps)
        row["gemm_chunked"] = _median_time(gemm_only, reps)
        row["im2col+gemm"] = _median_time(im2col_gemm, reps)
        row["weight_matrix"] = _median_time(lambda: C._Kernel(w_np, 1).rows(), reps)
        # Winograd phases on the whole batch
        th = size // 2
        t = np.empty((4, BATCH, th, size + 2, channels), np.float32)
        v = np.empty((16, BATCH, th, th, channels), np.float32)
        m = np.empty((16, BATCH * th * th, channels), np.float32)
        s = np.empty((2, 4, BATCH, th, th, channels), np.float32)
        u = Wn.kernel_transform(np, w_np)
        row["wino_kernel_transform"] = _median_time(lambda: Wn.kernel_transform(np, w_np), reps)
        row["wino_input_transform"] = _median_time(lambda: Wn.input_transform(np, xpad, th, th, t, v), reps)
        vv = v.reshape(16, -1, channels)
        row["wino_16_gemms"] = _median_time(lambda: np.matmul(vv, u, out=m), reps)
        row["wino_output_transform"] = _median_time(
            lambda: Wn.output_transform(np, m.reshape(4, 4, BATCH, th, th, channels), y, s), reps)
        out[f"{channels}@{size}"] = row
    return {"layers": out}


def _resnet50_memory_worker() -> dict:
    import numpy as np

    import minitl
    from minitl.models import resnet50

    model = resnet50().eval()
    x = minitl.Tensor(np.random.default_rng(0).standard_normal((32, 3, 224, 224), dtype=np.float32))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    with minitl.no_grad():
        logits = model(x)
    return {"batch": 32, "size": 224, "seconds": time.perf_counter() - start, "logits_shape": list(logits.shape),
            "peak_rss_mib_before_forward": before,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def worker(name: str, reps: int) -> dict:
    load_before = os.getloadavg()[0]
    cpu0 = time.process_time()
    if name == "gemm":
        result = _gemm_worker(reps)
    elif name == "minitl-im2col":
        result = _minitl_worker(reps, winograd=False)
    elif name == "minitl-winograd":
        result = _minitl_worker(reps, winograd=True)
    elif name == "torch":
        result = _torch_worker(reps)
    elif name == "profile":
        result = _profile_worker(reps)
    elif name == "resnet50-memory":
        result = _resnet50_memory_worker()
    else:
        raise ValueError(name)
    result.update(worker=name, blas=_blas(), peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  load_avg_1min_before=load_before, load_avg_1min_after=os.getloadavg()[0],
                  cpu_seconds=time.process_time() - cpu0)
    return result


# ============================================================================ the driver
def _run(name: str, reps: int) -> dict:
    return harness.run_worker([os.path.abspath(__file__), "--worker", name, "--reps", reps]).last(f"worker {name}")


def _median_rows(runs: list) -> dict:
    """Per layer and per field, the median over rounds."""
    layers = {}
    for key in runs[0]["layers"]:
        fields = [f for f, v in runs[0]["layers"][key].items() if isinstance(v, (int, float))]
        layers[key] = {f: harness.median(r["layers"][key][f] for r in runs) for f in fields}
    return layers


def summarise(medians: dict, auto: dict) -> dict:
    gemm, torch = medians["gemm"], medians.get("torch")
    im2col, wino = medians["minitl-im2col"], medians["minitl-winograd"]
    rows, total = [], {k: 0.0 for k in ("gemm_fwd", "gemm3", "im2col_fwd", "im2col_fwdbwd", "wino_fwd",
                                        "wino_fwdbwd", "minitl_fwd", "minitl_fwdbwd", "torch_fwd", "torch_fwdbwd")}
    for key in gemm:
        picked = wino if auto.get(key) else im2col
        row = {
            "layer": key, "auto_path": "winograd" if auto.get(key) else "im2col",
            "gemm_fwd_ms": gemm[key]["fwd"], "gemm3_ms": gemm[key]["fwdbwd"],
            "im2col_fwd_ms": im2col[key]["fwd"], "im2col_fwdbwd_ms": im2col[key]["fwdbwd"],
            "winograd_fwd_ms": wino[key]["fwd"], "winograd_fwdbwd_ms": wino[key]["fwdbwd"],
            "minitl_fwd_ms": picked[key]["fwd"], "minitl_fwdbwd_ms": picked[key]["fwdbwd"],
            "minitl_fwd_over_gemm": picked[key]["fwd"] / gemm[key]["fwd"],
            "minitl_fwdbwd_over_3gemm": picked[key]["fwdbwd"] / gemm[key]["fwdbwd"],
            "pool_fwd_over_conv_fwd": picked[key]["pool_fwd"] / picked[key]["fwd"],
            "pool_fwdbwd_over_conv_fwdbwd": picked[key]["pool_fwdbwd"] / picked[key]["fwdbwd"],
            "bn_fwd_over_conv_fwd": picked[key]["bn_fwd"] / picked[key]["fwd"],
            "bn_fwdbwd_over_conv_fwdbwd": picked[key]["bn_fwdbwd"] / picked[key]["fwdbwd"],
            "minitl_pool_fwd_ms": picked[key]["pool_fwd"], "minitl_pool_fwdbwd_ms": picked[key]["pool_fwdbwd"],
            "minitl_bn_fwd_ms": picked[key]["bn_fwd"], "minitl_bn_fwdbwd_ms": picked[key]["bn_fwdbwd"],
        }
        for name, src in (("gemm_fwd", gemm[key]["fwd"]), ("gemm3", gemm[key]["fwdbwd"]),
                          ("im2col_fwd", im2col[key]["fwd"]), ("im2col_fwdbwd", im2col[key]["fwdbwd"]),
                          ("wino_fwd", wino[key]["fwd"]), ("wino_fwdbwd", wino[key]["fwdbwd"]),
                          ("minitl_fwd", row["minitl_fwd_ms"]), ("minitl_fwdbwd", row["minitl_fwdbwd_ms"])):
            total[name] += src
        if torch:
            row.update(torch_fwd_ms=torch[key]["fwd"], torch_fwdbwd_ms=torch[key]["fwdbwd"],
                       minitl_fwd_speed_vs_torch=torch[key]["fwd"] / row["minitl_fwd_ms"],
                       minitl_fwdbwd_speed_vs_torch=torch[key]["fwdbwd"] / row["minitl_fwdbwd_ms"],
                       torch_pool_fwd_ms=torch[key]["pool_fwd"], torch_pool_fwdbwd_ms=torch[key]["pool_fwdbwd"],
                       torch_bn_fwd_ms=torch[key]["bn_fwd"], torch_bn_fwdbwd_ms=torch[key]["bn_fwdbwd"])
            total["torch_fwd"] += torch[key]["fwd"]
            total["torch_fwdbwd"] += torch[key]["fwdbwd"]
        rows.append(row)
    targets = {
        "conv_fwd_over_gemm (target <= 1.3)": total["minitl_fwd"] / total["gemm_fwd"],
        "conv_fwdbwd_over_3gemm (target <= 1.5)": total["minitl_fwdbwd"] / total["gemm3"],
        "im2col_fwd_over_gemm": total["im2col_fwd"] / total["gemm_fwd"],
        "im2col_fwdbwd_over_3gemm": total["im2col_fwdbwd"] / total["gemm3"],
    }
    if torch:
        targets["conv_fwdbwd_speed_vs_torch (target >= 0.6)"] = total["torch_fwdbwd"] / total["minitl_fwdbwd"]
        targets["conv_fwd_speed_vs_torch (stretch: >= 1.0)"] = total["torch_fwd"] / total["minitl_fwd"]
    targets["max_pool_over_conv, worst layer, fwd / fwd+bwd (target < 0.10)"] = [
        max(r["pool_fwd_over_conv_fwd"] for r in rows), max(r["pool_fwdbwd_over_conv_fwdbwd"] for r in rows)]
    targets["batchnorm_over_conv, worst layer, fwd / fwd+bwd (target < 0.10)"] = [
        max(r["bn_fwd_over_conv_fwd"] for r in rows), max(r["bn_fwdbwd_over_conv_fwdbwd"] for r in rows)]
    return {"rows": rows, "totals_ms": total, "ratios": targets}


def markdown(report: dict) -> str:
    s = report["summary"]
    lines = [
        "# Convolution benchmark (CIFAR ResNet-18 3×3 convs, batch 64, float32)",
        "",
        f"`{report['command']}` — {report['method']}",
        "",
        f"Machine: {report['machine']['cpus']} CPUs, {report['machine']['processor'] or report['machine']['platform']}; "
        f"BLAS: {report['blas']}; PyTorch {report.get('torch_env', {}).get('torch', 'n/a')} "
        f"({report.get('torch_env', {}).get('torch_threads', '?')} threads).",
        "",
        "Times in ms (median over rounds). ×GEMM: minitl ÷ bare GEMM of the same size (forward: one GEMM; "
        "forward+backward: the three GEMMs of im2col training). speed vs torch: PyTorch time ÷ minitl time.",
        "",
        "| layer | path | GEMM fwd | minitl fwd | ×GEMM | torch fwd | 3 GEMMs | minitl fwd+bwd | ×3 GEMMs "
        "| torch fwd+bwd | speed vs torch (fwd+bwd) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s["rows"]:
        lines.append(
            f"| {r['layer']} | {r['auto_path']} | {r['gemm_fwd_ms']:.1f} | {r['minitl_fwd_ms']:.1f} | "
            f"{r['minitl_fwd_over_gemm']:.2f} | {r.get('torch_fwd_ms', float('nan')):.1f} | {r['gemm3_ms']:.1f} | "
            f"{r['minitl_fwdbwd_ms']:.1f} | {r['minitl_fwdbwd_over_3gemm']:.2f} | "
            f"{r.get('torch_fwdbwd_ms', float('nan')):.1f} | {r.get('minitl_fwdbwd_speed_vs_torch', float('nan')):.2f} |")
    t = s["totals_ms"]
    lines.append(
        f"| **sum** | | {t['gemm_fwd']:.1f} | {t['minitl_fwd']:.1f} | {t['minitl_fwd'] / t['gemm_fwd']:.2f} | "
        f"{t['torch_fwd']:.1f} | {t['gemm3']:.1f} | {t['minitl_fwdbwd']:.1f} | {t['minitl_fwdbwd'] / t['gemm3']:.2f} | "
        f"{t['torch_fwdbwd']:.1f} | {t['torch_fwdbwd'] / t['minitl_fwdbwd'] if t['minitl_fwdbwd'] else float('nan'):.2f} |")
    lines += ["", "Both minitl paths (ms):", "",
              "| layer | im2col fwd | Winograd fwd | im2col fwd+bwd | Winograd fwd+bwd | auto picks |",
              "|---|---:|---:|---:|---:|---|"]
    for r in s["rows"]:
        lines.append(f"| {r['layer']} | {r['im2col_fwd_ms']:.1f} | {r['winograd_fwd_ms']:.1f} | "
                     f"{r['im2col_fwdbwd_ms']:.1f} | {r['winograd_fwdbwd_ms']:.1f} | {r['auto_path']} |")
    lines += ["", "Max-pool 3×3/2 and BatchNorm (train mode) on each conv's output, as a fraction of that conv "
              "(minitl; PyTorch ms for context):", "",
              "| layer | pool fwd | pool fwd+bwd | BN fwd | BN fwd+bwd | pool/conv fwd | pool/conv fwd+bwd "
              "| BN/conv fwd | BN/conv fwd+bwd | torch pool fwd+bwd | torch BN fwd+bwd |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in s["rows"]:
        lines.append(
            f"| {r['layer']} | {r['minitl_pool_fwd_ms']:.2f} | {r['minitl_pool_fwdbwd_ms']:.2f} | "
            f"{r['minitl_bn_fwd_ms']:.2f} | {r['minitl_bn_fwdbwd_ms']:.2f} | {r['pool_fwd_over_conv_fwd']:.1%} | "
            f"{r['pool_fwdbwd_over_conv_fwdbwd']:.1%} | {r['bn_fwd_over_conv_fwd']:.1%} | "
            f"{r['bn_fwdbwd_over_conv_fwdbwd']:.1%} | {r.get('torch_pool_fwdbwd_ms', float('nan')):.2f} | "
            f"{r.get('torch_bn_fwdbwd_ms', float('nan')):.2f} |")
    loads = [v for per in report.get("load_avg_1min_per_worker", {}).values() for v in per]
    if loads:
        lines += ["", f"1-minute load average when the workers started: {min(loads):.2f} … {max(loads):.2f} "
                      "(2 CPUs, shared: results from a loaded machine understate minitl, see the JSON note)."]
    lines += ["", "Targets:", ""]
    for name, value in s["ratios"].items():
        shown = " / ".join(f"{v:.2f}" for v in value) if isinstance(value, list) else f"{value:.2f}"
        lines.append(f"- {name}: **{shown}**")
    if report.get("profile"):
        lines += ["", "Profile of minitl's forward phases (ms, one worker, whole batch):", "",
                  "| layer | chunk (samples) | pad | im2col copy | GEMM (chunked) | im2col+GEMM | Winograd: kernel "
                  "| input transform | 16 GEMMs | output transform |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for key, p in report["profile"]["layers"].items():
            lines.append(
                f"| {key} | {p['chunk_samples']} | {p['pad']:.1f} | {p['im2col_copy']:.1f} | {p['gemm_chunked']:.1f} | "
                f"{p['im2col+gemm']:.1f} | {p['wino_kernel_transform']:.1f} | {p['wino_input_transform']:.1f} | "
                f"{p['wino_16_gemms']:.1f} | {p['wino_output_transform']:.1f} |")
    if report.get("resnet50_memory"):
        m = report["resnet50_memory"]
        lines += ["", f"ResNet-50 forward, 224×224, batch {m['batch']}, no_grad: peak RSS {m['peak_rss_mib']:.0f} MiB "
                      f"({m['seconds']:.1f} s)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=WORKERS + ["profile", "resnet50-memory"], help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds (>= 5; default 5)")
    parser.add_argument("--reps", type=int, default=5, help="timed calls per figure inside a worker (default 5)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch worker")
    parser.add_argument("--resnet50-memory", action="store_true", help="also measure ResNet-50 224×224 batch-32 peak RSS")
    parser.add_argument("--output", type=Path, default=RESULTS / "conv.json", help="JSON file (a .md table goes beside it)")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.reps)))
        return 0
    if args.rounds < 5:
        parser.error("--rounds must be >= 5 (medians of at least five alternated rounds)")
    names = [w for w in WORKERS if not (w == "torch" and args.no_torch)]
    if "torch" in names:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("PyTorch not installed: running without it (pip install torch==2.13.0)", file=sys.stderr)
            names.remove("torch")
    runs = {n: [] for n in names}
    for r in range(args.rounds):
        for name in harness.alternated(names, r):
            result = _run(name, args.reps)
            runs[name].append(result)
            brief = "  ".join(f"{k}: {v['fwd']:.1f}/{v['fwdbwd']:.1f}" for k, v in result["layers"].items())
            print(f"round {r + 1}/{args.rounds}  {name:16s} fwd/fwd+bwd ms  {brief}  "
                  f"(load {result['load_avg_1min_before']:.2f})", flush=True)
    medians = {n: _median_rows(runs[n]) for n in names}
    auto = runs["minitl-im2col"][0]["auto_picks_winograd"]
    report = {
        "benchmark": "3×3 convolutions of a CIFAR ResNet-18 (batch 64, float32, stride 1, padding 1, no bias); "
                     "max-pool 3×3/2 and BatchNorm (train) on each conv's output",
        "method": f"each framework in its own process, alternated (order reversed every round), {args.rounds} rounds; "
                  f"inside a worker the median of {args.reps} calls after 2 warm-up calls; figures: medians over rounds",
        "command": "python benchmarks/conv.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "medians_ms": medians,
        "runs": {n: [r["layers"] for r in runs[n]] for n in names},
        "summary": summarise(medians, auto),
        "blas": runs["minitl-im2col"][0]["blas"],
        "minitl_env": {k: runs["minitl-im2col"][0][k] for k in ("minitl", "numpy")},
        "accuracy_max_abs_float32_vs_float64": {n: {k: v["max_abs_vs_float64"] for k, v in runs[n][0]["layers"].items()}
                                                for n in ("minitl-im2col", "minitl-winograd")},
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "unset_for_workers": harness.overrides_in_environment(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_avg_1min_per_worker": {n: [round(r["load_avg_1min_before"], 2) for r in runs[n]] for n in names},
        "note": "a shared 2-core machine: under load from other processes OpenBLAS's per-call thread "
                "synchronisation slows minitl's cache-blocked GEMM calls far more than one big GEMM; "
                "compare runs whose load averages are low",
    }
    if "torch" in names:
        report["torch_env"] = {k: runs["torch"][0][k] for k in ("torch", "torch_threads", "torch_mkldnn", "blas")}
    print("profiling minitl's phases ...", flush=True)
    report["profile"] = _run("profile", args.reps)
    if args.resnet50_memory:
        print("ResNet-50 224×224 batch 32 forward (memory) ...", flush=True)
        report["resnet50_memory"] = _run("resnet50-memory", 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    args.output.with_suffix(".md").write_text(table)
    print()
    print(table)
    print(f"written to {args.output} and {args.output.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
