"""Devices: backend selection, moving tensors and modules, refusing mixed devices, the strict CuPy
stand-in itself, and the transfer budget of a training step (at most one synchronising read)."""
from __future__ import annotations

import numpy as np
import pytest

import fakecupy
import minitl
import minitl.functional as F
from minitl import backend, nn

DEVICE = "fakecuda"  # the stand-in's device; real CuPy's tests run through the `backend` fixture


# ============================================================================ backend selection and the GPU status
def test_gpu_status_reports_usable_or_a_reason():
    status = backend.gpu_status()
    assert set(status) >= {"usable", "reason", "cupy", "devices"}
    assert isinstance(status["usable"], bool)
    assert status["reason"], "a reason (or the device name) is always given"


def test_choosing_cuda_without_a_gpu_is_one_clear_error():
    status = backend.gpu_status()
    if status["usable"]:
        pytest.skip("a GPU is usable here")
    for attempt in (
        lambda: minitl.Tensor([1.0], device="cuda"),
        lambda: backend.use("cupy"),
        lambda: nn.Linear(2, 2, device="cuda"),
        lambda: minitl.zeros(3, device="cuda:0"),
        lambda: nn.Linear(2, 2).to("cuda"),
    ):
        with pytest.raises(backend.DeviceUnavailableError) as info:
            attempt()
        message = str(info.value)
        assert status["reason"] in message and "cpu" in message
    assert backend.get_backend().name == "numpy", "a failed use() leaves the backend as it was"


def test_cuda_error_is_reported_by_the_cli_as_one_line(capsys):
    if backend.gpu_status()["usable"]:
        pytest.skip("a GPU is usable here")
    from minitl.cli import _common

    import argparse

    parser = argparse.ArgumentParser()
    _common.add_device_argument(parser)
    args = parser.parse_args(["--device", "cuda"])
    with pytest.raises(backend.DeviceUnavailableError):
        _common.resolve_device(args)
    assert parser.parse_args([]).device == "cpu"


def test_unknown_device_names_the_choices():
    with pytest.raises(ValueError, match="unknown backend or device 'tpu'"):
        minitl.Tensor([1.0], device="tpu")
    with pytest.raises(ValueError, match="one device of each kind.*CUDA_VISIBLE_DEVICES"):
        minitl.Tensor([1.0], device="cuda:1")
    assert minitl.Tensor([1.0], device="fakecuda:0").device == DEVICE


def test_use_and_using_select_where_new_tensors_live():
    with backend.using("fakecupy"):
        assert minitl.Tensor([1.0, 2.0]).device == DEVICE
        assert minitl.zeros(2, 3).device == DEVICE
        assert nn.Linear(2, 3).weight.device == DEVICE
    assert minitl.Tensor([1.0]).device == "cpu"


# ============================================================================ moving tensors and modules
def test_tensor_to_round_trips_values_dtype_and_requires_grad():
    host = np.random.default_rng(0).normal(size=(3, 4))
    t = minitl.Tensor(host, requires_grad=True)  # float64 kept
    d = t.to(DEVICE)
    assert d.device == DEVICE and d.dtype == np.float64 and d.requires_grad and d.is_leaf
    assert isinstance(d.data, fakecupy.ndarray)
    back = d.to("cpu")
    assert back.device == "cpu"
    np.testing.assert_array_equal(back.numpy(), host)
    assert t.to("cpu") is t, "moving to the device it is on is free"


def test_tensor_created_with_device_holds_a_device_array():
    t = minitl.Tensor([[1.0, 2.0]], device=DEVICE)
    assert isinstance(t.data, fakecupy.ndarray) and t.dtype == np.float32
    np.testing.assert_array_equal(t.numpy(), [[1.0, 2.0]])


