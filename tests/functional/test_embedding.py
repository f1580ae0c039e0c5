"""embedding: y = W[ids]; dJ/dW = scatter-add of g into the rows ids name (padding row: no gradient).

Forward and dJ/dW against the plain-loop reference over hypothesis-drawn tables and ids (repeats
included), float64 gradcheck of W, and PyTorch's F.embedding with padding_idx."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minitl.functional as F
from _opcheck import DTYPES, arrays, assert_forward, check_grad, floats, tensor, with_backend
from minitl.functional.embedding import _embedding_reference


@with_backend
@given(dtype=DTYPES, data=st.data())
def test_embedding_forward_and_scatter_add_backward(backend, dtype, data):
    vocab, dim = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 4))
    ids_shape = data.draw(st.sampled_from([(0,), (3,), (2, 3), (2, 2, 2)]))
    ids = data.draw(arrays(np.int64, ids_shape, st.integers(0, vocab - 1)))  # repeats likely: V is small
    weight = data.draw(arrays(dtype, (vocab, dim)))
    padding = data.draw(st.one_of(st.none(), st.integers(0, vocab - 1)))
    expected, grad_reference = _embedding_reference(ids, weight, padding)
    w = tensor(weight, requires_grad=True)
    out = F.embedding(ids, w, padding_idx=padding)
    assert_forward(out, expected, dtype, rtol=0, atol=0)
    g = data.draw(arrays(dtype, ids_shape + (dim,)))
    out.backward(g)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), grad_reference(g.astype(np.float64)), **tol)
    if ids.size:  # the padding row's zero gradient is a rule, not a derivative: gradcheck without it
        check_grad(lambda t: F.embedding(ids, t), weight)


def test_embedding_rejects_bad_ids(backend):
    w = tensor(np.zeros((4, 2)))
    with pytest.raises(IndexError, match=r"\[0, 4\)"):
        F.embedding(np.array([0, 4]), w)
    with pytest.raises(TypeError, match="integers"):
        F.embedding(np.array([0.0, 1.0]), w)


def test_embedding_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((7, 5)).astype(np.float32)
    ids = rng.integers(0, 7, size=(3, 6))
    g = rng.standard_normal((3, 6, 5)).astype(np.float32)
    w = tensor(weight, requires_grad=True)
    out = F.embedding(ids, w, padding_idx=2)
    out.backward(g)
    tw = torch.tensor(weight, requires_grad=True)
    ref = torch.nn.functional.embedding(torch.tensor(ids), tw, padding_idx=2)
    ref.backward(torch.tensor(g))
    np.testing.assert_array_equal(out.numpy(), ref.detach().numpy())
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-6, atol=1e-6)
