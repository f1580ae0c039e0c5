"""Keras ResNet weights (.h5, both the legacy and the Keras-3 layout) mapped onto the builder's Keras
configuration (stride in the first 1×1, conv bias + BatchNorm, ε = 1.001e-5): predictions equal Keras's."""
from __future__ import annotations

import os

import numpy as np
import pytest

import minitl
from minitl import functional as F
from minitl import models
from minitl.transfer import CorruptFileError, WeightsError, load_model, load_weights

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras 3 on NumPy 2
h5py = pytest.importorskip("h5py")
FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")


def _probabilities(model, x_nhwc):
    model.eval()
    with minitl.no_grad():
        return F.softmax(model(minitl.Tensor(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))), -1).numpy()


@pytest.mark.parametrize("name", ["mini_keras_resnet.h5", "mini_keras_resnet.weights.h5"])
def test_fixture_made_by_keras_matches_its_predictions(name):
    expected = np.load(os.path.join(FIXTURES, "mini_keras_resnet_expected.npz"))
    target = models.ResNet(**{**models.resnet.KERAS_RESNET50, "layers": (2, 1, 1, 1), "widths": (4, 8, 8, 16),
                              "num_classes": 5})
    model, report = load_model(os.path.join(FIXTURES, name), arch=target)
    assert report.ok, report.describe()
    kernels = [r for r in report.rows if r.conversion.startswith("conv kernel HWIO")]
    assert kernels and all(r.shape == (r.source_shape[3], r.source_shape[2], *r.source_shape[:2]) for r in kernels)
    got = _probabilities(model, expected["input"])
    assert np.max(np.abs(got - expected["probabilities"])) <= 1e-5


def test_keras_resnet50_saved_to_h5_matches_keras(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    if os.environ["KERAS_BACKEND"] != "torch":
        pytest.skip("Keras configured for another backend")
    keras = pytest.importorskip("keras")
    import sys

    sys.path.insert(0, FIXTURES)
    from make_fixtures import randomize_keras

    reference = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3))
    randomize_keras(reference, seed=7)
    path = tmp_path / "resnet50.h5"
    reference.save(path)
    x = np.random.default_rng(0).uniform(-120, 130, (2, 32, 32, 3)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(reference(x, training=False))

    model, report = load_model(path, arch="keras_resnet50")
    assert report.ok and report.arch == "keras_resnet50"
    assert report.inferred_arch == "keras_resnet50"
    got = _probabilities(model, x)
    assert np.max(np.abs(got - expected)) <= 1e-4


def test_truncated_and_foreign_h5(tmp_path):
    data = open(os.path.join(FIXTURES, "mini_keras_resnet.h5"), "rb").read()
    bad = tmp_path / "cut.h5"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError):
        load_weights(bad)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as handle:
        handle["x"] = np.ones(3)
    with pytest.raises(WeightsError, match="without Keras weights"):
        load_weights(other)
