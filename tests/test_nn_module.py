"""Modules: registration and dotted names, state_dict round trips and strict errors, freezing,
train/eval, gradient accumulation, no_grad, the graph being freed, initialisation and seeding."""
from __future__ import annotations

import gc
import math
import weakref

import numpy as np
import pytest

import minitl
import minitl.functional as F
from minitl import nn
from minitl.functional import dense
from minitl.nn import init


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
        self.head = nn.Linear(3, 2, bias=False)
        self.register_buffer("running_mean", np.zeros(3, dtype=np.float32))

    def forward(self, x):
        return self.head(self.layers(x))


def _graph_nodes(root):
    """Every Function node reachable from ``root`` (tensors of the recorded graph)."""
    nodes, stack, seen = [], [root], set()
    while stack:
        t = stack.pop()
        if t is None or id(t) in seen or t._ctx is None:
            continue
        seen.add(id(t))
        nodes.append(t._ctx)
        stack.extend(t._ctx.inputs)
    return nodes


# ============================================================================ names and registration
def test_named_parameters_and_buffers_use_dotted_torch_names():
    block = Block()
    assert [n for n, _ in block.named_parameters()] == [
        "layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias", "head.weight"]
    assert [n for n, _ in block.named_buffers()] == ["running_mean"]
    assert list(block.state_dict()) == [n for n, _ in block.named_parameters()] + ["running_mean"]
    assert block.layers[0].weight.shape == (5, 4), "weights stored (out_features, in_features)"
    assert sum(p.size for p in block.parameters()) == 4 * 5 + 5 + 5 * 3 + 3 + 3 * 2


def test_state_dict_names_equal_torch_for_the_same_architecture():
    torch = pytest.importorskip("torch")
    ours = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Sequential(nn.Linear(5, 3), nn.Tanh()), nn.Linear(3, 2))
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(),
                                 torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.Tanh()), torch.nn.Linear(3, 2))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    np.testing.assert_allclose(ours(minitl.Tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)


def test_shared_parameter_is_listed_once_and_reassignment_replaces():
    seq = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    seq[1].weight = seq[0].weight
    assert len(list(seq.parameters())) == 3
    seq[1].bias = None
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]


def test_sequential_helpers_and_repr():
    seq = nn.Sequential(nn.Flatten(), nn.Linear(6, 2), nn.Identity())
    assert len(seq) == 3 and isinstance(seq[1], nn.Linear) and len(seq[1:]) == 2
    out = seq(minitl.Tensor(np.ones((4, 2, 3), dtype=np.float32)))
    assert out.shape == (4, 2)
    assert "Linear(in_features=6, out_features=2, bias=True)" in repr(seq)
    assert seq.get_submodule("1") is seq[1]


# ============================================================================ state_dict
def test_state_dict_round_trip_is_a_snapshot():
    a, b = Block(), Block()
    state = a.state_dict()
    assert all(type(v) is np.ndarray for v in state.values())
    b.load_state_dict(state)
    x = minitl.Tensor(np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32))
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    before = state["head.weight"].copy()
    a.head.weight.data += 1.0  # an in-place update (what an optimizer does) ...
    np.testing.assert_array_equal(state["head.weight"], before)  # ... leaves the saved state alone
    b.head.weight.data += 1.0
    np.testing.assert_array_equal(state["head.weight"], before)  # loading copied, too


def test_strict_load_lists_missing_unexpected_and_mismatched_together_and_loads_nothing():
    block = Block()
    before = block.state_dict()
    state = dict(before)
    del state["layers.0.bias"]
    state["layers.9.weight"] = np.zeros(2)
    state["head.weight"] = np.zeros((7, 3))
    state["layers.2.weight"] = np.ones((3, 5))  # a good entry, must not be applied on failure
    with pytest.raises(nn.StateDictError) as info:
        block.load_state_dict(state)
    message = str(info.value)
    assert "missing (1): layers.0.bias" in message
    assert "unexpected (1): layers.9.weight" in message
    assert "head.weight expects (2, 3), got (7, 3)" in message
    report = info.value.report
    assert (report.missing, report.unexpected, [m[0] for m in report.mismatched]) == (
        ["layers.0.bias"], ["layers.9.weight"], ["head.weight"])
    for name, value in block.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=f"{name} changed by a failed strict load")
    assert isinstance(info.value, ValueError)


