"""The cost model: FLOP counts against counts done by hand, and a measured run on a small net."""
from __future__ import annotations

import json

import numpy
import pytest

import minitl.functional as F
from minitl import nn
from minitl.cli import main
from minitl.inspect.cost import format_summary, summarize
from minitl.tensor import Tensor


def _x(*shape, grad=False):
    return Tensor(numpy.random.default_rng(0).standard_normal(shape).astype(numpy.float32), requires_grad=grad)


def _rows(summary):
    return {r.name: r for r in summary.rows}


def test_linear_flops_by_hand():
    # y = x Wᵀ + b, x (4, 5), W (3, 5): 4·3 dot products of length 5 = 4·3·5 multiplies and adds, + 4·3 bias adds
    rows = _rows(summarize(nn.Linear(5, 3), _x(4, 5)))
    assert rows["(model)"].flops_forward == 2 * 4 * 5 * 3 + 4 * 3
    assert rows["(model)"].flops_backward == 2 * 4 * 5 * 3 + 4 * 3  # dJ/dW and dJ/db; the input wants none
    rows = _rows(summarize(nn.Linear(5, 3), _x(4, 5, grad=True)))
    assert rows["(model)"].flops_backward == 2 * (2 * 4 * 5 * 3) + 4 * 3  # + dJ/dx = dJ/dy · W
    assert rows["(model)"].params == 5 * 3 + 3


def test_conv_flops_and_workspace_by_hand():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    summary = summarize(model, _x(2, 3, 8, 8))
    conv = _rows(summary)["0"]
    # each of 2·4·8·8 outputs sums 3·3·3 products (+ its bias)
    outputs = 2 * 4 * 8 * 8
    assert conv.flops_forward == 2 * outputs * 27 + outputs
    assert conv.flops_backward == 2 * outputs * 27 + outputs  # dJ/dW and dJ/db only
    assert conv.output_shape == (2, 4, 8, 8) and conv.params == 4 * 27 + 4
    # im2col: a (2·8·8, 3·3·3) column matrix, the padded input (2, 10, 10, 3), W_col (27, 4), float32
    assert conv.workspace_kind == "im2col"
    assert conv.workspace_bytes == 4 * (2 * 64 * 27 + 2 * 10 * 10 * 3 + 27 * 4)
    assert _rows(summary)["1"].flops_forward == outputs  # ReLU: one comparison per element


class _Attention(nn.Module):
    """softmax(Q Kᵀ / √d) V written with tensor ops (a MatMul, a scale, a softmax, a MatMul)."""

    def forward(self, q, k, v):
        scores = (q @ k.transpose(0, 2, 1)) * (1 / numpy.sqrt(q.shape[-1]))
        return F.softmax(scores, dim=-1) @ v


def test_attention_flops_by_hand():
    b, l, d = 2, 5, 4
    q, k, v = _x(b, l, d, grad=True), _x(b, l, d, grad=True), _x(b, l, d, grad=True)
    row = _rows(summarize(_Attention(), (q, k, v)))["(model)"]
    scores = b * l * l
    qk = pv = 2 * scores * d  # each score is a length-d dot product; each output a length-l one, d of them
    assert row.ops == ["Transpose", "MatMul", "Mul", "Softmax", "MatMul"]
    assert row.flops_forward == qk + scores + 5 * scores + pv
    assert row.flops_backward == 2 * qk + scores + 4 * scores + 2 * pv


