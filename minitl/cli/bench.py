"""``minitl bench``: the same graphs on NumPy (CPU) and CuPy (GPU) — time, speed-up, max difference,
the batch from which the GPU wins; a table, a JSON file and a PNG plot (see :mod:`minitl.bench`).

Also ``python -m minitl bench`` (a bare GPU machine with numpy + cupy, run from the source tree)."""
from __future__ import annotations

import json
import sys

from .. import bench


DEFAULT_OUT = "runs/bench"


def _names(text):
    return [t for t in text.split(",") if t] if text else None


def run(args) -> int:
    config = bench.Config(
        preset=args.preset, ops=_names(args.ops), models=_names(args.models),
        batches=[int(b) for b in _names(args.batches)] if args.batches else None,
        rounds=args.rounds, device=args.device, time_limit_s=args.time_limit,
    )
    if args.model_batches:
        config.model_batches = [int(b) for b in _names(args.model_batches)]
    if args.no_models:
        config.models = []
    if args.no_ops:
        config.ops = []
    if config.rounds < 1:
        raise ValueError(f"--rounds must be at least 1, got {config.rounds}")
    result = bench.run(config, log=(lambda m: print(m, file=sys.stderr, flush=True)) if not args.quiet else (lambda m: None))
    paths = bench.write(result, args.out, args.name or f"bench_{args.preset}")
    result["files"] = paths
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(bench.format_table(result))
        print("\nwritten: " + ", ".join(paths.values()))
        if "png" not in paths:
            print("(no PNG: matplotlib is not installed; pip install 'minitl[plot]')")
    return 0


DESCRIPTION = (
    "Runs the same minitl graphs on NumPy (CPU) and, where a GPU is usable, CuPy; each backend in its own "
    "process, alternated, medians over rounds; GPU timed with CUDA events after warm-up. Without a usable GPU "
    "only the NumPy side runs and the report says why."
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="NumPy vs CuPy: time, speed-up and max difference per op and per model", description=DESCRIPTION,
    )
    add_arguments(parser)


def add_arguments(parser) -> None:
    parser.add_argument("--preset", choices=sorted(bench.PRESETS), default="quick",
                        help="quick: small shapes for a CPU sanity run; full: ResNet sizes at 224x224 (default quick)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: add the GPU side where usable; cpu: NumPy only; cuda: fail unless a GPU is usable")
    parser.add_argument("--ops", help="comma-separated ops (matmul, conv2d, max_pool2d, batch_norm, copy, "
                                      "or e.g. conv2d.bwd); default: all of the preset")
    parser.add_argument("--models", help="comma-separated models (resnet18, resnet50); default: the preset's")
    parser.add_argument("--no-models", action="store_true", help="ops only")
    parser.add_argument("--no-ops", action="store_true", help="models only")
    parser.add_argument("--batches", help="comma-separated batch sizes replacing every sweep")
    parser.add_argument("--model-batches", help="comma-separated batch sizes replacing the models' sweeps only")
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds per backend (default 5)")
    parser.add_argument("--time-limit", type=float, default=None, metavar="S",
                        help="start no round that would end after S seconds (results say how many ran)")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help=f"folder for the JSON, table and PNG (default {DEFAULT_OUT}: a run folder, never the "
                             "committed benchmarks/results)")
    parser.add_argument("--name", help="file name stem (default bench_<preset>)")
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.set_defaults(handler=run)
