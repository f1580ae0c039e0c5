"""Optimizers and schedulers: one step equals the update written by hand; several steps equal
torch.optim's (where PyTorch is installed); state_dict resumes a run exactly."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minitl
import minitl.functional as F
from minitl import nn, optim
from minitl.optim import lr_scheduler

from conftest import torch_or_skip

RNG = np.random.default_rng(42)
W0 = [RNG.normal(size=(3, 4)), RNG.normal(size=(4,))]
GRADS = [[RNG.normal(size=w.shape) for w in W0] for _ in range(6)]


def _params(dtype=np.float64):
    return [minitl.Tensor(w.astype(dtype), requires_grad=True) for w in W0]


def _set_grads(params, grads):
    for p, g in zip(params, grads):
        p.grad = minitl.Tensor(g.astype(p.dtype))


def _run(opt, params, steps):
    for grads in GRADS[:steps]:
        _set_grads(params, grads)
        opt.step()
    return [p.numpy() for p in params]


# ============================================================================ one step by hand
def test_sgd_plain_step_is_w_minus_lr_grad(backend):
    p = _params()
    _set_grads(p, GRADS[0])
    optim.SGD(p, lr=0.1).step()
    for w, w0, g in zip(p, W0, GRADS[0]):
        np.testing.assert_allclose(w.numpy(), w0 - 0.1 * g, rtol=1e-14)


def test_sgd_momentum_weight_decay_and_nesterov_by_hand(backend):
    lr, mu, lam = 0.05, 0.9, 0.01
    for nesterov in (False, True):
        p = _params()
        _run(optim.SGD(p, lr=lr, momentum=mu, nesterov=nesterov, weight_decay=lam), p, 3)
        w = W0[0].copy()
        b = None
        for grads in GRADS[:3]:
            g = grads[0] + lam * w
            b = g.copy() if b is None else mu * b + g
            w = w - lr * (g + mu * b if nesterov else b)
        np.testing.assert_allclose(p[0].numpy(), w, rtol=1e-12, err_msg=f"nesterov={nesterov}")


@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_sgd_in_cache_pieces_matches_the_whole_array_formula(layout):
    """A parameter larger than one cache piece (optim.optimizer.PIECE_ELEMENTS) is updated piece by
    piece; a non-contiguous one as a whole: both must equal the formula on whole arrays."""
    from minitl.optim.optimizer import PIECE_ELEMENTS

    rng = np.random.default_rng(3)
    shape = (3, PIECE_ELEMENTS // 2 + 7)  # 1.5 pieces and a ragged last piece
    w0 = rng.normal(size=shape[::-1]).T if layout == "transposed" else rng.normal(size=shape)
    grads = [rng.normal(size=shape) for _ in range(3)]
    lr, mu, lam = 0.05, 0.9, 0.01
    for nesterov in (False, True):
        p = minitl.Tensor(w0.copy(order="K"), requires_grad=True)
        assert p.data.flags.c_contiguous == (layout == "contiguous")
        opt = optim.SGD([p], lr=lr, momentum=mu, nesterov=nesterov, weight_decay=lam)
        w, b = w0.copy(), None
        for grad in grads:
            p.grad = minitl.Tensor(grad)
            opt.step()
            g = grad + lam * w
            b = g.copy() if b is None else mu * b + g
            w = w - lr * (g + mu * b if nesterov else b)
        np.testing.assert_allclose(p.numpy(), w, rtol=1e-12, atol=1e-15, err_msg=f"nesterov={nesterov}")


@pytest.mark.parametrize("name, kwargs", [("Adam", dict(weight_decay=0.01)), ("AdamW", dict(weight_decay=0.1)),
                                          ("Adam", dict(amsgrad=True))], ids=str)
def test_adam_in_cache_pieces_equals_the_whole_array_update(name, kwargs, monkeypatch):
    """Adam's pieces (a parameter over optim.optimizer.PIECE_ELEMENTS) give the bits of the whole-array update
    (its formula is held against PyTorch and by hand elsewhere in this file)."""
    from minitl.optim import optimizer as optimizer_module

    rng = np.random.default_rng(5)
    shape = (3, optimizer_module.PIECE_ELEMENTS // 2 + 7)
    w0, grads = rng.normal(size=shape), [rng.normal(size=shape) for _ in range(3)]
    results = []
    for piece in (optimizer_module.PIECE_ELEMENTS, 1 << 40):  # in pieces, then as one piece
        monkeypatch.setattr(optimizer_module, "PIECE_ELEMENTS", piece)
        p = minitl.Tensor(w0.copy(), requires_grad=True)
        opt = getattr(optim, name)([p], lr=0.01, **kwargs)
        for grad in grads:
            p.grad = minitl.Tensor(grad)
            opt.step()
        results.append(p.numpy())
    assert not np.allclose(results[0], w0)
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("name, kwargs", [("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
                                          ("AdamW", dict(lr=0.01, weight_decay=0.1))], ids=str)
def test_pieces_on_several_threads_give_the_one_thread_bits(name, kwargs, monkeypatch):
    """The cache pieces of all parameters are shared by minitl's threads (optimizer.update_pieces): every
    piece is updated on its own, so three threads must give the bits of one, and more than one thread
    must have done some of the work."""
    import threading
    import time

    from minitl.functional import parallel
    from minitl.optim import optimizer as optimizer_module

    real, seen = parallel.run_chunks, set()

    def spy(xp, fn, chunks):  # a short pause per piece lets every helper thread take some
        return real(xp, lambda c, slot: (seen.add(threading.get_ident()), time.sleep(0.002), fn(c, slot))[2], chunks)

    monkeypatch.setattr(optimizer_module.parallel, "run_chunks", spy)
    rng = np.random.default_rng(9)
    shapes = [(5, optimizer_module.PIECE_ELEMENTS // 2 + 3), (optimizer_module.PIECE_ELEMENTS + 1,), (7,)]
    w0 = [rng.normal(size=s).astype(np.float32) for s in shapes]
    grads = [[rng.normal(size=s).astype(np.float32) for s in shapes] for _ in range(3)]
    results = []
    for threads in (1, 3):
        seen.clear()
        params = [minitl.Tensor(w.copy(), requires_grad=True) for w in w0]
        opt = getattr(optim, name)(params, **kwargs)
        with parallel.using_threads(threads):
            for step_grads in grads:
                for p, g in zip(params, step_grads):
                    p.grad = minitl.Tensor(g)
                opt.step()
        assert (len(seen) == 1) if threads == 1 else (len(seen) > 1), seen  # the threads that updated pieces
        results.append([p.numpy() for p in params])
    for one, three, w in zip(*results, w0):
        assert not np.allclose(one, w)
        np.testing.assert_array_equal(one, three)


def test_sgd_dampening_by_hand():
    p = _params()
    _run(optim.SGD(p, lr=0.1, momentum=0.5, dampening=0.3), p, 2)
    b1 = GRADS[0][1]
    b2 = 0.5 * b1 + 0.7 * GRADS[1][1]
    np.testing.assert_allclose(p[1].numpy(), W0[1] - 0.1 * b1 - 0.1 * b2, rtol=1e-12)


def test_sgd_keras_time_based_decay_formula():
    """lr_t = lr / (1 + decay·t), t = steps already taken: with a constant gradient the t-th step is lr_t·g."""
    lr, decay = 0.5, 0.25
    p = [minitl.Tensor(np.zeros(2), requires_grad=True)]
    opt = optim.SGD(p, lr=lr, decay=decay)
    previous = np.zeros(2)
    for t in range(5):
        assert opt.effective_lr(opt.param_groups[0]) == pytest.approx(lr / (1 + decay * t))
        p[0].grad = minitl.Tensor(np.ones(2))
        opt.step()
        np.testing.assert_allclose(previous - p[0].numpy(), lr / (1 + decay * t), rtol=1e-14)
        previous = p[0].numpy().copy()
    assert opt.param_groups[0]["iterations"] == 5 and opt.param_groups[0]["lr"] == lr


def test_adam_two_steps_by_hand(backend):
    lr, b1, b2, eps, lam = 0.01, 0.8, 0.99, 1e-6, 0.1
    p = _params()
    _run(optim.Adam(p, lr=lr, betas=(b1, b2), eps=eps, weight_decay=lam), p, 2)
    w, m, v = W0[0].copy(), 0.0, 0.0
    for t, grads in enumerate(GRADS[:2], start=1):
        g = grads[0] + lam * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
    np.testing.assert_allclose(p[0].numpy(), w, rtol=1e-12)


def test_adam_first_step_moves_each_weight_by_about_lr():
    """m̂₁ = g, v̂₁ = g², so the first step is lr·g/(|g| + ε) ≈ lr·sign(g): Adam's scale invariance."""
    p = _params()
    _run(optim.Adam(p, lr=0.01), p, 1)
    np.testing.assert_allclose(W0[0] - p[0].numpy(), 0.01 * np.sign(GRADS[0][0]), rtol=1e-5)