def test_non_strict_load_and_skip():
    block = Block()
    state = {k: np.full(v.shape, 0.5, dtype=v.dtype) for k, v in Block().state_dict().items()}
    state["head.weight"] = np.zeros((10, 3))  # a head for another class count
    report = block.load_state_dict(state, strict=False)
    assert not report.ok and [m[0] for m in report.mismatched] == ["head.weight"]
    assert "layers.0.weight" in report.loaded and np.all(block.layers[0].weight.numpy() == 0.5)

    fresh = Block()
    report = fresh.load_state_dict(state, skip=["head"])
    assert report.ok and report.skipped == ["head.weight"] and "head.weight" not in report.loaded
    del state["head.weight"]
    assert Block().load_state_dict(state, skip=["head"]).ok, "skipped names may be absent from the state"
    assert fresh.layers[2].bias.dtype == np.float32, "loaded values take the parameter's dtype"


# ============================================================================ freezing
def test_frozen_layers_take_no_part_in_the_graph():
    minitl.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    model[0].requires_grad_(False)
    x = minitl.Tensor(np.ones((2, 4), dtype=np.float32))
    hidden = model[1](model[0](x))
    assert not hidden.requires_grad and hidden._ctx is None, "a frozen layer on a plain input records nothing"
    loss = model[2](hidden).sum()
    nodes = _graph_nodes(loss)
    assert all(t is not model[0].weight for fn in nodes for t in fn.inputs)
    loss.backward()
    assert model[0].weight.grad is None and model[0].bias.grad is None
    assert model[2].weight.grad is not None


def test_backward_is_not_asked_for_a_frozen_parameter(monkeypatch):
    """A frozen weight below a trainable layer: Linear.backward sees needs_input_grad False and skips dJ/dW."""
    calls = []
    original = dense.Linear.backward

    def spy(self, g):
        grads = original(self, g)
        calls.append((self.needs_input_grad, tuple(x is not None for x in grads)))
        return grads

    monkeypatch.setattr(dense.Linear, "backward", spy)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    model[2].requires_grad_(False)  # frozen top, trainable bottom: the frozen layer still passes dJ/dx down
    model(minitl.Tensor(np.ones((2, 4), dtype=np.float32))).sum().backward()
    top, bottom = calls
    assert top == ((True, False, False), (True, False, False)), top
    assert bottom == ((False, True, True), (False, True, True)), bottom
    assert model[2].weight.grad is None and model[0].weight.grad is not None


def test_unfreezing_brings_parameters_back():
    model = nn.Linear(3, 2)
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())
    model.requires_grad_(True)
    model(minitl.Tensor(np.ones((1, 3), dtype=np.float32))).sum().backward()
    assert model.weight.grad is not None


# ============================================================================ modes, accumulation, no_grad
def test_train_and_eval_propagate_and_switch_dropout():
    model = nn.Sequential(nn.Linear(10, 10), nn.Sequential(nn.Dropout(0.5)))
    assert all(m.training for m in model.modules())
    x = minitl.Tensor(np.ones((4, 10), dtype=np.float32))
    assert model.eval() is model and not any(m.training for m in model.modules())
    np.testing.assert_array_equal(model(x).numpy(), model[0](x).numpy())
    model.train()
    assert all(m.training for m in model.modules())
    assert (model(x).numpy() == 0).any()


def test_gradients_accumulate_across_backward_calls_until_zero_grad(backend):
    layer = nn.Linear(3, 2, dtype=np.float64)
    x = minitl.Tensor(np.random.default_rng(0).normal(size=(4, 3)))
    layer(x).sum().backward()
    first = layer.weight.grad.numpy().copy()
    layer(x).sum().backward()
    np.testing.assert_allclose(layer.weight.grad.numpy(), 2 * first)
    np.testing.assert_allclose(first, np.tile(x.numpy().sum(axis=0), (2, 1)))
    layer.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None


def test_no_grad_builds_no_graph(backend):
    layer = nn.Linear(3, 2)
    x = minitl.Tensor(np.ones((1, 3), dtype=np.float32), requires_grad=True)
    with minitl.no_grad():
        assert not minitl.is_grad_enabled()
        out = F.relu(layer(x)) * 2 + x.sum()
    assert not out.requires_grad and out._ctx is None
    assert minitl.is_grad_enabled()
    with pytest.raises(RuntimeError, match="does not require grad"):
        out.sum().backward()
    with pytest.raises(KeyError):
        with minitl.no_grad():
            raise KeyError("boom")
    assert minitl.is_grad_enabled(), "no_grad restores the mode after an exception"
    with minitl.no_grad(), minitl.enable_grad():
        assert layer(x).requires_grad


