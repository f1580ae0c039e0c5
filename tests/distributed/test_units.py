"""The pieces of data parallelism, in one process: buckets, the sampler, the optimizer wrapper."""
from __future__ import annotations

import numpy
import pytest

import minitl
from minitl import distributed, nn, optim
from minitl.data.loader import DataLoader
from minitl.distributed import Communicator, GradientBuckets

from .mpi_worker import Arrays


class RecordingComm(Communicator):
    """A stand-in world of ``size`` ranks whose peers all hold ``peer_factor`` × this rank's buffer."""

    def __init__(self, size: int, peer_factor: float = 1.0, peer=None):
        super().__init__(None)
        self.size, self.peer_factor, self.calls = size, peer_factor, []
        self.peer = peer  # optional: buffer -> what each peer holds

    def allreduce_sum_(self, buffer) -> None:
        self.calls.append(buffer.size)
        if self.peer is not None:
            buffer += (self.size - 1) * self.peer(buffer.copy())
        else:
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
    assert comm.calls == [200 + 2, 300, 10]  # one call per bucket, never one per parameter (+2: count and loss)


def test_allreduce_mean_averages_and_missing_gradients_count_as_zero():
    params = _params_with_grads([(3, 4), (5,), (2, 2)], missing=(1,))
    before = [None if p.grad is None else p.grad.data.copy() for p in params]
    def peer(buffer):  # the peer's gradients are 3× ours; its count is 1 (and its loss 0) as ours
        buffer[:-2] *= 3
        return buffer

    # mean over 2 ranks = (g + 3g) / 2 = 2g
    GradientBuckets(params).allreduce_mean_(RecordingComm(size=2, peer=peer))
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


@pytest.mark.parametrize("n, size, batch", [(64, 2, 32), (70, 2, 32), (100, 4, 32), (9, 3, 4), (5, 4, 4)])
def test_loader_shards_are_disjoint_and_make_up_each_global_batch(n, size, batch):
    data = Arrays(numpy.arange(n), numpy.arange(n))
    single = DataLoader(data, batch_size=batch, shuffle=True, seed=3)
    shards = [DataLoader(data, batch_size=batch, shuffle=True, seed=3, shard=(r, size)) for r in range(size)]
    for epoch in range(2):
        expected = list(single.batch_indices(epoch))
        per_rank = [list(s.batch_indices(epoch)) for s in shards]
        assert all(len(b) == len(expected) for b in per_rank)  # every rank takes part in every step
        for step, whole in enumerate(expected):
            parts = [per_rank[r][step] for r in range(size)]
            numpy.testing.assert_array_equal(numpy.concatenate(parts), whole)
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert not numpy.array_equal(single.order(0), single.order(1))  # a new order each epoch


def test_loader_refuses_a_rank_outside_the_world():
    with pytest.raises(ValueError, match="rank 2 is outside a world of size 2"):
        DataLoader(Arrays(numpy.arange(4), numpy.arange(4)), shard=(2, 2))


def test_weighted_average_uses_each_ranks_example_count():
    """Σ n_r g_r / Σ n_r and the global mean loss, from one Allreduce per bucket."""
    params = _params_with_grads([(6,)])
    g = params[0].grad.data.copy()
    comm = RecordingComm(size=2, peer_factor=3.0)  # the peer's packed buffer is 3x ours: 3·(n·g, n, n·J)
    loss = GradientBuckets(params).allreduce_mean_(comm, weight=5, loss=0.25)
    # Σ n_r g_r = 4·5·g, Σ n_r = 4·5  →  g;  Σ n_r J_r / Σ n_r = 0.25
    numpy.testing.assert_allclose(params[0].grad.data, g, rtol=1e-6)
    assert loss == pytest.approx(0.25)
    assert comm.calls == [6 + 2]  # the counts ride in the first (only) bucket


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


class FakeMPI:
    """Just enough of an mpi4py communicator: 2 ranks whose peer holds the same buffer (sum = 2x)."""

    def Get_rank(self):  # noqa: N802 - mpi4py's names
        return 0

    def Get_size(self):  # noqa: N802
        return 2

    def Allreduce(self, send, receive):  # noqa: N802
        assert isinstance(receive, numpy.ndarray), "MPI must be handed host memory without CUDA-aware MPI"
        receive *= 2


def test_device_gradients_are_reduced_through_one_host_copy_per_bucket(backend):
    """With CuPy arrays and an MPI that is not CUDA-aware, each bucket goes to the host once and back once."""
    import fakecupy  # noqa: PLC0415

    comm = Communicator(FakeMPI(), cuda_aware=False)
    params = _params_with_grads([(3, 4), (5,)])
    grads = [minitl.backend.to_numpy(p.grad.data).copy() for p in params]
    assert all(minitl.backend.backend_of(p.grad.data).name == backend for p in params)  # made on the backend
    with fakecupy.counting() as moved:
        GradientBuckets(params).allreduce_mean_(comm)  # the peer's gradient equals ours: the mean is ours
    for p, g in zip(params, grads):
        assert minitl.backend.backend_of(p.grad.data).name == backend
        numpy.testing.assert_allclose(minitl.backend.to_numpy(p.grad.data), g, rtol=1e-6)
    if backend == "fakecupy":
        # one bucket: one copy each way, and one read of the summed example count and loss
        assert (moved.d2h, moved.h2d) == (2, 1)


def test_ring_allreduce_model_against_hand_counts():
    alpha, beta = 1e-5, 1e-9
    assert distributed.ring_allreduce_seconds(1e6, 1, alpha, beta) == 0.0
    assert distributed.ring_allreduce_seconds(1e6, 2, alpha, beta) == pytest.approx(2 * alpha + 1e6 * beta)
    assert distributed.ring_allreduce_seconds(1e6, 4, alpha, beta) == pytest.approx(6 * alpha + 1.5e6 * beta)
    # compute 1 s, all-reduce 2α + nβ = 0.25 s: S(2) = 2 / 1.25
    assert distributed.data_parallel_speedup(1.0, 0.25e9 - 2e4, 2, alpha, beta) == pytest.approx(1.6)
