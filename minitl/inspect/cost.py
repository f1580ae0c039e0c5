"""The cost model: per layer, parameters, FLOPs forward and backward, memory kept for backward,
scratch workspace — predicted from one recorded forward pass — and, with ``measure=True``, the
time each layer really takes, the memory it really allocates, and the GEMM rate it reaches.

    >>> s = summarize(model, x)                  # predicted
    >>> s = summarize(model, x, measure=True)    # + measured time, peak memory, GFLOP/s
    >>> print(s.format())

Rows are the innermost modules (by ``state_dict`` prefix) in call order; ops a container calls
itself (a residual addition, a flatten) form the container's row.  *Kept for backward* is what
the graph really holds until ``backward()``: the arrays the ops saved plus the input tensors
the graph references (parameters excluded), each buffer counted once, in the first layer that
holds it.  *Predicted peak* of a layer's forward = the new arrays it leaves behind (outputs and
saved arrays, each counted once) + its scratch workspace; *measured peak* is what tracemalloc
(NumPy reports its allocations to it) or CuPy's memory pool saw above the level at the layer's
start.  Forward time is per module call; backward time is the time between the engine's
consecutive backward steps attributed to the layer whose op ran (the engine's bookkeeping
included).  The peak GEMM rate is a large float32 matmul timed on the same device.
"""
from __future__ import annotations

import statistics
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from math import prod

from .. import backend
from ..nn import Module
from ..tensor import Tensor, enable_grad
from ._record import LayerStack, Recorder, layer_scope
from .flops import op_flops, workspace
from .trace import _as_tensors


@dataclass
class LayerCost:
    name: str
    kind: str  # the module's class
    ops: list = field(default_factory=list)
    output_shape: tuple = ()
    params: int = 0
    flops_forward: int = 0
    flops_backward: int = 0
    kept_bytes: int = 0
    workspace_bytes: int = 0
    workspace_kind: str = ""
    new_bytes: int = 0  # arrays first created by this layer (outputs, saved arrays)
    kept_workspace: int = 0  # part of the workspace the op keeps for backward (im2col columns): in new_bytes too
    # measured (measure=True)
    time_forward: float | None = None
    time_backward: float | None = None
    peak_bytes: int | None = None  # measured peak above the level at the layer's start (leaf modules)

    @property
    def predicted_peak(self) -> int:
        return self.new_bytes + self.workspace_bytes - self.kept_workspace


@dataclass
class Summary:
    rows: list
    input_shapes: list
    device: str
    measured: bool = False
    peak_gemm_flops: float | None = None  # FLOP/s of a big float32 matmul on this device
    measured_total_peak: int | None = None  # peak of the whole forward

    def totals(self) -> dict:
        keys = ("params", "flops_forward", "flops_backward", "kept_bytes", "workspace_bytes")
        out = {k: sum(getattr(r, k) for r in self.rows) for k in keys}
        out["workspace_bytes"] = max((r.workspace_bytes for r in self.rows), default=0)  # freed after each layer
        if self.measured:
            out["time_forward"] = sum(r.time_forward or 0.0 for r in self.rows)
            out["time_backward"] = sum(r.time_backward or 0.0 for r in self.rows)
        return out

    def to_dict(self) -> dict:
        rows = []
        for r in self.rows:
            row = asdict(r)
            row["predicted_peak"] = r.predicted_peak
            rows.append(row)
        return {"device": self.device, "input_shapes": self.input_shapes, "measured": self.measured,
                "peak_gemm_flops": self.peak_gemm_flops, "measured_total_peak": self.measured_total_peak,
                "rows": rows, "totals": self.totals()}


def _buffer(array):
    """(key, bytes) of the memory an array lives in: views share their base's key."""
    root = array
    while getattr(root, "base", None) is not None and hasattr(root.base, "nbytes"):
        root = root.base
    return id(root), int(root.nbytes)


def _arrays_of(fn) -> list:
    """The arrays a Function keeps for backward: its saved attributes and its inputs' data."""
    found = []
    for value in vars(fn).values():
        items = value if isinstance(value, (tuple, list)) else (value,)
        for item in items:
            if isinstance(item, Tensor):
                item = item.data
            if hasattr(item, "nbytes") and hasattr(item, "shape") and hasattr(item, "dtype"):
                found.append(item)
    return found


def _row_for(rows: dict, modules: dict, name: str) -> LayerCost:
    if name not in rows:
        module = modules.get(name)
        kind = type(module).__name__ if module is not None else ("loss" if name == "(loss)" else "function")
        rows[name] = LayerCost(name, kind)
    return rows[name]


