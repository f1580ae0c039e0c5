"""What ``minitl bench`` runs: presets, the cases of a run, and a table of builders making each
case's timed call on a backend.

A builder takes (case, kind, device, rng) and returns ``(setup, step)``: ``setup()`` runs
untimed before each call, ``step()`` is the timed call and returns the device arrays whose
values are compared across backends.  Inputs come from one seeded generator, so every backend
computes on the same numbers.
"""
from __future__ import annotations

import dataclasses
import math

import numpy

from .. import backend, models
from .. import functional as F
from ..optim import SGD
from ..random import manual_seed
from ..tensor import Tensor, no_grad, ones, zeros

# ============================================================================ what to run
# op -> (shape parameters of one sample, batch sweep); a "batch" is the leading dimension
PRESETS: dict[str, dict] = {
    # a sanity run for a 2-core CPU: a minute or two
    "quick": {
        "ops": {
            "matmul": ({"n": 512}, [16, 128, 1024]),
            "conv2d.fwd": ({"c": 32, "hw": 28}, [1, 4, 16]),
            "conv2d.bwd": ({"c": 32, "hw": 28}, [1, 4, 16]),
            "max_pool2d.fwd": ({"c": 32, "hw": 56}, [1, 4, 16]),
            "max_pool2d.bwd": ({"c": 32, "hw": 56}, [1, 4, 16]),
            "batch_norm.fwd": ({"c": 32, "hw": 28}, [1, 4, 16]),
            "batch_norm.bwd": ({"c": 32, "hw": 28}, [1, 4, 16]),
            "copy.h2d": ({"c": 3, "hw": 64}, [16]),
            "copy.d2h": ({"c": 3, "hw": 64}, [16]),
        },
        "models": {"resnet18": ({"hw": 64}, [2])},
        "target_s": 0.2,
    },
    # the GPU check: ResNet's own layer sizes at 224x224
    "full": {
        "ops": {
            "matmul": ({"n": 1024}, [1, 16, 128, 1024, 4096]),
            "conv2d.fwd": ({"c": 64, "hw": 56}, [1, 4, 16, 64]),
            "conv2d.bwd": ({"c": 64, "hw": 56}, [1, 4, 16, 64]),
            "max_pool2d.fwd": ({"c": 64, "hw": 112}, [1, 4, 16, 64]),
            "max_pool2d.bwd": ({"c": 64, "hw": 112}, [1, 4, 16, 64]),
            "batch_norm.fwd": ({"c": 64, "hw": 56}, [1, 4, 16, 64]),
            "batch_norm.bwd": ({"c": 64, "hw": 56}, [1, 4, 16, 64]),
            "copy.h2d": ({"c": 3, "hw": 224}, [64]),
            "copy.d2h": ({"c": 3, "hw": 224}, [64]),
        },
        "models": {"resnet18": ({"hw": 224}, [1, 16, 64]), "resnet50": ({"hw": 224}, [1, 64])},
        "target_s": 0.5,
    },
}
MODEL_KINDS = ("train", "fwd")  # the training step first: the headline of a time-boxed run


@dataclasses.dataclass
class Config:
    """A benchmark run.  ``ops`` / ``models`` pick from the preset (None: all of it)."""

    preset: str = "quick"
    ops: list | None = None
    models: list | None = None
    batches: list | None = None  # override every sweep
    model_batches: list | None = None  # override the models' sweeps
    rounds: int = 5
    device: str = "auto"  # auto: GPU side if usable; cpu: NumPy only; cuda: fail unless a GPU is usable
    time_limit_s: float | None = None  # stop starting rounds that would not finish in time
    out_dir: str | None = None  # where workers leave outputs (a temporary folder when None)
    verbose: bool = False


@dataclasses.dataclass(frozen=True)
class Case:
    op: str  # "conv2d.fwd", "resnet50.train", "copy.h2d", ...
    batch: int
    params: dict

    @property
    def id(self) -> str:
        return f"{self.op}@{self.batch}"


def plan(config: Config) -> list[Case]:
    """The cases of a run, ops first, then models from small to large."""
    if config.preset not in PRESETS:
        raise ValueError(f"unknown preset {config.preset!r}; choose from {sorted(PRESETS)}")
    preset = PRESETS[config.preset]
    cases = []
    ops = preset["ops"] if config.ops is None else _pick(preset["ops"], config.ops, "op")  # [] for none
    for op, (params, batches) in ops.items():
        for batch in config.batches or batches:
            cases.append(Case(op, int(batch), dict(params)))
    models_ = preset["models"] if config.models is None else _pick(preset["models"], config.models, "model")
    for name, (params, batches) in models_.items():
        for kind in MODEL_KINDS:
            for batch in config.model_batches or config.batches or batches:
                cases.append(Case(f"{name}.{kind}", int(batch), dict(params)))
    return cases