def test_adamw_decouples_weight_decay_by_hand(backend):
    lr, lam = 0.01, 0.1
    p = _params()
    _run(optim.AdamW(p, lr=lr, weight_decay=lam), p, 2)
    w, m, v = W0[0].copy(), 0.0, 0.0
    for t, grads in enumerate(GRADS[:2], start=1):
        g = grads[0]
        w = w * (1 - lr * lam)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w = w - lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    np.testing.assert_allclose(p[0].numpy(), w, rtol=1e-12)
    assert optim.AdamW(_params()).param_groups[0]["weight_decay"] == 0.01  # torch's default


def test_amsgrad_uses_the_running_maximum():
    p = [minitl.Tensor(np.zeros(1), requires_grad=True)]
    opt = optim.Adam(p, lr=1.0, betas=(0.0, 0.5), eps=0.0, amsgrad=True)
    for g in (4.0, 1.0):
        p[0].grad = minitl.Tensor(np.array([g]))
        opt.step()
    # step 1: m = 4, v = 0.5·16 = 8, update 4 / √(8/0.5) = 1
    # step 2: m = 1, v = 0.5·8 + 0.5·1 = 4.5 but max(v) = 8 → update 1 / √(8/0.75) (plain Adam: √(4.5/0.75))
    assert p[0].numpy()[0] == pytest.approx(-1.0 - 1.0 / math.sqrt(8 / 0.75), rel=1e-12)


