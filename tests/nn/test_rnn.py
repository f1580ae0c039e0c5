"""nn.RNN / nn.LSTM / nn.GRU against PyTorch: random configurations (layers, directions, batch_first,
biases, initial states, variable lengths through pack_padded_sequence), outputs, final states,
the input's and every parameter's gradient, on every backend; PyTorch's names, shapes and init."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minitl
from _opcheck import with_backend
from minitl import nn

torch = pytest.importorskip("torch", reason="PyTorch reference not installed (pip install torch==2.13.0)")

KINDS = {"RNN": (nn.RNN, torch.nn.RNN), "LSTM": (nn.LSTM, torch.nn.LSTM), "GRU": (nn.GRU, torch.nn.GRU)}


def _pair(kind, I, H, **options):
    ours_cls, theirs_cls = KINDS[kind]
    ours = ours_cls(I, H, dtype=np.float64, **options)
    theirs = theirs_cls(I, H, **options).double()
    state = {k: torch.tensor(v) for k, v in ours.state_dict().items()}
    theirs.load_state_dict(state, strict=True)  # our names and shapes are PyTorch's, one to one
    return ours, theirs


def _torch_run(model, x, hx, lengths, batch_first):
    if lengths is None:
        return model(x, hx)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths), batch_first=batch_first,
                                                     enforce_sorted=False)
    out, state = model(packed, hx)
    total = x.shape[1] if batch_first else x.shape[0]
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=batch_first, total_length=total)
    return out, state


@settings(with_backend, max_examples=14)
@given(kind=st.sampled_from(sorted(KINDS)), layers=st.integers(1, 3), bidirectional=st.booleans(),
       batch_first=st.booleans(), bias=st.booleans(), relu=st.booleans(), with_hx=st.booleans(),
       with_lengths=st.booleans(), T=st.integers(1, 5), N=st.integers(1, 4), I=st.integers(1, 3),
       H=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_modules_match_pytorch_outputs_states_and_every_gradient(
        backend, kind, layers, bidirectional, batch_first, bias, relu, with_hx, with_lengths, T, N, I, H, seed):
    rng = np.random.default_rng(seed)
    options = dict(num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, bias=bias)
    if kind == "RNN" and relu:
        options["nonlinearity"] = "relu"
    ours, theirs = _pair(kind, I, H, **options)
    x = rng.normal(size=(N, T, I) if batch_first else (T, N, I))
    lengths = rng.integers(1, T + 1, size=N) if with_lengths else None
    D = 2 if bidirectional else 1
    states = [rng.normal(size=(layers * D, N, H)) for _ in range(2 if kind == "LSTM" else 1)] if with_hx else []

    xt, st_ours = minitl.Tensor(x, requires_grad=True), [minitl.Tensor(s, requires_grad=True) for s in states]
    tx, st_theirs = torch.tensor(x, requires_grad=True), [torch.tensor(s, requires_grad=True) for s in states]
    hx_ours = (tuple(st_ours) if kind == "LSTM" else st_ours[0]) if with_hx else None
    hx_theirs = (tuple(st_theirs) if kind == "LSTM" else st_theirs[0]) if with_hx else None
    out, final = ours(xt, hx_ours, lengths=lengths)
    ref_out, ref_final = _torch_run(theirs, tx, hx_theirs, lengths, batch_first)
    finals = list(final) if kind == "LSTM" else [final]
    ref_finals = list(ref_final) if kind == "LSTM" else [ref_final]

    tol = dict(rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(out.numpy(), ref_out.detach().numpy(), **tol)
    for a, b in zip(finals, ref_finals):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), **tol)

    upstream = [rng.normal(size=ref_out.shape)] + [rng.normal(size=f.shape) for f in ref_finals]
    loss = sum(((t * minitl.Tensor(u)).sum() for t, u in zip([out] + finals, upstream)), minitl.Tensor(0.0))
    loss.backward()
    sum((t * torch.tensor(u)).sum() for t, u in zip([ref_out] + ref_finals, upstream)).backward()
    np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), err_msg="input gradient", **tol)
    for a, b in zip(st_ours, st_theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), err_msg="initial-state gradient", **tol)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs_params[name].grad.numpy(), err_msg=name, **tol)


def test_float32_lstm_and_unbatched_input_match_pytorch():
    rng = np.random.default_rng(0)
    ours = nn.LSTM(3, 5, num_layers=2, bidirectional=True)
    theirs = torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = rng.normal(size=(7, 4, 3)).astype(np.float32)
    out, (h, c) = ours(minitl.Tensor(x))
    ref, (rh, rc) = theirs(torch.tensor(x))
    for a, b in ((out, ref), (h, rh), (c, rc)):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)
    out, (h, c) = ours(minitl.Tensor(x[:, 0]))  # (T, I): one unbatched sequence
    ref, (rh, rc) = theirs(torch.tensor(x[:, 0]))
    assert out.shape == (7, 10) and h.shape == (4, 5)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c.numpy(), rc.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_parameter_names_shapes_and_init_are_pytorchs(kind):
    ours = KINDS[kind][0](6, 8, num_layers=2, bidirectional=True)
    theirs = KINDS[kind][1](6, 8, num_layers=2, bidirectional=True)
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    assert {k: v.shape for k, v in ours_sd.items()} == {k: tuple(v.shape) for k, v in theirs_sd.items()}
    values = np.concatenate([v.ravel() for v in ours_sd.values()])
    bound = 1 / math.sqrt(8)
    assert values.min() >= -bound and values.max() <= bound  # U(−1/√H, 1/√H)
    assert abs(values.std() - bound / math.sqrt(3)) < 0.1 * bound
    ours.load_state_dict({k: v.numpy() for k, v in theirs_sd.items()})  # and PyTorch's load into ours
    np.testing.assert_array_equal(ours.weight_hh_l1_reverse.numpy(), theirs.weight_hh_l1_reverse.detach().numpy())


def test_dropout_between_layers_only_in_training(backend):
    model = nn.GRU(3, 4, num_layers=2, dropout=0.5)
    x = minitl.Tensor(np.random.default_rng(0).normal(size=(5, 2, 3)).astype(np.float32))
    model.eval()
    a, b = model(x)[0].numpy(), model(x)[0].numpy()
    np.testing.assert_array_equal(a, b)
    model.train()
    c = model(x)[0].numpy()
    assert not np.allclose(a, c)
    single = nn.GRU(3, 4, num_layers=1, dropout=0.5)  # nothing between layers: dropout has no effect
    single.train()
    np.testing.assert_array_equal(single(x)[0].numpy(), single(x)[0].numpy())


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(2, 3, nonlinearity="sigmoid")
    model = nn.LSTM(2, 3)
    with pytest.raises(ValueError, match="input has 4 features, expected 2"):
        model(minitl.Tensor(np.zeros((3, 1, 4))))
    with pytest.raises(ValueError, match=r"initial state must be \(1, 1, 3\)"):
        model(minitl.Tensor(np.zeros((3, 1, 2))), (minitl.Tensor(np.zeros((2, 1, 3))), minitl.Tensor(np.zeros((1, 1, 3)))))