def test_module_to_moves_parameters_buffers_and_gradients():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    model.register_buffer("count", minitl.Tensor(np.arange(3.0)))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    F.mse_loss(model(minitl.Tensor(np.ones((2, 3), np.float32))), minitl.Tensor(np.zeros((2, 2), np.float32))).backward()
    grads = {n: p.grad.numpy() for n, p in model.named_parameters()}

    assert model.to(DEVICE) is model
    for name, p in model.named_parameters():
        assert p.device == DEVICE and p.grad.device == DEVICE, name
        np.testing.assert_array_equal(p.grad.numpy(), grads[name])
    assert model.count.device == DEVICE
    after = model.state_dict()
    assert all(isinstance(v, np.ndarray) for v in after.values()), "state_dict is always host arrays"
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])
    out = model(minitl.Tensor(np.ones((2, 3), np.float32), device=DEVICE))
    assert out.device == DEVICE

    model.to("cpu")
    assert all(p.device == "cpu" for p in model.parameters())


def test_load_state_dict_keeps_the_module_on_its_device():
    model = nn.Linear(3, 2).to(DEVICE)
    state = {k: np.full_like(v, 0.5) for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert model.weight.device == DEVICE
    np.testing.assert_array_equal(model.weight.numpy(), np.full((2, 3), 0.5, np.float32))


# ============================================================================ mixing devices is an error
def test_mixing_devices_in_one_op_is_a_clear_error():
    a = minitl.Tensor([1.0, 2.0])
    b = minitl.Tensor([1.0, 2.0], device=DEVICE)
    for op in (lambda: a + b, lambda: b * a, lambda: a @ b, lambda: minitl.cat([a, b])):
        with pytest.raises(ValueError, match="different devices.*'cpu'.*'fakecuda'|different devices.*'fakecuda'.*'cpu'"):
            op()


def test_a_host_array_mixed_with_a_device_tensor_is_refused():
    b = minitl.Tensor([1.0, 2.0], device=DEVICE)
    with pytest.raises(ValueError, match="'cpu'.*'fakecuda'"):
        b + np.array([1.0, 2.0], np.float32)
    with pytest.raises(ValueError, match="lives on 'fakecuda'.*Tensor.to"):
        minitl.Tensor(b.data, device="cpu")


def test_model_on_cpu_given_a_device_batch_is_refused():
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="different devices"):
        model(minitl.Tensor(np.ones((1, 3), np.float32), device=DEVICE))


def test_python_scalars_reach_the_device_without_a_copy():
    b = minitl.Tensor([1.0, 2.0], device=DEVICE)
    with fakecupy.counting() as t:
        c = (b * 2.0 + 1) / 4 - np.float32(0.5)
    assert (t.h2d, t.d2h) == (0, 0), t.log
    assert c.dtype == np.float32
    np.testing.assert_allclose(c.numpy(), [0.25, 0.75])


# ============================================================================ the stand-in refuses what CuPy refuses
def test_stand_in_refuses_implicit_conversion_to_numpy():
    x = fakecupy.arange(3)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(x)
    with pytest.raises(TypeError):
        np.exp(x)
    with pytest.raises(TypeError):
        np.concatenate([x, x])


def test_stand_in_refuses_host_arrays_in_device_ops_and_as_indices():
    x = fakecupy.arange(4.0)
    with pytest.raises(TypeError, match="host ndarray"):
        x + np.ones(4)
    with pytest.raises(TypeError, match="host ndarray"):
        fakecupy.maximum(np.ones(4), x)
    with pytest.raises(TypeError, match="used as an index"):
        x[np.array([0, 1])]
    with pytest.raises(TypeError, match="used as an index"):
        x[[0, 1]]
    with pytest.raises(TypeError, match="host ndarray"):
        x[0:2] = np.zeros(2)
    np.testing.assert_array_equal(x[fakecupy.arange(2)].get(), [0.0, 1.0])


def test_stand_in_reductions_stay_on_the_device_and_reads_are_counted():
    x = fakecupy.asarray(np.arange(6.0).reshape(2, 3))
    with fakecupy.counting() as t:
        total, biggest, mean = x.sum(), fakecupy.max(x), x.mean(axis=None)
        assert all(isinstance(v, fakecupy.ndarray) and v.shape == () for v in (total, biggest, mean))
        assert t.d2h == 0
        assert float(total) == 15.0 and total.item() == 15.0 and bool(biggest > 4)
    assert t.d2h == 3 and t.h2d == 0
    with fakecupy.counting() as t:
        fakecupy.asarray(np.zeros(2)), fakecupy.asarray([1.0]), fakecupy.asnumpy(x)
    assert (t.h2d, t.d2h) == (2, 1)


