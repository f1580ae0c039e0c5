"""Metrics against scikit-learn; plots are real PNG files; the fallback progress bar."""
import io

import numpy as np
import pytest

from minitl.train.metrics import (
    accuracy, confusion_matrix, format_confusion, per_class_accuracy, plot_comparison, plot_confusion,
    plot_learning_curves,
)
from minitl.train.progress import SimpleBar


def test_confusion_matrix_and_accuracy_match_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, 4),
                                  metrics.confusion_matrix(y_true, y_pred, labels=range(4)))
    assert accuracy(y_true, y_pred) == pytest.approx(metrics.accuracy_score(y_true, y_pred))


def test_confusion_by_hand():
    matrix = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert per_class_accuracy(matrix) == [0.5, 1.0, pytest.approx(2 / 3)]
    text = format_confusion(matrix, ["a", "bb", "c"])
    assert text.splitlines()[3].split() == ["2", "c", "1", "0", "2"]


def test_plots_are_png_files(tmp_path):
    pytest.importorskip("matplotlib")
    history = [{"phase": "head", "train_loss": 1.0, "val_loss": 1.1, "train_acc": 0.5, "val_acc": 0.4},
               {"phase": "finetune", "train_loss": 0.5, "val_loss": 0.7, "train_acc": 0.8, "val_acc": 0.7}]
    paths = [plot_learning_curves(history, tmp_path / "c.png"),
             plot_confusion(np.eye(3, dtype=int) * 5, ["a", "b", "c"], tmp_path / "m.png"),
             plot_comparison([{"mode": "features", "accuracy": 0.8, "train_seconds": 3.0},
                              {"mode": "scratch", "accuracy": 0.6, "train_seconds": 3.1}], tmp_path / "p.png")]
    for path in paths:
        with open(path, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_simple_bar_without_a_terminal_stays_quiet_for_short_steps():
    stream = io.StringIO()
    bar = SimpleBar(10, "work", stream=stream)
    for _ in range(10):
        bar.update()
    bar.close()
    assert stream.getvalue() == ""  # a short step writes nothing into logs
    bar = SimpleBar(4, "slow", stream=stream)
    bar.start -= 10  # pretend it has been running for 10 s
    for _ in range(4):
        bar.update()
    assert "slow  4/4" in stream.getvalue() and "took" in stream.getvalue()
