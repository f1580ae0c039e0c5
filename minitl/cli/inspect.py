"""``minitl trace`` / ``minitl graph`` / ``minitl summary``: the instruments of minitl.inspect, printed."""
from __future__ import annotations

import json

from .. import inspect as mi
from ._common import add_device_argument, resolve_device


def run_trace(args) -> int:
    example = mi.build(args.model, seed=args.seed)
    result = mi.trace(example.model, example.inputs, loss=example.loss, max_check_elements=args.check_elements)
    if args.json:
        print(json.dumps({"model": args.model, "description": example.description, **result.to_dict()}, indent=1))
    else:
        print(f"{args.model}: {example.description} (seed {args.seed})")
        print(result.format())
    return 0 if not result.failed_checks() else 1


def run_graph(args) -> int:
    from ..inspect.examples import model_and_input  # noqa: PLC0415
    from ..inspect.graph import graph_of, render  # noqa: PLC0415

    example = model_and_input(args.model, args.input_size, args.batch)
    frozen = [n for n, p in example.model.named_parameters() if any(n.startswith(f) for f in args.freeze)]
    for prefix in args.freeze:
        if not any(n.startswith(prefix) for n in frozen):
            raise ValueError(f"--freeze {prefix!r} matches no parameter of {args.model}")
    params = dict(example.model.named_parameters())
    for name in frozen:
        params[name].requires_grad_(False)
    loss = example.loss if args.model in mi.EXAMPLES else None
    graph = graph_of(example.model, example.inputs, loss)
    title = f"{args.model}: {example.description}"
    if args.output is None:
        print(graph.to_dot(title), end="")
        return 0
    tool = render(graph, args.output, title)
    counts = graph.counts()
    print(f"wrote {args.output} ({tool}): {counts.get('op', 0)} ops, {counts.get('parameter', 0)} parameters, "
          f"{counts.get('frozen', 0)} frozen, {counts.get('input', 0)} inputs/constants, {len(graph.edges)} edges")
    return 0


def run_summary(args) -> int:
    from ..inspect.cost import format_summary, summarize  # noqa: PLC0415
    from ..inspect.examples import model_and_input  # noqa: PLC0415

    device = resolve_device(args)
    example = model_and_input(args.model, args.input_size, args.batch, default_size=224)
    model = example.model.to(device)
    inputs = [x.to(device) for x in example.inputs]
    loss = example.loss if args.model in mi.EXAMPLES else None
    summary = summarize(model, inputs, loss, measure=args.measure, repeats=args.repeats)
    if args.json:
        print(json.dumps({"model": args.model, "description": example.description, **summary.to_dict()}, indent=1))
    else:
        print(f"{args.model}: {example.description}")
        print(format_summary(summary))
    return 0


def run_diff(args) -> int:
    import os  # noqa: PLC0415

    from ..inspect import diff  # noqa: PLC0415
    from ..transfer import load_model  # noqa: PLC0415
    from ..transfer.api import resolve_source  # noqa: PLC0415

    if args.against == "torch":
        raise ValueError("minitl never imports torch (it is the tests' reference only); compare with PyTorch in "
                         "Python: minitl.inspect.diff.compare(model, x, activations), activations from forward hooks "
                         "(docs/instruments.md)")
    reference = args.reference
    if reference is None:
        path, _ = resolve_source(args.weights)
        if not path.lower().endswith(".onnx"):
            raise ValueError(f"--against onnxruntime needs the ONNX file: {args.weights} is not one; "
                             "name it with --reference FILE.onnx")
        reference = path
    elif not os.path.isfile(reference):
        raise FileNotFoundError(f"no such ONNX file: {reference}")
    model, _ = load_model(args.weights)
    x = diff.sample_input(model, diff.onnx_input_size(reference), args.seed)
    report = diff.onnx_diff(model, reference, x, args.tolerance)
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        print(report.format())
    return 0 if report.first_parting is None else 1


def register(subparsers) -> None:
    _register_graph(subparsers)
    _register_summary(subparsers)
    _register_diff(subparsers)
    parser = subparsers.add_parser(
        "trace", help="run a tiny model and show every op forward and backward, with finite-difference checks")
    parser.add_argument("model", choices=sorted(mi.EXAMPLES), help="which built-in tiny model")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and input (default 0)")
    parser.add_argument("--check-elements", type=int, default=64,
                        help="elements checked by finite differences per op input, sampled beyond (default 64)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run_trace)


def _add_model_arguments(parser, default_size: int) -> None:
    parser.add_argument("model", help="a tiny example (neuron, mlp, cnn, ...) or an architecture (resnet18, ...)")
    parser.add_argument("--input-size", type=int, default=None,
                        help=f"image side S of the (batch, 3, S, S) input of an architecture (default {default_size})")
    parser.add_argument("--batch", type=int, default=1, help="batch size of that input (default 1)")


def _register_diff(subparsers) -> None:
    parser = subparsers.add_parser(
        "diff", help="layer-by-layer activations of minitl vs a reference runtime; names the first layer that parts")
    parser.add_argument("weights", help="the weights minitl loads (.onnx, .npz, .pth, ... or a known name: opennsfw)")
    parser.add_argument("--against", choices=["onnxruntime", "torch"], default="onnxruntime",
                        help="the reference runtime (default onnxruntime; torch: see the message)")
    parser.add_argument("--reference", default=None,
                        help="the ONNX file the reference runs (default: WEIGHTS itself when it is .onnx)")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="a layer parts when max|a - r| / max|r| exceeds this (default 1e-3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random input image (default 0)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run_diff)


def _register_summary(subparsers) -> None:
    parser = subparsers.add_parser(
        "summary", help="per layer: parameters, FLOPs, memory kept for backward, workspace; --measure times it")
    _add_model_arguments(parser, 224)
    parser.add_argument("--measure", action="store_true",
                        help="also time each layer, measure its peak memory and the GEMM rate reached")
    parser.add_argument("--repeats", type=int, default=3, help="passes timed with --measure (median; default 3)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_device_argument(parser)
    parser.set_defaults(handler=run_summary)


def _register_graph(subparsers) -> None:
    parser = subparsers.add_parser(
        "graph", help="the autograd graph of a model's output as Graphviz DOT, PNG or SVG")
    _add_model_arguments(parser, 32)
    parser.add_argument("-o", "--output", default=None,
                        help="write .dot, .png, .svg or .pdf (Graphviz's dot, else matplotlib); default: DOT on stdout")
    parser.add_argument("--freeze", action="append", default=[], metavar="PREFIX",
                        help="freeze the parameters whose name starts with PREFIX (repeatable), drawn dashed")
    parser.set_defaults(handler=run_graph)
