"""Data-parallel training on MPI, measured on this machine: all-reduce cost and scaling 1 -> 2 ranks.

    python benchmarks/distributed.py            # everything; results/distributed.{json,md}
    python benchmarks/distributed.py --quick    # fewer sizes and rounds

What it measures (each rank is one process; mpiexec from the mpich wheel):

1. ``Allreduce`` time of a float32 buffer of n bytes at 2 ranks, median of rounds, fitted to
   t(n) = α + β·n by least squares (α: latency per call, β: seconds per byte).
2. A CIFAR ResNet-18 training step (batch per rank b): forward+backward, the gradient
   all-reduce (GradientBuckets, 25 MB buckets), and the optimizer step, at 1 and 2 ranks —
   the communication share of a step, strong scaling (global batch 64: 1×64 vs 2×32) and weak
   scaling (32 per rank: 1×32 vs 2×32).
3. A model of the expected scaling at 8–64 nodes on 10/100 Gb/s networks, from the fitted
   α, β and measured compute times (see the .md for the formula).

Honesty: this machine has 2 cores, so 2 ranks share the cores a single process would use
(each rank gets 1 BLAS thread; the single process is measured with 1 and with 2 threads).
Ranks here talk through shared memory, not a network: α and β are intra-node figures.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy

from minitl.bench import harness

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"


def _mpiexec() -> str:
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else "mpiexec"


def _launch(ranks: int, args: list[str], threads: int) -> dict:
    done = harness.run_worker([__file__, *args], threads=threads, launcher=[_mpiexec(), "-n", ranks], timeout=1800,
                              cwd=ROOT)
    if not done.ok:
        raise SystemExit(f"worker failed:\n{done.stderr}")
    return done.records[-1]


# ----------------------------------------------------------------- workers (run under mpiexec)
def worker_allreduce(sizes: list[int], rounds: int) -> dict:
    from minitl import distributed  # noqa: PLC0415

    comm = distributed.world()
    times = {}
    for nbytes in sizes:
        buffer = numpy.ones(max(1, nbytes // 4), dtype=numpy.float32)
        samples = []
        for _ in range(rounds):
            comm.barrier()
            start = time.perf_counter()
            comm.allreduce_sum_(buffer)
            samples.append(time.perf_counter() - start)
        times[nbytes] = statistics.median(samples)
    return {"ranks": comm.size, "median_s": times}


def worker_step(batch: int, rounds: int) -> dict:
    import minitl  # noqa: PLC0415
    import minitl.functional as F  # noqa: PLC0415
    from minitl import distributed, models, optim  # noqa: PLC0415

    comm = distributed.world()
    minitl.manual_seed(0)
    model = models.resnet18(num_classes=10, cifar_stem=True)
    distributed.broadcast_module(model, comm)
    opt = distributed.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.01, momentum=0.9), comm)
    rng = numpy.random.default_rng(comm.rank)
    x = minitl.Tensor(rng.standard_normal((batch, 3, 32, 32)).astype(numpy.float32))
    y = rng.integers(0, 10, batch)
    phases = {"compute": [], "allreduce": [], "update": [], "step": []}
    for r in range(rounds + 1):  # the first round warms up
        comm.barrier()
        t0 = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        t1 = time.perf_counter()
        opt.synchronize()
        t2 = time.perf_counter()
        opt.optimizer.step()
        t3 = time.perf_counter()
        if r:
            for key, value in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                value = comm.allreduce_scalars([value])[0] / comm.size  # mean over ranks
                phases[key].append(float(value))
    n_params = sum(p.data.size for p in model.parameters())
    return {"ranks": comm.size, "batch_per_rank": batch, "params": int(n_params), "buckets": len(opt.buckets),
            **{f"{k}_s": statistics.median(v) for k, v in phases.items()}}


# ----------------------------------------------------------------- the model
def fit_alpha_beta(times: dict) -> tuple[float, float]:
    """Least squares on the *relative* error (each row divided by its time), so the microsecond
    latency of small messages weighs as much as the milliseconds of large ones; α, β >= 0."""
    n = numpy.array([float(k) for k in times])
    t = numpy.array([float(v) for v in times.values()])
    design = numpy.stack([numpy.ones_like(n), n], axis=1) / t[:, None]
    (alpha, beta), *_ = numpy.linalg.lstsq(design, numpy.ones_like(t), rcond=None)
    return max(float(alpha), 0.0), max(float(beta), 0.0)


def scaling_model(alpha_net: float) -> list[dict]:
    from minitl.distributed import ring_allreduce_seconds  # noqa: PLC0415

    # measured compute times per step on a 2-core node of this kind (see README / benchmark results):
    # ResNet-50 224x224 batch 64: 37.4 s (results/cpu_resnet50_b64.txt); MiniLM batch 16 at 128 tokens:
    # ~5.7 s (2.8 reviews/s, issue 13's PyTorch figure). Parameter counts: 25.6 M and 22.7 M float32.
    workloads = [("ResNet-50, batch 64/node", 25.6e6 * 4, 37.4), ("MiniLM-L6, batch 16/node", 22.7e6 * 4, 5.7)]
    rows = []
    for name, nbytes, compute in workloads:
        for gbps in (10, 100):
            for nodes in (8, 16, 32, 64):
                comm = ring_allreduce_seconds(nbytes, nodes, alpha_net, 8 / (gbps * 1e9))
                rows.append({"workload": name, "link_gbps": gbps, "nodes": nodes, "compute_s": compute,
                             "allreduce_s": comm, "efficiency": compute / (compute + comm),
                             "speedup": nodes * compute / (compute + comm)})
    return rows


def scaling_summary(steps) -> str:
    by = {(r["label"], r["threads"]): r for r in steps}
    one2, one1 = by[("1 rank, global 64", 2)], by[("1 rank, global 64", 1)]
    two, weak1, weak2 = by[("2 ranks, global 64 (strong)", 1)], by[("1 rank, 32 (weak base)", 2)], \
        by[("2 ranks, 32 each (weak)", 1)]
    return (
        f"Strong scaling (global batch 64 on the same 2 cores): 1 rank × 1 BLAS thread {one1['step_s']:.2f} s/step, "
        f"2 ranks × 1 thread {two['step_s']:.2f} s/step → {one1['step_s'] / two['step_s']:.2f}× (the honest "
        f"comparison: the same cores, one thread each). 1 rank × 2 threads took {one2['step_s']:.2f} s/step: on this "
        f"shared machine two BLAS threads per process lose far more to waiting on each other than two processes "
        f"do, so the {one2['step_s'] / two['step_s']:.1f}× against it is mostly that, not MPI. Weak scaling (32 per "
        f"rank): {weak1['step_s']:.2f} s (1 rank, 2 threads) → {weak2['step_s']:.2f} s per step with 2 ranks; "
        f"on 2 cores shared by both ranks the ceiling is a constant step time. The all-reduce of "
        f"{two['params'] * 4 / 1e6:.1f} MB in {two['buckets']} bucket(s) takes {two['allreduce_s'] * 1e3:.0f} ms, "
        f"{two['allreduce_s'] / two['step_s']:.1%} of a step.")


def report(results: dict) -> str:
    ar, alpha, beta = results["allreduce"], results["alpha_s"], results["beta_s_per_byte"]
    lines = ["# Data-parallel training on MPI (this machine)", "",
             f"Command: `python benchmarks/distributed.py`; load average at start {results['load']}; "
             f"MPICH {results['mpi']}; 2 cores shared by the ranks (and by other jobs).", "",
             "## Allreduce at 2 ranks (shared memory), median of rounds", "",
             "| bytes | median ms | fit α+β·n ms |", "|---:|---:|---:|"]
    for nbytes, t in ar["median_s"].items():
        lines.append(f"| {int(nbytes):,} | {t * 1e3:.3f} | {(alpha + beta * float(nbytes)) * 1e3:.3f} |")
    lines += ["", f"Fit: α = {alpha * 1e6:.1f} µs per call, β = {beta * 1e9:.3f} ns/byte "
              f"({1 / beta / 1e9 if beta > 0 else float('inf'):.2f} GB/s).", "",
              "## CIFAR ResNet-18 training step (medians; times are the mean over ranks)", "",
              "| setting | BLAS threads/rank | batch/rank | compute s | allreduce s | update s | step s | comm share | images/s |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in results["steps"]:
        images = row["ranks"] * row["batch_per_rank"] / row["step_s"]
        lines.append(f"| {row['label']} | {row['threads']} | {row['batch_per_rank']} | {row['compute_s']:.3f} | "
                     f"{row['allreduce_s']:.4f} | {row['update_s']:.4f} | {row['step_s']:.3f} | "
                     f"{row['allreduce_s'] / row['step_s']:.1%} | {images:.1f} |")
    lines += ["", results["scaling_summary"], "",
              "## Expected scaling at 8–64 nodes (model, not measured)", "",
              "Ring all-reduce of n bytes over p nodes: t = 2(p−1)·α + 2(p−1)/p · n / bandwidth, with α = 50 µs "
              "(a typical TCP/Ethernet latency; the shared-memory α above is a lower bound) and the link's "
              "bandwidth. minitl reduces after the whole backward (no overlap), so efficiency = "
              "t_compute / (t_compute + t_allreduce), with this machine's measured compute time per step.", "",
              "| workload | link | nodes | compute s | allreduce s | efficiency | speedup |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for row in results["model"]:
        lines.append(f"| {row['workload']} | {row['link_gbps']} Gb/s | {row['nodes']} | {row['compute_s']:.1f} | "
                     f"{row['allreduce_s']:.3f} | {row['efficiency']:.1%} | {row['speedup']:.1f}× |")
    lines += ["", "What it suggests: on CPU nodes like this one the step is compute-bound by two orders of "
              "magnitude, so 25 MB buckets (one call per ~6 M parameters: ~4 calls for ResNet-50, latency "
              "negligible) and the per-node batch of the single-node recipe are right; communication only "
              "matters once a node computes a step ~100× faster (a GPU), where overlapping the all-reduce "
              "of early buckets with the rest of the backward, or NCCL (cupyx.distributed), is the next step."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", choices=["allreduce", "step"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--report-only", action="store_true", help="rewrite the .md from results/distributed.json")
    args = parser.parse_args()
    if args.report_only:
        results = json.loads((RESULTS / "distributed.json").read_text())
        results["alpha_s"], results["beta_s_per_byte"] = fit_alpha_beta(results["allreduce"]["median_s"])
        results["scaling_summary"] = scaling_summary(results["steps"])
        (RESULTS / "distributed.md").write_text(report(results))
        return
    sizes = [2**k for k in range(2, 27, 2)]  # 4 B .. 64 MiB
    if args.worker == "allreduce":
        print(json.dumps(worker_allreduce(sizes, rounds=args.rounds * 4)))
        return
    if args.worker == "step":
        print(json.dumps(worker_step(args.batch, args.rounds)))
        return
    rounds = "2" if args.quick else str(args.rounds)
    from mpi4py import MPI  # noqa: PLC0415

    results = {"load": round(os.getloadavg()[0], 1), "mpi": MPI.Get_library_version().split()[2] if MPI.Get_library_version() else "?"}
    results["allreduce"] = _launch(2, ["--worker", "allreduce", "--rounds", rounds], threads=1)
    results["alpha_s"], results["beta_s_per_byte"] = fit_alpha_beta(results["allreduce"]["median_s"])
    settings = [("1 rank, global 64", 1, 64, 2), ("1 rank, global 64", 1, 64, 1), ("2 ranks, global 64 (strong)", 2, 32, 1),
                ("1 rank, 32 (weak base)", 1, 32, 2), ("2 ranks, 32 each (weak)", 2, 32, 1)]
    results["steps"] = []
    for label, ranks, batch, threads in settings:
        row = _launch(ranks, ["--worker", "step", "--batch", str(batch), "--rounds", rounds], threads=threads)
        results["steps"].append({"label": label, "threads": threads, **row})
        print(label, threads, row, flush=True)
    results["scaling_summary"] = scaling_summary(results["steps"])
    results["model"] = scaling_model(alpha_net=50e-6)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "distributed.json").write_text(json.dumps(results, indent=1))
    (RESULTS / "distributed.md").write_text(report(results))
    print(report(results))


if __name__ == "__main__":
    main()