def test_summary_measure_on_a_small_net():
    model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 10))
    x = _x(64, 256)
    target = Tensor(numpy.arange(64) % 10)
    summary = summarize(model, x, lambda y: F.cross_entropy(y, target), measure=True, repeats=2)
    rows = _rows(summary)
    assert summary.peak_gemm_flops > 1e8
    for name in ("0", "1", "2"):
        assert rows[name].time_forward > 0 and rows[name].time_backward > 0
        assert rows[name].peak_bytes is not None
    # kept for backward: x is the caller's; Linear 0's output (64·512 floats) is read by ReLU, ReLU's by Linear 2
    kept = summary.totals()["kept_bytes"]
    assert kept >= 2 * 64 * 512 * 4
    assert 0.8 < summary.measured_total_peak / kept < 1.5  # tracemalloc sees what the graph holds
    # a layer's measured peak is its output (64x512 float32 = 128 KiB) give or take Python objects
    assert 0.9 * 64 * 512 * 4 < rows["0"].peak_bytes < 1.5 * rows["0"].predicted_peak
    text = format_summary(summary)
    assert "GEMM peak" in text and "total" in text


def test_cli_summary(capsys):
    assert main(["summary", "resnet18", "--input-size", "16", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["totals"]["params"] == 11_689_512  # torchvision's resnet18 parameter count
    conv1 = next(r for r in data["rows"] if r["name"] == "conv1")
    assert conv1["flops_forward"] == 2 * 64 * 8 * 8 * 3 * 7 * 7  # 7x7/2 stem, no bias
    assert main(["summary", "cnn", "--measure", "--repeats", "1"]) == 0
    assert "measured on cpu" in capsys.readouterr().out
    assert main(["summary", "cnn", "--batch", "4"]) == 2
    assert "fixed input" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["summary", "nosuchnet"], ["summary", "resnet18", "--input-size", "2"]])
def test_cli_summary_bad_input(bad, capsys):
    assert main(bad) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_fused_attention_and_lstm_flops_by_hand():
    from minitl.inspect.flops import RECURRENT  # noqa: PLC0415

    q, k, v = _x(1, 2, 3, 4, grad=True), _x(1, 2, 3, 4, grad=True), _x(1, 2, 3, 4, grad=True)
    row = _rows(summarize(lambda a, b, c: F.scaled_dot_product_attention(a, b, c), (q, k, v)))["(model)"]
    scores = 1 * 2 * 3 * 3  # (batch · heads) · Lq · Lk
    assert row.ops[0] == "ScaledDotProductAttention"
    # QKᵀ: 18 dot products of length 4; PV: 2·3·4 outputs, each a dot product of length 3; scale + softmax 6/score
    assert row.flops_forward == 2 * scores * 4 + 2 * (2 * 3 * 4) * 3 + 6 * scores
    assert row.workspace_bytes == scores * 4 and row.workspace_kind == "attention scores"

    lstm = nn.LSTM(3, 4)
    row = _rows(summarize(lstm, _x(1, 2, 3), lambda out: out[0].sum()))["(model)"]
    t, n, i, h = 1, 2, 3, 4
    gemms = 2 * t * n * i * 4 * h + 2 * t * n * h * 4 * h  # W_ih x_t and W_hh h_{t-1} for the 4 gates
    assert row.flops_forward == gemms + RECURRENT["LSTMSequence"] * t * n * h + 2 * t * n * 4 * h
    assert row.params == 4 * h * (i + h) + 2 * 4 * h


def test_packed_attention_and_concatenated_linear_cost_what_their_unfused_forms_cost():
    y = _x(1, 3, 3 * 2 * 4, grad=True)  # packed Q | K | V: 2 heads of 4
    packed = _rows(summarize(lambda a: F.self_attention_packed(a, 2), (y,)))["(model)"]
    q = _x(1, 2, 3, 4, grad=True)
    plain = _rows(summarize(lambda a, b, c: F.scaled_dot_product_attention(a, b, c), (q, q, q)))["(model)"]
    assert packed.ops[0] == "PackedSelfAttention" and packed.flops_forward == plain.flops_forward
    x, w1, w2 = _x(5, 3, grad=True), _x(4, 3, grad=True), _x(2, 3, grad=True)
    fused = _rows(summarize(lambda a, b, c: F.linear_concat(a, [b, c]), (x, w1, w2)))["(model)"]
    assert fused.flops_forward == 2 * 5 * 3 * (4 + 2)