def _pick(table: dict, names, what: str) -> dict:
    chosen = {}
    for name in names:
        matches = {k: v for k, v in table.items() if k == name or k.split(".")[0] == name}
        if not matches:
            known = sorted({k.split(".")[0] for k in table} | set(table))
            raise ValueError(f"unknown {what} {name!r}; known: {', '.join(known)}")
        chosen.update(matches)
    return chosen


# ============================================================================ builders: a case on a backend
class Skip(Exception):
    """This case cannot run here (a copy on the CPU, which has no device to copy to)."""


def _host(rng, *shape):
    return rng.standard_normal(shape, dtype=numpy.float32)


def _nothing():
    return None


def _no_graph(forward):
    def step():
        with no_grad():
            return [forward().data]

    return step


def _copy(case, kind, device, rng):
    """copy.h2d: host -> device of an input batch; copy.d2h: device -> host."""
    if backend.get_backend(device).name == "numpy":
        raise Skip("no copy on the CPU")
    xp, p = backend.get_backend(device).xp, case.params
    host = _host(rng, case.batch, p["c"], p["hw"], p["hw"])
    resident = xp.asarray(host)
    if kind == "h2d":
        return _nothing, lambda: [xp.asarray(host)]

    def readback():
        xp.asnumpy(resident)
        return []

    return _nothing, readback


def _matmul(case, kind, device, rng):
    """(batch, n) @ (n, n), no graph."""
    n = case.params["n"]
    a = Tensor(_host(rng, case.batch, n), device=device)
    w = Tensor(_host(rng, n, n) / math.sqrt(n), device=device)
    return _nothing, _no_graph(lambda: a @ w)


def _layer_op(name):
    """conv2d 3x3 (padding 1), max_pool2d 3x3/2, batch_norm (training): fwd without a graph, or
    bwd: the backward of a forward made in setup, returning the inputs' gradients."""

    def build(case, kind, device, rng):
        c, hw, wanted = case.params["c"], case.params["hw"], kind == "bwd"
        x = Tensor(_host(rng, case.batch, c, hw, hw), requires_grad=wanted, device=device)
        if name == "conv2d":
            w = Tensor(_host(rng, c, c, 3, 3) * math.sqrt(2 / (9 * c)), requires_grad=wanted, device=device)
            forward, inputs = (lambda: F.conv2d(x, w, None, stride=1, padding=1)), [x, w]
        elif name == "max_pool2d":
            forward, inputs = (lambda: F.max_pool2d(x, 3, stride=2, padding=1)), [x]
        else:
            gamma = Tensor(1 + 0.1 * _host(rng, c), requires_grad=wanted, device=device)
            beta = Tensor(0.1 * _host(rng, c), requires_grad=wanted, device=device)
            mean, var = zeros(c, device=device), ones(c, device=device)
            forward, inputs = (lambda: F.batch_norm(x, mean, var, gamma, beta, training=True)), [x, gamma, beta]
        if kind == "fwd":
            return _nothing, _no_graph(forward)
        state = {}

        def setup():
            for t in inputs:
                t.grad = None
            state["y"] = forward()
            if "g" not in state:
                state["g"] = Tensor(_host(rng, *state["y"].shape), device=device)

        def step():
            state["y"].backward(state["g"])
            return [t.grad.data for t in inputs]

        return setup, step

    return build


def _resnet(case, kind, device, rng):
    """fwd: eval forward, no graph.  train: zero_grad, forward, cross-entropy, backward, SGD step
    (momentum 0.9) and reading the loss (a training loop's one synchronising read)."""
    name = case.op.partition(".")[0]
    model = getattr(models, name)(num_classes=1000).to(device)
    x = Tensor(_host(rng, case.batch, 3, case.params["hw"], case.params["hw"]), device=device)
    if kind == "fwd":
        model.eval()
        return _nothing, _no_graph(lambda: model(x))
    model.train()
    y = Tensor(rng.integers(0, 1000, size=case.batch), device=device)
    optimizer = SGD([q for q in model.parameters() if q.requires_grad], lr=0.01, momentum=0.9)
    first = next(iter(model.parameters()))

    def step():
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        grad = first.grad.data.copy()
        optimizer.step()
        loss.item()
        return [loss.data, grad]

    return _nothing, step


BUILDERS = {
    "copy": _copy,
    "matmul": _matmul,
    "conv2d": _layer_op("conv2d"),
    "max_pool2d": _layer_op("max_pool2d"),
    "batch_norm": _layer_op("batch_norm"),
    "resnet18": _resnet,
    "resnet50": _resnet,
}


def prepare(case: Case, device: str):
    """``(setup, step)`` of ``case`` on ``device``, from the same seeded inputs on every backend."""
    name, _, kind = case.op.partition(".")
    if name not in BUILDERS:
        raise ValueError(f"unknown benchmark op {case.op!r}")
    manual_seed(0)
    return BUILDERS[name](case, kind, device, numpy.random.default_rng(0))
