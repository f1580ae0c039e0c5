"""Instruments for studying the engine: trace, graph, cost model, layer-by-layer diff.

    trace.py     minitl.trace: every op forward and backward, values, finite-difference checks
    graph.py     the autograd graph as DOT, PNG/SVG (Graphviz or matplotlib)
    cost.py      the cost model: per layer parameters, FLOPs, kept memory, workspace; measured
    flops.py     its formulas: FLOPs and scratch memory of each op
    diff.py      layer-by-layer activations against a reference (onnxruntime, or any dict of arrays)
    fdcheck.py   the float64 check of one recorded op's backward
    examples.py  the tiny built-in models (neuron, mlp, cnn, ...)
    _record.py   the engine observer and the layer scope they share

This layer reads tensors, graphs and models; it sits above models/ and below cli/.
"""
from .examples import EXAMPLES, Example, build
from .cost import Summary, format_summary, peak_gemm_flops, summarize
from .graph import Graph, build_graph, graph_of, render, to_dot
from .trace import Step, Trace, trace

__all__ = ["trace", "Trace", "Step", "build", "Example", "EXAMPLES", "Graph", "build_graph", "graph_of", "to_dot", "render",
           "summarize", "Summary", "format_summary", "peak_gemm_flops"]