def _predict(model, tensors, loss) -> tuple[dict, Recorder, Tensor]:
    """One recorded forward: FLOPs, kept and new bytes, workspace per layer (graph left unfreed)."""
    modules = {(n or "(model)"): m for n, m in model.named_modules()} if isinstance(model, Module) else {}
    stack = LayerStack()
    recorder = Recorder(stack)
    with enable_grad(), recorder.installed(), layer_scope(model, stack):
        out = model(*tensors)
        if loss is not None:
            stack.names.append("(loss)")
            out = loss(out)
    rows: dict[str, LayerCost] = {}
    seen = {_buffer(p.data)[0] for p in (model.parameters() if isinstance(model, Module) else [])}
    seen.update(_buffer(t.data)[0] for t in tensors)
    kept_seen = set(seen)
    for kind, fn, inputs, result, options, layer, _ in recorder.events:
        row = _row_for(rows, modules, layer or "(model)")
        op = type(fn).__name__
        row.ops.append(op)
        row.output_shape = result.shape
        shapes = [t.shape if t is not None else None for t in inputs]
        wants = fn.needs_input_grad if result.requires_grad else (False,) * len(inputs)
        f, b = op_flops(op, shapes, result.shape, options, wants)
        row.flops_forward += f
        row.flops_backward += b
        ws, what = workspace(op, shapes, result.shape, options, result.data.itemsize, result.xp)
        graph_holds = result._ctx is fn
        columns = getattr(fn, "col", None) if graph_holds else None  # Conv2d keeps small column matrices
        if ws > row.workspace_bytes:
            row.workspace_bytes, row.workspace_kind = ws, what
            row.kept_workspace = int(columns.nbytes) if hasattr(columns, "nbytes") else 0
        arrays = [result.data] + (_arrays_of(fn) if graph_holds else [])
        for array in arrays:
            key, nbytes = _buffer(array)
            if key not in seen:
                seen.add(key)
                row.new_bytes += nbytes
        for array in (_arrays_of(fn) if graph_holds else []):
            key, nbytes = _buffer(array)
            if key not in kept_seen:
                kept_seen.add(key)
                row.kept_bytes += nbytes
    if isinstance(model, Module):
        _assign_parameters(model, rows, modules)
    return rows, recorder, out


def _assign_parameters(model: Module, rows: dict, modules: dict) -> None:
    """Each parameter counts in the row of the innermost module holding it that ran (MultiheadAttention
    reads its projections' weights itself: they count in its row)."""
    for name, p in model.named_parameters():
        parts = name.split(".")[:-1]
        owner = next((".".join(parts[:k]) for k in range(len(parts), 0, -1) if ".".join(parts[:k]) in rows), None)
        _row_for(rows, modules, owner or "(model)").params += p.size


def peak_gemm_flops(device: str = "cpu", n: int = 1024, repeats: int = 3) -> float:
    """FLOP/s of an n×n float32 matmul on ``device`` (best of ``repeats``): this machine's GEMM peak."""
    xp = backend.get_backend(device).xp
    a = xp.ones((n, n), dtype="float32")
    b = xp.ones((n, n), dtype="float32")
    a @ b
    backend.synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        backend.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def _time_layers(model, tensors, loss, rows: dict, device: str, repeats: int) -> None:
    """Median over ``repeats`` forward+backward passes of each row's forward and backward time."""
    forward, backward = {}, {}
    children = {name: [c for c in rows if c != name and c.startswith(name + ".")] for name in rows}
    for _ in range(repeats):
        inclusive, starts = {}, {}

        def enter(name, module):
            backend.synchronize(device)
            starts[name] = time.perf_counter()

        def leave(name, module, out):
            backend.synchronize(device)
            inclusive[name] = inclusive.get(name, 0.0) + time.perf_counter() - starts[name]

        stack = LayerStack()
        recorder = Recorder(stack, sync=(lambda: backend.synchronize(device)) if device != "cpu" else None)
        with enable_grad(), layer_scope(model, stack, enter, leave), recorder.installed():
            out = model(*tensors)
            stack.names.append("(loss)")
            start = time.perf_counter()
            objective = loss(out)
            backend.synchronize(device)
            inclusive["(loss)"] = time.perf_counter() - start
            stack.names.pop()
            backend.synchronize(device)
            previous = time.perf_counter()
            mark = len(recorder.events)
            objective.backward()
        spent = {}  # the first gap (the engine sorting the graph) goes to the loss row
        for kind, fn, a, *_rest, layer, at in recorder.events[mark:]:
            if kind == "backward":
                key = "(loss)" if not spent else (layer or "(model)")
                spent[key] = spent.get(key, 0.0) + at - previous
            previous = at
        for name in rows:
            own = inclusive.get(name, 0.0) - sum(inclusive.get(c, 0.0) for c in children[name]
                                                 if "." not in c[len(name) + 1:])
            forward.setdefault(name, []).append(max(own, 0.0))
            backward.setdefault(name, []).append(spent.get(name, 0.0))
    for name, row in rows.items():
        row.time_forward = statistics.median(forward[name])
        row.time_backward = statistics.median(backward[name])


