"""clip_grad_norm_ (joint gradient norm clipping) and LinearWarmupDecay (BERT's schedule): by hand,
as properties, against PyTorch, on every backend."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minitl
from minitl import nn, optim
from minitl.optim import LinearWarmupDecay

from conftest import torch_or_skip


def _with_grads(grads, dtype=np.float64):
    params = []
    for g in grads:
        p = minitl.Tensor(np.zeros(g.shape, dtype), requires_grad=True)
        p.grad = minitl.Tensor(g.astype(dtype))
        params.append(p)
    return params


def test_clip_by_hand(backend):
    params = _with_grads([np.array([3.0, 0.0]), np.array([[0.0], [4.0]])])  # joint norm 5
    norm = nn.clip_grad_norm_(params, 1.0)
    assert float(norm.numpy()) == pytest.approx(5.0)
    assert np.allclose(params[0].grad.numpy(), [3 / (5 + 1e-6), 0])
    assert np.allclose(params[1].grad.numpy(), [[0], [4 / (5 + 1e-6)]])
    small = _with_grads([np.array([0.3, 0.4])])
    nn.clip_grad_norm_(small, 1.0)  # norm 0.5 < 1: unchanged
    assert np.array_equal(small[0].grad.numpy(), [0.3, 0.4])


@given(st.lists(st.integers(1, 6), min_size=1, max_size=4), st.floats(0.01, 10.0), st.integers(0, 2**31 - 1))
def test_clip_property(shapes, max_norm, seed):
    rng = np.random.default_rng(seed)
    grads = [rng.normal(size=n) * rng.uniform(0.01, 10) for n in shapes]
    params = _with_grads(grads)
    total = np.sqrt(sum((g ** 2).sum() for g in grads))
    norm = float(nn.clip_grad_norm_(params, max_norm).numpy())
    assert norm == pytest.approx(total)
    after = np.sqrt(sum((p.grad.numpy() ** 2).sum() for p in params))
    assert after <= max_norm * (1 + 1e-9) or np.isclose(after, total)
    for p, g in zip(params, grads):  # one common factor: directions kept
        assert np.allclose(p.grad.numpy(), g * min(1.0, max_norm / (total + 1e-6)))


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_matches_torch(norm_type):
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=(5, 3)).astype(np.float32) * 3, rng.normal(size=(7,)).astype(np.float32)]
    mine = _with_grads(grads, np.float32)
    theirs = [torch.zeros(g.shape, requires_grad=True) for g in grads]
    for t, g in zip(theirs, grads):
        t.grad = torch.from_numpy(g.copy())
    a = float(nn.clip_grad_norm_(mine, 1.5, norm_type).numpy())
    b = float(torch.nn.utils.clip_grad_norm_(theirs, 1.5, norm_type))
    assert a == pytest.approx(b, rel=1e-6)
    for m, t in zip(mine, theirs):
        np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_clip_skips_missing_grads_and_refuses_bad_norm():
    p = minitl.Tensor(np.zeros(3), requires_grad=True)
    assert float(nn.clip_grad_norm_([p], 1.0).numpy()) == 0.0
    with pytest.raises(ValueError, match="max_norm"):
        nn.clip_grad_norm_(_with_grads([np.ones(2)]), 0.0)


def test_linear_warmup_decay_by_hand_and_vs_torch():
    torch = torch_or_skip()
    p = minitl.Tensor(np.zeros(2), requires_grad=True)
    opt = optim.AdamW([p], lr=0.1)
    sched = LinearWarmupDecay(opt, total_steps=10, warmup_steps=2)
    seen = [opt.param_groups[0]["lr"]]
    for _ in range(12):
        sched.step()
        seen.append(opt.param_groups[0]["lr"])
    expected = [0.0, 0.05, 0.1, 0.0875, 0.075, 0.0625, 0.05, 0.0375, 0.025, 0.0125, 0.0, 0.0, 0.0]
    assert np.allclose(seen, expected)
    w = torch.zeros(2, requires_grad=True)
    topt = torch.optim.AdamW([w], lr=0.1)
    # Hugging Face's get_linear_schedule_with_warmup, written as a LambdaLR
    lam = lambda t: t / 2 if t < 2 else max(0.0, (10 - t) / 8)  # noqa: E731
    tsched = torch.optim.lr_scheduler.LambdaLR(topt, lam)
    theirs = [topt.param_groups[0]["lr"]]
    for _ in range(12):
        topt.step()
        tsched.step()
        theirs.append(topt.param_groups[0]["lr"])
    assert np.allclose(seen, theirs)
    state = sched.state_dict()
    again = LinearWarmupDecay(optim.AdamW([p], lr=0.1), total_steps=10, warmup_steps=2)
    again.load_state_dict(state)
    assert again.optimizer.param_groups[0]["lr"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="warmup_steps"):
        LinearWarmupDecay(opt, total_steps=3, warmup_steps=4)
