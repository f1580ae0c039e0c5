"""Checks on a real GPU (CuPy), marked ``gpu``: skipped, with the reason, where no GPU is usable.

Runs under pytest (``pytest -m gpu``) and also without it — the GPU machine may lack pytest —
as ``PYTHONPATH=. python tests/test_gpu.py``, which runs every ``test_*`` function here and
ends with the line ``N passed, N failed, N skipped``.

The op tests written with the ``backend`` fixture run on CuPy too (the ``cupy`` parameter);
these add what only a real device shows: values against NumPy for every op family, a
training step that does not synchronise before its loss is read, and moving models there
and back.
"""
from __future__ import annotations

import sys
import warnings

import numpy as np

try:
    import pytest
except ImportError:  # the plain-python runner at the bottom
    pytest = None

import minitl
import minitl.functional as F
from minitl import backend, nn

STATUS = backend.gpu_status()
try:  # the bare GPU machine may lack SciPy (the exact GELU's erf on the CPU side)
    import scipy.special  # noqa: F401

    HAVE_SCIPY = True
except ImportError:
    HAVE_SCIPY = False

if pytest is not None:
    pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not STATUS["usable"], reason=f"no usable GPU: {STATUS['reason']}")]


def _ops(t, labels):
    """name -> callable building a scalar from tensors made by ``t`` (one per op family)."""
    ops = {
        "arithmetic": lambda x, y: ((x + y) * (x - 2.0) / (y.abs() + 1) + (x.abs() + 1) ** 1.5).sum(),
        "matmul": lambda x, y: (x @ y.T).sum(),
        "reductions": lambda x, y: x.sum(axis=1).mean() + x.max(axis=0).sum() + x.min(),
        "indexing": lambda x, y: x[labels].sum() + x[1:3, ::2].sum() + x[labels, labels].sum(),
        "shape": lambda x, y: (minitl.cat([x, y], axis=1).reshape(-1) * 1.0).sum() + minitl.stack([x, y]).transpose(0, 2, 1).sum(),
        "elementwise": lambda x, y: (x.exp() + (x.abs() + 1).log() + x.abs().sqrt() + x.clip(-0.5, 0.5)).sum(),
        "activations": lambda x, y: (F.sigmoid(x) + F.tanh(x) + F.relu(x) + F.leaky_relu(x, 0.1)
                                     + (F.gelu(x) if HAVE_SCIPY else 0.0)  # the CPU's erf is SciPy's
                                     + F.gelu(x, approximate="tanh") + F.softmax(x) + F.log_softmax(x)).sum(),
        "losses": lambda x, y: F.cross_entropy(x, labels) + F.cross_entropy(x, labels, label_smoothing=0.1)
        + F.mse_loss(x, y) + F.binary_cross_entropy_with_logits(x, F.sigmoid(y).detach()),
    }
    return ops


def _conv_ops(t):
    ops = {}
    if hasattr(F, "conv2d"):
        w = t(4, 3, 3, 3)
        ops["conv2d"] = lambda x: F.conv2d(x, w, None, stride=2, padding=1).sum()
        wg = t(6, 1, 3, 3)
        ops["conv2d_depthwise_dilated"] = lambda x: F.conv2d(
            minitl.cat([x, x], axis=1), wg, None, padding=2, dilation=2, groups=6).sum()
    if hasattr(F, "max_pool2d"):
        ops["max_pool2d"] = lambda x: (F.max_pool2d(x, 3, stride=2, padding=1) * t(2, 3, 4, 4, grad=False)).sum()
    if hasattr(F, "avg_pool2d"):
        ops["avg_pool2d"] = lambda x: (F.avg_pool2d(x, 2) * t(2, 3, 4, 4, grad=False)).sum()
    if hasattr(F, "batch_norm"):
        gamma, beta = t(3), t(3)
        ops["batch_norm_train"] = lambda x: (F.batch_norm(x, minitl.zeros(3, device=x.device), minitl.ones(3, device=x.device),
                                                          gamma, beta, training=True) * t(2, 3, 8, 8, grad=False)).sum()
        ops["batch_norm_eval"] = lambda x: (F.batch_norm(x, minitl.zeros(3, device=x.device) + 0.1,
                                                         minitl.ones(3, device=x.device) * 2, gamma, beta,
                                                         training=False) * t(2, 3, 8, 8, grad=False)).sum()
    return ops


def _run(device, build, *shapes, seed=0):
    """The op's value and the gradients of its inputs on ``device``, as host arrays."""
    rng = np.random.default_rng(seed)
    made = []

    def t(*shape, grad=True):
        tensor = minitl.Tensor(rng.normal(size=shape).astype(np.float32), requires_grad=grad, device=device)
        made.append(tensor)
        return tensor

    labels = minitl.Tensor(np.array([0, 3, 1, 2]), device=device)
    inputs = [t(*s) for s in shapes]
    minitl.manual_seed(0)
    out = build(t, labels)(*inputs)
    out.backward()
    return [out.numpy()] + [m.grad.numpy() for m in made if m.requires_grad and m.grad is not None]