# ============================================================================ conventions
def test_params_without_grad_are_skipped_and_get_no_state(backend):
    for opt_cls in (optim.SGD, optim.Adam, optim.AdamW):
        p = _params()
        opt = opt_cls(p, lr=0.1, weight_decay=0.1, **({"momentum": 0.9} if opt_cls is optim.SGD else {}))
        p[0].grad = minitl.Tensor(GRADS[0][0])
        opt.step()
        np.testing.assert_array_equal(p[1].numpy(), W0[1])
        assert p[1] not in opt.state and p[0] in opt.state


def test_step_updates_in_place_builds_no_graph_and_leaves_grad_alone(backend):
    p = _params(np.float32)
    data_before = [q.data for q in p]
    _set_grads(p, GRADS[0])
    grads_before = [q.grad.numpy().copy() for q in p]
    opt = optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.5)
    opt.step()
    opt.step()
    for q, data, g in zip(p, data_before, grads_before):
        assert q.data is data, "the parameter array is updated in place"
        assert q.is_leaf and q.requires_grad and q.dtype == np.float32
        np.testing.assert_array_equal(q.grad.numpy(), g)
        assert opt.state[q]["momentum_buffer"].dtype == np.float32
        assert type(opt.state[q]["momentum_buffer"]) is type(q.data), "state lives on the parameter's device"


def test_step_makes_no_host_device_transfer():
    import fakecupy

    with minitl.backend.using("fakecupy"):
        for opt_cls in (optim.SGD, optim.Adam, optim.AdamW):
            p = _params(np.float32)
            _set_grads(p, GRADS[0])
            opt = opt_cls(p, lr=0.1, **({"momentum": 0.9, "nesterov": True} if opt_cls is optim.SGD else {}))
            with fakecupy.counting() as t:
                opt.step()
                opt.step()
                opt.zero_grad()
            assert (t.h2d, t.d2h) == (0, 0), t.log