# ============================================================================ the transfer budget of a training step
def _sgd_step(model, lr=0.1):
    """w <- w - lr dJ/dw on the device, in place (no graph, no transfer)."""
    with minitl.no_grad():
        for p in model.parameters():
            p.data -= lr * p.grad.data
            p.grad = None


def test_mlp_training_step_makes_one_synchronising_read():
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 32), nn.GELU(),
                          nn.Linear(32, 5)).to(DEVICE)
    x = minitl.Tensor(rng.normal(size=(16, 20)).astype(np.float32), device=DEVICE)  # the batch: loaded by the user
    y = minitl.Tensor(rng.integers(0, 5, size=16), device=DEVICE)
    losses = []
    for _ in range(3):
        with fakecupy.counting() as t:
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            loss.backward()
            _sgd_step(model)
            losses.append(loss.item())
        assert t.d2h == 1, f"one read (the loss) per step, got {t.log}"
        assert t.h2d == 0, f"no host->device copies inside a step, got {t.log}"
    assert losses[-1] < losses[0]


def test_device_training_matches_the_cpu_step_for_step():
    """Same seed and data: a deterministic (dropout-free) step gives the same parameters on both devices."""
    rng = np.random.default_rng(1)
    xs, ys = rng.normal(size=(8, 6)).astype(np.float32), rng.integers(0, 3, size=8)
    params = {}
    for device in ("cpu", DEVICE):
        minitl.manual_seed(3)
        model = nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 3)).to(device)
        for _ in range(2):
            F.cross_entropy(model(minitl.Tensor(xs, device=device)), minitl.Tensor(ys, device=device)).backward()
            _sgd_step(model)
        params[device] = model.state_dict()
    for k in params["cpu"]:
        np.testing.assert_allclose(params[DEVICE][k], params["cpu"][k], rtol=1e-6, atol=1e-7)


def test_dropout_on_the_device_draws_there_and_repeats_with_the_seed():
    x = minitl.Tensor(np.ones((64, 64), np.float32), device=DEVICE)
    masks = []
    for _ in range(2):
        minitl.manual_seed(7)
        with fakecupy.counting() as t:
            masks.append(F.dropout(x, 0.25, training=True))
        assert t.h2d == 0, t.log
    a, b = masks[0].numpy(), masks[1].numpy()
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) <= {0.0, np.float32(1 / 0.75)}
    assert 0.15 < (a == 0).mean() < 0.35


# ============================================================================ optimizers on the device
def _optimizers(params):
    from minitl import optim

    return [optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
            optim.Adam(params, lr=1e-3), optim.AdamW(params, lr=1e-3, weight_decay=0.01)]


@pytest.mark.parametrize("which", [0, 1, 2], ids=["sgd-nesterov", "adam", "adamw"])
def test_training_step_with_each_optimizer_makes_one_read_and_no_copy(which):
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 4)).to(DEVICE)
    optimizer = _optimizers(list(model.parameters()))[which]
    x = minitl.Tensor(rng.normal(size=(8, 10)).astype(np.float32), device=DEVICE)
    y = minitl.Tensor(rng.integers(0, 4, size=8), device=DEVICE)
    for _ in range(3):
        with fakecupy.counting() as t:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            loss.item()
        assert (t.d2h, t.h2d) == (1, 0), t.log
    for state in optimizer.state.values():
        for value in state.values():
            assert not isinstance(value, np.ndarray), "optimizer state stays on the device"


@pytest.mark.parametrize("which", [0, 1], ids=["sgd-momentum", "adam"])
def test_optimizer_state_follows_the_model_to_the_device_and_back(which):
    """Steps on CPU, then on the device, then on CPU again equal the same steps all on CPU."""
    rng = np.random.default_rng(2)
    xs, ys = rng.normal(size=(6, 5)).astype(np.float32), rng.integers(0, 3, size=6)
    finals = []
    for devices in (["cpu"] * 4, ["cpu", DEVICE, DEVICE, "cpu"]):
        minitl.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
        optimizer = _optimizers(list(model.parameters()))[which]
        for device in devices:
            model.to(device)
            optimizer.zero_grad()
            F.cross_entropy(model(minitl.Tensor(xs, device=device)), minitl.Tensor(ys, device=device)).backward()
            optimizer.step()
            arrays = [v for s in optimizer.state.values() for v in s.values() if hasattr(v, "shape")]
            assert arrays and all(minitl.backend.backend_of(a).device == device for a in arrays)
        finals.append(model.state_dict())
    for key in finals[0]:
        np.testing.assert_allclose(finals[1][key], finals[0][key], rtol=1e-6, atol=1e-7)


