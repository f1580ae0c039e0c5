"""minitl's own threads over batch chunks (minitl/functional/parallel.py) and the conv paths that use them.

The threaded path (BLAS on one thread, minitl's threads taking whole chunks) must give what the
serial path gives (each GEMM on BLAS's threads) up to float rounding, and — for a fixed thread
setting — bitwise the same result every run (the chunks and the order of their sums do not depend
on which thread ran them).  Cases: im2col forward / weight gradient / stride-1 input gradient, the
strided col2im input gradient, Winograd, and many chunks under a small workspace.  PyTorch parity
on the threaded path where torch is installed.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import minitl
import minitl.functional as F
from minitl.functional import conv as conv_module
from minitl.functional import parallel


def _conv_fwd_bwd(x, w, stride, padding, threads, winograd=False, limit=None):
    xt, wt = minitl.Tensor(x, requires_grad=True), minitl.Tensor(w, requires_grad=True)
    with parallel.using_threads(threads), conv_module.winograd(winograd), \
            conv_module.workspace(limit or conv_module.workspace_limit()):
        y = F.conv2d(xt, wt, stride=stride, padding=padding)
        g = np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape)
        y.backward(g)
    return y.numpy(), xt.grad.numpy(), wt.grad.numpy()


CASES = [  # (N, C, O, H, k, stride, winograd, workspace limit)
    pytest.param(8, 16, 24, 24, 3, 1, False, None, id="im2col-3x3"),
    pytest.param(8, 16, 24, 24, 3, 2, False, None, id="im2col-3x3-stride2-col2im"),
    pytest.param(8, 32, 32, 16, 3, 1, True, None, id="winograd"),
    pytest.param(7, 16, 16, 24, 3, 1, False, 2**20, id="many-chunks-small-workspace"),
    pytest.param(9, 16, 16, 20, 3, 1, True, 2**20, id="winograd-many-chunks"),
    pytest.param(8, 64, 32, 16, 1, 2, False, None, id="1x1-stride2"),
]


@pytest.mark.parametrize("N, C, O, H, k, stride, winograd, limit", CASES)
def test_threaded_chunks_equal_serial_path_and_are_reproducible(N, C, O, H, k, stride, winograd, limit):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = (rng.standard_normal((O, C, k, k)) / np.sqrt(C * k * k)).astype(np.float32)
    serial = _conv_fwd_bwd(x, w, stride, k // 2, 1, winograd, limit)
    threaded = _conv_fwd_bwd(x, w, stride, k // 2, 2, winograd, limit)
    again = _conv_fwd_bwd(x, w, stride, k // 2, 2, winograd, limit)
    for name, a, b, c in zip(("y", "dx", "dw"), serial, threaded, again):
        scale = np.abs(a).max()
        np.testing.assert_allclose(b, a, rtol=0, atol=2e-5 * scale, err_msg=f"{name}: threaded vs serial")
        np.testing.assert_array_equal(b, c, err_msg=f"{name}: two threaded runs differ")


def test_threaded_conv_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 16, 24, 24)).astype(np.float32)
    w = (rng.standard_normal((24, 16, 3, 3)) / 12).astype(np.float32)
    y, dx, dw = _conv_fwd_bwd(x, w, 2, 1, 2)
    xt, wt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(w).requires_grad_(True)
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # the reference only: its OpenMP threads spin for seconds on a loaded machine
    try:
        yt = torch.nn.functional.conv2d(xt, wt, stride=2, padding=1)
        yt.backward(torch.from_numpy(np.cos(np.arange(yt.numel(), dtype=np.float32)).reshape(yt.shape)))
    finally:
        torch.set_num_threads(old)
    for a, b in ((y, yt), (dx, xt.grad), (dw, wt.grad)):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-4, atol=1e-4)


def test_run_chunks_keeps_order_uses_threads_and_serial_when_one():
    seen = set()

    def work(chunk, slot):
        seen.add((threading.current_thread().name.startswith("minitl-chunk"), slot))
        time.sleep(0.01)  # long enough for both threads to take chunks
        return chunk * 10

    with parallel.using_threads(2):
        assert parallel.run_chunks(np, work, range(7)) == [i * 10 for i in range(7)]
        # slot 0 is the calling thread, slot 1 the helper thread
        assert seen == {(False, 0), (True, 1)}
    seen.clear()
    with parallel.using_threads(1):
        assert parallel.run_chunks(np, work, range(3)) == [0, 10, 20]
        assert seen == {(False, 0)}


def test_one_helper_pool_serves_calls_of_any_chunk_count():
    with parallel.using_threads(4):
        parallel.run_chunks(np, lambda chunk, slot: chunk, range(8))
        pool = parallel._POOL
        for n in (2, 3, 8, 2):  # fewer chunks than threads: fewer jobs, the same pool
            assert parallel.run_chunks(np, lambda chunk, slot: chunk, range(n)) == list(range(n))
            assert parallel._POOL is pool and pool._max_workers == 3


def test_run_together_finishes_each_job_with_its_own_results_in_order():
    """Several jobs in one fork-join: each job's finish gets exactly its chunks' results, in its chunks'
    order; a job without chunks (already computed) just finishes; one thread takes chunks of both jobs."""
    ran = []

    def run(tag):
        def chunk(c, slot):
            ran.append((tag, threading.get_ident()))
            time.sleep(0.005)
            return (tag, c)
        return chunk

    first = parallel.Work(list(range(5)), run("a"), lambda results: ("A", results))
    done = parallel.Work([], None, lambda results: ("done", results))
    second = parallel.Work(list(range(3)), run("b"), lambda results: ("B", results))
    with parallel.using_threads(2):
        out = parallel.run_together(np, first, done, second)
    assert out == [("A", [("a", i) for i in range(5)]), ("done", []), ("B", [("b", i) for i in range(3)])]
    assert len({ident for _, ident in ran}) == 2  # both threads worked
    assert any({("a", t), ("b", t)} <= set(ran) for _, t in ran)  # a thread took chunks of both jobs


def test_run_chunks_waits_for_the_helper_when_the_caller_fails():
    finished = []

    def work(chunk, slot):
        if slot == 0:
            raise RuntimeError("chunk failed")
        time.sleep(0.05)
        finished.append(chunk)
        return chunk

    with parallel.using_threads(2):
        with pytest.raises(RuntimeError, match="chunk failed"):
            parallel.run_chunks(np, work, range(4))
    assert finished  # the helper's chunk was done before run_chunks raised


def test_spread_cuts_evenly_and_leaves_small_work_alone():
    big = parallel.MIN_SPLIT_BYTES
    with parallel.using_threads(2):
        assert parallel.spread(np, [(0, 64)], big) == [(0, 32), (32, 64)]
        assert parallel.spread(np, [(0, 3), (3, 6), (6, 7)], big) == [(0, 1), (1, 3), (3, 5), (5, 7)]
        assert parallel.spread(np, [(0, 64)], 1) == [(0, 64)]  # 64 bytes of work: not worth a thread
    with parallel.using_threads(1):
        assert parallel.spread(np, [(0, 64)], big) == [(0, 64)]


def test_set_threads_rejects_bad_values():
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads"):
            parallel.set_threads(bad)