def test_optimizer_state_moves_with_the_model():
    import fakecupy

    minitl.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = optim.Adam(model.parameters(), lr=0.1)
    x = minitl.Tensor(np.ones((4, 3), dtype=np.float32))
    model(x).sum().backward()
    opt.step()
    model.to("fakecuda")
    opt.to("fakecuda")
    assert all(isinstance(v, fakecupy.ndarray) for s in opt.state.values() for v in s.values() if hasattr(v, "shape"))
    opt.zero_grad()
    model(x.to("fakecuda")).sum().backward()
    opt.step()  # device parameters, device state: no mixing error
    state = opt.state_dict()["state"]
    assert all(type(v) is np.ndarray for s in state.values() for v in s.values() if hasattr(v, "shape"))


def test_step_works_on_a_read_only_broadcast_gradient():
    """x.sum().backward() may leave a broadcast (read-only) view as .grad: the optimizer must not write into it."""
    w = minitl.Tensor(np.ones((2, 3)), requires_grad=True)
    w.sum().backward()
    optim.SGD([w], lr=0.5, momentum=0.9, weight_decay=0.1).step()
    np.testing.assert_allclose(w.numpy(), 1 - 0.5 * 1.1)


def test_zero_grad():
    p = _params()
    _set_grads(p, GRADS[0])
    opt = optim.SGD(p, lr=0.1)
    opt.zero_grad(set_to_none=False)
    assert all(np.all(q.grad.numpy() == 0) for q in p)
    opt.zero_grad()
    assert all(q.grad is None for q in p)


def test_param_groups_take_defaults_and_own_lr():
    head, body = _params(), _params()
    opt = optim.SGD([{"params": body, "lr": 0.001}, {"params": head}], lr=0.1, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.001, 0.1]
    assert all(g["momentum"] == 0.9 for g in opt.param_groups)
    _set_grads(body, GRADS[0])
    _set_grads(head, GRADS[0])
    opt.step()
    np.testing.assert_allclose(W0[0] - body[0].numpy(), 0.001 * GRADS[0][0], rtol=1e-12)
    np.testing.assert_allclose(W0[0] - head[0].numpy(), 0.1 * GRADS[0][0], rtol=1e-12)


def test_bad_construction_is_a_clear_error():
    p = _params()
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="required"):
        optim.SGD(p)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": p}, {"params": p[:1]}], lr=0.1)
    with pytest.raises(ValueError, match="unknown optimizer option 'lrr'"):
        optim.SGD([{"params": p, "lrr": 0.1}], lr=0.1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(p, betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(p[0], lr=0.1)
    with pytest.raises(ValueError, match="learning rate"):
        optim.Adam(p, lr=-1)


# ============================================================================ resuming
def _train(model, opt, steps, seed):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = minitl.Tensor(rng.normal(size=(8, 5)).astype(np.float32))
        y = minitl.Tensor(rng.integers(0, 3, size=8))
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3, decay=0.1),
    lambda ps: optim.Adam(ps, lr=0.01, amsgrad=True),
    lambda ps: optim.AdamW(ps, lr=0.01),
], ids=["sgd", "adam", "adamw"])
def test_state_dict_round_trip_resumes_identically(make, tmp_path):
    def model_and_opt():
        minitl.manual_seed(7)
        model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3))
        return model, make(model.parameters())

    straight, opt = model_and_opt()
    _train(straight, opt, 3, seed=1)
    _train(straight, opt, 3, seed=2)

    first, opt1 = model_and_opt()
    _train(first, opt1, 3, seed=1)
    saved_model, saved_opt = first.state_dict(), opt1.state_dict()
    arrays = [v for s in saved_opt["state"].values() for v in s.values() if hasattr(v, "shape")]
    assert arrays and all(type(a) is np.ndarray for a in arrays), "state arrays are saved as host NumPy"
    # through a file, without pickle
    flat = {f"{i}.{k}": np.asarray(v) for i, s in saved_opt["state"].items() for k, v in s.items()}
    np.savez(tmp_path / "opt.npz", **flat)
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as f:
        loaded_state = {}
        for key in f.files:
            i, name = key.split(".", 1)
            value = f[key]
            loaded_state.setdefault(int(i), {})[name] = value if value.ndim else value.item()
    _train(first, opt1, 1, seed=99)  # the state dicts must be snapshots, not live views
    assert any(not np.array_equal(a, b) for a, b in zip(first.state_dict().values(), saved_model.values()))
    for i, s in saved_opt["state"].items():
        for k, v in s.items():
            np.testing.assert_array_equal(np.asarray(v), np.asarray(loaded_state[i][k]))

    resumed, opt2 = model_and_opt()
    _train(resumed, opt2, 1, seed=5)  # state to be overwritten
    resumed.load_state_dict(saved_model)
    opt2.load_state_dict({"state": loaded_state, "param_groups": saved_opt["param_groups"]})
    _train(resumed, opt2, 3, seed=2)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_load_state_dict_refuses_another_layout():
    opt = optim.SGD(_params(), lr=0.1, momentum=0.9)
    other = optim.SGD([{"params": _params()[:1]}, {"params": _params()[1:]}], lr=0.1)
    with pytest.raises(ValueError, match="parameter groups"):
        opt.load_state_dict(other.state_dict())
    small = optim.SGD(_params()[:1], lr=0.1)
    with pytest.raises(ValueError, match="sizes"):
        opt.load_state_dict(small.state_dict())


