"""Layer-by-layer diff against a reference implementation: where does a transplant go wrong?

The same input runs through minitl and through the reference; at every layer both expose, the
activations are compared:

    max abs  = max |a − r|,     rel = max |a − r| / max |r|     (a: minitl, r: the reference)

and the first layer whose ``rel`` exceeds the tolerance is named — after it everything differs,
so that is where to look (a transposed kernel, a missing bias, a wrong stride or padding).

* :func:`compare` takes the reference activations as a dict (module name → array), however
  they were made — e.g. PyTorch forward hooks on a torchvision-named model (the tests do that;
  minitl itself never imports torch).
* :func:`onnx_diff` makes them with onnxruntime from an ONNX ResNet: the graph is walked as
  :mod:`minitl.transfer.onnx` walks it to load it (each Conv is known by its weight's minitl
  name, each residual Add + Relu by its block, the MaxPool, the final MatMul + Add), those
  tensors are added as extra graph outputs, and one run returns them all.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy

from .. import backend
from ..tensor import Tensor, no_grad
from ._record import LayerStack, layer_scope

TOLERANCE = 1e-3


@dataclass
class LayerDiff:
    name: str
    shape: tuple
    max_abs: float
    rel: float
    reference_name: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "reference": self.reference_name, "shape": list(self.shape),
                "max_abs": self.max_abs, "rel": self.rel}


@dataclass
class DiffReport:
    reference: str
    tolerance: float
    rows: list = field(default_factory=list)
    logits: LayerDiff | None = None

    @property
    def first_parting(self) -> LayerDiff | None:
        return next((r for r in self.rows if not r.rel <= self.tolerance), None)  # NaN parts too

    def to_dict(self) -> dict:
        first = self.first_parting
        return {"reference": self.reference, "tolerance": self.tolerance,
                "first_parting": first.name if first else None, "layers": [r.to_dict() for r in self.rows]}

    def format(self) -> str:
        width = max([len(r.name) for r in self.rows] + [5])
        lines = [f"{'layer':<{width}}  {'shape':<20} {'max abs':>10} {'rel':>10}  {self.reference} tensor"]
        first = self.first_parting
        for r in self.rows:
            mark = "  <- first to part" if r is first else ("" if r.rel <= self.tolerance else "  x")
            lines.append(f"{r.name:<{width}}  {str(tuple(r.shape)):<20} {r.max_abs:>10.3g} {r.rel:>10.3g}  "
                         f"{r.reference_name}{mark}")
        if first is None:
            lines.append(f"all {len(self.rows)} layers agree with {self.reference} (rel <= {self.tolerance:g})")
        else:
            lines.append(f"minitl and {self.reference} part at {first.name} (rel {first.rel:.3g} > {self.tolerance:g}); "
                         "the layers before it agree")
        return "\n".join(lines)


def capture(model, x: Tensor, names=None) -> dict:
    """Each module's output (host copy) from one forward in inference mode: {name: array}, call order.

    ``names``: only these modules.  A module called twice keeps its first output.
    """
    outputs = {}

    def leave(name, module, out):
        if isinstance(out, Tensor) and name not in outputs and (names is None or name in names):
            outputs[name] = backend.to_numpy(out.data).copy()

    with no_grad(), model.evaluating(), layer_scope(model, LayerStack(), on_exit=leave):
        model(x)
    return outputs


def compare(model, x, reference: dict, tolerance: float = TOLERANCE, reference_name: str = "reference",
            reference_names: dict | None = None) -> DiffReport:
    """Compare minitl's activations with ``reference`` ({module name: array}) layer by layer, in
    minitl's call order; only names both have are compared."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    ours = capture(model, x, set(reference))
    report = DiffReport(reference_name, tolerance)
    for name, a in ours.items():
        r = numpy.asarray(reference[name])
        if r.shape != a.shape:
            raise ValueError(f"diff: layer {name} has shape {a.shape} in minitl but {r.shape} in the reference")
        difference = numpy.abs(a.astype(numpy.float64) - r.astype(numpy.float64))
        max_abs = float(difference.max()) if difference.size else 0.0
        scale = float(numpy.abs(r).max()) if r.size else 0.0
        rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
        report.rows.append(LayerDiff(name, a.shape, max_abs, rel, (reference_names or {}).get(name, name)))
    if not report.rows:
        raise ValueError("diff: no layer of the model matches a reference activation by name")
    return report


def _sole_consumer(consumers, name, op_type):
    users = consumers.get(name, [])
    return users[0] if len(users) == 1 and users[0].op_type == op_type else None


