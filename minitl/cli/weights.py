"""``minitl weights``: convert, inspect and audit weight files from other frameworks.

    minitl weights convert SRC -o OUT.npz [--arch NAME]   SRC: .pth/.pt, .h5, .onnx, .safetensors, .npz, or "opennsfw"
    minitl weights inspect FILE                          names, shapes, dtypes, parameter count, metadata
    minitl weights audit FILE --arch NAME                source name -> minitl name, conversions, missing/unused

Each takes ``--json`` for machine-readable output.  Errors (corrupt or unsafe files, wrong
architecture) end in one line, via the ``minitl`` entry point.
"""
from __future__ import annotations

import json

import numpy


def _transfer():
    from .. import transfer  # imported on use: `minitl --help` stays fast

    return transfer


def run_convert(args) -> int:
    transfer = _transfer()
    report = transfer.convert(args.source, args.output, arch=args.arch)
    if args.json:
        print(json.dumps({"output": args.output, **report.to_dict()}, indent=2))
        return 0
    print(f"wrote {args.output}: {sum(1 for r in report.rows if r.target)} arrays, {report.num_parameters:,} values, "
          f"architecture {report.arch or 'unknown'} (from {report.format})")
    if report.preprocessing:
        p = report.preprocessing
        print(f"preprocessing: {p.get('input_size')}px {p.get('channel_order')}, range 0-{p.get('pixel_range'):g}, "
              f"mean {p.get('mean')}, std {p.get('std')}")
    if report.head or report.class_names:
        classes = f" ({', '.join(report.class_names)})" if report.class_names else ""
        print(f"head: {report.head or 'classifier'}{classes if report.head is None else ''}")
        print("      `minitl finetune --weights` drops this head and trains a new one for your classes")
    for note in report.notes:
        print(f"note: {note}")
    return 0


def run_inspect(args) -> int:
    transfer = _transfer()
    path, _ = transfer.resolve_source(args.file)
    fmt = transfer.detect_format(path)
    state, metadata, rows, structure = transfer.read_file(path, fmt)
    entries = [{"name": r.source, "shape": list(r.source_shape), "dtype": r.dtype or "-",
                "minitl_name": r.target} for r in rows]
    count = int(sum(numpy.prod(r.source_shape, dtype=numpy.int64) for r in rows if r.target))
    from ..models import infer_arch

    info = {"file": str(args.file), "path": path, "format": fmt, "entries": len(entries), "parameters": count,
            "architecture": metadata.get("arch") or infer_arch(state, structure), "metadata": metadata,
            "tensors": entries}
    if args.json:
        print(json.dumps(transfer.report.jsonable(info), indent=2))
        return 0
    width = max([len(e["name"]) for e in entries] + [4])
    print(f"{path}  ({fmt}, {len(entries)} arrays, {count:,} parameters, architecture {info['architecture'] or 'unknown'})")
    shown = entries if args.all else entries[: args.limit]
    print(f"{'name':<{width}}  {'shape':<20}  dtype")
    for e in shown:
        print(f"{e['name']:<{width}}  {str(tuple(e['shape'])):<20}  {e['dtype']}")
    if len(shown) < len(entries):
        print(f"... {len(entries) - len(shown)} more (--all to list every one)")
    if metadata.get("head"):
        print(f"head: {metadata['head']}")
    if metadata:
        print("metadata: " + json.dumps(transfer.report.jsonable(metadata), sort_keys=True))
    return 0


def verdict(report, arch: str) -> str:
    """The audit's answer in one line: does the file fit ``arch``, and if not, by how much."""
    if report.ok:
        return (f"verdict: {report.source} matches {arch}: every one of its {sum(1 for r in report.rows if r.target)} "
                "arrays has a place, none missing, every shape agrees")
    counts = [(len(report.missing), "missing"), (len(report.unused), "unused"), (len(report.mismatched), "mismatched"),
              (len(report.conflicts), "conv geometry conflicts")]
    return (f"verdict: {report.source} does NOT match {arch}: "
            + ", ".join(f"{n} {what}" for n, what in counts if n) + " (details below)")


def architecture_notes(report, arch: str, hint: str | None) -> list[str]:
    """Where the file itself names (or looks like) another architecture than ``--arch``."""
    notes = []
    named = report.metadata.get("arch") or hint
    if named and named != arch:
        notes.append(f"note: the file's {'metadata' if report.metadata.get('arch') else 'name'} says architecture "
                     f"{named}, not --arch {arch}: try --arch {named}")
    if report.inferred_arch and report.inferred_arch not in (arch, named):
        notes.append(f"note: its names and shapes look like {report.inferred_arch}")
    return notes


def run_audit(args) -> int:
    transfer = _transfer()
    _, hint = transfer.resolve_source(args.file)
    _, report = transfer.load_weights(args.file, arch=args.arch)
    lines = [verdict(report, args.arch)] + architecture_notes(report, args.arch, hint)
    if args.json:
        print(json.dumps({"verdict": lines[0], "notes": lines[1:], **report.to_dict()}, indent=2))
    else:
        print("\n".join(lines))
        print()
        print(report.table())
    return 0 if report.ok else 1


def _known_architectures() -> str:
    from ..models import ARCHS  # noqa: PLC0415

    return ", ".join(ARCHS)


def register(subparsers) -> None:
    parser = subparsers.add_parser("weights", help="convert, inspect and audit pretrained weight files")
    sub = parser.add_subparsers(dest="weights_command", metavar="ACTION", required=True)

    convert = sub.add_parser("convert", help="any supported weight file (or 'opennsfw') -> minitl .npz with metadata")
    convert.add_argument("source", metavar="SRC", help=".pth/.pt, .h5, .onnx, .safetensors or .npz file, or 'opennsfw'")
    convert.add_argument("-o", "--output", required=True, metavar="OUT.npz", help="where to write the .npz")
    known = _known_architectures()
    convert.add_argument("--arch", help=f"architecture name (default: from the file, or recognised): {known}")
    convert.add_argument("--json", action="store_true", help="machine-readable output")
    convert.set_defaults(handler=run_convert)

    inspect = sub.add_parser("inspect", help="names, shapes, dtypes, parameter count and metadata of a weight file")
    inspect.add_argument("file", metavar="FILE", help="weight file or 'opennsfw'")
    inspect.add_argument("--limit", type=int, default=40, help="rows to list (default 40)")
    inspect.add_argument("--all", action="store_true", help="list every array")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.set_defaults(handler=run_inspect)

    audit = sub.add_parser("audit", help="does a file fit an architecture? A verdict, then the mapping table: "
                                         "file name -> minitl name, conversions, missing, unused")
    audit.add_argument("file", metavar="FILE", help="weight file or 'opennsfw'")
    audit.add_argument("--arch", required=True, help=f"architecture to map onto: {known}")
    audit.add_argument("--json", action="store_true", help="machine-readable output")
    audit.set_defaults(handler=run_audit)
