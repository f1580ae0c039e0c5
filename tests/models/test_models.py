"""The model builders themselves: layouts, options, feature extraction, BN folding, VGG, the registry."""
from __future__ import annotations

import numpy as np
import pytest

import minitl
from minitl import models, nn
from model_helpers import randomize, small_resnet


def _small(**overrides):
    return small_resnet(**{"block": "bottleneck", "layers": (2, 1, 1, 1), **overrides})


def _run(model, x):
    with minitl.no_grad():
        return model(minitl.Tensor(x)).numpy()


def test_resnet50_1by2_layout():
    model = models.resnet50_1by2()
    names = model.state_dict()
    assert not any(".bn" in n or n.startswith("bn1") for n in names)  # BatchNorm folded away
    assert names["conv1.bias"].shape == (64,)
    assert [model.get_submodule(f"layer{s}.0.conv3").out_channels for s in (1, 2, 3, 4)] == [128, 256, 512, 1024]
    assert [model.get_submodule(f"layer{s}.0.conv1").out_channels for s in (1, 2, 3, 4)] == [32, 64, 128, 256]
    assert [len(model.get_submodule(f"layer{s}")) for s in (1, 2, 3, 4)] == [3, 4, 6, 3]
    for s in (2, 3, 4):  # Caffe: the stride sits in the first 1x1
        assert model.get_submodule(f"layer{s}.0.conv1").stride == (2, 2)
        assert model.get_submodule(f"layer{s}.0.conv2").stride == (1, 1)
    assert model.maxpool.ceil_mode and model.maxpool.padding == 0
    assert model.fc.weight.shape == (2, 1024) and model.class_names == ["sfw", "nsfw"]
    x = np.zeros((1, 3, 224, 224), np.float32)
    with minitl.no_grad():
        assert model.extract(minitl.Tensor(x), "maxpool")["maxpool"].shape == (1, 64, 56, 56)  # ceil: 112 -> 56


def test_torchvision_resnet50_puts_the_stride_in_the_3x3():
    model = models.resnet50(num_classes=10)
    assert model.get_submodule("layer2.0.conv1").stride == (1, 1)
    assert model.get_submodule("layer2.0.conv2").stride == (2, 2)
    assert model.get_submodule("layer2.0.downsample.0").stride == (2, 2)
    assert model.fc.weight.shape == (10, 2048) and model.num_features == 2048


def test_keras_variant_has_conv_bias_and_batchnorm():
    model = models.keras_resnet50()
    names = model.state_dict()
    assert "conv1.bias" in names and "bn1.running_var" in names and "layer1.0.downsample.0.bias" in names
    assert model.get_submodule("layer3.0.conv1").stride == (2, 2)
    assert model.bn1.eps == pytest.approx(1.001e-5)


def test_cifar_stem_and_headless():
    model = models.resnet18(num_classes=None, cifar_stem=True)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity) and isinstance(model.fc, nn.Identity)
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    model.eval()
    with minitl.no_grad():
        maps = model.extract(minitl.Tensor(x), ["layer1", "layer4", "fc"])
    assert maps["layer1"].shape == (1, 64, 16, 16) and maps["layer4"].shape == (1, 512, 2, 2)
    assert maps["fc"].shape == (1, 512)  # no head: the pooled features