def onnx_tensors(path) -> tuple[dict, bool]:
    """({minitl module name: ONNX tensor name}, whether the graph's input is NHWC) for an ONNX ResNet."""
    import onnx  # noqa: PLC0415

    from ..transfer import onnx as tonnx  # noqa: PLC0415

    _, _, rows, _ = tonnx.read(path)  # the loader's own mapping: ONNX weight name -> minitl name
    target = {source: name for source, name, *_ in rows}
    graph = onnx.load(str(path), load_external_data=False).graph
    nodes = list(graph.node)
    consts = {i.name for i in graph.initializer} | {n.output[0] for n in nodes if n.op_type == "Constant"}
    producer = {out: n for n in nodes for out in n.output}
    consumers = {}
    for n in nodes:
        for name in n.input:
            consumers.setdefault(name, []).append(n)

    def stored(name):
        while name not in consts and name in producer and producer[name].op_type == "Identity":
            name = producer[name].input[0]
        return name if name in consts else None

    where = {}
    for node in nodes:
        if node.op_type in ("Conv", "MatMul", "Gemm") and len(node.input) > 1:
            module = target.get(stored(node.input[1]), ".").rsplit(".", 1)[0]
            if not module:
                continue
            output = node.output[0]
            if node.op_type == "MatMul" and (add := _sole_consumer(consumers, output, "Add")) is not None:
                output = add.output[0]  # the bias is the next node
            where[module] = output
        elif node.op_type == "MaxPool":
            where.setdefault("maxpool", node.output[0])
    for node in nodes:  # a residual Add (two computed inputs) followed by Relu ends a block
        if node.op_type != "Add" or any(stored(i) for i in node.input):
            continue
        relu = _sole_consumer(consumers, node.output[0], "Relu")
        convs = [m for m, t in where.items() if t in node.input and m.count(".") == 2]
        if relu is not None and convs:
            where[convs[0].rsplit(".", 1)[0]] = relu.output[0]
    first = consumers.get(graph.input[0].name, []) if graph.input else []
    nhwc = any(n.op_type == "Transpose" and [int(v) for a in n.attribute if a.name == "perm" for v in a.ints]
               == [0, 3, 1, 2] for n in first)
    return where, nhwc


def sample_input(model, size: int, seed: int = 0) -> numpy.ndarray:
    """A seeded random RGB image (1, size, size, 3) in 0..255, preprocessed as ``model`` expects
    (its channel order, range, mean and std) when it carries preprocessing, else N(0, 1)."""
    rng = numpy.random.default_rng(seed)
    preprocessing = getattr(model, "preprocessing", None)
    if preprocessing is None:
        return rng.standard_normal((1, 3, size, size)).astype(numpy.float32)
    return preprocessing.normalize(rng.integers(0, 256, (1, size, size, 3)).astype(numpy.uint8))


def onnx_input_size(onnx_path, default: int = 224) -> int:
    """The spatial size the ONNX graph's input fixes (NHWC or NCHW), else ``default``."""
    import onnx  # noqa: PLC0415

    dims = onnx.load(str(onnx_path)).graph.input[0].type.tensor_type.shape.dim
    sizes = [d.dim_value for d in dims[1:] if d.dim_value and d.dim_value != 3]
    return sizes[0] if sizes else default


def onnx_diff(model, onnx_path, x, tolerance: float = TOLERANCE) -> DiffReport:
    """Run ``x`` (N, C, H, W) through ``model`` and, with onnxruntime, through the ONNX file; compare."""
    try:
        import onnx  # noqa: PLC0415
        import onnxruntime  # noqa: PLC0415
    except ImportError:
        raise RuntimeError("diff --against onnxruntime needs onnx and onnxruntime: pip install onnxruntime") from None
    where, nhwc = onnx_tensors(onnx_path)
    proto = onnx.load(str(onnx_path))
    existing = {o.name for o in proto.graph.output}
    for tensor in where.values():
        if tensor not in existing:
            proto.graph.output.append(onnx.ValueInfoProto(name=tensor))
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = numpy.asarray(x, dtype=numpy.float32)
    feed = numpy.ascontiguousarray(x.transpose(0, 2, 3, 1)) if nhwc else x
    names = list(where.values())
    values = session.run(names, {session.get_inputs()[0].name: feed})
    by_tensor = dict(zip(names, values))
    reference = {module: by_tensor[tensor] for module, tensor in where.items()}
    return compare(model, Tensor(x), reference, tolerance, "onnxruntime", where)
