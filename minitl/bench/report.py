"""Reporting ``minitl bench``: medians over rounds, speed-ups, largest differences between the
backends, the batch from which the GPU wins; a text table, a JSON file and a PNG plot."""
from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import numpy

from .. import __version__, backend
from . import harness


def max_diffs(out_dir: Path, case_id: str):
    """(largest |cpu - cuda|, that relative to the largest |cpu|) over a case's saved outputs; (None, None)
    when one side saved none."""
    a_path, b_path = out_dir / "cpu" / f"{case_id}.npz", out_dir / "cuda" / f"{case_id}.npz"
    if not (a_path.exists() and b_path.exists()):
        return None, None
    with numpy.load(a_path, allow_pickle=False) as a, numpy.load(b_path, allow_pickle=False) as b:
        abs_diff = rel = 0.0
        for key in a.files:
            x, y = a[key].astype(numpy.float64), b[key].astype(numpy.float64)
            if x.shape != y.shape:
                return float("nan"), float("nan")
            if x.size:
                d = float(numpy.max(numpy.abs(x - y)))
                abs_diff = max(abs_diff, d)
                rel = max(rel, d / max(float(numpy.max(numpy.abs(x))), 1e-30))
    return abs_diff, rel


def summarise(config, cases, records, infos, out_dir, rounds_done, gpu_skipped) -> dict:
    """Medians over rounds, speed-ups, max differences, and where the GPU starts to win."""
    names = {"cpu": "numpy", "cuda": "cupy"}
    rows = []
    for case in cases:
        row = {"case": case.id, "op": case.op, "batch": case.batch, "params": case.params}
        for device, name in names.items():
            got = records.get(device, {}).get(case.id, [])
            timed = [g for g in got if "median_s" in g]
            if timed:
                row[name] = {
                    "median_s": statistics.median(g["median_s"] for g in timed),
                    "first_call_s": timed[0]["first_call_s"],
                    "round_medians_s": [g["median_s"] for g in timed],
                    "rounds": len(timed),
                    "first_call_is_sample": any(g.get("first_call_is_sample") for g in timed),
                }
            elif got:
                row[name] = {k: got[0][k] for k in ("skipped", "error") if k in got[0]}
            elif device in records and rounds_done:
                row[name] = {"skipped": "not reached: the time limit stopped the worker first"}
        t_cpu = row.get("numpy", {}).get("median_s")
        t_gpu = row.get("cupy", {}).get("median_s")
        row["speedup"] = t_cpu / t_gpu if t_cpu and t_gpu else None
        if case.op.startswith("copy."):
            nbytes = 4 * case.batch * case.params["c"] * case.params["hw"] ** 2
            row["bytes"] = nbytes
            if t_gpu:
                row["gb_per_s"] = nbytes / t_gpu / 1e9
        row["max_abs_diff"], row["max_rel_diff"] = max_diffs(out_dir, case.id)
        rows.append(row)
    return {
        "meta": {
            "minitl": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
            "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "load_average_at_end": harness.load_average(),
            "preset": config.preset, "rounds_asked": config.rounds, "rounds_done": rounds_done,
            "dtype": "float32", "workers": infos, "gpu": backend.gpu_status(), "gpu_skipped": gpu_skipped,
            "method": "each backend in its own process, alternated per round; median over rounds of per-round "
                      "medians; GPU: CUDA events after warm-up; first call: wall clock incl. synchronisation; "
                      "NumPy calls >= 4x the per-case time target: the first call is the round's sample",
        },
        "rows": rows,
        "gpu_wins_from_batch": gpu_wins_from(rows),
    }


def gpu_wins_from(rows) -> dict:
    """op -> the smallest batch from which the GPU is faster at every larger batch measured (None: never)."""
    by_op: dict[str, list] = {}
    for row in rows:
        if row["op"].startswith("copy.") or row.get("speedup") is None:
            continue
        by_op.setdefault(row["op"], []).append((row["batch"], row["speedup"]))
    wins = {}
    for op, points in by_op.items():
        points.sort()
        start = None
        for batch, speedup in points:
            if speedup > 1.0:
                start = batch if start is None else start
            else:
                start = None
        wins[op] = start
    return wins


