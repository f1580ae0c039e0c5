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


def _save(fig, path) -> str:
    """Lay out (nothing outside the figure: tight_layout, then the titles kept in) and write a PNG."""
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=100)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    plt.close(fig)
    return os.fspath(path)


def plot_learning_curves(history: list[dict], path, title: str | None = None) -> str | None:
    """Loss and accuracy per epoch (training and test check), phases marked; None without matplotlib.

    ``title``: what the run was (dataset, mode, final accuracy) above both panels."""
    plt = _pyplot()
    if plt is None or not history:
        return None
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    x = numpy.arange(1, len(history) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4.2))
    for key, ax, label in (("train_loss", ax_loss, "training"), ("val_loss", ax_loss, "test check"),
                           ("train_acc", ax_acc, "training"), ("val_acc", ax_acc, "test check")):
        values = [h.get(key) for h in history]
        if any(v is not None for v in values):
            ax.plot(x, [numpy.nan if v is None else v for v in values], marker="o", markersize=3, label=label)
    phases = [h.get("phase") for h in history]
    starts = [0] + [i for i in range(1, len(phases)) if phases[i] != phases[i - 1]]
    for ax in (ax_loss, ax_acc):
        ax.set_xlim(0.5, len(history) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        for n, first in enumerate(starts):
            if first > 0:
                ax.axvline(first + 0.5, color="gray", linestyle="--", linewidth=1)
            if len(starts) > 1:  # name each phase inside the frame, at the top of its span
                ax.text(first + 0.6, 0.97, phases[first], transform=ax.get_xaxis_transform(), va="top", ha="left",
                        fontsize=8, color="gray", clip_on=True)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax_loss.legend(loc="upper right" if len(starts) == 1 else "center right")
    ax_acc.legend(loc="lower right")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_confusion(matrix, classes, path, title: str = "confusion matrix") -> str | None:
    """The confusion matrix as a heat map with counts; at least 4.5 x 4 inches so any title fits."""
    plt = _pyplot()
    if plt is None:
        return None
    n = len(classes)
    label = max([len(str(c)) for c in classes] + [1])
    side = max(4.5, 1.2 + 0.55 * n + 0.06 * label)
    fig, ax = plt.subplots(figsize=(side, max(4.0, side - 0.4)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), [str(c) for c in classes], rotation=45 if n > 2 or label > 6 else 0, ha="right" if
                  n > 2 or label > 6 else "center")
    ax.set_yticks(range(n), [str(c) for c in classes])
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if matrix[i, j] > threshold else "black")
    ax.set(xlabel="predicted", ylabel="true")
    fig.suptitle(title, fontsize=11, wrap=True)
    return _save(fig, path)


TRAIN_COLOUR, EXTRACT_COLOUR = "#48c", "#ccc"
MODE_COLOURS = {"scratch": "#999", "features": "#4a8", "finetune": "#48c"}


def plot_comparison(rows: list[dict], path, title: str | None = None) -> str | None:
    """Bars of accuracy and of time (feature extraction + training) per mode (``minitl compare``)."""
    plt = _pyplot()
    if plt is None or not rows:
        return None
    names = [r["mode"] for r in rows]
    fig, (ax_acc, ax_time) = plt.subplots(1, 2, figsize=(9, 3.8))
    accuracies = [100 * r["accuracy"] for r in rows]
    ax_acc.bar(names, accuracies, color=[MODE_COLOURS.get(m, "#888") for m in names])
    ax_acc.set(ylabel="test accuracy (%)", title="accuracy", ylim=(0, 112))  # room for the labels above 100
    for i, value in enumerate(accuracies):
        ax_acc.text(i, value + 1.5, f"{value:.1f}", ha="center", va="bottom", fontsize=9)
    extract = [r.get("extract_seconds", 0.0) for r in rows]
    train = [r["train_seconds"] for r in rows]
    ax_time.bar(names, extract, color=EXTRACT_COLOUR, label="feature extraction")
    ax_time.bar(names, train, bottom=extract, color=TRAIN_COLOUR, label="training")
    top = max([e + t for e, t in zip(extract, train)] + [1e-9])
    ax_time.set(ylabel="wall time (s)", title="time: extraction + training", ylim=(0, top * 1.3))
    for i, (e, t) in enumerate(zip(extract, train)):
        ax_time.text(i, e + t + top * 0.02, f"{e + t:.0f}s" if top >= 10 else f"{e + t:.1f}s", ha="center",
                     va="bottom", fontsize=9)
    ax_time.legend(loc="upper left", fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
