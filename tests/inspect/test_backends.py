"""The instruments route through the backend: trace, graph and the measured cost model on every backend
(NumPy, the strict CuPy stand-in, real CuPy where a GPU is usable)."""
from __future__ import annotations

from minitl import backend as mt_backend
from minitl import inspect as mi
from minitl.inspect.cost import format_summary, summarize


def test_trace_graph_and_summary_on_the_backend(backend):
    example = mi.build("cnn")
    device = mt_backend.get_backend().device
    model = example.model.to(device)
    x = example.inputs[0].to(device)
    result = mi.trace(model, x, loss=lambda y: (y * y).sum())
    assert not result.failed_checks()
    assert [s.op for s in result.forward()][:3] == ["Conv2d", "ReLU", "MaxPool2d"]
    cpu = mi.trace(mi.build("cnn").model, mi.build("cnn").inputs, loss=lambda y: (y * y).sum())
    assert abs(result.loss - cpu.loss) < 1e-5  # the same numbers on every backend
    assert mi.graph_of(model, x).counts() == {"op": 5, "parameter": 4, "input": 1}
    summary = summarize(model, x, measure=True, repeats=1)
    assert summary.device == device and summary.peak_gemm_flops > 0
    assert all(r.time_forward is not None for r in summary.rows)
    assert f"measured on {device}" in format_summary(summary)
