"""End to end on real data: a small MLP learns scikit-learn's handwritten digits.

Stated target: ≥ 95% accuracy on a held-out quarter of the 1,797 images after 15 epochs of
SGD with momentum (about a second on one core).  Also: the digits loader and ``minitl demo``.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import minitl
import minitl.functional as F
from minitl import nn, optim

pytest.importorskip("sklearn", reason="the digits dataset ships with scikit-learn (pip install scikit-learn)")

from minitl.data.digits import load_digits, train_test_split_digits  # noqa: E402

TARGET_TEST_ACCURACY = 0.95


def test_loader_matches_scikit_learn():
    from sklearn.datasets import load_digits as sklearn_digits

    images, labels = load_digits()
    reference = sklearn_digits()
    assert images.shape == (1797, 64) and images.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    np.testing.assert_array_equal(images * 16, reference.data)
    np.testing.assert_array_equal(labels, reference.target)
    square, _ = load_digits(flatten=False)
    assert square.shape == (1797, 1, 8, 8)
    np.testing.assert_array_equal(square[5, 0], reference.images[5] / 16)


def test_split_is_stratified_disjoint_and_seeded():
    (x_tr, y_tr), (x_te, y_te) = train_test_split_digits(test_fraction=0.25, seed=0)
    assert len(x_tr) + len(x_te) == 1797 and abs(len(x_te) - 450) <= 5
    counts = np.bincount(y_te, minlength=10) / np.bincount(np.concatenate([y_tr, y_te]), minlength=10)
    assert np.all(np.abs(counts - 0.25) < 0.02)
    rows = {r.tobytes() for r in x_tr}
    assert sum(r.tobytes() in rows for r in x_te) < 5, "(the dataset has a few duplicate images)"
    (again, _), _ = train_test_split_digits(test_fraction=0.25, seed=0)
    np.testing.assert_array_equal(again, x_tr)


def test_loader_errors_clearly(tmp_path, monkeypatch):
    bad = tmp_path / "digits.csv.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="cannot read the digits file"):
        load_digits(path=bad)
    import importlib.util

    from minitl.data import digits

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install scikit-learn"):
        digits.digits_path()


def test_mlp_learns_digits():
    (x_train, y_train), (x_test, y_test) = train_test_split_digits(test_fraction=0.25, seed=0)
    minitl.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(0)
    first_loss = None
    for _ in range(15):
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), 32):
            batch = order[start:start + 32]
            loss = F.cross_entropy(model(minitl.Tensor(x_train[batch])), minitl.Tensor(y_train[batch]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            first_loss = loss.item() if first_loss is None else first_loss
    model.eval()
    with minitl.no_grad():
        predicted = model(minitl.Tensor(x_test)).numpy().argmax(axis=1)
    accuracy = (predicted == y_test).mean()
    assert first_loss > 2.0, "an untrained 10-class model starts near ln 10"
    assert accuracy >= TARGET_TEST_ACCURACY, f"test accuracy {accuracy:.3f}"


def test_demo_command_runs_and_reports_json(capsys):
    from minitl.cli import main

    assert main(["demo", "--epochs", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [row["epoch"] for row in summary["epochs"]] == [1, 2]
    assert summary["model"].startswith("64-128-64-10")
    assert summary["epochs"][1]["loss"] < summary["epochs"][0]["loss"]
    assert summary["test_accuracy"] == summary["epochs"][-1]["test_accuracy"] > 0.8
    assert summary["test_size"] + summary["train_size"] == 1797


def test_demo_text_output_and_bad_epochs(capsys):
    from minitl.cli import main

    assert main(["demo", "--epochs", "1", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "epoch   1/1" in out and "final test accuracy" in out
    assert main(["demo", "--epochs", "0"]) == 2
    assert "--epochs must be >= 1" in capsys.readouterr().err
