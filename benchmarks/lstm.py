"""LSTM forward+backward throughput: minitl vs PyTorch (CPU), each in its own process, alternated.

One LSTM layer, input 128, hidden 128, batch 32, length 256, float32 (the issue's setting); one
measured call = forward over the whole sequence + backward of a sum over every output, with the
parameter gradients zeroed before.  Inside a worker: the median of ``--calls`` timed calls after
2 warm-up calls.  Each (round, framework) is a fresh process; the order flips every round; the
figures are medians over >= 5 rounds.  minitl runs its fused LSTM (minitl/functional/_lstm_fused.py:
a batch of at least 2 × MIN_CHUNK_ROWS samples cut into one chunk per thread, each chunk's whole
recurrence on its own thread; a smaller one as one chunk).  Beside
the total, the minitl worker times the pieces, so the report can say where time goes:

    serial        the same fused call with minitl's threads set to 1 (one chunk, one thread)
    reference     the step-by-step reference Function (``fused=False``), serial
    step GEMM     W_hh h_{t−1}: (512 × 128) · (128 × rows) for a chunk's rows (the column layout),
                  2T per chunk (forward, and W_hhᵀ δ in backward), on one BLAS thread
    big GEMMs     X W_ihᵀ and the three weight/input-gradient GEMMs over all T·N rows (done once)
    Python floor  the fused call at batch 1, input 1, hidden 1: the interpreter and the per-call
                  cost of its ~35 array operations per step, with (almost) no arithmetic
    elementwise   the serial call minus all of the above: the gates' arithmetic itself

    python benchmarks/lstm.py                 # 5 rounds; benchmarks/results/lstm.{json,md}
    python benchmarks/lstm.py --threads 1     # one BLAS/OpenMP thread each (steadier on a busy machine)
    python benchmarks/lstm.py --worker minitl # one measurement, JSON on stdout
    python benchmarks/lstm.py --length 16 --calls 1 --output /tmp/lstm_dry.json   # a dry run (seconds)

The quiet-machine figure (library-default threads; about 2-3 minutes on an idle 2-core machine):

    python benchmarks/lstm.py                 # writes benchmarks/results/lstm.{json,md}

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, if set, are removed for the workers.  ``uptime`` (load
average) is recorded beside every result: the machine is shared.
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
from pathlib import Path

from minitl.bench import harness

T, N, I, H = 256, 32, 128, 128
RESULTS = Path(__file__).resolve().parent / "results"


def _median_time(fn, calls: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _gemm_times(calls: int, rows: int) -> dict:
    """The recurrence's GEMM shapes alone, in NumPy, as minitl runs them (step GEMMs on one BLAS thread), seconds."""
    import numpy as np

    from minitl import backend

    rng = np.random.default_rng(0)
    w = rng.standard_normal((4 * H, H)).astype(np.float32)
    x = rng.standard_normal((T * N, I)).astype(np.float32)
    d = rng.standard_normal((T * N, 4 * H)).astype(np.float32)
    result = {"big_gemms_s": _median_time(lambda: (x @ w.T, d @ w, d.T @ x, d.T @ x), max(3, calls // 2))}
    for label, m in (("step_gemm", N), ("chunk_step_gemm", rows)):  # the column layout: W_hh (4H × H) · h (H × m)
        h = rng.standard_normal((H, m)).astype(np.float32)
        out = np.empty((4 * H, m), dtype=np.float32)
        with backend.one_blas_thread(np):
            step = _median_time(lambda: [np.matmul(w, h, out=out) for _ in range(64)], max(3, calls // 2)) / 64
        result.update({f"{label}_s": step, f"{label}_rows": m, f"{label}_gflops": 2 * m * H * 4 * H / step / 1e9})
    return result


def _minitl_call(shape, fused=True, seed=0):
    """A fwd+bwd call of F.lstm_layer at (T, N, I, H) = ``shape``, parameters initialised as nn.LSTM's."""
    import numpy as np

    import minitl
    import minitl.functional as F

    t, n, i, h = shape
    rng = np.random.default_rng(seed)
    bound = 1 / np.sqrt(h)
    x = minitl.Tensor(rng.standard_normal((t, n, i)).astype(np.float32), requires_grad=True)
    weights = [minitl.Tensor(rng.uniform(-bound, bound, s).astype(np.float32), requires_grad=True)
               for s in ((4 * h, i), (4 * h, h), (4 * h,), (4 * h,))]

    def call():
        for w in weights:
            w.grad = None
        x.grad = None
        out, _ = F.lstm_layer(x, None, *weights, fused=fused)
        out.sum().backward()

    return call


def _minitl(calls: int) -> dict:
    import numpy as np

    import minitl
    from minitl import nn
    from minitl.functional import _lstm_fused, parallel

    minitl.manual_seed(0)
    model = nn.LSTM(I, H)
    x = minitl.Tensor(np.random.default_rng(0).standard_normal((T, N, I)).astype(np.float32), requires_grad=True)

    def train_call():
        for p in model.parameters():
            p.grad = None
        x.grad = None
        out, _ = model(x)
        out.sum().backward()

    def forward_call():
        with minitl.no_grad():
            model(x)

    few = max(3, calls // 2)
    result = {"fwd_bwd_s": _median_time(train_call, calls), "fwd_s": _median_time(forward_call, calls),
              "chunks": len(_lstm_fused._chunks(np, N)), "minitl_threads": parallel.threads(),
              "minitl": minitl.__version__, "numpy": np.__version__}
    with parallel.using_threads(1):
        result["fwd_bwd_serial_s"] = _median_time(_minitl_call((T, N, I, H)), few)
        result["fwd_bwd_reference_s"] = _median_time(_minitl_call((T, N, I, H), fused=False), few)
        result["python_floor_s"] = _median_time(_minitl_call((T, 1, 1, 1)), few)
    result.update(_gemm_times(calls, N // result["chunks"]))
    return result


def _torch(calls: int) -> dict:
    import numpy as np
    import torch

    torch.manual_seed(0)
    model = torch.nn.LSTM(I, H)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((T, N, I)).astype(np.float32)).requires_grad_()

    def train_call():
        model.zero_grad(set_to_none=True)
        x.grad = None
        out, _ = model(x)
        out.sum().backward()

    def forward_call():
        with torch.no_grad():
            model(x)

    return {"fwd_bwd_s": _median_time(train_call, calls), "fwd_s": _median_time(forward_call, calls),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "torch_mkldnn": bool(torch.backends.mkldnn.is_available())}


def worker(framework: str, calls: int) -> dict:
    cpu0, start = time.process_time(), time.perf_counter()
    result = (_minitl if framework == "minitl" else _torch)(calls)
    elapsed = time.perf_counter() - start
    try:
        from threadpoolctl import threadpool_info

        pools = [{k: p.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                 for p in threadpool_info()]
    except ImportError:
        pools = "threadpoolctl not installed"
    result.update(framework=framework, sequences_per_s=N / result["fwd_bwd_s"], cpus_used=(time.process_time() - cpu0) / elapsed,
                  load_average_1min=os.getloadavg()[0], threadpools=pools)
    return result


def _run_worker(framework: str, calls: int, threads: int | None) -> dict:
    done = harness.run_worker([__file__, "--worker", framework, "--calls", calls, "--length", T], threads=threads)
    return done.last(f"{framework} worker")


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return f"load average {os.getloadavg()}"


def _report(runs, args, argv, uptimes) -> dict:
    med = {fw: {k: statistics.median(r[k] for r in runs[fw]) for k in ("fwd_bwd_s", "fwd_s", "sequences_per_s")}
           for fw in runs}
    m = runs["minitl"]

    def mm(key):  # the minitl workers' median of one field
        return statistics.median(r[key] for r in m)

    total, serial, floor = med["minitl"]["fwd_bwd_s"], mm("fwd_bwd_serial_s"), mm("python_floor_s")
    step, chunk_step, big = mm("step_gemm_s"), mm("chunk_step_gemm_s"), mm("big_gemms_s")
    paired = [a["sequences_per_s"] / b["sequences_per_s"] for a, b in zip(runs["minitl"], runs["torch"])]
    return {
        "benchmark": f"LSTM forward+backward, 1 layer, input {I}, hidden {H}, batch {N}, length {T}, float32",
        "command": "python benchmarks/lstm.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "method": f"each framework in its own process per round, alternated (order flips each round); median of "
                  f"{args.calls} calls per worker after 2 warm-up calls; medians over {args.rounds} rounds",
        "threads": args.threads or "library defaults",
        "minitl_ms": 1e3 * total, "torch_ms": 1e3 * med["torch"]["fwd_bwd_s"],
        "minitl_forward_ms": 1e3 * med["minitl"]["fwd_s"], "torch_forward_ms": 1e3 * med["torch"]["fwd_s"],
        "ratio_minitl_over_torch_throughput": med["minitl"]["sequences_per_s"] / med["torch"]["sequences_per_s"],
        "paired_ratio_median": statistics.median(paired), "paired_ratios": paired,
        "where_minitl_time_goes": {
            "fused_ms": 1e3 * total, "fused_serial_ms": 1e3 * serial,
            "reference_serial_ms": 1e3 * mm("fwd_bwd_reference_s"),
            "chunks": m[0]["chunks"], "minitl_threads": m[0]["minitl_threads"],
            "serial_breakdown": {
                "step_gemm_us": 1e6 * step, "step_gemm_gflops": mm("step_gemm_gflops"),
                "step_gemms_ms": 1e3 * step * 2 * T, "step_gemms_share": step * 2 * T / serial,
                "big_gemms_ms": 1e3 * big, "big_gemms_share": big / serial,
                "big_gemms_gflops": 4 * 2 * T * N * I * 4 * H / big / 1e9,
                "python_floor_ms": 1e3 * floor, "python_floor_share": floor / serial,
                "elementwise_ms": 1e3 * (serial - step * 2 * T - big - floor),
                "elementwise_share": (serial - step * 2 * T - big - floor) / serial,
            },
            "chunk_step_gemm_rows": m[0]["chunk_step_gemm_rows"], "chunk_step_gemm_us": 1e6 * chunk_step,
            "chunk_step_gemm_gflops": mm("chunk_step_gemm_gflops"),
        },
        "runs": runs, "uptime": uptimes,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "note": "shared machine (2 cores, other helpers' jobs running): see uptime and load_average_1min per run",
    }


def _where_time_goes(w) -> list:
    b = w["serial_breakdown"]
    rows = w["chunk_step_gemm_rows"]
    return [
        f"Where minitl's time goes (forward+backward): the step-by-step reference takes "
        f"{w['reference_serial_ms']:.1f} ms on one thread, the fused op {w['fused_serial_ms']:.1f} ms on one "
        f"thread and {w['fused_ms']:.1f} ms as run above ({w['chunks']} batch chunk(s) on {w['minitl_threads']} "
        "thread(s)). The one-thread fused call splits into:", "",
        f"- {2 * T} step GEMMs ({4 * H}×{H})·({H}×{N}), one after the other: {b['step_gemm_us']:.0f} µs each "
        f"({b['step_gemm_gflops']:.1f} GFLOP/s), {b['step_gemms_ms']:.1f} ms = {100 * b['step_gemms_share']:.0f}%",
        f"- the big GEMMs over all T·N rows (input projection, dX, dW_ih, dW_hh): {b['big_gemms_ms']:.1f} ms = "
        f"{100 * b['big_gemms_share']:.0f}% ({b['big_gemms_gflops']:.1f} GFLOP/s)",
        f"- Python and the per-call cost of the ~30 array operations per step (the same call at batch 1, "
        f"hidden 1): {b['python_floor_ms']:.1f} ms = {100 * b['python_floor_share']:.0f}%",
        f"- the gates' elementwise arithmetic (the rest): {b['elementwise_ms']:.1f} ms = "
        f"{100 * b['elementwise_share']:.0f}%", "",
        f"With {w['chunks']} chunk(s) each thread runs its {2 * T} step GEMMs on {rows} rows: "
        f"{w['chunk_step_gemm_us']:.0f} µs each ({w['chunk_step_gemm_gflops']:.1f} GFLOP/s). With one chunk and a "
        "second thread, the big GEMMs (blocks of 16 steps) run on a background thread beside the step loop, so "
        "the two-thread time is about the one-thread time less the big GEMMs.", "",
        f"What bounds the step GEMMs: each is {2 * N * H * 4 * H / 1e6:.1f} MFLOP and needs h_(t-1) from the step "
        f"before, so the {2 * T} of them run one after the other and cannot be batched; each call re-reads and "
        f"re-packs all of W_hh ({4 * H}×{H} floats = {4 * H * H * 4 // 1024} KB) to use every weight only {N} "
        "times (once per sample), so the packing, the call and (with BLAS threads) the fork/join cost as much "
        "as the arithmetic: halving the rows does not halve the time (see the per-chunk figure). minitl runs "
        "them on one BLAS thread; its own threads take whole batch chunks instead (no barrier per step).", "",
    ]


def _markdown(report) -> str:
    loads = [r["load_average_1min"] for fw in report["runs"] for r in report["runs"][fw]]
    return "\n".join([
        f"# {report['benchmark']}", "",
        f"`{report['command']}` — {report['method']}; threads: {report['threads']}.", "",
        "| | minitl | PyTorch | minitl/PyTorch throughput |", "|---|---:|---:|---:|",
        f"| forward+backward (ms) | {report['minitl_ms']:.1f} | {report['torch_ms']:.1f} | "
        f"**{report['ratio_minitl_over_torch_throughput']:.2f}x** (paired median {report['paired_ratio_median']:.2f}x) |",
        f"| forward only, no graph (ms) | {report['minitl_forward_ms']:.1f} | {report['torch_forward_ms']:.1f} | "
        f"{report['torch_forward_ms'] / report['minitl_forward_ms']:.2f}x |", "",
        *_where_time_goes(report["where_minitl_time_goes"]),
        f"Load average (1 min) seen by the workers: {min(loads):.1f}–{max(loads):.1f}. uptime before/after: "
        + " | ".join(report["uptime"]), "",
        f"{report['note']}.", "",
    ])


def main(argv=None) -> int:
    global T  # noqa: PLW0603 (the workers' shapes are module constants; the length is settable for a dry run)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=["minitl", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds (>= 5; default 5)")
    parser.add_argument("--calls", type=int, default=7, help="timed calls per worker (default 7)")
    parser.add_argument("--threads", type=int, default=None, help="BLAS/OpenMP threads for both (default: libraries')")
    parser.add_argument("--output", type=Path, default=None, help="JSON path (default benchmarks/results/lstm.json)")
    parser.add_argument("--length", type=int, default=T, help=f"sequence length (default {T}; less: a dry run)")
    args = parser.parse_args(argv)
    T = args.length
    if args.worker:
        print(json.dumps(worker(args.worker, args.calls)))
        return 0
    if args.rounds < 5:
        parser.error("--rounds must be >= 5 (medians of at least five alternated rounds)")
    output = args.output or RESULTS / ("lstm.json" if not args.threads else f"lstm_{args.threads}thread.json")
    uptimes = [_uptime()]
    runs = {"minitl": [], "torch": []}
    for r in range(args.rounds):
        for framework in harness.alternated(["minitl", "torch"], r):
            result = _run_worker(framework, args.calls, args.threads)
            runs[framework].append(result)
            print(f"round {r + 1}/{args.rounds} {framework:6s} {1e3 * result['fwd_bwd_s']:8.1f} ms fwd+bwd "
                  f"{1e3 * result['fwd_s']:7.1f} ms fwd  (load {result['load_average_1min']:.1f})", flush=True)
    uptimes.append(_uptime())
    report = _report(runs, args, argv, uptimes)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    output.with_suffix(".md").write_text(_markdown(report))
    print(_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