def test_optimizer_to_moves_state_eagerly_and_state_dict_is_host():
    model = nn.Linear(3, 2)
    optimizer = _optimizers(list(model.parameters()))[1]
    F.mse_loss(model(minitl.Tensor(np.ones((2, 3), np.float32))), minitl.Tensor(np.zeros((2, 2), np.float32))).backward()
    optimizer.step()
    model.to(DEVICE)
    assert optimizer.to(DEVICE) is optimizer
    assert all(isinstance(v, fakecupy.ndarray) for s in optimizer.state.values() for v in s.values() if hasattr(v, "shape"))
    saved = optimizer.state_dict()
    assert all(isinstance(v, np.ndarray) for s in saved["state"].values() for v in s.values() if hasattr(v, "shape"))


# ============================================================================ convolutional networks on the device
def _conv_step_budget(model, x, y, steps=2):
    from minitl import optim

    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(steps):
        with fakecupy.counting() as t:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert t.d2h == 1, f"one read (the loss) per step, got {t.log}"
        assert t.h2d == 0, f"no host->device copies inside a step, got {t.log}"
    return losses


def test_small_conv_net_training_step_makes_one_synchronising_read():
    rng = np.random.default_rng(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, device=DEVICE), nn.BatchNorm2d(8, device=DEVICE), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), nn.Conv2d(8, 8, 3, groups=4, dilation=2, padding=2,
                                                                         device=DEVICE),
        nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4, device=DEVICE),
    )
    assert all(p.device == DEVICE for p in model.parameters()) and all(b.device == DEVICE for b in model.buffers())
    x = minitl.Tensor(rng.normal(size=(4, 3, 9, 9)).astype(np.float32), device=DEVICE)
    y = minitl.Tensor(rng.integers(0, 4, size=4), device=DEVICE)
    losses = _conv_step_budget(model, x, y, steps=3)
    assert losses[-1] < losses[0]
    model.eval()  # inference: no read at all until the user asks
    with fakecupy.counting() as t, minitl.no_grad():
        model(x)
    assert (t.h2d, t.d2h) == (0, 0), t.log


def test_resnet18_training_step_makes_one_synchronising_read():
    from minitl import models

    rng = np.random.default_rng(0)
    model = models.resnet18(num_classes=10).to(DEVICE)
    x = minitl.Tensor(rng.normal(size=(2, 3, 32, 32)).astype(np.float32), device=DEVICE)
    y = minitl.Tensor(rng.integers(0, 10, size=2), device=DEVICE)
    _conv_step_budget(model, x, y, steps=1)


def test_trainer_epoch_reads_once_per_step_and_copies_only_the_batch(monkeypatch, tmp_path):
    """The transfer-learning Trainer on a device: per step one read (loss and hits together), two copies (x, y)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "train"))
    from train_helpers import make_model, make_splits, spec_of

    from minitl.train import TrainConfig, Trainer

    splits, model = make_splits(n_train=24, n_test=6), make_model()
    model.to(DEVICE)
    config = TrainConfig(mode="scratch", epochs=1, batch_size=8, lr=0.05, prefetch=0, augment=False)
    trainer = Trainer(model, splits, spec_of(model), config, show_progress=False, device=DEVICE)
    counts = []
    original = Trainer._train_epoch

    def counted(self, *args, **kwargs):
        with fakecupy.counting() as t:
            out = original(self, *args, **kwargs)
        counts.append((t.d2h, t.h2d))
        return out

    monkeypatch.setattr(Trainer, "_train_epoch", counted)
    trainer.fit()
    assert counts == [(3, 6)], counts  # 24 images / batch 8 = 3 steps
