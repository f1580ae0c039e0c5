"""The ``minitl multitask`` job: the main classification task plus a coarse auxiliary task, on
one shared hidden layer over the frozen backbone's cached features, against the main task alone.

    features  g = pool(Φ(x))  (the pretrained backbone, frozen; computed once, cached on disk)
    trunk     z = ReLU(W g + b)                   shared by every task
    heads     main: the data's classes;  aux: a grouping of them (e.g. Fashion-MNIST's 4 coarse groups)
    J         = L_main + λ L_aux  (or uncertainty weighting)

The comparison trains the same trunk with the main head alone, from the same initialisation seed,
on the same examples, epochs and batches — the same budget — and reports both on the held-out split.
"""
from __future__ import annotations

import os
from dataclasses import replace

import numpy

from .. import nn
from .. import random as mt_random
from ..data.fashion_mnist import FASHION_MNIST_CLASSES, FASHION_MNIST_COARSE
from .model import TransferModel
from .multitask import MultiTaskConfig, MultiTaskTrainer, TaskData
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


def cached_features(job: Job, log, show_progress=True):
    """(train features, train labels, test features, test labels, classes, data description)."""
    splits = resolve_data(job, log)
    backbone, spec, _ = resolve_backbone(job, log)
    mt_random.manual_seed(0)
    model = TransferModel(backbone, len(splits.classes), hidden=8, probe_shape=(3,) + tuple(spec.input_size))
    trainer = Trainer(model, splits, spec, TrainConfig(mode="features", flip=False), cache_dir=job.cache_dir,
                      show_progress=show_progress, log=log, device=job.device)
    cut = len(model.segments)
    train, test = trainer.features("train", cut), trainer.features("test", cut)
    return (numpy.asarray(train.features), train.labels, numpy.asarray(test.features), test.labels,
            list(splits.classes), splits.describe())


def multitask(job: Job, config: MultiTaskConfig, out_dir, groups: dict | None = None, aux_weight: float = 1.0,
              weighting: str = "fixed", single: bool = True, resume: bool = False, show_progress: bool = True,
              log=print) -> dict:
    """Train main + auxiliary (and, with ``single``, main alone); returns the report dict."""
    x, y, x_test, y_test, classes, described = cached_features(job, log, show_progress)
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
        model = build_multitask(x.shape[1], job.hidden, heads, config.seed, weights,
                                weighting if len(heads) > 1 else "fixed")
        run_config = replace(config, main="main", conflict=config.conflict if len(heads) > 1 else ())
        trainer = MultiTaskTrainer(model, train, test, run_config, out_dir=os.path.join(out_dir, name), log=log,
                                   show_progress=show_progress, device=job.device,
                                   describe={"data": described, "groups": groups})
        result = trainer.fit(resume=resume and os.path.isfile(os.path.join(out_dir, name, "checkpoint.npz")))
        results[name] = result
        summary = summarize_conflict(result["steps"]).get("main|aux", {})
        rows.append({"run": name if name == "single" else f"multitask ({weighting}"
                     + (f", λ={aux_weight:g})" if weighting == "fixed" else ")"),
                     "main_accuracy": result["accuracy"], "epochs": len(result["history"]),
                     "train_seconds": result["train_seconds"], "mean_cos": summary.get("mean_cos"),
                     "aux_accuracy": result["held_out"].get("aux", {}).get("accuracy")})
    report = {"data": described, "groups": groups, "rows": rows, "table": format_comparison(rows),
              "held_out_examples": int(len(y_test))}
    if single:
        gain = results["multitask"]["accuracy"] - results["single"]["accuracy"]
        report["gain"] = gain
        report["verdict"] = (f"the auxiliary head {'helps' if gain > 0 else 'does NOT help'} the main task here: "
                             f"{100 * results['multitask']['accuracy']:.2f}% vs {100 * results['single']['accuracy']:.2f}% "
                             f"alone ({100 * gain:+.2f} points, one seed, {len(y_test)} held-out examples)")
    return report
