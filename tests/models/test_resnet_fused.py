"""ResNet blocks with BatchNorm + residual + ReLU fused (F.batch_norm_relu) equal the module-by-module
composition relu(bn(x) + r): outputs, every gradient and the running statistics, float64, in
training and eval mode, basic blocks with the CIFAR stem and bottlenecks with the ImageNet stem."""
from __future__ import annotations

import numpy as np
import pytest

import minitl
from minitl import models
from minitl.inspect import diff
from minitl.models import resnet


def _unfused(norm, relu, x, residual=None):
    out = norm(x)
    return relu(out if residual is None else out + residual)


def _float64(model):
    for module in model.modules():
        for store in (module._parameters, module._buffers):
            for tensor in store.values():
                if tensor is not None and tensor.data.dtype.kind == "f":
                    tensor.data = tensor.data.astype(np.float64)
    return model


def _build(kind):
    minitl.manual_seed(0)
    if kind == "resnet18-cifar":
        model = models.resnet18(num_classes=5, cifar_stem=True, widths=(4, 8, 8, 16), stem_width=4)
        shape = (3, 3, 12, 12)
    else:
        model = models.ResNet(block="bottleneck", layers=(2, 1), widths=(2, 4), stem_width=4, num_classes=5)
        shape = (3, 3, 20, 20)
    model = _float64(model)
    rng = np.random.default_rng(0)
    for name, module in model.named_modules():  # non-trivial γ, β and running statistics
        if isinstance(module, minitl.nn.BatchNorm2d):
            c = module.num_features
            module.weight.data[...] = rng.uniform(0.5, 1.5, c)
            module.bias.data[...] = rng.uniform(-0.3, 0.3, c)
            module.running_mean.data[...] = rng.uniform(-0.2, 0.2, c)
            module.running_var.data[...] = rng.uniform(0.5, 2.0, c)
    return model, rng.standard_normal(shape)


def _run(kind, training):
    model, x = _build(kind)
    model.train(training)
    xt = minitl.Tensor(x, requires_grad=True)
    out = model(xt)
    (out * minitl.Tensor(np.linspace(-1, 1, out.size).reshape(out.shape))).sum().backward()
    state = {k: np.array(v) for k, v in model.state_dict().items()}
    grads = {name: p.grad.numpy() for name, p in model.named_parameters()}
    return out.numpy(), xt.grad.numpy(), grads, state


@pytest.mark.parametrize("kind", ["resnet18-cifar", "bottleneck"])
@pytest.mark.parametrize("training", [True, False])
def test_fused_blocks_equal_the_module_by_module_composition(monkeypatch, kind, training):
    fused = _run(kind, training)
    monkeypatch.setattr(resnet, "_norm_relu", _unfused)
    unfused = _run(kind, training)
    tol = dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fused[0], unfused[0], **tol)
    np.testing.assert_allclose(fused[1], unfused[1], **tol)
    assert fused[2].keys() == unfused[2].keys()
    for name in fused[2]:
        np.testing.assert_allclose(fused[2][name], unfused[2][name], **tol, err_msg=name)
    assert fused[3].keys() == unfused[3].keys()  # state_dict names unchanged
    for name in fused[3]:
        np.testing.assert_allclose(fused[3][name], unfused[3][name], **tol, err_msg=name)
    assert np.abs(fused[2]["layer1.0.bn2.weight"]).max() > 0


def test_module_outputs_stay_the_batchnorm_outputs():
    """minitl diff watches module outputs: a fused BatchNorm is not seen returning max(0, BN(x) + r)."""
    model, x = _build("resnet18-cifar")
    captured = diff.capture(model.eval(), minitl.Tensor(x))
    assert "layer1.0.bn1" not in captured and "layer1.0.relu" not in captured  # run inside the fused op
    assert {"conv1", "layer1.0.conv1", "layer1.0", "layer4.1", "fc"} <= set(captured)
