"""Accuracy, the confusion matrix, and PNG plots of both (matplotlib optional)."""
from __future__ import annotations

import os

import numpy


def confusion_matrix(y_true, y_pred, num_classes: int) -> numpy.ndarray:
    """C[i, j] = number of samples of true class i predicted as class j."""
    y_true, y_pred = numpy.asarray(y_true, dtype=numpy.int64), numpy.asarray(y_pred, dtype=numpy.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"confusion_matrix: y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    matrix = numpy.zeros((num_classes, num_classes), dtype=numpy.int64)
    numpy.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def accuracy(y_true, y_pred) -> float:
    """Fraction of samples whose predicted class is the true one."""
    y_true, y_pred = numpy.asarray(y_true), numpy.asarray(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else float("nan")


def per_class_accuracy(matrix) -> list[float]:
    totals = matrix.sum(axis=1)
    return [float(matrix[i, i] / totals[i]) if totals[i] else float("nan") for i in range(len(matrix))]


def format_confusion(matrix, classes, width: int = 6) -> str:
    """The matrix as text: rows true classes, columns predictions (class indices as headers)."""
    names = [str(c)[:14] for c in classes]
    label = max(len(n) for n in names)
    lines = [" " * (3 + label) + "".join(f"{j:>{width}}" for j in range(len(classes))) + "   <- predicted"]
    for i, row in enumerate(matrix):
        lines.append(f"{i:>2} {names[i]:<{label}}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def _pyplot():
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return None
    return plt


def plot_learning_curves(history: list[dict], path) -> str | None:
    """Loss and accuracy per epoch (training and held-out), phases marked; None without matplotlib."""
    plt = _pyplot()
    if plt is None or not history:
        return None
    x = numpy.arange(1, len(history) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax, label in (("train_loss", ax_loss, "training"), ("val_loss", ax_loss, "held-out"),
                           ("train_acc", ax_acc, "training"), ("val_acc", ax_acc, "held-out")):
        values = [h.get(key) for h in history]
        if any(v is not None for v in values):
            ax.plot(x, [numpy.nan if v is None else v for v in values], marker="o", label=label)
    phases = [h.get("phase") for h in history]
    for i in range(1, len(phases)):
        if phases[i] != phases[i - 1]:
            for ax in (ax_loss, ax_acc):
                ax.axvline(i + 0.5, color="gray", linestyle="--")
                ax.text(i + 0.6, ax.get_ylim()[1], phases[i], va="top", fontsize=8, color="gray")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax_loss.legend()
    ax_acc.legend()
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=100)
    plt.close(fig)
    return os.fspath(path)


def plot_confusion(matrix, classes, path, title: str = "confusion matrix") -> str | None:
    plt = _pyplot()
    if plt is None:
        return None
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.6 * n))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), [str(c) for c in classes], rotation=45, ha="right")
    ax.set_yticks(range(n), [str(c) for c in classes])
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if matrix[i, j] > threshold else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=100)
    plt.close(fig)
    return os.fspath(path)


def plot_comparison(rows: list[dict], path) -> str | None:
    """Bars of accuracy and training time per mode (``minitl compare``)."""
    plt = _pyplot()
    if plt is None or not rows:
        return None
    names = [r["mode"] for r in rows]
    fig, (ax_acc, ax_time) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_acc.bar(names, [100 * r["accuracy"] for r in rows], color=["#999", "#4a8", "#48c"][: len(rows)])
    ax_acc.set(ylabel="test accuracy (%)", title="accuracy")
    for i, r in enumerate(rows):
        ax_acc.text(i, 100 * r["accuracy"], f"{100 * r['accuracy']:.1f}", ha="center", va="bottom")
    extract = [r.get("extract_seconds", 0.0) for r in rows]
    train = [r["train_seconds"] for r in rows]
    ax_time.bar(names, extract, color="#ccc", label="feature extraction")
    ax_time.bar(names, train, bottom=extract, color=["#999", "#4a8", "#48c"][: len(rows)], label="training")
    ax_time.set(ylabel="wall time (s)", title="time: extraction + training")
    ax_time.legend()
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=100)
    plt.close(fig)
    return os.fspath(path)
