"""The ``minitl multitask`` job: the main classification task plus a coarse auxiliary task, on
one shared trunk over the pretrained backbone, against the main task alone.

    features  mode "features": g = pool(Φ(x)), the backbone frozen (computed once, cached on disk);
              mode "finetune": the activations before the last ``unfreeze`` stages are cached, those
              stages are trained with the rest at ``backbone_lr`` (low), BatchNorm in inference mode
    trunk     z = ReLU(W g + b)                   shared by every task (with the unfrozen stages)
    heads     main: the data's classes;  aux: a grouping of them (e.g. Fashion-MNIST's 4 coarse groups)
    J         = L_main + λ L_aux  (or uncertainty weighting)

The comparison trains the same trunk with the main head alone, from the same pretrained weights and
initialisation seed, on the same examples, epochs and batches — the same budget — and reports both on
the held-out split.  Each run saves its main-task network as ``<out>/<run>/model.npz``, a classifier
``minitl predict`` loads like the one ``minitl finetune`` saves.
"""
from __future__ import annotations

import os
from dataclasses import replace

import numpy

from .. import nn
from .. import random as mt_random
from ..data.fashion_mnist import FASHION_MNIST_CLASSES, FASHION_MNIST_COARSE
from .backbones import save_classifier
from .model import TransferModel
from .multitask import MultiTaskConfig, MultiTaskTrainer, TaskData
from .multitask_model import build_transfer_multitask
from .multitask_report import format_comparison, summarize_conflict
from .plan import TrainConfig
from .trainer import Trainer
from .workflow import Job, resolve_backbone, resolve_data


def default_groups(classes) -> dict | None:
    """Fashion-MNIST's coarse groups when the classes are Fashion-MNIST's, else None."""
    return dict(FASHION_MNIST_COARSE) if list(classes) == list(FASHION_MNIST_CLASSES) else None


def group_labels(classes, groups: dict) -> tuple[numpy.ndarray, list]:
    """fine class index -> group index (every class in exactly one group), and the group names."""
    names = list(groups)
    lookup = {}
    for g, name in enumerate(names):
        for member in groups[name]:
            member = str(member)
            if member not in classes:
                raise ValueError(f"auxiliary group {name!r}: {member!r} is not a class of the data ({', '.join(classes)})")
            if member in lookup:
                raise ValueError(f"class {member!r} is in two auxiliary groups ({names[lookup[member]]!r}, {name!r})")
            lookup[member] = g
    missing = [c for c in classes if c not in lookup]
    if missing:
        raise ValueError(f"auxiliary groups leave class(es) {', '.join(missing)} out; put every class in one group")
    return numpy.array([lookup[c] for c in classes], dtype=numpy.int64), names


def build_multitask(in_features: int, hidden: int, heads: dict, seed: int, weights=None, weighting="fixed"):
    """Linear(in, hidden) + ReLU shared, one Linear(hidden, classes) head per task; the trunk's and
    the main head's initial weights depend only on the seed (the same in single- and multi-task)."""
    mt_random.manual_seed(seed)
    trunk = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU())
    built = {name: nn.Linear(hidden, classes) for name, classes in heads.items()}
    return nn.MultiTask(trunk, built, weights=weights, weighting=weighting)


MODES = ("features", "finetune")


def cached_inputs(job: Job, log, show_progress=True, unfreeze: int = 0):
    """The trunk's inputs, computed once and cached: activations at the start of the last ``unfreeze``
    stages (0: the pooled features).  Returns (train x, train y, test x, test y, classes, data
    description, cut, the backbone, its Preprocessing, its source)."""
    splits = resolve_data(job, log)
    backbone, spec, source = resolve_backbone(job, log)
    mt_random.manual_seed(0)
    model = TransferModel(backbone, len(splits.classes), hidden=8, probe_shape=(3,) + tuple(spec.input_size))
    trainer = Trainer(model, splits, spec, TrainConfig(mode="features", flip=False), cache_dir=job.cache_dir,
                      show_progress=show_progress, log=log, device=job.device)
    cut = model.cut_for(unfreeze)
    train, test = trainer.features("train", cut), trainer.features("test", cut)
    return (numpy.asarray(train.features), train.labels, numpy.asarray(test.features), test.labels,
            list(splits.classes), splits.describe(), cut, backbone, spec, source)


def cached_features(job: Job, log, show_progress=True):
    """(train features, train labels, test features, test labels, classes, data description): pooled."""
    return cached_inputs(job, log, show_progress)[:6]


