"""What the training commands print: their log lines, a classifier's result (accuracy and confusion
matrix) and a ranking of classes."""
from __future__ import annotations

import json
import sys


def logger(args):
    """A log(message) for the run: nothing under --quiet, on stderr under --json (stdout holds the result)."""
    quiet = getattr(args, "quiet", False)
    stream = sys.stderr if getattr(args, "json", False) else sys.stdout
    if quiet:
        return lambda message: None
    return lambda message: print(message, file=stream, flush=True)


def print_result(result, args, extra=None):
    """The test accuracy and confusion matrix (or, under --json, the whole result) of a classifier."""
    import numpy  # noqa: PLC0415

    from ..train.metrics import format_confusion  # noqa: PLC0415

    if args.json:
        payload = result.to_dict() if hasattr(result, "to_dict") else dict(result)
        payload.update(extra or {})
        print(json.dumps(payload, indent=2, default=str))
        return
    accuracy = result.accuracy if hasattr(result, "accuracy") else result["accuracy"]
    confusion = result.confusion if hasattr(result, "confusion") else result["confusion"]
    classes = result.classes if hasattr(result, "classes") else result["classes"]
    images = int(numpy.asarray(confusion).sum())
    print(f"\ntest accuracy: {100 * accuracy:.2f}% on all {images} test images")
    print("confusion matrix (rows: true class, columns: predicted):")
    print(format_confusion(numpy.asarray(confusion), classes))
    files = dict(getattr(result, "files", {}) or {}, **(extra or {}).get("files", {}))
    if files:
        print()
    if files and "curves" not in files and hasattr(result, "history"):
        print("(no PNG plots: matplotlib is not installed; pip install 'minitl[plot]')")


def print_top(ranked) -> None:
    """One line per class: rank, name, probability."""
    for rank, top in enumerate(ranked, 1):
        print(f"  {rank}. {top['class']:<20} {100 * top['probability']:6.2f}%")
