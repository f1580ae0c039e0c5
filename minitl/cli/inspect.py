"""``minitl trace`` / ``minitl graph`` / ``minitl summary``: the instruments of minitl.inspect, printed."""
from __future__ import annotations

import json

from .. import inspect as mi


def run_trace(args) -> int:
    example = mi.build(args.model, seed=args.seed)
    result = mi.trace(example.model, example.inputs, loss=example.loss, max_check_elements=args.check_elements)
    if args.json:
        print(json.dumps({"model": args.model, "description": example.description, **result.to_dict()}, indent=1))
    else:
        print(f"{args.model}: {example.description} (seed {args.seed})")
        print(result.format())
    return 0 if not result.failed_checks() else 1


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "trace", help="run a tiny model and show every op forward and backward, with finite-difference checks")
    parser.add_argument("model", choices=sorted(mi.EXAMPLES), help="which built-in tiny model")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and input (default 0)")
    parser.add_argument("--check-elements", type=int, default=64,
                        help="elements checked by finite differences per op input, sampled beyond (default 64)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run_trace)
