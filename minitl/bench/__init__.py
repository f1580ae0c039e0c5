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

On a machine without a usable GPU only the NumPy side runs, and the report says why.

    cases.py     presets, the cases of a run, a table of builders (one per op / model)
    runner.py    timing inside a worker; the parent that alternates the workers
    report.py    medians, speed-ups, differences; table, JSON, PNG
    harness.py   the house rules every benchmark shares (worker processes, OpenBLAS variables,
                 alternation, medians): used by ``benchmarks/*.py`` too

    from minitl import bench
    result = bench.run(bench.Config(preset="quick"))
    print(bench.format_table(result))

The command line is ``minitl bench`` (minitl/cli/bench.py); ``python -m minitl.bench --worker
SPEC.json`` is one worker process of a run.
"""
from .cases import BUILDERS, MODEL_KINDS, PRESETS, Case, Config, Skip, plan, prepare
from .report import format_table, gpu_wins_from, max_diffs, plot, summarise, write
from .runner import measure, run, worker

__all__ = [
    "BUILDERS", "MODEL_KINDS", "PRESETS", "Case", "Config", "Skip", "plan", "prepare", "format_table",
    "gpu_wins_from", "max_diffs", "plot", "summarise", "write", "measure", "run", "worker",
]
