"""The autograd graph as DOT: parsed back, nodes and edges as the network's wiring says."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy
import pytest

from minitl import nn, no_grad
from minitl.cli import main
from minitl.inspect import graph as G
from minitl.tensor import Tensor

NODE = re.compile(r'^\s*(n\d+) \[label="([^"]*)", (.*)\];$')
EDGE = re.compile(r"^\s*(n\d+) -> (n\d+);$")


def parse_dot(text: str):
    """A tiny DOT reader for what graph.py writes: {id: (label, attributes)}, [(source, target)]."""
    nodes, edges = {}, []
    for line in text.splitlines():
        if m := NODE.match(line):
            nodes[m[1]] = (m[2].replace("\\n", "\n"), m[3])
        elif m := EDGE.match(line):
            edges.append((m[1], m[2]))
    assert text.startswith("digraph") and text.rstrip().endswith("}")
    return nodes, edges


def _by_label(nodes):
    return {label: nid for nid, (label, _) in nodes.items()}


def test_mlp_graph_has_the_ops_parameters_and_edges():
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    model._modules["2"].weight.requires_grad_(False)  # a frozen parameter, drawn differently
    x = Tensor(numpy.ones((2, 4), dtype=numpy.float32))
    text = G.graph_of(model, x).to_dot("mlp")
    nodes, edges = parse_dot(text)
    ids = _by_label(nodes)
    assert set(ids) == {"Linear [0]\n(2, 5)", "ReLU [1]\n(2, 5)", "Linear [2]\n(2, 3)", "x\n(2, 4)",
                        "0.weight\n(5, 4)", "0.bias\n(5,)", "2.weight (frozen)\n(3, 5)", "2.bias\n(3,)"}
    expected = {("x\n(2, 4)", "Linear [0]\n(2, 5)"), ("0.weight\n(5, 4)", "Linear [0]\n(2, 5)"),
                ("0.bias\n(5,)", "Linear [0]\n(2, 5)"), ("Linear [0]\n(2, 5)", "ReLU [1]\n(2, 5)"),
                ("ReLU [1]\n(2, 5)", "Linear [2]\n(2, 3)"), ("2.weight (frozen)\n(3, 5)", "Linear [2]\n(2, 3)"),
                ("2.bias\n(3,)", "Linear [2]\n(2, 3)")}
    assert {(nodes[s][0], nodes[t][0]) for s, t in edges} == expected
    assert "dashed" in nodes[ids["2.weight (frozen)\n(3, 5)"]][1]
    assert "dashed" not in nodes[ids["0.weight\n(5, 4)"]][1]


def test_shared_tensor_is_one_node_with_two_edges():
    w = Tensor(numpy.ones(3, dtype=numpy.float32), requires_grad=True)
    y = (w * w).sum()
    nodes, edges = parse_dot(G.to_dot(y, names={w: "w"}))
    assert sorted(label.split("\n")[0] for label, _ in nodes.values()) == ["Mul", "Sum", "w"]
    mul, w_id = _by_label(nodes)["Mul\n(3,)"], _by_label(nodes)["w\n(3,)"]
    assert edges.count((w_id, mul)) == 2  # y = w·w reads w twice: both paths carry gradient


def test_no_graph_is_a_clear_error():
    with no_grad():
        y = nn.Linear(2, 2)(Tensor(numpy.ones((1, 2), dtype=numpy.float32)))
    with pytest.raises(ValueError, match="no autograd graph"):
        G.to_dot(y)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_graphviz_reads_the_dot_back():
    text = G.graph_of(nn.Sequential(nn.Linear(3, 2), nn.Tanh()), Tensor(numpy.ones((1, 3), dtype=numpy.float32))).to_dot()
    plain = subprocess.run(["dot", "-Tplain"], input=text.encode(), capture_output=True, check=True).stdout.decode()
    assert sum(line.startswith("node ") for line in plain.splitlines()) == 5  # x, weight, bias, Linear, Tanh
    assert sum(line.startswith("edge ") for line in plain.splitlines()) == 4


def test_png_without_graphviz_falls_back_to_matplotlib(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setattr(G.shutil, "which", lambda name: None)
    graph = G.graph_of(nn.Linear(3, 2), Tensor(numpy.ones((1, 3), dtype=numpy.float32)))
    assert G.render(graph, tmp_path / "g.png") == "matplotlib"
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_graph(tmp_path, capsys):
    assert main(["graph", "cnn"]) == 0
    nodes, edges = parse_dot(capsys.readouterr().out)
    assert "Conv2d [0]\n(1, 2, 6, 6)" in _by_label(nodes) and len(edges) == 12
    out = tmp_path / "r.dot"
    assert main(["graph", "resnet18", "--input-size", "16", "--freeze", "layer1", "-o", str(out)]) == 0
    nodes, _ = parse_dot(out.read_text())
    frozen = [label for label, _ in nodes.values() if "(frozen)" in label]
    assert frozen and all(label.startswith("layer1.") for label in frozen)
    assert main(["graph", "resnet18", "--freeze", "nothing"]) == 2
    assert "matches no parameter" in capsys.readouterr().err