# ============================================================================ against torch.optim
def _against_torch(make_minitl, make_torch, dtype=np.float64, steps=6, groups=False):
    torch = torch_or_skip()
    mine = _params(dtype)
    theirs = [torch.tensor(w.astype(dtype), requires_grad=True) for w in W0]
    if groups:
        om = make_minitl([{"params": mine[:1], "lr": 0.003}, {"params": mine[1:]}])
        ot = make_torch([{"params": theirs[:1], "lr": 0.003}, {"params": theirs[1:]}])
    else:
        om, ot = make_minitl(mine), make_torch(theirs)
    for grads in GRADS[:steps]:
        _set_grads(mine, grads)
        for t, g in zip(theirs, grads):
            t.grad = torch.tensor(g.astype(dtype))
        om.step()
        ot.step()
    for m, t in zip(mine, theirs):
        tol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(m.numpy(), t.detach().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("kwargs", [
    dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.1, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.8, weight_decay=0.01), dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1),
    dict(lr=0.05, momentum=0.9, dampening=0.5),
], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("groups", [False, True], ids=["one-group", "two-groups"])
def test_sgd_matches_torch(kwargs, dtype, groups):
    torch = torch_or_skip()
    _against_torch(lambda p: optim.SGD(p, **kwargs), lambda p: torch.optim.SGD(p, **kwargs), dtype, groups=groups)


@pytest.mark.parametrize("kwargs", [
    dict(lr=0.01), dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6), dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, amsgrad=True),
], ids=str)
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_adam_and_adamw_match_torch(kwargs, name, dtype):
    torch = torch_or_skip()
    _against_torch(lambda p: getattr(optim, name)(p, **kwargs), lambda p: getattr(torch.optim, name)(p, **kwargs),
                   dtype)
    _against_torch(lambda p: getattr(optim, name)(p, **kwargs), lambda p: getattr(torch.optim, name)(p, **kwargs),
                   dtype, groups=True)


@given(lr=st.floats(1e-4, 1.0), momentum=st.floats(0.0, 0.99), nesterov=st.booleans(),
       weight_decay=st.sampled_from([0.0, 1e-4, 0.1]))
def test_sgd_matches_torch_property(lr, momentum, nesterov, weight_decay):
    torch = torch_or_skip()
    nesterov = nesterov and momentum > 0
    kw = dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    _against_torch(lambda p: optim.SGD(p, **kw), lambda p: torch.optim.SGD(p, **kw), steps=4)


@given(lr=st.floats(1e-4, 0.5), beta1=st.floats(0.0, 0.99), beta2=st.floats(0.5, 0.9999),
       weight_decay=st.sampled_from([0.0, 0.01]), decoupled=st.booleans())
def test_adam_matches_torch_property(lr, beta1, beta2, weight_decay, decoupled):
    torch = torch_or_skip()
    name = "AdamW" if decoupled else "Adam"
    kw = dict(lr=lr, betas=(beta1, beta2), weight_decay=weight_decay)
    _against_torch(lambda p: getattr(optim, name)(p, **kw), lambda p: getattr(torch.optim, name)(p, **kw), steps=4)


