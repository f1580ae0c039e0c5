"""What a run reports: :class:`RunResult` and the files written beside the checkpoint.

    run.json        settings, data, preprocessing, segments and every field of the RunResult
    curves.png      learning curves (loss and accuracy per epoch, training and held-out)
    confusion.png   the test confusion matrix
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import numpy

from ..fileio import atomic_write
from .metrics import plot_confusion, plot_learning_curves


@dataclass
class RunResult:
    mode: str
    accuracy: float
    confusion: list
    classes: list
    history: list
    train_seconds: float
    extract_seconds: float  # feature extraction of the training split in this run (0 on a cache hit)
    extract_seconds_uncached: float  # what that extraction costs without the cache
    eval_seconds: float
    epochs_run: int
    stopped_by_budget: bool
    cache: dict
    frozen_check: str
    files: dict = field(default_factory=dict)
    per_class_accuracy: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def write_outputs(out_dir: str, result: RunResult, context: dict) -> dict:
    """Plots and ``run.json`` (``context``: settings, data, preprocessing, segments) in ``out_dir``;
    returns {kind: path} of the files written."""
    files = {}
    os.makedirs(out_dir, exist_ok=True)
    title = (f"{context.get('dataset') or 'data'}, {result.mode}: test accuracy {100 * result.accuracy:.1f}% "
             f"(all {int(numpy.asarray(result.confusion).sum())} test images)")
    curves = plot_learning_curves(result.history, os.path.join(out_dir, "curves.png"), title=title)
    if curves:
        files["curves"] = curves
    conf = plot_confusion(numpy.asarray(result.confusion), result.classes, os.path.join(out_dir, "confusion.png"),
                          title=title)
    if conf:
        files["confusion"] = conf
    log_path = os.path.join(out_dir, "run.json")
    files["log"] = log_path
    payload = {**context, **result.to_dict()}
    payload["files"] = dict(files)
    atomic_write(log_path, lambda h: h.write(json.dumps(payload, indent=1, default=str).encode()))
    return files
