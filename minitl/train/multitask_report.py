"""What a multi-task run leaves behind: run.json, per-task curves, the gradient-conflict plot,
and the single-task vs multi-task comparison table."""
from __future__ import annotations

import json
import os

import numpy

from ..fileio import atomic_write
from .conflict import LEVELS
from .metrics import _pyplot


def conflict_series(steps: list, level: str = "representation") -> dict:
    """{"cos a|b": [per-step cosine, NaN where undefined], "norm a": [...]} from a run's step log."""
    series = {}
    for record in steps:
        entry = record.get(level) or {}
        for pair, value in (entry.get("cos") or {}).items():
            series.setdefault(f"cos {pair}", []).append(numpy.nan if value is None else value)
        for task, value in (entry.get("norm") or {}).items():
            series.setdefault(f"norm {task}", []).append(value)
    return series


def summarize_conflict(steps: list, level: str = "representation") -> dict:
    """Mean cosine per task pair and the share of steps with cos < 0, over the whole run."""
    summary = {}
    for key, values in conflict_series(steps, level).items():
        if not key.startswith("cos "):
            continue
        v = numpy.asarray(values, dtype=numpy.float64)
        v = v[numpy.isfinite(v)]
        if len(v):
            summary[key[4:]] = {"mean_cos": float(v.mean()), "negative_share": float((v < 0).mean()),
                                "steps": int(len(v))}
    return summary


def _smooth(values, window: int):
    v = numpy.asarray(values, dtype=numpy.float64)
    if len(v) < window or window < 2:
        return v
    ok = numpy.isfinite(v)
    kernel = numpy.ones(window)
    total = numpy.convolve(numpy.where(ok, v, 0.0), kernel, mode="same")
    count = numpy.convolve(ok.astype(numpy.float64), kernel, mode="same")
    return numpy.where(count > 0, total / numpy.maximum(count, 1), numpy.nan)


def plot_conflict(steps: list, path, level: str = "representation") -> str | None:
    """Per step: cos(g_a, g_b) (raw and a moving average) and ‖g_k‖ (log scale); None without matplotlib."""
    plt = _pyplot()
    series = conflict_series(steps, level)
    if plt is None or not series:
        return None
    fig, (ax_cos, ax_norm) = plt.subplots(1, 2, figsize=(11, 3.8))
    window = max(1, len(steps) // 40)
    for key, values in series.items():
        x = numpy.arange(1, len(values) + 1)
        if key.startswith("cos "):
            line, = ax_cos.plot(x, values, alpha=0.25, linewidth=0.8)
            ax_cos.plot(x, _smooth(values, window), color=line.get_color(), label=key[4:])
        else:
            ax_norm.plot(x, _smooth(values, window), label=key[5:])
    ax_cos.axhline(0.0, color="gray", linewidth=0.8)
    ax_cos.set(xlabel="step", ylabel="cos(g_a, g_b)", ylim=(-1.05, 1.05),
               title=f"gradient agreement on the shared {level}")
    ax_norm.set(xlabel="step", ylabel="‖g_k‖", yscale="log", title="each task's gradient norm")
    ax_cos.legend(fontsize=8)
    ax_norm.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=100)
    plt.close(fig)
    return os.fspath(path)


def plot_task_curves(history: list, path) -> str | None:
    """Training loss and held-out accuracy per task and epoch."""
    plt = _pyplot()
    if plt is None or not history:
        return None
    epochs = numpy.arange(1, len(history) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for task in history[0]["train_loss"]:
        ax_loss.plot(epochs, [h["train_loss"].get(task, numpy.nan) for h in history], marker=".", label=task)
        acc = [h["held_out"][task]["accuracy"] for h in history]
        ax_acc.plot(epochs, [numpy.nan if a is None else a for a in acc], marker=".", label=task)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="training loss per task")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="held-out accuracy per task")
    ax_loss.legend()
    ax_acc.legend()
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=100)
    plt.close(fig)
    return os.fspath(path)


def write_run(out_dir, result: dict) -> dict:
    """run.json (config, per-task metrics, history, the per-step conflict log) and the plots."""
    os.makedirs(out_dir, exist_ok=True)
    files = {}
    made = plot_task_curves(result["history"], os.path.join(out_dir, "curves.png"))
    if made:
        files["curves"] = made
    levels = [level for level in LEVELS if any(level in record for record in result["steps"])]
    for level in levels:
        name = "conflict" if level == "representation" else f"conflict_{level}"
        made = plot_conflict(result["steps"], os.path.join(out_dir, f"{name}.png"), level)
        if made:
            files[name] = made
    files["log"] = os.path.join(out_dir, "run.json")
    payload = dict(result, files=dict(files),
                   conflict_summary={level: summarize_conflict(result["steps"], level) for level in levels})
    atomic_write(files["log"], lambda h: h.write(json.dumps(payload, indent=1, default=str).encode()))
    return files


def format_comparison(rows: list) -> str:
    """rows: {"run", "main_accuracy", "epochs", "train_seconds", "mean_cos"} -> a text table."""
    lines = [f"{'run':<28}{'main acc':>10}{'epochs':>8}{'train (s)':>11}{'mean cos':>10}", "-" * 67]
    for r in rows:
        cos = "" if r.get("mean_cos") is None else f"{r['mean_cos']:+.3f}"
        lines.append(f"{r['run']:<28}{100 * r['main_accuracy']:>9.2f}%{r['epochs']:>8}{r['train_seconds']:>11.1f}{cos:>10}")
    return "\n".join(lines)