# ============================================================================ the graph is freed
def test_graph_is_freed_after_backward():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    x = minitl.Tensor(np.ones((5, 8), dtype=np.float32))
    loss = F.cross_entropy(model(x), minitl.Tensor(np.array([0, 1, 2, 3, 0])))
    nodes = _graph_nodes(loss)
    assert len(nodes) >= 4
    node_refs = [weakref.ref(fn) for fn in nodes]
    intermediate = weakref.ref(nodes[0].inputs[0])  # the logits tensor
    saved = [weakref.ref(a) for fn in nodes for a in vars(fn).values() if isinstance(a, np.ndarray) and a.ndim]
    del nodes
    loss.backward()
    assert loss._ctx is None
    assert all(r() is None for r in node_refs), "graph nodes outlive backward"
    assert intermediate() is None, "an intermediate tensor outlives backward"
    kept_alive = {id(x.data)} | {id(p.data) for p in model.parameters()}  # inputs and weights live on, of course
    assert saved and all(r() is None for r in saved if id(r()) not in kept_alive), "saved activations outlive backward"


def test_repeated_training_steps_do_not_grow_memory():
    from minitl.tensor import Function

    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = minitl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = minitl.Tensor(np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32))
    y = minitl.Tensor(np.arange(8) % 4)

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    def live(kind):
        gc.collect()
        return sum(issubclass(type(o), kind) for o in gc.get_objects())

    for _ in range(3):
        step()
    tensors, functions = live(minitl.Tensor), live(Function)  # (other tests' leftovers may be counted too)
    for _ in range(30):
        step()
    assert live(minitl.Tensor) <= tensors, "tensors pile up across steps"
    assert live(Function) <= functions, "graph nodes survive their backward"


# ============================================================================ initialisation and seeding
def test_linear_init_is_kaiming_uniform_like_torch():
    minitl.manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)  # gain √(2/(1+5)) · √(3/fan_in) = 1/√fan_in  (a = √5)
    w, b = layer.weight.numpy(), layer.bias.numpy()
    assert w.dtype == np.float32 and np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.99 * bound, "the whole interval is used"
    assert abs(w.var() - bound**2 / 3) < 0.03 * bound**2 / 3, "variance of U(-b, b) is b²/3"
    assert abs(w.mean()) < 0.01 * bound


def test_kaiming_and_xavier_bounds():
    t = minitl.Tensor(np.empty((64, 16, 3, 3), dtype=np.float32))
    assert init.fan_in_and_fan_out(t.shape) == (16 * 9, 64 * 9)
    init.kaiming_uniform_(t, nonlinearity="relu")
    assert np.abs(t.numpy()).max() <= math.sqrt(6 / (16 * 9))
    init.xavier_uniform_(t)
    assert np.abs(t.numpy()).max() <= math.sqrt(6 / (16 * 9 + 64 * 9))
    init.kaiming_normal_(t)
    assert abs(t.numpy().std() - math.sqrt(2 / (64 * 9))) < 0.05 * math.sqrt(2 / (64 * 9))


def test_init_bounds_match_torch():
    torch = pytest.importorskip("torch")
    for fan_in, fan_out in [(3, 5), (784, 512)]:
        theirs = torch.nn.Linear(fan_in, fan_out)
        ours = nn.Linear(fan_in, fan_out)
        for a, b in [(ours.weight, theirs.weight), (ours.bias, theirs.bias)]:
            assert np.abs(a.numpy()).max() <= 1 / math.sqrt(fan_in)
            assert np.abs(b.detach().numpy()).max() <= 1 / math.sqrt(fan_in)


def test_seeding_makes_initialisation_reproducible():
    minitl.manual_seed(42)
    a = Block().state_dict()
    minitl.manual_seed(42)
    b = Block().state_dict()
    minitl.manual_seed(43)
    c = Block().state_dict()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["layers.0.weight"], c["layers.0.weight"])


def test_evaluating_switches_to_eval_and_restores_each_modules_own_mode():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Dropout(0.5))
    model.train()
    model[2].eval()  # a mixed state: the Dropout alone already in eval mode
    before = [m.training for m in model.modules()]
    with model.evaluating():
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == before
    with pytest.raises(RuntimeError):
        with model.evaluating():
            raise RuntimeError("interrupted")
    assert [m.training for m in model.modules()] == before