def test_training_an_mlp_matches_torch_step_for_step():
    """Engine + optimizer together: same weights, same batches -> same weights after 5 SGD-Nesterov steps."""
    torch = torch_or_skip()
    minitl.manual_seed(3)
    model = nn.Sequential(nn.Linear(6, 8, dtype=np.float64), nn.Tanh(), nn.Linear(8, 4, dtype=np.float64))
    ref = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4)).double()
    ref.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    kw = dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    opt, opt_ref = optim.SGD(model.parameters(), **kw), torch.optim.SGD(ref.parameters(), **kw)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, y = rng.normal(size=(10, 6)), rng.integers(0, 4, size=10)
        opt.zero_grad()
        F.cross_entropy(model(minitl.Tensor(x)), minitl.Tensor(y)).backward()
        opt.step()
        opt_ref.zero_grad()
        torch.nn.functional.cross_entropy(ref(torch.tensor(x)), torch.tensor(y)).backward()
        opt_ref.step()
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(value, ref.state_dict()[name].numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


# ============================================================================ schedulers
def _opt_with_groups():
    return optim.SGD([{"params": _params()[:1], "lr": 0.1}, {"params": _params()[1:], "lr": 0.02}], lr=0.5)


def _lrs(scheduler, steps):
    out = [scheduler.get_last_lr()]
    for _ in range(steps):
        scheduler.step()
        out.append(scheduler.get_last_lr())
    return np.array(out)


def test_step_lr_closed_form():
    lrs = _lrs(lr_scheduler.StepLR(_opt_with_groups(), step_size=3, gamma=0.5), 10)
    t = np.arange(11)
    np.testing.assert_allclose(lrs[:, 0], 0.1 * 0.5 ** (t // 3))
    np.testing.assert_allclose(lrs[:, 1], 0.02 * 0.5 ** (t // 3))


def test_cosine_with_linear_warmup_closed_form():
    opt = _opt_with_groups()
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.001, warmup_steps=4, warmup_start_factor=0.1)
    lrs = _lrs(sched, 12)[:, 0]
    expected = [0.1 * (0.1 + 0.9 * t / 4) for t in range(4)]
    expected += [0.001 + 0.5 * (0.1 - 0.001) * (1 + math.cos(math.pi * (t - 4) / 6)) for t in range(4, 11)]
    expected += [0.001, 0.001]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    assert lrs[4] == pytest.approx(0.1) and lrs[10] == pytest.approx(0.001)


def test_time_based_decay_closed_form():
    lrs = _lrs(lr_scheduler.TimeBasedDecay(_opt_with_groups(), decay=0.3), 6)
    np.testing.assert_allclose(lrs[:, 1], 0.02 / (1 + 0.3 * np.arange(7)), rtol=1e-14)


def test_schedulers_match_torch():
    torch = torch_or_skip()
    for ours, theirs in [
        (lambda o: lr_scheduler.StepLR(o, 4, gamma=0.3), lambda o: torch.optim.lr_scheduler.StepLR(o, 4, gamma=0.3)),
        (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=9, eta_min=0.01),
         lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=9, eta_min=0.01)),
    ]:
        mine = ours(optim.SGD(_params(), lr=0.2))
        ref = theirs(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2))
        got, want = [], []
        for _ in range(9):
            got.append(mine.get_last_lr()[0])
            want.append(ref.get_last_lr()[0])
            mine.optimizer.step()
            ref.optimizer.step()
            mine.step()
            ref.step()
        np.testing.assert_allclose(got, want, rtol=1e-10)


def test_scheduler_state_dict_resumes():
    opt = _opt_with_groups()
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=20, warmup_steps=3)
    for _ in range(7):
        sched.step()
    saved_sched, saved_opt = sched.state_dict(), opt.state_dict()
    expected = _lrs(sched, 5)

    opt2 = _opt_with_groups()
    opt2.load_state_dict(saved_opt)
    sched2 = lr_scheduler.CosineAnnealingLR(opt2, T_max=20, warmup_steps=3, last_epoch=7)
    sched2.load_state_dict(saved_sched)
    np.testing.assert_allclose(_lrs(sched2, 5), expected)


def test_scheduler_drives_the_sgd_step():
    p = [minitl.Tensor(np.zeros(1), requires_grad=True)]
    opt = optim.SGD(p, lr=1.0)
    sched = lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        p[0].grad = minitl.Tensor(np.ones(1))
        opt.step()
        sched.step()
    assert p[0].numpy()[0] == pytest.approx(-(1 + 0.5 + 0.25))