# ============================================================================ reporting
def _fmt_time(seconds) -> str:
    if seconds is None:
        return "—"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def _cell(row, name, key="median_s"):
    entry = row.get(name)
    if entry is None:
        return "—"
    if "skipped" in entry:
        return "skip"
    if "error" in entry:
        return "error"
    return _fmt_time(entry.get(key))


def format_table(result: dict) -> str:
    """The result as a plain-text table."""
    header = ["case", "numpy", "cupy", "speed-up", "1st numpy", "1st cupy", "max |diff|"]
    lines = []
    for row in result["rows"]:
        speed = f"{row['speedup']:.1f}×" if row.get("speedup") else "—"
        diff = f"{row['max_abs_diff']:.2e}" if row.get("max_abs_diff") is not None else "—"
        if row.get("gb_per_s"):
            diff = f"{row['gb_per_s']:.1f} GB/s"
        lines.append([row["case"], _cell(row, "numpy"), _cell(row, "cupy"), speed,
                      _cell(row, "numpy", "first_call_s"), _cell(row, "cupy", "first_call_s"), diff])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    text = ["  ".join(str(x).ljust(w) for x, w in zip(header, widths))]
    text.append("  ".join("-" * w for w in widths))
    text += ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)) for line in lines]
    meta = result["meta"]
    notes = [f"rounds: {meta['rounds_done']} of {meta['rounds_asked']} asked; float32; {meta['method']}"]
    if meta.get("load_average_at_end"):
        notes.append(f"machine: {meta['cpu_count']} CPUs, load average at the end {meta['load_average_at_end']} "
                     "(other work running distorts the CPU times)")
    if meta.get("gpu_skipped"):
        notes.append(f"GPU side skipped: {meta['gpu_skipped']}")
    else:
        wins = ", ".join(f"{op}: {b if b is not None else 'never'}" for op, b in result["gpu_wins_from_batch"].items())
        notes.append(f"GPU faster from batch: {wins}")
    why: dict[str, list] = {}  # reason -> ops (batches folded together)
    for r in result["rows"]:
        for name in ("numpy", "cupy"):
            entry = r.get(name) or {}
            reason = entry.get("skipped") or entry.get("error")
            if reason:
                ops = why.setdefault(f"{name}: {reason}", [])
                if r["op"] not in ops:
                    ops.append(r["op"])
    for reason, ops in why.items():
        notes.append(f"not measured ({', '.join(ops)}) on {reason}")
    return "\n".join(text + [""] + notes)


def plot(result: dict, path: str | Path) -> str | None:
    """Time against batch per op (log-log) and the speed-ups; None (and no file) without matplotlib."""
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return None
    ops = [op for op in dict.fromkeys(r["op"] for r in result["rows"]) if not op.startswith("copy.")]
    cols = 3
    nrows = max(1, math.ceil(len(ops) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
    for ax, op in zip(axes.flat, ops):
        rows = [r for r in result["rows"] if r["op"] == op]
        for name, style in (("numpy", "o-"), ("cupy", "s-")):
            pts = [(r["batch"], r[name]["median_s"]) for r in rows if "median_s" in r.get(name, {})]
            if pts:
                ax.plot(*zip(*pts), style, label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(op, fontsize=9)
        ax.set_xlabel("batch")
        ax.set_ylabel("seconds")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(ops):]:
        ax.axis("off")
    meta = result["meta"]
    gpu = (meta.get("workers", {}).get("cuda") or {}).get("gpu") or "GPU skipped"
    fig.suptitle(f"minitl: NumPy ({meta['cpu_count']} CPUs) vs CuPy ({gpu}), float32, median of "
                 f"{meta['rounds_done']} rounds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def write(result: dict, out: str | Path, stem: str) -> dict:
    """Write ``stem``.json, ``stem``.txt (the table) and ``stem``.png into ``out``; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{stem}.json", "table": out / f"{stem}.txt"}
    paths["json"].write_text(json.dumps(result, indent=2, default=str) + "\n")
    paths["table"].write_text(format_table(result) + "\n")
    png = plot(result, out / f"{stem}.png")
    if png:
        paths["png"] = Path(png)
    return {k: str(v) for k, v in paths.items()}
