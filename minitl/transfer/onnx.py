"""ONNX graphs (via the ``onnx`` package, an optional extra), mapped onto the ResNet builder's names.

ONNX initialisers have exporter-made names (``Conv__440_weights_fused_bn``), so names cannot be
mapped one to one.  Instead the graph is walked in order and its *structure* recognised:

* every residual ``Add`` joins two branches that fork from one tensor, the block input; walking
  each branch back (through Conv, BatchNormalization, Relu) to that fork gives the block's main
  convolutions (conv1, conv2[, conv3]) and its shortcut (a projection conv -> ``downsample.0``,
  or none);
* convolutions before the first block are the stem (``conv1``); a block with a projection
  shortcut opens a new stage (``layer1`` ... ``layer4``);
* the ``Gemm`` / ``MatMul`` (+ ``Add``) after the last block is the head (``fc``).

A BatchNormalization node after a conv maps to the matching ``bn`` names; a conv that carries a
bias (BatchNorm folded by the exporter) maps to ``conv.bias``.  Each conv's stride, padding and
kernel are kept, so loading into a model whose stride sits elsewhere is caught
(:func:`check_structure`), not silently computed wrong.
"""
from __future__ import annotations

import os
from collections import OrderedDict, defaultdict

import numpy

from ..shapes import pair
from .errors import ArchitectureMismatchError, CorruptFileError, UnsafeFileError, WeightsError, brief, reading
from .limits import Budget, count_of

PASS_THROUGH = ("BatchNormalization", "Relu", "Identity")


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise WeightsError("reading .onnx files needs the onnx package: pip install 'minitl[weights]'") from None
    return onnx, numpy_helper


