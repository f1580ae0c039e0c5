"""Fashion-MNIST transfer with EfficientNet-Lite0 beside resnet50_1by2: one table.

The setting of benchmarks/transfer_targets.py (1,000 training images, 100 per class, seed 0; the
full 10,000-image test set; 96×96 input; head 60 epochs; finetune then trains the last two stages
for 6 epochs at lr 1e-3) run with ``--weights efficientnet-lite0`` in the ``features`` and
``finetune`` modes (``--unfreeze 2``: layer6, layer7 and the 1×1 head conv — Lite0's last two
stages), next to resnet50_1by2's rows from benchmarks/results/transfer_targets.json (the same
setting, measured earlier by that script).  Per row: test accuracy, extraction images/s (the
cached pass over the frozen part, train and test splits, counted once from images), training
time, and time = extraction + training as `minitl compare` counts it.

    python benchmarks/transfer_efficientnet.py                 # runs `minitl compare` (~15 min on 2 quiet cores)
    python benchmarks/transfer_efficientnet.py --collect runs/transfer_efficientnet   # gather an existing run

Writes benchmarks/results/transfer_efficientnet.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer_targets import COMMAND, RESULTS as RESNET_RESULTS, collect  # noqa: E402

from minitl.bench import harness  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "transfer_efficientnet.json"
WEIGHTS = ["--weights", "efficientnet-lite0", "--modes", "features,finetune"]


def extraction_rate(row: dict) -> float | None:
    """Images per second of the run's feature extraction from images: the cache entries of its own
    cut (pooled features for ``features``; the frozen stages' output for ``finetune``), train + test."""
    entries = list(row.get("cache", {}).values())
    if not entries:
        return None
    cut = max(entries, key=lambda e: len(e["shape"]))["shape"][1:]  # finetune's cut has the 3-D map
    images = seconds = 0.0
    for entry in entries:
        if entry["shape"][1:] != cut:
            continue
        images += entry["shape"][0]
        seconds += entry.get("seconds_from_images", entry.get("seconds", 0.0))
    return images / seconds if seconds else None


def table(rows: list) -> str:
    lines = ["| backbone | mode | accuracy | extraction images/s | extraction s | training s | time s (extract + train) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        rate = r["extract_images_per_s"]
        lines.append(f"| {r['backbone']} | {r['mode']} | {100 * r['accuracy']:.1f} % | "
                     f"{'n/a' if rate is None else f'{rate:.1f}'} | {r['extract_seconds_uncached']:.1f} | "
                     f"{r['train_seconds']:.1f} | {r['time_seconds']:.1f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collect", metavar="DIR", help="gather the files of an existing compare run in DIR")
    parser.add_argument("--out", default="runs/transfer_efficientnet", help="compare output folder")
    parser.add_argument("--results", default=str(RESULTS))
    args, extra = parser.parse_known_args()  # extra: e.g. --cache-dir DIR, passed to compare
    out_dir = args.collect or args.out
    load_before = harness.load_average()
    if not args.collect:
        subprocess.run([sys.executable, "-m", "minitl", *COMMAND, *WEIGHTS, "--out", out_dir, "--overwrite", *extra],
                       check=True)
    ours = collect(out_dir)
    rows = [dict(r, backbone="efficientnet_lite0") for r in ours["rows"]]
    resnet = json.loads(Path(RESNET_RESULTS).read_text()) if Path(RESNET_RESULTS).is_file() else {"rows": []}
    rows += [dict(r, backbone="resnet50_1by2") for r in resnet["rows"] if r["mode"] in ("features", "finetune")]
    for r in rows:
        r["extract_images_per_s"] = extraction_rate(r)
    from minitl import backend

    result = {"setting": ours["setting"] + " " + " ".join(WEIGHTS), "resnet50_1by2_setting": resnet.get("setting"),
              "rows": rows, "load_before": load_before, "load_after": harness.load_average(),
              "cpu_count": os.cpu_count(), "blas": backend.blas_info(), "command": " ".join(sys.argv)}
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    md = "\n".join([
        "# Fashion-MNIST transfer: EfficientNet-Lite0 beside resnet50_1by2", "",
        f"`minitl {' '.join(COMMAND)}` (resnet50_1by2: benchmarks/transfer_targets.py; EfficientNet-Lite0 adds "
        f"`{' '.join(WEIGHTS)}`), load average before {load_before}, after {result['load_after']} "
        f"({os.cpu_count()} CPUs).", "", table(rows), ""])
    out.with_suffix(".md").write_text(md)
    print(md)
    print(f"written {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