def _compare(build, *shapes):
    cpu, gpu = _run("cpu", build, *shapes), _run("cuda", build, *shapes)
    assert len(cpu) == len(gpu)
    for a, b in zip(cpu, gpu):
        np.testing.assert_allclose(b, a, rtol=2e-4, atol=2e-4)


def test_cuda_backend_holds_cupy_arrays():
    import cupy

    x = minitl.Tensor([1.0, 2.0], device="cuda")
    assert isinstance(x.data, cupy.ndarray) and x.device == "cuda" and x.dtype == np.float32
    assert backend.get_array_module(x.data) is cupy
    np.testing.assert_array_equal((x * 2).numpy(), [2.0, 4.0])


def test_every_dense_op_family_matches_numpy_forward_and_backward():
    for name in _ops(None, None):
        _compare(lambda t, labels, name=name: _ops(t, labels)[name], (4, 5), (4, 5))


def test_conv_pool_batchnorm_match_numpy_forward_and_backward():
    names = list(_conv_ops(lambda *s, grad=True: minitl.Tensor(np.zeros(s, np.float32), requires_grad=grad)))
    if not names:
        _skip("convolution ops not in this checkout")
    for name in names:
        shape = (2, 3, 8, 8)
        _compare(lambda t, labels, name=name: _conv_ops(t)[name], shape)


def _model():
    layers = [nn.Linear(12, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 5)]
    if hasattr(nn, "Conv2d") and hasattr(nn, "BatchNorm2d") and hasattr(nn, "MaxPool2d"):
        layers = [nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                  nn.Linear(8 * 2 * 2, 5)]
    return nn.Sequential(*layers)


def _input(device):
    rng = np.random.default_rng(0)
    shape = (8, 3, 4, 4) if hasattr(nn, "Conv2d") else (8, 12)
    return (minitl.Tensor(rng.normal(size=shape).astype(np.float32), device=device),
            minitl.Tensor(rng.integers(0, 5, size=8), device=device))


def _optimizer(model):
    try:
        from minitl.optim import SGD
    except ImportError:
        return None
    return SGD(model.parameters(), lr=0.1, momentum=0.9)


def _step(model, optimizer, x, y):
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    with minitl.no_grad():
        if optimizer is not None:
            optimizer.step()
            optimizer.zero_grad()
        else:
            for p in model.parameters():
                p.data -= 0.1 * p.grad.data
                p.grad = None
    return loss


def test_training_step_does_not_synchronise_before_the_loss_is_read():
    import cupyx

    if not hasattr(cupyx, "allow_synchronize"):
        _skip("this CuPy has no cupyx.allow_synchronize")
    minitl.manual_seed(0)
    model = _model().to("cuda")
    optimizer = _optimizer(model)
    x, y = _input("cuda")
    losses = []
    for _ in range(4):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with cupyx.allow_synchronize(False):  # any device synchronisation inside raises
                loss = _step(model, optimizer, x, y)
        losses.append(loss.item())  # the one read
    assert losses[-1] < losses[0], losses


def test_training_on_gpu_matches_cpu_and_model_moves_back():
    results = {}
    for device in ("cpu", "cuda"):
        minitl.manual_seed(0)
        model = _model()
        for m in model.modules():  # dropout draws differ between devices: switch it off for the comparison
            if isinstance(m, nn.Dropout):
                m.p = 0.0
        model.to(device)
        optimizer = _optimizer(model)
        if optimizer is not None and hasattr(optimizer, "to"):
            optimizer.to(device)
        x, y = _input(device)
        for _ in range(3):
            _step(model, optimizer, x, y)
        model.to("cpu")
        assert all(p.device == "cpu" for p in model.parameters())
        results[device] = model.state_dict()
    for key in results["cpu"]:
        np.testing.assert_allclose(results["cuda"][key], results["cpu"][key], rtol=1e-4, atol=1e-5, err_msg=key)


def test_mixing_cpu_and_cuda_is_refused():
    a, b = minitl.Tensor([1.0]), minitl.Tensor([1.0], device="cuda")
    for op in (lambda: a + b, lambda: nn.Linear(1, 1)(b)):
        try:
            op()
        except ValueError as error:
            assert "device" in str(error)
        else:
            raise AssertionError("mixing devices was not refused")


# ============================================================================ without pytest
class _Skipped(Exception):
    pass


_STANDALONE = False


def _skip(reason):
    if pytest is not None and not _STANDALONE:
        pytest.skip(reason)
    raise _Skipped(reason)


def main() -> int:
    global _STANDALONE
    _STANDALONE = True
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_") and callable(f)]
    passed = failed = skipped = 0
    if not STATUS["usable"]:
        print(f"all {len(tests)} skipped: no usable GPU: {STATUS['reason']}")
        print(f"0 passed, 0 failed, {len(tests)} skipped")
        return 0
    for name, fn in tests:
        try:
            fn()
        except _Skipped as why:
            skipped += 1
            print(f"SKIP {name}: {why}")
        except Exception as error:  # noqa: BLE001
            failed += 1
            print(f"FAIL {name}: {type(error).__name__}: {error}")
        else:
            passed += 1
            print(f"PASS {name}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
