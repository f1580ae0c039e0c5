"""TransferModel: the head's formula, segments, stage cut, freezing."""
import numpy as np
import pytest

import minitl
from minitl.tensor import Tensor
from minitl.train.model import ClassifierHead, TransferModel, backbone_segments, set_trainable

from train_helpers import make_model


def test_head_is_pool_dense512_relu_dense():
    head = ClassifierHead(6, 4)
    assert head.fc1.weight.shape == (512, 6) and head.fc2.weight.shape == (4, 512)
    x = np.random.default_rng(0).normal(size=(2, 6, 3, 5)).astype(np.float32)
    g = x.mean(axis=(2, 3))  # global average pooling, by NumPy
    h = np.maximum(g @ head.fc1.weight.numpy().T + head.fc1.bias.numpy(), 0)
    expected = h @ head.fc2.weight.numpy().T + head.fc2.bias.numpy()
    np.testing.assert_allclose(head(Tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(head(Tensor(g)).numpy(), expected, rtol=1e-5, atol=1e-5)  # pooled input
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) or \(N, C\)"):
        head(Tensor(np.zeros((2, 6, 3), np.float32)))


def test_segments_and_cut():
    model = make_model()
    assert model.segment_names == ["stem", "layer1", "layer2"]
    assert model.stage_names == ["layer1", "layer2"]
    assert model.cut_for(1) == 2 and model.cut_for(2) == 1 and model.cut_for(0) == 3
    with pytest.raises(ValueError, match="cannot unfreeze 3 stages"):
        model.cut_for(3)
    x = Tensor(np.random.default_rng(1).normal(size=(2, 3, 8, 8)).astype(np.float32))
    np.testing.assert_allclose(model.forward_from(model.run_segments(x, 0, 2), 2).numpy(), model(x).numpy())


def test_set_trainable_freezes_the_prefix():
    model = make_model()
    trainable, frozen = set_trainable(model, 2)
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in model.backbone.layer2.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    assert not any(p.requires_grad for p in model.backbone.stem.parameters())


def test_resnet_segments_are_stem_and_stages():
    models = pytest.importorskip("minitl.models")
    if not hasattr(minitl.nn, "Conv2d"):
        pytest.skip("conv layers not available yet")
    backbone = models.resnet18(num_classes=None)
    names = [n for n, _ in backbone_segments(backbone)]
    assert names == ["stem", "layer1", "layer2", "layer3", "layer4"]
    model = TransferModel(backbone, 3).eval()
    x = Tensor(np.random.default_rng(0).normal(size=(1, 3, 32, 32)).astype(np.float32))
    with minitl.no_grad():
        np.testing.assert_allclose(model.features(x).numpy(), backbone.forward_features(x).numpy(), rtol=1e-5)
    stem = model.segment_modules(0, 1)
    assert backbone.conv1 in stem and backbone.layer1 not in stem
