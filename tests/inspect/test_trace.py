"""minitl.trace: the recorded values of a dense neuron against the chain rule worked by hand."""
from __future__ import annotations

import json
import math

import numpy
import pytest

import minitl.functional as F
from minitl import inspect as mi
from minitl import nn
from minitl.cli import main
from minitl.tensor import Function, Tensor


def test_dense_neuron_trace_matches_hand_computation():
    example = mi.build("neuron", seed=0)
    linear = example.model._modules["0"]
    w, b = linear.weight.numpy().astype(float).ravel(), float(linear.bias.numpy()[0])
    x = numpy.array([0.5, -1.0, 2.0])
    # by hand: z = wᵀx + b, h = σ(z), J = (h − 1)², dJ/dh = 2(h − 1), dJ/dz = dJ/dh σ(z)(1 − σ(z)), dJ/dw = dJ/dz x
    z = float(w @ x + b)
    h = 1 / (1 + math.exp(-z))
    dj_dh = 2 * (h - 1)
    dj_dz = dj_dh * h * (1 - h)
    result = mi.trace(example.model, example.inputs, loss=example.loss)

    forward = result.forward()
    assert [s.op for s in forward[:2]] == ["Linear", "Sigmoid"]
    assert [s.layer for s in forward[:2]] == ["0", "1"]
    assert forward[0].output["values"][0] == pytest.approx(z, rel=1e-6)
    assert forward[1].output["values"][0] == pytest.approx(h, rel=1e-6)
    assert "σ" in forward[1].formula
    assert result.loss == pytest.approx((h - 1) ** 2, rel=1e-6)

    backward = [s for s in result.backward() if s.phase == "backward"]
    assert [s.op for s in backward] == ["Mean", "Mul", "Sub", "Sigmoid", "Linear"]  # reverse topological
    sigmoid = backward[3]
    assert sigmoid.grad_output["values"][0] == pytest.approx(dj_dh, rel=1e-6)
    assert sigmoid.grad_inputs[0]["values"][0] == pytest.approx(dj_dz, rel=1e-5)
    grads = {v["name"]: v["values"] for v in backward[4].grad_inputs}
    assert grads["dJ/d0.weight"] == pytest.approx(list(dj_dz * x), rel=1e-5)
    assert grads["dJ/d0.bias"] == pytest.approx([dj_dz], rel=1e-5)
    accumulated = [s for s in result.steps if s.phase == "accumulate"]
    assert [s.grad_output["name"] for s in accumulated] == ["0.weight", "0.bias"]
    assert all(s.check["ok"] and s.check["rel_error"] < 1e-6 for s in backward)
    assert linear.weight.grad.numpy().ravel() == pytest.approx(list(dj_dz * x), rel=1e-5)
    from minitl.tensor import state
    assert state.hook is None  # the trace removed its observer


class _WrongSigmoid(Function):
    """σ(x) with a backward that forgets the factor (1 − σ)."""

    def forward(self, x):
        self.y = 1 / (1 + numpy.exp(-x))
        return self.y

    def backward(self, g):
        return g * self.y


def test_the_check_names_a_wrong_backward():
    layer = nn.Linear(3, 2)
    x = Tensor(numpy.ones((1, 3), dtype=numpy.float32))
    result = mi.trace(lambda t: _WrongSigmoid.apply(layer(t)).sum(), x)
    failed = result.failed_checks()
    assert [s.op for s in failed] == ["_WrongSigmoid"]
    assert failed[0].check["rel_error"] > 0.1


def test_kinks_are_checked_as_subgradients():
    x = Tensor(numpy.array([[0.0, 0.0, -1.0, -2.0]], dtype=numpy.float32), requires_grad=True)
    result = mi.trace(lambda t: F.max_pool2d(F.relu(t).reshape(1, 1, 2, 2), 2).sum(), x)
    checks = [s.check for s in result.steps if s.check]
    assert all(c["ok"] for c in checks)
    assert sum(c["kinks"] for c in checks) >= 2  # a four-way tie in the pool window; ReLU at 0


@pytest.mark.parametrize("name", sorted(mi.EXAMPLES))
def test_cli_trace_every_builtin_passes_its_checks(name, capsys):
    assert main(["trace", name, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    phases = [s["phase"] for s in data["steps"]]
    assert phases.index("backward") > max(i for i, p in enumerate(phases) if p == "forward")
    assert all(s["check"]["ok"] for s in data["steps"] if "check" in s)


def test_cli_trace_text(capsys):
    assert main(["trace", "neuron"]) == 0
    out = capsys.readouterr().out
    assert "0.weight.grad +=" in out and "finite-difference checks: 5 ops, 0 failed" in out


def test_an_op_that_draws_random_numbers_is_checked_with_one_draw():
    """Attention dropout draws its mask inside the op: every re-evaluation of the check uses the same mask."""
    rng = numpy.random.default_rng(0)
    q, k, v = (Tensor(rng.standard_normal((1, 3, 4)).astype(numpy.float32), requires_grad=True) for _ in range(3))
    result = mi.trace(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, dropout_p=0.5), (q, k, v))
    checks = [s.check for s in result.steps if s.check]
    assert checks and all(c["ok"] for c in checks)
