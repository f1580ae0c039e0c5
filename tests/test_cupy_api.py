"""The stand-in must not drift into an API that CuPy lacks: every CuPy function, method, attribute
and keyword argument it saw minitl use must exist in the installed real CuPy (which imports
without a GPU).  The stand-in checks each new use as it happens (so any op test on the
``fakecupy`` backend fails on a use CuPy lacks); here a broad workload runs on it and the
whole record is checked, and the checker itself is shown to catch what it should."""
from __future__ import annotations

import numpy as np
import pytest

import fakecupy
import minitl
import minitl.functional as F
from minitl import backend, nn

cupy = pytest.importorskip("cupy", reason="real CuPy not installed (pip install 'minitl[gpu]'): nothing to check against")

DEVICE = "fakecuda"


def _workload():
    """Forward and backward through every op family minitl has, on the stand-in."""
    rng = np.random.default_rng(0)

    def t(*shape, grad=True):
        return minitl.Tensor(rng.normal(size=shape).astype(np.float32), requires_grad=grad, device=DEVICE)

    x, y = t(4, 5), t(4, 5)
    labels = minitl.Tensor(rng.integers(0, 5, size=4), device=DEVICE)
    outs = [
        x + y, x - 2.0, 3 * x, x / (y.abs() + 1), (x.abs() + 1) ** 1.5, 2.0 ** x, -x, x @ y.T,
        x.sum(axis=1), x.mean(axis=0, keepdims=True), x.max(axis=1), x.min(), x.reshape(5, 4), x.transpose(1, 0),
        x.permute(1, 0), x[1:3, ::2], x[labels], x[labels, labels], x.exp(), (x.abs() + 1).log(), x.abs().sqrt(),
        x.clip(-0.5, 0.5), minitl.cat([x, y], axis=1), minitl.stack([x, y]), x.double().float(),
        F.sigmoid(x), F.tanh(x), F.relu(x), F.leaky_relu(x, 0.1), F.gelu(x), F.gelu(x, approximate="tanh"),
        F.softmax(x), F.log_softmax(x), F.dropout(x, 0.3, True), F.linear(x, t(3, 5), t(3)),
        F.cross_entropy(x, labels), F.cross_entropy(x, labels, label_smoothing=0.1),
        F.cross_entropy(x, F.softmax(y).detach()), F.nll_loss(F.log_softmax(x), labels),
        F.mse_loss(x, y), F.binary_cross_entropy_with_logits(x, F.sigmoid(y).detach()),
    ]
    for out in outs:
        out.sum().backward()
    (x > y).argmax(axis=1)
    x.eq(y), x.ne(y), x <= y, x >= y, x < 0
    for extra in _later_ops(t):
        extra.sum().backward()
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 5)).to(DEVICE)
    model.load_state_dict(model.state_dict())
    loss = F.cross_entropy(model(x.detach()), labels)
    loss.backward()
    loss.item()
    repr(loss)
    backend.to_numpy(loss.data)


def _later_ops(t):
    """Ops from the convolution/ResNet work, when they exist in this checkout."""
    outs = []
    if hasattr(F, "conv2d"):
        outs.append(F.conv2d(t(2, 3, 7, 7), t(4, 3, 3, 3), t(4), stride=2, padding=1))
    if hasattr(F, "max_pool2d"):
        outs.append(F.max_pool2d(t(2, 3, 6, 6), 3, stride=2, padding=1))
    if hasattr(F, "avg_pool2d"):
        outs.append(F.avg_pool2d(t(2, 3, 6, 6), 2))
    if hasattr(F, "adaptive_avg_pool2d"):
        outs.append(F.adaptive_avg_pool2d(t(2, 3, 6, 6), 1))
    if hasattr(F, "batch_norm"):
        x = t(4, 3, 5, 5)
        for training in (True, False):
            outs.append(F.batch_norm(x, minitl.zeros(3, device=DEVICE), minitl.ones(3, device=DEVICE),
                                     t(3), t(3), training=training))
    return outs


def test_every_cupy_use_of_a_full_workload_exists_in_installed_cupy():
    fakecupy.check_against_cupy = False  # collect everything, then report every problem at once
    try:
        _workload()
    finally:
        fakecupy.check_against_cupy = True
    assert len(fakecupy.USED) > 20, "the workload went through the stand-in"
    assert fakecupy.problems() == []


def test_the_checker_catches_a_function_cupy_lacks():
    assert not hasattr(cupy, "busday_count")
    with pytest.raises(fakecupy.CupyAPIError, match="cupy.busday_count"):
        fakecupy.busday_count
    fakecupy.USED.pop("cupy.busday_count", None)


def test_the_checker_catches_a_keyword_cupy_lacks():
    x = fakecupy.arange(4.0)
    with pytest.raises(fakecupy.CupyAPIError, match="'like'.*cupy.zeros"):
        fakecupy.zeros(3, like=x)  # NumPy has like=, CuPy does not
    with pytest.raises(fakecupy.CupyAPIError, match="'where'.*cupy.ndarray.sum"):
        x.sum(where=x > 1)  # a Cython method: checked against its docstring signature
    with pytest.raises(fakecupy.CupyAPIError, match="'casting'.*cupy.exp"):
        fakecupy.exp(x, casting="unsafe")  # a ufunc: checked against its documented keywords
    for name in ("cupy.zeros", "cupy.ndarray.sum", "cupy.exp"):
        fakecupy.USED[name].discard({"cupy.zeros": "like", "cupy.ndarray.sum": "where", "cupy.exp": "casting"}[name])


def test_the_checker_accepts_what_cupy_has():
    for name, keyword in [("cupy.zeros", "dtype"), ("cupy.ndarray.sum", "keepdims"), ("cupy.exp", "out"),
                          ("cupyx.scatter_add", None), ("cupy.random.Generator.random", "dtype"),
                          ("cupy.lib.stride_tricks.as_strided", "strides"), ("cupyx.scipy.special.erf", None),
                          ("cupy.add.at", None), ("cupy.ndarray.astype", "copy")]:
        assert fakecupy.api_problem(name, keyword) is None, (name, keyword)
