"""ResNets transplanted from PyTorch compute what PyTorch computes.

The reference networks are plain PyTorch with torchvision's names (tests/torch_reference.py),
randomly initialised with non-trivial BatchNorm statistics, exported to .npz (the exported-arrays
format) and to .pth by the real ``torch.save`` (read back by minitl's torch-free reader).
"""
from __future__ import annotations

import numpy as np
import pytest

import minitl
from minitl import functional as F
from minitl import models
from minitl.transfer import load_model

torch = pytest.importorskip("torch", reason="PyTorch reference not installed (pip install torch==2.13.0)")
import torch_reference as ref  # noqa: E402  (tests/ is on sys.path)


def _export(model, tmp_path, fmt):
    path = tmp_path / f"weights.{fmt}"
    state = model.state_dict()
    if fmt == "npz":
        np.savez(path, **{name: value.numpy() for name, value in state.items()})
    else:
        torch.save(state, path)
    return path


def _rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])
def test_state_dict_names_and_shapes_are_torchvisions(name):
    layers = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3], "resnet50": [3, 4, 6, 3],
              "resnet101": [3, 4, 23, 3], "resnet152": [3, 8, 36, 3]}[name]
    block = ref.BasicBlock if name in ("resnet18", "resnet34") else ref.Bottleneck
    theirs = {k: tuple(v.shape) for k, v in ref.ResNet(block, layers).state_dict().items()
              if not k.endswith("num_batches_tracked")}
    ours = {k: tuple(v.shape) for k, v in getattr(models, name)().state_dict().items()
            if not k.endswith("num_batches_tracked")}
    assert list(ours) == list(theirs) or sorted(ours) == sorted(theirs)
    assert ours == theirs


@pytest.mark.parametrize("fmt", ["npz", "pth"])
@pytest.mark.parametrize("arch, size", [("resnet18", 64), ("resnet50", 32)])
def test_eval_logits_match_pytorch(tmp_path, arch, size, fmt):
    reference = ref.randomize(getattr(ref, arch)(), seed=3).eval()
    x = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    model, report = load_model(_export(reference, tmp_path, fmt), arch=arch)
    assert report.ok, report.describe()
    assert not model.training
    with minitl.no_grad():
        logits = model(minitl.Tensor(x)).numpy()
    assert logits.dtype == np.float32 and logits.shape == (2, 1000)
    assert _rel_err(logits, expected) <= 1e-4


def test_train_mode_gradients_of_every_parameter_match_resnet18(tmp_path):
    reference = ref.randomize(ref.resnet18(num_classes=10), seed=5).train()
    model, _ = load_model(_export(reference, tmp_path, "pth"), arch="resnet18", num_classes=10)
    model.load_state_dict({k: v.numpy() for k, v in reference.state_dict().items()})  # the reference's head too
    model.train()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, size=4)

    loss_t = torch.nn.functional.cross_entropy(reference(torch.from_numpy(x)), torch.from_numpy(y))
    loss_t.backward()
    loss = F.cross_entropy(model(minitl.Tensor(x)), y)
    loss.backward()

    assert abs(loss.item() - loss_t.item()) <= 1e-4 * abs(loss_t.item())
    theirs = dict(reference.named_parameters())
    ours = dict(model.named_parameters())
    assert sorted(ours) == sorted(theirs)
    worst = max((_rel_err(ours[n].grad.numpy(), theirs[n].grad.numpy()), n) for n in theirs)
    assert worst[0] <= 1e-4, worst
    # BatchNorm's running statistics took the same momentum step
    buffers = dict(model.named_buffers())
    for name, value in reference.named_buffers():
        if not name.endswith("num_batches_tracked"):
            np.testing.assert_allclose(buffers[name].numpy(), value.numpy(), rtol=1e-4, atol=1e-5)
