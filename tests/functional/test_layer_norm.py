"""layer_norm: y = γ (x − μ)/√(σ² + ε) + β with μ, σ² over the trailing axes of each position.

Forward against the per-position loop reference (float64), backward by float64 gradcheck of x, γ
and β, and PyTorch's F.layer_norm (values and all three gradients)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minitl.functional as F
from _opcheck import DTYPES, against_torch, arrays, assert_forward, check_grad, floats, tensor, with_backend
from minitl.functional.layer_norm import _layer_norm_reference

CASES = st.sampled_from([((3, 4), (4,)), ((2, 3, 5), (5,)), ((2, 3, 4), (3, 4)), ((1, 2), (2,)), ((4,), (4,))])


@with_backend
@given(case=CASES, dtype=DTYPES, affine=st.sampled_from(["both", "weight", "none"]), data=st.data())
def test_layer_norm_forward_and_gradcheck(backend, case, dtype, affine, data):
    shape, normalized = case
    x = data.draw(arrays(dtype, shape, floats(-3, 3)))
    x = x + np.arange(x.size, dtype=dtype).reshape(shape) * np.asarray(0.25, dtype)  # no constant rows (σ = 0)
    weight = data.draw(arrays(dtype, normalized, floats(0.5, 2))) if affine != "none" else None
    bias = data.draw(arrays(dtype, normalized)) if affine == "both" else None
    eps = 1e-5
    out = F.layer_norm(tensor(x), normalized, None if weight is None else tensor(weight),
                       None if bias is None else tensor(bias), eps)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-11)
    assert_forward(out, _layer_norm_reference(x, normalized, weight, bias, eps), dtype, **tol)
    params = [a for a in (weight, bias) if a is not None]

    def fn(xt, *p):
        return F.layer_norm(xt, normalized, *(list(p) + [None] * (2 - len(p))), eps=eps)

    check_grad(fn, x, *params)


def test_layer_norm_is_stable_with_bert_epsilon(backend):
    x = np.random.default_rng(0).standard_normal((2, 3, 8)).astype(np.float32) * 100 + 1000
    out = F.layer_norm(tensor(x), 8, eps=1e-12).numpy()
    np.testing.assert_allclose(out, _layer_norm_reference(x, (8,), None, None, 1e-12), rtol=1e-3, atol=2e-4)


def test_layer_norm_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="normalized_shape"):
        F.layer_norm(tensor(np.zeros((2, 3))), 4)
    with pytest.raises(ValueError, match="weight has shape"):
        F.layer_norm(tensor(np.zeros((2, 3))), 3, tensor(np.ones(4)))


def test_layer_norm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 5, 6)), rng.standard_normal(6), rng.standard_normal(6)
    against_torch(lambda a, c, d: F.layer_norm(a, 6, c, d, 1e-12),
                  lambda a, c, d: torch.nn.functional.layer_norm(a, (6,), c, d, 1e-12), x, w, b, rtol=1e-9, atol=1e-10)
    against_torch(lambda a, c, d: F.layer_norm(a, 6, c, d, 1e-5),
                  lambda a, c, d: torch.nn.functional.layer_norm(a, (6,), c, d, 1e-5),
                  *(a.astype(np.float32) for a in (x, w, b)), rtol=1e-4, atol=1e-5)