def multitask(job: Job, config: MultiTaskConfig, out_dir, groups: dict | None = None, aux_weight: float = 1.0,
              weighting: str = "fixed", single: bool = True, resume: bool = False, show_progress: bool = True,
              log=print, mode: str = "features", unfreeze: int = 1) -> dict:
    """Train main + auxiliary (and, with ``single``, main alone); returns the report dict."""
    _check_mode(mode, unfreeze)
    x, y, x_test, y_test, classes, described, cut, backbone, spec, source = cached_inputs(
        job, log, show_progress, unfreeze if mode == "finetune" else 0)
    groups = groups or default_groups(classes)
    if groups is None:
        raise ValueError("the auxiliary task needs --aux-groups (a grouping of the data's classes); "
                         "only Fashion-MNIST has a built-in one")
    to_group, group_names = group_labels(classes, groups)
    train = TaskData(x, {"main": y, "aux": to_group[y]}, {"main": classes, "aux": group_names})
    test = TaskData(x_test, {"main": y_test, "aux": to_group[y_test]}, {"main": classes, "aux": group_names})
    runs = {"multitask": ({"main": len(classes), "aux": len(group_names)},
                          None if weighting == "uncertainty" else {"aux": aux_weight})}
    if single:
        runs["single"] = ({"main": len(classes)}, None)
    rows, results = [], {}
    for name, (heads, weights) in runs.items():
        log(f"=== {name}: heads {', '.join(heads)}" + (f", weights {weights}" if weights else
                                                          f", {weighting} weighting" if len(heads) > 1 else "") + " ===")
        if mode == "finetune" and name != next(iter(runs)):  # every run starts from the pretrained weights
            backbone = resolve_backbone(job, lambda message: None)[0]
        transfer, model, run_config = _build_run(backbone, heads, weights, job, config, mode, cut, weighting, spec)
        run_dir = os.path.join(out_dir, name)
        trainer = MultiTaskTrainer(model, train, test, run_config, out_dir=run_dir, log=log,
                                   show_progress=show_progress, device=job.device,
                                   describe={"data": described, "groups": groups, "mode": mode,
                                             "trained_stages": transfer.segment_names[cut:] if mode == "finetune" else []})
        started = os.path.isfile(os.path.join(run_dir, "checkpoint.npz")) or \
            os.path.isfile(os.path.join(run_dir, "checkpoint.prev.npz"))
        result = trainer.fit(resume=resume and started)
        model_path = os.path.join(run_dir, "model.npz")
        save_classifier(model_path, transfer, classes, spec,
                        {"mode": f"multitask-{mode}", "test_accuracy": result["accuracy"], "backbone_source": source,
                         "data": described, "tasks": model.task_names,
                         "note": "the main task's network; every head's weights are in checkpoint.npz"})
        result["files"]["model"] = model_path
        results[name] = result
        rows.append(_row(name, result, weighting, aux_weight))
    report = {"data": described, "groups": groups, "mode": mode, "rows": rows, "table": format_comparison(rows),
              "models": {name: results[name]["files"]["model"] for name in results},
              "held_out_examples": int(len(y_test))}
    if single:
        report["gain"], report["verdict"] = _verdict(results, len(y_test))
    return report


def _check_mode(mode: str, unfreeze: int) -> None:
    if mode not in MODES:
        raise ValueError(f"multitask mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "finetune" and unfreeze < 1:
        raise ValueError(f"finetune needs --unfreeze >= 1 (the number of last stages to train), got {unfreeze}")


def _build_run(backbone, heads: dict, weights, job: Job, config: MultiTaskConfig, mode: str, cut: int, weighting: str,
               spec):
    """(transfer model, multi-task model, run config) of one run: the heads on the backbone (trained from
    ``cut`` on in finetune), on the job's device."""
    transfer, model = build_transfer_multitask(backbone, heads, job.hidden, config.seed,
                                               cut if mode == "finetune" else None, weights,
                                               weighting if len(heads) > 1 else "fixed",
                                               probe_shape=(3,) + tuple(spec.input_size))
    if job.device:
        transfer.to(job.device)
        model.to(job.device)
    run_config = replace(config, main="main", conflict=config.conflict if len(heads) > 1 else (),
                         backbone_lr=config.backbone_lr if mode == "finetune" else None)
    return transfer, model, run_config


def _row(name: str, result: dict, weighting: str, aux_weight: float) -> dict:
    """One run's line of the comparison table."""
    summary = summarize_conflict(result["steps"]).get("main|aux", {})
    return {"run": name if name == "single" else f"multitask ({weighting}"
            + (f", λ={aux_weight:g})" if weighting == "fixed" else ")"),
            "main_accuracy": result["accuracy"], "epochs": len(result["history"]),
            "train_seconds": result["train_seconds"], "mean_cos": summary.get("mean_cos"),
            "aux_accuracy": result["held_out"].get("aux", {}).get("accuracy")}


def _verdict(results: dict, held_out: int) -> tuple:
    """(gain, sentence): the main task's accuracy with the auxiliary head minus without it."""
    gain = results["multitask"]["accuracy"] - results["single"]["accuracy"]
    return gain, (f"the auxiliary head {'helps' if gain > 0 else 'does NOT help'} the main task here: "
                  f"{100 * results['multitask']['accuracy']:.2f}% vs {100 * results['single']['accuracy']:.2f}% "
                  f"alone ({100 * gain:+.2f} points, one seed, {held_out} held-out examples)")
