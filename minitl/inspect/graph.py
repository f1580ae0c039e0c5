"""The autograd graph of a tensor, as Graphviz DOT (and PNG/SVG through ``dot`` or matplotlib).

The graph is what ``backward()`` will walk: one node per op that recorded itself (its class
and the shape it produced), one per leaf it reads.  Leaves are drawn by kind:

    parameter          trainable (requires_grad), named as in ``state_dict``     blue ellipse
    frozen parameter   requires_grad=False: read, but no gradient flows to it    grey, dashed
    input / constant   data without a graph (the input, a target; or the output of a frozen
                       part of the model, computed without recording anything)  plain note

Edges run the way data flows (input → op); backward follows them in reverse.  Build the graph
before calling ``backward()``: the engine frees it as it goes.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..nn import Module
from ..tensor import Tensor


@dataclass
class Node:
    id: str
    kind: str  # "op" | "parameter" | "frozen" | "input"
    label: str  # op class or tensor name
    shape: tuple
    layer: str = ""  # for an op: the module it was called from, when known


@dataclass
class Graph:
    nodes: list = field(default_factory=list)
    edges: list = field(default_factory=list)  # (source id, target id, input position)

    def to_dot(self, title: str = "") -> str:
        styles = {
            "op": 'shape=box, style="rounded,filled", fillcolor="#fff2cc"',
            "parameter": 'shape=ellipse, style=filled, fillcolor="#cfe2f3"',
            "frozen": 'shape=ellipse, style="dashed,filled", fillcolor="#eeeeee", fontcolor="#666666"',
            "input": "shape=note",
        }
        lines = ["digraph autograd {", "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=10];']
        if title:
            lines.append(f'  label="{_escape(title)}"; labelloc=t;')
        for n in self.nodes:
            suffix = " (frozen)" if n.kind == "frozen" else ""
            layer = f" [{n.layer}]" if n.layer else ""
            label = f"{n.label}{suffix}{layer}\\n{tuple(n.shape)}"
            lines.append(f'  {n.id} [label="{_escape(label)}", {styles[n.kind]}];')
        for source, target, _ in self.edges:
            lines.append(f"  {source} -> {target};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def counts(self) -> dict:
        out = {}
        for n in self.nodes:
            out[n.kind] = out.get(n.kind, 0) + 1
        return out


def _escape(text: str) -> str:
    return text.replace('"', '\\"')


def build_graph(output: Tensor, model: Module | None = None, names: dict | None = None,
                layer_of: dict | None = None) -> Graph:
    """The graph behind ``output``; ``model`` names its parameters, ``names`` maps tensors to names,
    ``layer_of`` maps id(op output) to the module that computed it (see :func:`graph_of`)."""
    if output._ctx is None:
        raise ValueError("no autograd graph behind this tensor: it was computed under no_grad(), from inputs "
                         "that need no gradient, or backward() has already freed its graph")
    known = {}
    frozen = set()
    if model is not None:
        for name, p in model.named_parameters():
            known[id(p)] = name
            if not p.requires_grad:
                frozen.add(id(p))
    for t, name in (names or {}).items():
        known[id(t)] = name
    graph, ids = Graph(), {}

    def node_of(t: Tensor) -> str:
        key = id(t)
        if key in ids:
            return ids[key]
        ids[key] = nid = f"n{len(ids)}"
        if t._ctx is not None:
            graph.nodes.append(Node(nid, "op", type(t._ctx).__name__, t.shape, (layer_of or {}).get(key, "")))
        elif t.requires_grad:
            graph.nodes.append(Node(nid, "parameter", known.get(key, "leaf"), t.shape))
        elif key in frozen:
            graph.nodes.append(Node(nid, "frozen", known[key], t.shape))
        else:
            graph.nodes.append(Node(nid, "input", known.get(key, "constant"), t.shape))
        return nid

    stack, seen = [output], set()
    while stack:
        t = stack.pop()
        if id(t) in seen or t._ctx is None:
            continue
        seen.add(id(t))
        target = node_of(t)
        for position, parent in enumerate(t._ctx.inputs):
            if parent is None:
                continue
            graph.edges.append((node_of(parent), target, position))
            stack.append(parent)
    return graph


def graph_of(model, inputs, loss=None, input_names=None) -> Graph:
    """Run ``model(*inputs)`` (then ``loss`` of its output, if given) and return the graph behind
    the result, each op labelled with the module it came from."""
    from ._record import LayerStack, Recorder, layer_scope  # noqa: PLC0415
    from .trace import _as_tensors  # noqa: PLC0415

    tensors = _as_tensors(inputs)
    stack = LayerStack()
    recorder = Recorder(stack)
    with recorder.installed(), layer_scope(model, stack):
        out = model(*tensors)
        if loss is not None:
            stack.names.append("(loss)")
            out = loss(out)
    if isinstance(out, (tuple, list)):  # (output, states) of a recurrent layer: the graph of the output
        out = out[0]
    layer_of = {id(e[3]): e[5] for e in recorder.events if e[0] == "forward" and e[5]}
    default = ["x"] if len(tensors) == 1 else [f"x{i}" for i in range(len(tensors))]
    names = dict(zip(tensors, input_names or default))
    return build_graph(out, model if isinstance(model, Module) else None, names, layer_of)


def to_dot(output: Tensor, model: Module | None = None, names: dict | None = None, title: str = "") -> str:
    """Graphviz DOT text of the autograd graph behind ``output`` (see the module docstring)."""
    return build_graph(output, model, names).to_dot(title)


def render(graph: Graph, path, title: str = "") -> str:
    """Write ``graph`` to ``path``: .dot as text; .png/.svg/.pdf with Graphviz's ``dot`` when it is
    installed, else with matplotlib (a simple layered drawing).  Returns the tool used."""
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    text = graph.to_dot(title)
    if suffix in ("dot", "gv", ""):
        path.write_text(text, encoding="utf-8")
        return "text"
    if suffix not in ("png", "svg", "pdf"):
        raise ValueError(f"unknown graph format {path.suffix!r}: use .dot, .png, .svg or .pdf")
    if shutil.which("dot"):
        subprocess.run(["dot", f"-T{suffix}", "-o", str(path)], input=text.encode(), check=True)
        return "graphviz"
    try:
        import matplotlib  # noqa: PLC0415 (optional extra)
    except ImportError as error:
        raise RuntimeError("drawing the graph needs Graphviz's 'dot' or matplotlib; neither is installed "
                           "(write .dot instead)") from error
    matplotlib.use("Agg")
    _draw_matplotlib(graph, path, title)
    return "matplotlib"


def _levels(graph: Graph) -> dict:
    """Depth of each node: the longest path from a leaf (ops placed below what they read)."""
    parents = {}
    for s, t, _ in graph.edges:
        parents.setdefault(t, []).append(s)
    depth = {}
    for n in graph.nodes:  # iterative longest-path on a DAG
        stack = [(n.id, False)]
        while stack:
            nid, ready = stack.pop()
            if nid in depth:
                continue
            pending = [p for p in parents.get(nid, []) if p not in depth]
            if pending and not ready:
                stack.append((nid, True))
                stack.extend((p, False) for p in pending)
                continue
            depth[nid] = 1 + max((depth[p] for p in parents.get(nid, [])), default=-1)
    children = {}
    for s, t, _ in graph.edges:
        children.setdefault(s, []).append(t)
    for nid in depth:  # a leaf sits just above the first op that reads it
        if nid not in parents and nid in children:
            depth[nid] = min(depth[c] for c in children[nid]) - 1
    return depth


def _draw_matplotlib(graph: Graph, path: Path, title: str) -> None:
    import matplotlib.pyplot as plt  # noqa: PLC0415

    depth = _levels(graph)
    rows = {}
    for n in graph.nodes:
        rows.setdefault(depth[n.id], []).append(n)
    width = max(len(r) for r in rows.values())
    position = {}
    top = min(rows)
    for level, members in rows.items():
        for i, n in enumerate(members):
            position[n.id] = ((i + 0.5) * width / len(members), top - level)
    fig, ax = plt.subplots(figsize=(max(4, 1.8 * width), max(3, 0.9 * len(rows))))
    colors = {"op": "#fff2cc", "parameter": "#cfe2f3", "frozen": "#eeeeee", "input": "white"}
    for s, t, _ in graph.edges:
        (x0, y0), (x1, y1) = position[s], position[t]
        ax.annotate("", (x1, y1 + 0.2), (x0, y0 - 0.2), arrowprops=dict(arrowstyle="->", color="#555555"))
    for n in graph.nodes:
        x, y = position[n.id]
        layer = f" [{n.layer}]" if n.layer else ""
        ax.text(x, y, f"{n.label}{' (frozen)' if n.kind == 'frozen' else ''}{layer}\n{tuple(n.shape)}", ha="center",
                va="center", fontsize=7, bbox=dict(boxstyle="round", fc=colors[n.kind],
                                                   ls="--" if n.kind == "frozen" else "-"))
    ax.set_xlim(-0.5, width + 0.5)
    ax.set_ylim(top - max(rows) - 0.5, 0.5)
    ax.axis("off")
    if title:
        ax.set_title(title)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
