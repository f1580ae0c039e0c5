"""MLP training throughput: minitl vs PyTorch (CPU), each in its own process, run in alternation.

The network is 784-512-512-10 (ReLU), float32, trained with SGD (lr 0.01, momentum 0.9) on
cross-entropy; one measured step = zero_grad + forward + loss + backward + optimizer step.
Inputs are random (throughput does not depend on the values); a pool of 8 batches is
made before timing.  Batch sizes 32, 128 and 512.

Method (learned the hard way here): OpenBLAS worker threads keep spinning ~50-100 ms after
each call and slow whatever runs next, so the two frameworks never share a process.  Each
(round, batch, framework) is a fresh worker process; the frameworks alternate A B A B ...
(the order flips every round), and the figure is the median over >= 5 rounds of each
worker's samples/s.  The ratio minitl/torch is computed from those medians; the median of the
per-round ratios (each pair measured back to back) is reported beside it.

    python benchmarks/mlp.py                      # 5 rounds, writes benchmarks/results/mlp.json
    python benchmarks/mlp.py --rounds 7 --batches 128
    python benchmarks/mlp.py --threads 1           # one thread each: steadier on a busy shared machine
    python benchmarks/mlp.py --worker minitl --batch 128     # one measurement, JSON on stdout

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, if set in the environment, are removed for the workers.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from minitl.bench import harness

SIZES = (784, 512, 512, 10)
LR, MOMENTUM = 0.01, 0.9
POOL = 8
RESULTS = Path(__file__).resolve().parent / "results" / "mlp.json"


# ============================================================================ one worker = one framework, one batch size
def _minitl_step(batch: int):
    import numpy as np

    import minitl
    import minitl.functional as F
    from minitl import nn, optim

    rng = np.random.default_rng(0)
    xs = [minitl.Tensor(rng.standard_normal((batch, SIZES[0])).astype(np.float32)) for _ in range(POOL)]
    ys = [minitl.Tensor(rng.integers(0, SIZES[-1], batch)) for _ in range(POOL)]
    minitl.manual_seed(0)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(SIZES) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def step(i):
        opt.zero_grad()
        loss = F.cross_entropy(model(xs[i % POOL]), ys[i % POOL])
        loss.backward()
        opt.step()
        return loss

    def read(loss):
        return loss.item()

    return step, read, {"minitl": minitl.__version__, "numpy": np.__version__}


def _torch_step(batch: int):
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    xs = [torch.from_numpy(rng.standard_normal((batch, SIZES[0])).astype(np.float32)) for _ in range(POOL)]
    ys = [torch.from_numpy(rng.integers(0, SIZES[-1], batch)) for _ in range(POOL)]
    torch.manual_seed(0)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def step(i):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xs[i % POOL]), ys[i % POOL])
        loss.backward()
        opt.step()
        return loss

    def read(loss):
        return loss.item()

    info = {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "torch_blas": "MKL" if torch.backends.mkl.is_available() else "other",
            "torch_mkldnn": bool(torch.backends.mkldnn.is_available())}
    return step, read, info


def worker(framework: str, batch: int, seconds: float, warmup: int) -> dict:
    step, read, info = (_minitl_step if framework == "minitl" else _torch_step)(batch)
    for i in range(warmup):
        read(step(i))
    # calibrate: enough steps for about `seconds`
    start = time.perf_counter()
    steps = 0
    while time.perf_counter() - start < seconds / 4:
        read(step(steps))
        steps += 1
    n = max(5, int(steps * 4))
    cpu0, start = time.process_time(), time.perf_counter()
    loss = None
    for i in range(n):
        loss = step(i)
    final = read(loss)  # one read at the end (a training loop reads its loss)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    try:
        from threadpoolctl import threadpool_info

        pools = [{k: p.get(k) for k in ("user_api", "internal_api", "version", "architecture", "num_threads")}
                 for p in threadpool_info()]
    except ImportError:
        pools = "threadpoolctl not installed"
    return {"framework": framework, "batch": batch, "steps": n, "seconds": elapsed, "cpu_seconds": cpu,
            "load_average_1min": os.getloadavg()[0], "cpus_used": cpu / elapsed,
            "samples_per_s": n * batch / elapsed, "ms_per_step": 1e3 * elapsed / n, "final_loss": final,
            "threadpools": pools, **info}


# ============================================================================ the driver
def _run_worker(framework: str, batch: int, seconds: float, warmup: int, threads: int | None) -> dict:
    done = harness.run_worker([__file__, "--worker", framework, "--batch", batch, "--seconds", seconds,
                               "--warmup", warmup], threads=threads)
    return done.last(f"{framework} worker (batch {batch})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=["minitl", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=128, help=argparse.SUPPRESS)
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128, 512], help="batch sizes (default 32 128 512)")
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds per batch size (>= 5; default 5)")
    parser.add_argument("--seconds", type=float, default=1.5, help="timed seconds per worker (default 1.5)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps per worker (default 10)")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS/OpenMP threads for both frameworks (default: each library's own default)")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"JSON file (default {RESULTS}, or mlp_<N>threads.json with --threads N)")
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker, args.batch, args.seconds, args.warmup)))
        return 0
    if args.output is None:
        args.output = RESULTS if not args.threads else RESULTS.with_name(f"mlp_{args.threads}thread.json")
    if args.rounds < 5:
        parser.error("--rounds must be >= 5 (medians of at least five alternated rounds)")
    try:
        import torch  # noqa: F401
    except ImportError:
        print("PyTorch is not installed (pip install torch==2.13.0): nothing to compare against", file=sys.stderr)
        return 1

    runs = {b: {"minitl": [], "torch": []} for b in args.batches}
    turn = 0
    for r in range(args.rounds):
        for batch in args.batches:
            for framework in harness.alternated(["minitl", "torch"], turn):
                result = _run_worker(framework, batch, args.seconds, args.warmup, args.threads)
                runs[batch][framework].append(result)
                print(f"round {r + 1}/{args.rounds}  batch {batch:4d}  {framework:6s}  "
                      f"{result['samples_per_s']:9.0f} samples/s  ({result['ms_per_step']:.2f} ms/step)", flush=True)
            turn += 1  # A B, B A, A B ...: neither framework always runs right after the other

    table = []
    for batch in args.batches:
        m = harness.median(x["samples_per_s"] for x in runs[batch]["minitl"])
        t = harness.median(x["samples_per_s"] for x in runs[batch]["torch"])
        paired = [a["samples_per_s"] / b["samples_per_s"] for a, b in zip(runs[batch]["minitl"], runs[batch]["torch"])]
        table.append({"batch": batch, "minitl_samples_per_s": m, "torch_samples_per_s": t, "ratio_minitl_over_torch": m / t,
                      "paired_ratio_median": harness.median(paired), "paired_ratios": paired,
                      "minitl_runs": [x["samples_per_s"] for x in runs[batch]["minitl"]],
                      "torch_runs": [x["samples_per_s"] for x in runs[batch]["torch"]],
                      "minitl_cpu_ms_per_step_median": harness.median(1e3 * x["cpu_seconds"] / x["steps"]
                                                                         for x in runs[batch]["minitl"]),
                      "torch_cpu_ms_per_step_median": harness.median(1e3 * x["cpu_seconds"] / x["steps"]
                                                                        for x in runs[batch]["torch"]),
                      "load_average_1min_during_runs": [x["load_average_1min"] for fw in ("minitl", "torch")
                                                        for x in runs[batch][fw]]})
    first_m, first_t = runs[args.batches[0]]["minitl"][0], runs[args.batches[0]]["torch"][0]
    report = {
        "benchmark": "MLP training throughput, samples/s (higher is better)",
        "network": "-".join(map(str, SIZES)) + " ReLU MLP, float32, cross-entropy, SGD(lr=0.01, momentum=0.9)",
        "step": "zero_grad + forward + loss + backward + optimizer step; loss read once at the end",
        "method": f"each framework in its own process per measurement, alternated (order flips each round); "
                  f"median of {args.rounds} rounds; ~{args.seconds}s timed per worker after {args.warmup} warm-up steps",
        "command": "python benchmarks/mlp.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "threads": args.threads or "library defaults",
        "results": table,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "minitl_env": {k: first_m[k] for k in ("minitl", "numpy", "threadpools")},
        "torch_env": {k: first_t[k] for k in ("torch", "torch_threads", "torch_blas", "torch_mkldnn", "threadpools")},
        "unset_for_workers": harness.overrides_in_environment(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "note": "the machine is shared (2 cores): see load_average_1min_during_runs; a load above ~2 means other "
                "jobs competed for the cores during the measurement",
    }
    threads = args.threads or max(x["threadpools"][0]["num_threads"] if isinstance(x["threadpools"], list) and
                                  x["threadpools"] else 1 for x in runs[args.batches[0]]["minitl"])
    used = harness.median(x["cpus_used"] for b in args.batches for fw in runs[b] for x in runs[b][fw])
    if threads > 1 and used < 0.75 * threads:
        report["warning"] = (f"workers ran {threads} threads but got {used:.2f} CPUs (median): other jobs held the "
                             "cores, so threaded BLAS waited on descheduled threads; these figures measure contention, "
                             "not throughput. Rerun on an idle machine or with --threads 1.")
        print("WARNING: " + report["warning"], file=sys.stderr)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(f"{'batch':>6} {'minitl':>12} {'torch':>12} {'minitl/torch':>13} {'paired median':>14}")
    for row in table:
        print(f"{row['batch']:>6} {row['minitl_samples_per_s']:>12.0f} {row['torch_samples_per_s']:>12.0f} "
              f"{row['ratio_minitl_over_torch']:>12.2f}x {row['paired_ratio_median']:>13.2f}x")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
