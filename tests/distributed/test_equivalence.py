"""Data parallelism is large-batch training: R ranks × batch b step like 1 process × batch R·b.

Tolerance: the averaged gradient (1/R) Σ_r mean_{B_r} ∇ℓ equals mean_B ∇ℓ in exact arithmetic;
in float32 the sums are taken in another order (per shard, then across ranks), which moves
the result by a few ulps per step: rtol 1e-5, atol 1e-6 after a few steps of SGD/AdamW.
"""
from __future__ import annotations

import numpy
import pytest

import minitl
import minitl.functional as F
from minitl import optim

from . import mpi_worker
from .conftest import HERE, needs_mpi, run_ranks, run_single

WORKER = HERE / "mpi_worker.py"
STEPS, GLOBAL_BATCH = 4, 32


def _load(path):
    with numpy.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


def _plain_large_batch(kind, opt_name, n_examples=STEPS * GLOBAL_BATCH):
    """The reference: no minitl.distributed at all, one process, batch 32 (BatchNorm: two ghost batches of 16)."""
    model = mpi_worker.build(kind)
    optimizer = mpi_worker.make_optimizer(opt_name, model.parameters())
    x, y = mpi_worker.data(kind, n_examples)
    order = numpy.random.default_rng([7, 0]).permutation(len(x))
    for step in range(-(-n_examples // GLOBAL_BATCH)):
        batch = order[step * GLOBAL_BATCH:(step + 1) * GLOBAL_BATCH]
        optimizer.zero_grad()
        if kind == "dense":
            F.cross_entropy(model(minitl.Tensor(x[batch])), y[batch]).backward()
        else:  # BatchNorm statistics local to each shard: each half normalised by its own statistics
            buffers_before = [b.data.copy() for b in model.buffers()]
            running = []
            for half in (batch[:16], batch[16:]):
                for b, saved in zip(model.buffers(), buffers_before):
                    b.data[...] = saved
                (F.cross_entropy(model(minitl.Tensor(x[half])), y[half]) * 0.5).backward()
                running.append([b.data.copy() for b in model.buffers()])
            for b, first, second in zip(model.buffers(), *running):
                b.data[...] = (first + second) / 2 if b.dtype.kind == "f" else first
        optimizer.step()
    return {k: minitl.backend.to_numpy(v) for k, v in model.state_dict().items()}


@needs_mpi
@pytest.mark.parametrize("kind", ["dense", "cnn"])
@pytest.mark.parametrize("opt_name", ["sgd", "adamw"])
def test_two_ranks_equal_one_process_with_twice_the_batch(tmp_path, kind, opt_name):
    out = tmp_path / "two.npz"
    run_ranks(2, [WORKER, kind, opt_name, STEPS, GLOBAL_BATCH, out])
    distributed, reference = _load(out), _plain_large_batch(kind, opt_name)
    assert distributed.keys() == reference.keys()
    start = {k: minitl.backend.to_numpy(v) for k, v in mpi_worker.build(kind).state_dict().items()}
    for name in reference:
        numpy.testing.assert_allclose(distributed[name], reference[name], rtol=1e-5, atol=1e-6, err_msg=name)
        if reference[name].dtype.kind == "f":  # the comparison means something: training moved it
            assert not numpy.array_equal(reference[name], start[name]), name


@needs_mpi
def test_four_ranks_oversubscribed_equal_one_process(tmp_path):
    out = tmp_path / "four.npz"
    run_ranks(4, [WORKER, "dense", "adamw", STEPS, GLOBAL_BATCH, out])
    distributed, reference = _load(out), _plain_large_batch("dense", "adamw")
    for name in reference:
        numpy.testing.assert_allclose(distributed[name], reference[name], rtol=1e-5, atol=1e-6, err_msg=name)


@needs_mpi
@pytest.mark.parametrize("ranks, n_examples", [(2, 3 * GLOBAL_BATCH + 5), (4, 2 * GLOBAL_BATCH + 3)])
def test_a_short_last_batch_split_unevenly_still_equals_one_process(tmp_path, ranks, n_examples):
    """The last batch (5 or 3 examples) splits 3+2 or 1+1+1+0: gradients weighted by each rank's count."""
    out = tmp_path / "uneven.npz"
    run_ranks(ranks, [WORKER, "dense", "sgd", STEPS, GLOBAL_BATCH, out, n_examples])
    distributed, reference = _load(out), _plain_large_batch("dense", "sgd", n_examples)
    for name in reference:
        numpy.testing.assert_allclose(distributed[name], reference[name], rtol=1e-5, atol=1e-6, err_msg=name)


@needs_mpi
def test_one_rank_under_mpiexec_equals_a_plain_process(tmp_path):
    run_ranks(1, [WORKER, "dense", "sgd", STEPS, GLOBAL_BATCH, tmp_path / "one.npz"])
    run_single([WORKER, "dense", "sgd", STEPS, GLOBAL_BATCH, tmp_path / "plain.npz"])
    one, plain = _load(tmp_path / "one.npz"), _load(tmp_path / "plain.npz")
    for name in plain:
        numpy.testing.assert_array_equal(one[name], plain[name])


def test_sgd_reference_is_not_trivially_equal_to_a_smaller_batch():
    """Guard for the equivalence test: batch 16 alone (one shard) gives other weights than batch 32."""
    model = mpi_worker.build("dense")
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    x, y = mpi_worker.data("dense", STEPS * GLOBAL_BATCH)
    order = numpy.random.default_rng([7, 0]).permutation(len(x))
    for step in range(STEPS):
        half = order[step * GLOBAL_BATCH:step * GLOBAL_BATCH + 16]
        optimizer.zero_grad()
        F.cross_entropy(model(minitl.Tensor(x[half])), y[half]).backward()
        optimizer.step()
    reference = _plain_large_batch("dense", "sgd")
    assert not numpy.allclose(model.state_dict()["0.weight"], reference["0.weight"], rtol=1e-5, atol=1e-6)
