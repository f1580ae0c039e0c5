"""The pieces of data parallelism, in one process: buckets, the sampler, the optimizer wrapper."""
from __future__ import annotations

import numpy
import pytest

import minitl
from minitl import distributed, nn, optim
from minitl.distributed import Communicator, DistributedSampler, GradientBuckets


class RecordingComm(Communicator):
    """A stand-in world of ``size`` ranks whose peers all hold ``peer_factor`` × this rank's buffer."""

    def __init__(self, size: int, peer_factor: float = 1.0):
        super().__init__(None)
        self.size, self.peer_factor, self.calls = size, peer_factor, []

    def allreduce_sum_(self, buffer) -> None:
        self.calls.append(buffer.size)
        buffer *= 1 + (self.size - 1) * self.peer_factor


def _params_with_grads(shapes, missing=()):
    rng = numpy.random.default_rng(0)
    params = [nn.Parameter(rng.standard_normal(s).astype(numpy.float32)) for s in shapes]
    for i, p in enumerate(params):
        if i not in missing:
            p.grad = minitl.Tensor(rng.standard_normal(p.shape).astype(numpy.float32))
    return params


def test_buckets_are_size_bounded_and_one_allreduce_each():
    params = _params_with_grads([(100,), (50, 2), (300,), (10,)])  # 400, 400, 1200, 40 bytes
    buckets = GradientBuckets(params, bucket_bytes=800)
    assert [[p.shape for p in b] for b in buckets.buckets] == [[(100,), (50, 2)], [(300,)], [(10,)]]
    comm = RecordingComm(size=4)
    buckets.allreduce_mean_(comm)
    assert comm.calls == [200, 300, 10]  # one call per bucket, never one per parameter


def test_allreduce_mean_averages_and_missing_gradients_count_as_zero():
    params = _params_with_grads([(3, 4), (5,), (2, 2)], missing=(1,))
    before = [None if p.grad is None else p.grad.data.copy() for p in params]
    # peers hold 3× this rank's gradient: mean over 2 ranks = (g + 3g) / 2 = 2g
    GradientBuckets(params).allreduce_mean_(RecordingComm(size=2, peer_factor=3.0))
    numpy.testing.assert_allclose(params[0].grad.data, 2 * before[0], rtol=1e-6)
    numpy.testing.assert_array_equal(params[1].grad.data, numpy.zeros(5, numpy.float32))
    numpy.testing.assert_allclose(params[2].grad.data, 2 * before[2], rtol=1e-6)


def test_frozen_parameters_are_not_packed():
    params = _params_with_grads([(4,), (6,)])
    params[0].requires_grad = False
    assert [p.shape for p in GradientBuckets(params).params] == [(6,)]


def test_single_process_world_is_an_identity():
    comm = Communicator()
    assert (comm.rank, comm.size, comm.distributed) == (0, 1, False)
    params = _params_with_grads([(4,)])
    before = params[0].grad.data.copy()
    GradientBuckets(params).allreduce_mean_(comm)
    numpy.testing.assert_array_equal(params[0].grad.data, before)
    assert comm.allreduce_scalars([2.0, 3.0]).tolist() == [2.0, 3.0]


@pytest.mark.parametrize("n, size, batch", [(64, 2, 16), (70, 2, 16), (100, 4, 8), (9, 3, 4)])
def test_sampler_shards_are_disjoint_and_cover_each_global_batch(n, size, batch):
    samplers = [DistributedSampler(n, r, size, batch, seed=3) for r in range(size)]
    single = DistributedSampler(n, 0, 1, size * batch, seed=3)
    for epoch in range(2):
        per_rank = [list(s.batches(epoch)) for s in samplers]
        global_batches = list(single.batches(epoch))
        assert all(len(b) == len(global_batches) for b in per_rank)
        for step, expected in enumerate(global_batches):
            shards = [per_rank[r][step] for r in range(size)]
            assert all(len(s) == batch for s in shards)
            numpy.testing.assert_array_equal(numpy.concatenate(shards), expected)
        seen = numpy.concatenate([numpy.concatenate(b) for b in per_rank])
        assert set(seen.tolist()) == set(range(n))  # every example is used (the tail wraps around)
        if n % (size * batch) == 0:
            assert len(seen) == n and len(set(seen.tolist())) == n  # and none twice
    assert not numpy.array_equal(samplers[0].order(0), samplers[0].order(1))  # a new order each epoch


def test_sampler_refuses_a_rank_outside_the_world():
    with pytest.raises(ValueError, match="rank 2 is outside a world of size 2"):
        DistributedSampler(10, 2, 2, 4)


def test_distributed_optimizer_wraps_any_optimizer():
    model = nn.Linear(3, 2)
    inner = optim.Adam(model.parameters(), lr=0.1)
    wrapped = distributed.DistributedOptimizer(inner, RecordingComm(size=2))
    x = minitl.Tensor(numpy.ones((4, 3), numpy.float32))
    (model(x) ** 2).sum().backward()
    grads = [p.grad.data.copy() for p in model.parameters()]
    reference = nn.Linear(3, 2)
    reference.load_state_dict(model.state_dict())
    ref_opt = optim.Adam(reference.parameters(), lr=0.1)
    for p, g in zip(reference.parameters(), grads):
        p.grad = minitl.Tensor(g)  # peers equal: the mean is this rank's gradient
    wrapped.step()
    ref_opt.step()
    for a, b in zip(model.parameters(), reference.parameters()):
        numpy.testing.assert_allclose(a.data, b.data, rtol=1e-6)
    assert wrapped.state_dict().keys() == inner.state_dict().keys()
    assert wrapped.param_groups is inner.param_groups