class _Graph:
    def __init__(self, graph, numpy_helper, onnx, budget):
        self.nodes = list(graph.node)
        self.consts = {init.name: _array(init, numpy_helper, onnx, budget) for init in graph.initializer}
        for node in self.nodes:
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value":
                        self.consts[node.output[0]] = _array(attr.t, numpy_helper, onnx, budget)
        self.producer = {out: node for node in self.nodes for out in node.output}
        self.consumers = defaultdict(list)
        for node in self.nodes:
            for name in node.input:
                self.consumers[name].append(node)
        self.order = {id(node): i for i, node in enumerate(self.nodes)}
        self.attr = lambda node: {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def const(self, name):
        node = self.producer.get(name)
        while name not in self.consts and node is not None and node.op_type == "Identity":
            name = node.input[0]
            node = self.producer.get(name)
        if name not in self.consts:
            raise WeightsError(f"ONNX tensor {name!r} is computed, not a stored weight: graph not understood")
        return name, self.consts[name]

    def sole_consumer(self, name, op_type):
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and users[0].op_type == op_type else None


def read(path) -> tuple[OrderedDict, dict, list, dict]:
    """(name -> array, metadata, mapping rows, structure) from an ONNX ResNet.

    ``rows`` are (source name, target name, source shape, target shape, conversion);
    ``structure`` maps each conv's minitl name to its stride/padding/kernel, plus pooling notes.
    """
    onnx, numpy_helper = _onnx()
    path = os.fspath(path)
    with reading(path, "ONNX"):
        budget = Budget(path)
        model = onnx.load(path, load_external_data=False)  # never opens another file
        if not model.graph.node:
            raise CorruptFileError("an ONNX file with an empty graph (truncated or not a model)")
        graph = _Graph(model.graph, numpy_helper, onnx, budget)
        state, rows, structure = _walk(graph)
        metadata = {"producer": model.producer_name, "opset": [int(o.version) for o in model.opset_import]}
    return state, metadata, rows, structure


# TensorProto data types read as weights: FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, BOOL, FLOAT16,
# DOUBLE, UINT32, UINT64 (strings, complex, bfloat16 and the 8/4-bit floats are not weights minitl uses)
NUMERIC_TYPES = {1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13}


def _array(tensor, numpy_helper, onnx, budget):
    """A TensorProto as a NumPy array, after refusing external data and checking its size against the file."""
    name = brief(tensor.name)
    if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
        where = {entry.key: entry.value for entry in tensor.external_data}.get("location", "?")
        raise UnsafeFileError(
            f"tensor {name} keeps its data in an external file ({brief(where)}): minitl reads only "
            "self-contained ONNX files, nothing outside the file"
        )
    if tensor.data_type not in NUMERIC_TYPES:
        raise WeightsError(f"tensor {name} has ONNX data type {tensor.data_type}, not a numeric weight array")
    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise CorruptFileError(f"tensor {name} has a negative dimension {dims[:8]}")
    itemsize = numpy.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    nbytes = count_of(dims) * itemsize
    if count_of(dims) > budget.file_size:  # every element takes at least one byte of the file
        raise CorruptFileError(f"tensor {name} of shape {dims[:8]} claims more elements than the file has bytes")
    budget.take(nbytes, f"tensor {name}")
    return numpy_helper.to_array(tensor)


def _unit(graph, conv):
    """A conv, its weights and attributes, and the BatchNormalization right after it (if any)."""
    attrs = graph.attr(conv)
    if len(conv.input) < 2:
        raise WeightsError(f"Conv node {conv.name!r} without weights")
    w_name, weight = graph.const(conv.input[1])
    bias = graph.const(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else None
    pads = list(attrs.get("pads", [0] * 4))
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise WeightsError(f"Conv {conv.name!r} uses auto_pad={attrs['auto_pad']!r}; explicit pads are needed")
    if pads[:2] != pads[2:]:
        raise WeightsError(f"Conv {conv.name!r} has asymmetric padding {pads}; minitl's Conv2d pads symmetrically")
    info = {
        "kernel": tuple(int(k) for k in attrs.get("kernel_shape", weight.shape[2:])),
        "stride": tuple(int(s) for s in attrs.get("strides", (1, 1))),
        "padding": tuple(int(p) for p in pads[:2]),
        "dilation": tuple(int(d) for d in attrs.get("dilations", (1, 1))),
        "groups": int(attrs.get("group", 1)),
    }
    bn = graph.sole_consumer(conv.output[0], "BatchNormalization")
    return {"conv": conv, "weight": (w_name, weight), "bias": bias, "info": info, "bn": bn}


def _output_of(unit):
    return unit["bn"].output[0] if unit["bn"] is not None else unit["conv"].output[0]


def _branch(graph, tensor):
    """Walk back from ``tensor`` to the fork it grew from (a tensor used twice); the convs met, first to last."""
    convs = []
    while tensor in graph.producer and len(graph.consumers[tensor]) < 2:
        node = graph.producer[tensor]
        if node.op_type == "Conv":
            convs.append(node)
        elif node.op_type not in PASS_THROUGH:
            break
        tensor = node.input[0]
    return tensor, convs[::-1]


def _walk(graph):
    """(state_dict, mapping rows, structure) of the ResNet in ``graph``: the stem, then each residual block
    (main convs, optional shortcut) named as torchvision names them, then the head."""
    residual_adds, blocks = _residual_blocks(graph)
    stem = _stem(graph, blocks)
    state, rows, structure = OrderedDict(), [], {"convs": OrderedDict(), "bn_eps": set(), "notes": []}

    def put(target, source_name, source, array=None, conversion=""):
        """Record ``target`` <- initialiser ``source_name`` (``array``: the converted value, if converted)."""
        array = numpy.ascontiguousarray(source if array is None else array)
        state[target] = array
        rows.append((source_name, target, tuple(source.shape), tuple(array.shape), conversion))

    def emit(unit, conv_name, bn_name):
        put(f"{conv_name}.weight", *unit["weight"])
        if unit["bias"] is not None:
            put(f"{conv_name}.bias", *unit["bias"], conversion="" if unit["bn"] is not None else "BatchNorm folded into the conv bias by the exporter")
        structure["convs"][conv_name] = unit["info"]
        if unit["bn"] is not None:
            bn = unit["bn"]
            structure["bn_eps"].add(round(float(graph.attr(bn).get("epsilon", 1e-5)), 12))
            for field, index in (("weight", 1), ("bias", 2), ("running_mean", 3), ("running_var", 4)):
                put(f"{bn_name}.{field}", *graph.const(bn.input[index]))

    emit(_unit(graph, stem), "conv1", "bn1")
    for prefix, block in _named_blocks(blocks):
        for k, unit in enumerate(block["main"], start=1):
            emit(unit, f"{prefix}.conv{k}", f"{prefix}.bn{k}")
        if block["shortcut"] is not None:
            emit(block["shortcut"], f"{prefix}.downsample.0", f"{prefix}.downsample.1")
    _head(graph, residual_adds[-1], put, structure)
    _pooling_notes(graph, structure)
    structure["bn_eps"] = sorted(structure["bn_eps"])
    return state, rows, structure


def _residual_blocks(graph):
    """(the residual Adds, one block per Add): each Add joins a main branch of 2+ convs and a shortcut
    of 0 or 1 conv forking from one tensor."""
    residual_adds = [
        n for n in graph.nodes
        if n.op_type in ("Add", "Sum") and len(n.input) == 2 and not any(i in graph.consts for i in n.input)
    ]
    if not residual_adds:
        raise WeightsError("no residual additions in the ONNX graph: not a ResNet (only ResNets are mapped from ONNX)")
    blocks = []
    for add in residual_adds:
        (fork_a, convs_a), (fork_b, convs_b) = (_branch(graph, t) for t in add.input)
        if fork_a != fork_b or len(convs_a) == len(convs_b) or max(len(convs_a), len(convs_b)) < 2:
            raise WeightsError(
                f"residual Add {add.name!r}: branches of {len(convs_a)} and {len(convs_b)} convs that do not "
                "fork from one tensor; not a ResNet block this reader understands"
            )
        main, shortcut = (convs_a, convs_b) if len(convs_a) > len(convs_b) else (convs_b, convs_a)
        if len(shortcut) > 1:
            raise WeightsError(f"residual Add {add.name!r}: shortcut of {len(shortcut)} convs")
        blocks.append({"main": [_unit(graph, c) for c in main], "shortcut": _unit(graph, shortcut[0]) if shortcut else None})
    return residual_adds, blocks


def _stem(graph, blocks):
    """The one convolution before the first block; no convolution may stand outside the blocks after it."""
    in_blocks = {id(u["conv"]) for b in blocks for u in b["main"] + ([b["shortcut"]] if b["shortcut"] else [])}
    first = min(graph.order[id(u["conv"])] for u in blocks[0]["main"] + ([blocks[0]["shortcut"]] if blocks[0]["shortcut"] else []))
    convs = [n for n in graph.nodes if n.op_type == "Conv"]
    stem = [c for c in convs if id(c) not in in_blocks and graph.order[id(c)] < first]
    stray = [c for c in convs if id(c) not in in_blocks and graph.order[id(c)] > first]
    if len(stem) != 1:
        raise WeightsError(f"the stem has {len(stem)} convolutions; the ResNet builder has exactly one")
    if stray:
        raise WeightsError(f"{len(stray)} convolutions outside the residual blocks after the stem (e.g. {stray[0].name!r})")
    return stem[0]


def _named_blocks(blocks):
    """(``layer<stage>.<index>``, block) in order: a block with a shortcut conv starts a new stage."""
    stage, index = 0, 0
    for i, block in enumerate(blocks):
        if i == 0 or block["shortcut"] is not None:
            stage, index = stage + 1, 0
        else:
            index += 1
        yield f"layer{stage}.{index}", block


def _head(graph, last_add, put, structure):
    after = [n for n in graph.nodes if graph.order[id(n)] > graph.order[id(last_add)]]
    dense = [n for n in after if n.op_type in ("Gemm", "MatMul")]
    if not dense:
        structure["notes"].append("no classifier after the last block (a headless backbone)")
        return
    if len(dense) > 1:
        raise WeightsError(f"{len(dense)} dense layers after the last block; the ResNet head is one fc layer")
    node = dense[0]
    w_name, w = graph.const(node.input[1])
    if w.ndim != 2:
        raise WeightsError(f"head weight {w_name!r} has shape {w.shape}, expected 2-D")
    if node.op_type == "Gemm":
        attrs = graph.attr(node)
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            raise WeightsError(f"Gemm {node.name!r} with transA/alpha/beta is not a plain dense layer")
        if attrs.get("transB", 0):
            put("fc.weight", w_name, w)
        else:
            put("fc.weight", w_name, w, w.T, "Gemm B (in, out) transposed to (out, in)")
        if len(node.input) > 2 and node.input[2]:
            b_name, b = graph.const(node.input[2])
            put("fc.bias", b_name, b, b.reshape(-1), "" if b.ndim == 1 else "flattened")
        return
    put("fc.weight", w_name, w, w.T, "MatMul W (in, out) transposed to (out, in)")
    add = graph.sole_consumer(node.output[0], "Add")
    if add is not None:
        other = [i for i in add.input if i != node.output[0]][0]
        b_name, b = graph.const(other)
        put("fc.bias", b_name, b, b.reshape(-1), "" if b.ndim == 1 else "flattened")
    if any(n.op_type == "Softmax" for n in after):
        structure["notes"].append("the graph ends in Softmax; minitl's model returns logits (apply softmax for probabilities)")


def _pooling_notes(graph, structure):
    for node in graph.nodes:
        if node.op_type == "Transpose" and graph.order[id(node)] == 0:
            structure["input_layout"] = "NHWC" if list(graph.attr(node).get("perm", [])) == [0, 3, 1, 2] else "?"
            structure["notes"].append("the graph takes NHWC input and transposes it; minitl's model takes NCHW")
        if node.op_type == "MaxPool":
            a = graph.attr(node)
            structure["maxpool"] = {"kernel": list(a.get("kernel_shape", [])), "stride": list(a.get("strides", [])),
                                    "pads": list(a.get("pads", [0] * 4)), "ceil_mode": int(a.get("ceil_mode", 0))}
            pads = structure["maxpool"]["pads"]
            if pads[:2] == [0, 0] and pads[2:] == [1, 1]:
                structure["notes"].append(
                    "MaxPool pads the end by 1 (TF's way of Caffe's ceil_mode): the same as ceil_mode=True, padding 0"
                )
        if node.op_type in ("AveragePool", "GlobalAveragePool"):
            a = graph.attr(node)
            structure["avgpool"] = {"op": node.op_type, "kernel": list(a.get("kernel_shape", []))}
            if node.op_type == "AveragePool":
                structure["notes"].append(
                    f"AveragePool {list(a.get('kernel_shape', []))} equals global average pooling at the native input "
                    "size; minitl uses adaptive (global) average pooling, so other input sizes work too"
                )


def check_structure(model, structure) -> list[str]:
    """Where a conv of ``model`` has another stride/padding/kernel than the file's: one line per conv."""
    problems = []
    modules = dict(model.named_modules())
    for name, info in structure.get("convs", {}).items():
        module = modules.get(name)
        if module is None:
            continue  # a missing name is reported by the state-dict comparison
        own = {key: None if getattr(module, key, None) is None else pair(getattr(module, key), key)
               for key in ("stride", "padding", "kernel_size")}
        theirs = {"stride": info["stride"], "padding": info["padding"], "kernel_size": info["kernel"]}
        diffs = [f"{key} {theirs[key]} in the file, {own[key]} in the model" for key in theirs
                 if own[key] is not None and tuple(own[key]) != tuple(theirs[key])]
        if diffs:
            problems.append(f"{name}: " + "; ".join(diffs))
    return problems


def structure_error(problems) -> ArchitectureMismatchError:
    """One error for all the conv differences, with a hint where the stride sits in the wrong conv."""
    hint = ""
    if any(p.split(":")[0].endswith("conv1") and "stride" in p for p in problems):
        hint = (" (the file puts a block's stride in its first 1x1 convolution, Caffe/Keras style: "
                "use an architecture built with stride_in_1x1=True, e.g. resnet50_1by2)")
    return ArchitectureMismatchError(
        f"the ONNX graph's convolutions do not match the model{hint}:\n  " + "\n  ".join(problems[:12])
        + (f"\n  ... and {len(problems) - 12} more" if len(problems) > 12 else "")
    )