def test_extract_and_forward_features_agree_with_forward():
    model = randomize(_small()).eval()
    x = np.random.default_rng(1).standard_normal((2, 3, 40, 40)).astype(np.float32)
    with minitl.no_grad():
        out = model.extract(minitl.Tensor(x), ["layer4", "layer3", "layer1.1", "fc"])
        features = model.forward_features(minitl.Tensor(x)).numpy()
        logits = model(minitl.Tensor(x)).numpy()
        by_hand = model.layer3(model.layer2(model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(minitl.Tensor(x))))))))
    assert list(out) == ["layer4", "layer3", "layer1.1", "fc"]  # the order asked for
    np.testing.assert_array_equal(out["layer3"].numpy(), by_hand.numpy())
    np.testing.assert_array_equal(out["fc"].numpy(), logits)
    np.testing.assert_allclose(features, out["layer4"].numpy().mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_run(model.fc, features), logits, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown layer name"):
        model.extract(minitl.Tensor(x), ["layer9"])


def test_fold_batchnorm_computes_the_same_in_eval_mode():
    for options in ({}, {"stride_in_1x1": True, "conv_bias": True}, {"block": "basic"}):
        model = randomize(_small(**options), seed=2).eval()
        folded = models.fold_batchnorm(model).eval()
        assert not any("running_mean" in n for n in folded.state_dict())
        x = np.random.default_rng(3).standard_normal((2, 3, 32, 32)).astype(np.float32)
        expected = _run(model, x)
        assert np.max(np.abs(_run(folded, x) - expected)) <= 1e-5 * np.max(np.abs(expected))


def test_bad_configurations_are_clear_errors():
    with pytest.raises(ValueError, match="unknown ResNet option"):
        models.ResNet(depth=50)
    with pytest.raises(ValueError, match="block must be"):
        models.ResNet(block="dense")
    with pytest.raises(ValueError, match="same, non-zero length"):
        models.ResNet(layers=(2, 2), widths=(64, 128, 256))
    with pytest.raises(ValueError, match="needs conv_bias=True"):
        models.ResNet(norm="folded", conv_bias=False)
    with pytest.raises(ValueError, match="unknown architecture"):
        models.create("resnet9")


VGG16_CONVS = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # torchvision's features indices
VGG16_WIDTHS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


def test_vgg16_names_and_shapes_are_torchvisions(monkeypatch):
    for name in ("uniform_", "normal_", "constant_"):  # layout only: skip drawing 138 M random numbers
        monkeypatch.setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
    model = models.vgg16()
    expected, channels = {}, 3
    for index, width in zip(VGG16_CONVS, VGG16_WIDTHS):
        expected[f"features.{index}.weight"], expected[f"features.{index}.bias"] = (width, channels, 3, 3), (width,)
        channels = width
    for index, (n_in, n_out) in zip((0, 3, 6), ((25088, 4096), (4096, 4096), (4096, 1000))):
        expected[f"classifier.{index}.weight"], expected[f"classifier.{index}.bias"] = (n_out, n_in), (n_out,)
    assert {k: v.shape for k, v in model.state_dict().items()} == expected
    assert sum(p.size for p in model.parameters()) == 138_357_544


def test_small_vgg_matches_pytorch(tmp_path):
    torch = pytest.importorskip("torch")
    cfg = (8, "M", 16, 16, "M")
    reference = torch.nn.Sequential()  # torchvision's VGG layout, written out
    features, channels = [], 3
    for item in cfg:
        if item == "M":
            features.append(torch.nn.MaxPool2d(2, 2))
        else:
            features += [torch.nn.Conv2d(channels, item, 3, padding=1), torch.nn.ReLU()]
            channels = item

    class VGG(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Sequential(*features)
            self.avgpool = torch.nn.AdaptiveAvgPool2d((2, 2))
            self.classifier = torch.nn.Sequential(
                torch.nn.Linear(16 * 4, 32), torch.nn.ReLU(), torch.nn.Dropout(), torch.nn.Linear(32, 32),
                torch.nn.ReLU(), torch.nn.Dropout(), torch.nn.Linear(32, 5))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    torch.manual_seed(0)
    reference = VGG().eval()
    torch.save(reference.state_dict(), tmp_path / "vgg.pth")
    from minitl.transfer import load_model

    model, report = load_model(tmp_path / "vgg.pth", arch=models.VGG(cfg, num_classes=5, hidden=32, pool_size=2))
    assert report.ok
    x = np.random.default_rng(0).standard_normal((2, 3, 20, 20)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    assert np.max(np.abs(_run(model, x) - expected)) <= 1e-5 * np.max(np.abs(expected))
    with minitl.no_grad():
        maps = model.extract(minitl.Tensor(x), ["features.1", "features"])
    assert maps["features.1"].shape == (2, 8, 20, 20) and maps["features"].shape == (2, 16, 5, 5)


@pytest.mark.parametrize("name, options", [("resnet18", {}), ("resnet50_1by2", {}), ("vgg16", {"hidden": 8}),
                                           ("efficientnet_lite0", {})])
def test_the_registry_names_each_classifier_head(monkeypatch, name, options):
    """head_name (an ArchSpec field) is the built model's last Linear, with the pretrained class count as rows."""
    for init in ("uniform_", "normal_", "constant_", "kaiming_normal_", "kaiming_uniform_"):  # shapes only
        if hasattr(nn.init, init):
            monkeypatch.setattr(nn.init, init, lambda tensor, *args, **kwargs: tensor)
    spec = models.get_spec(name)
    model = models.create(name, **options)
    assert models.head_name(name) == models.head_name(model) == spec.head_name
    assert model.state_dict()[f"{spec.head_name}.weight"].shape[0] == spec.num_classes
    assert models.head_name("no-such-arch") == models.head_name(None) == "fc"


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnet50_1by2", "keras_resnet50"])
def test_infer_arch_recognises_each_layout(name):
    assert models.infer_arch(models.create(name).state_dict()) == name


def test_preprocessing_formulas():
    rgb = np.random.default_rng(0).integers(0, 256, (2, 5, 6, 3)).astype(np.uint8)
    torchvision = models.TORCHVISION_IMAGENET.normalize(rgb)
    expected = (rgb / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(torchvision, expected.transpose(0, 3, 1, 2), rtol=1e-5, atol=1e-5)
    caffe = models.CAFFE_OPENNSFW.normalize(rgb[0])
    np.testing.assert_allclose(caffe[0], (rgb[0][..., ::-1] - [104.0, 117.0, 123.0]).transpose(2, 0, 1))
    assert models.Preprocessing.from_metadata(models.KERAS_CAFFE.to_dict()) == models.KERAS_CAFFE
    with pytest.raises(ValueError, match="expects RGB images"):
        models.TORCHVISION_IMAGENET.normalize(np.zeros((2, 3, 8, 8)))


def test_a_loaded_resnet_runs_on_every_backend(backend, tmp_path):
    """The same model and weights on each array backend (NumPy, the CuPy stand-in, CuPy on a GPU)."""
    from minitl.transfer import load_model, save_npz

    with minitl.backend.using("numpy"):
        source = randomize(_small(), seed=4).eval()
        x = np.random.default_rng(5).standard_normal((2, 3, 32, 32)).astype(np.float32)
        expected = _run(source, x)
        path = save_npz(tmp_path / "small.npz", source)
    model, _ = load_model(path, arch=_small())
    device = minitl.backend.get_backend(backend).device
    model.to(device)
    with minitl.no_grad():
        out = model.extract(minitl.Tensor(x, device=device), ["layer2", "fc"])
    assert out["fc"].device == device
    np.testing.assert_allclose(out["fc"].numpy(), expected, rtol=1e-4, atol=1e-5)