def _measure_memory(model, tensors, loss, rows: dict, device: str) -> int | None:
    """Peak allocation above the start of each leaf module's forward; returns the whole forward's peak."""
    leaves = {n for n, r in rows.items() if r.kind != "function" and not any(c.startswith(n + ".") for c in rows)}
    on_gpu = device != "cpu"
    pool = None
    if on_gpu:
        get_pool = getattr(backend.get_backend(device).xp, "get_default_memory_pool", None)
        if get_pool is None:
            return None  # a device backend without CuPy's memory pool: nothing to read
        pool = get_pool()
    level = {}

    def current() -> int:
        return pool.used_bytes() if on_gpu else tracemalloc.get_traced_memory()[0]

    def enter(name, module):
        if name in leaves:
            if not on_gpu:
                tracemalloc.reset_peak()
            level[name] = current()

    def leave(name, module, out):
        if name in leaves:
            backend.synchronize(device)
            peak = pool.used_bytes() if on_gpu else tracemalloc.get_traced_memory()[1]
            rows[name].peak_bytes = max(0, peak - level[name])

    stack = LayerStack()
    started = not on_gpu and not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        base = current()
        with enable_grad(), layer_scope(model, stack, enter, leave):
            out = model(*tensors)
            if loss is not None:
                loss(out)
        total = (pool.used_bytes() if on_gpu else tracemalloc.get_traced_memory()[0]) - base
    finally:
        if started:
            tracemalloc.stop()
    return max(total, 0)


def summarize(model, inputs, loss=None, measure: bool = False, repeats: int = 3) -> Summary:
    """The cost table of ``model(*inputs)`` (and ``loss`` of its output, if given); see the module
    docstring.  ``measure=True`` adds measured times (median of ``repeats`` passes), peak memory
    per layer and the device's peak GEMM rate."""
    tensors = _as_tensors(inputs)
    device = tensors[0].device
    if loss is None:
        def loss(y):  # the sum of the (first) output: the costs do not depend on which loss
            return (y[0] if isinstance(y, (tuple, list)) else y).sum()
    rows, recorder, out = _predict(model, tensors, loss)
    del recorder, out  # free the recorded graph before measuring
    summary = Summary(list(rows.values()), [list(t.shape) for t in tensors], device)
    if measure:
        _time_layers(model, tensors, loss, rows, device, repeats)
        if device != "cpu":  # the pool's used bytes only show what this run allocates
            backend.synchronize(device)
        summary.measured_total_peak = _measure_memory(model, tensors, loss, rows, device)
        summary.peak_gemm_flops = peak_gemm_flops(device)
        summary.measured = True
    return summary


def _size(nbytes) -> str:
    if nbytes is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"


def _count(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def format_summary(summary: Summary) -> str:
    header = f"{'layer':<22} {'type':<18} {'output':<18} {'params':>8} {'FLOPs fwd':>10} {'FLOPs bwd':>10} " \
             f"{'kept':>10} {'workspace':>18}"
    if summary.measured:
        header += f" {'fwd ms':>8} {'bwd ms':>8} {'GFLOP/s':>8} {'peak pred':>10} {'peak meas':>10}"
    lines = [header, "-" * len(header)]
    for r in summary.rows:
        ws = f"{_size(r.workspace_bytes)} {r.workspace_kind}" if r.workspace_bytes else "-"
        line = (f"{r.name[:22]:<22} {r.kind[:18]:<18} {str(tuple(r.output_shape))[:18]:<18} {_count(r.params):>8} "
                f"{_count(r.flops_forward):>10} {_count(r.flops_backward):>10} {_size(r.kept_bytes):>10} {ws:>18}")
        if summary.measured:
            total_time = (r.time_forward or 0) + (r.time_backward or 0)
            rate = (r.flops_forward + r.flops_backward) / total_time / 1e9 if total_time > 0 else 0.0
            peak = _size(r.peak_bytes) if r.peak_bytes is not None else "-"
            line += (f" {1e3 * r.time_forward:>8.3f} {1e3 * r.time_backward:>8.3f} {rate:>8.2f} "
                     f"{_size(r.predicted_peak):>10} {peak:>10}")
        lines.append(line)
    t = summary.totals()
    lines.append("-" * len(header))
    lines.append(f"{'total':<22} {'':<18} {'':<18} {_count(t['params']):>8} {_count(t['flops_forward']):>10} "
                 f"{_count(t['flops_backward']):>10} {_size(t['kept_bytes']):>10} {_size(t['workspace_bytes']) + ' max':>18}")
    if summary.measured:
        seconds = t["time_forward"] + t["time_backward"]
        achieved = (t["flops_forward"] + t["flops_backward"]) / seconds if seconds else 0.0
        lines.append(f"measured on {summary.device}: forward {1e3 * t['time_forward']:.2f} ms, backward "
                     f"{1e3 * t['time_backward']:.2f} ms; {achieved / 1e9:.2f} GFLOP/s overall = "
                     f"{100 * achieved / summary.peak_gemm_flops:.0f}% of this device's float32 GEMM peak "
                     f"({summary.peak_gemm_flops / 1e9:.1f} GFLOP/s, 1024x1024 matmul); forward allocated "
                     f"{_size(summary.measured_total_peak) if summary.measured_total_peak is not None else 'n/a'} "
                     f"net (kept for backward predicted {_size(t['kept_bytes'])})")
    return "\n".join(lines)
