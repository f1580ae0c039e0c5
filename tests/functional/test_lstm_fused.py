"""The fused LSTM layer (``F.lstm_layer``'s default, minitl/functional/_lstm_fused.py) against the
reference step loop (``fused=False``, which follows the gate equations line by line), against float64
finite differences and against PyTorch, with padded lengths, both directions, and the batch cut
into chunks that run on minitl's threads (``parallel.using_threads``), on every backend."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minitl
import minitl.functional as F
from _opcheck import check_grad, tensor, with_backend
from minitl.functional import _lstm_fused, parallel


@pytest.fixture(autouse=True, scope="module")
def _chunk_small_batches():
    """The tests' batches are tiny: let each thread's chunk be a single sample so the chunked path runs."""
    """...and a block of the big GEMMs two steps, so sequences have several blocks."""
    old, _lstm_fused.MIN_CHUNK_ROWS = _lstm_fused.MIN_CHUNK_ROWS, 1
    old_block, _lstm_fused.BLOCK_STEPS = _lstm_fused.BLOCK_STEPS, 2
    yield
    _lstm_fused.MIN_CHUNK_ROWS, _lstm_fused.BLOCK_STEPS = old, old_block


def test_small_batches_are_one_chunk_large_ones_one_per_thread():
    with parallel.using_threads(2):
        for n, min_rows, expected in ((32, 64, [(0, 32)]), (128, 64, [(0, 64), (64, 128)]), (3, 1, [(0, 1), (1, 3)])):
            old, _lstm_fused.MIN_CHUNK_ROWS = _lstm_fused.MIN_CHUNK_ROWS, min_rows
            try:
                assert _lstm_fused._chunks(np, n) == expected
            finally:
                _lstm_fused.MIN_CHUNK_ROWS = old


def _inputs(rng, T, N, I, H, dtype=np.float64, scale=0.5):
    x = rng.normal(size=(T, N, I)).astype(dtype)
    h0, c0 = rng.normal(size=(N, H)).astype(dtype), rng.normal(size=(N, H)).astype(dtype)
    w = [(scale * rng.normal(size=s)).astype(dtype) for s in ((4 * H, I), (4 * H, H), (4 * H,), (4 * H,))]
    return x, h0, c0, w


def _run(fused, x, h0, c0, w, lengths, reverse, upstream):
    """Outputs (y, h_T, c_T) and the gradients of Σ upstream ⊙ outputs w.r.t. x, h0, c0 and the weights."""
    leaves = [tensor(a, requires_grad=True) for a in (x, h0, c0, *w)]
    y, (h, c) = F.lstm_layer(leaves[0], (leaves[1], leaves[2]), *leaves[3:], lengths=lengths, reverse=reverse,
                             fused=fused)
    loss = sum(((o * tensor(u)).sum() for o, u in zip((y, h, c), upstream)), tensor(np.zeros((), x.dtype)))
    loss.backward()
    return [o.numpy() for o in (y, h, c)], [t.grad.numpy() for t in leaves]


@settings(with_backend, max_examples=12, deadline=None)
@given(T=st.integers(1, 5), N=st.integers(1, 6), I=st.integers(1, 3), H=st.integers(1, 4), reverse=st.booleans(),
       padded=st.booleans(), threads=st.sampled_from([1, 2, 3]), seed=st.integers(0, 2**16))
def test_fused_equals_the_reference_step_loop_values_and_every_gradient(backend, T, N, I, H, reverse, padded,
                                                                        threads, seed):
    rng = np.random.default_rng(seed)
    x, h0, c0, w = _inputs(rng, T, N, I, H)
    lengths = rng.integers(0, T + 1, size=N) if padded else None
    upstream = [rng.normal(size=s) for s in ((T, N, H), (N, H), (N, H))]
    reference = _run(False, x, h0, c0, w, lengths, reverse, upstream)
    with parallel.using_threads(threads):
        fused = _run(True, x, h0, c0, w, lengths, reverse, upstream)
    for name, a, b in zip(("y", "h_T", "c_T", "dx", "dh0", "dc0", "dW_ih", "dW_hh", "db_ih", "db_hh"),
                          reference[0] + reference[1], fused[0] + fused[1]):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("reverse", [False, True])
def test_fused_gradcheck_float64_with_padding_and_batch_chunks(backend, reverse):
    rng = np.random.default_rng(4)
    x, h0, c0, w = _inputs(rng, 4, 5, 2, 3)
    lengths = np.array([4, 1, 0, 3, 2])
    def layer(x, h0, c0, *w):
        y, (h, c) = F.lstm_layer(x, (h0, c0), *w, lengths=lengths, reverse=reverse)
        return y, h, c

    with parallel.using_threads(2):  # two chunks of the batch, each its own recurrence
        check_grad(layer, x, h0, c0, *w)


def test_fused_float32_matches_pytorch_with_padded_lengths_in_both_directions():
    torch = pytest.importorskip("torch", reason="PyTorch reference not installed (pip install torch==2.13.0)")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the reference only: its OpenMP threads spin for seconds on a loaded machine
    try:
        _fused_float32_against(torch)
    finally:
        torch.set_num_threads(old_threads)


def _fused_float32_against(torch):
    rng = np.random.default_rng(5)
    T, N, I, H = 9, 7, 4, 6
    theirs = torch.nn.LSTM(I, H, bidirectional=True)
    x = rng.normal(size=(T, N, I)).astype(np.float32)
    lengths = np.array([9, 3, 1, 9, 5, 2, 7])
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x, requires_grad=True), torch.tensor(lengths),
                                                     enforce_sorted=False)
    ref, (rh, rc) = theirs(packed)
    ref, _ = torch.nn.utils.rnn.pad_packed_sequence(ref, total_length=T)
    params = {k: v.detach().numpy() for k, v in theirs.named_parameters()}
    with parallel.using_threads(2):
        for d, suffix in enumerate(("", "_reverse")):
            w = [tensor(params[f"{n}_l0{suffix}"], requires_grad=True)
                 for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            y, (h, c) = F.lstm_layer(tensor(x), None, *w, lengths=lengths, reverse=bool(d))
            np.testing.assert_allclose(y.numpy(), ref[..., d * H:(d + 1) * H].detach().numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(h.numpy(), rh[d].detach().numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(c.numpy(), rc[d].detach().numpy(), rtol=1e-5, atol=1e-6)
            (y.sum() + c.sum()).backward()
            (ref[..., d * H:(d + 1) * H].sum() + rc[d].sum()).backward(retain_graph=True)
            for n, p in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), w):
                torch_grad = dict(theirs.named_parameters())[f"{n}_l0{suffix}"].grad.numpy()
                np.testing.assert_allclose(p.grad.numpy(), torch_grad, rtol=1e-4, atol=1e-5, err_msg=n + suffix)


def test_fused_is_bitwise_reproducible_for_a_fixed_thread_setting_and_survives_retain_graph(backend):
    rng = np.random.default_rng(6)
    x, h0, c0, w = _inputs(rng, 6, 8, 3, 5, dtype=np.float32)
    upstream = [rng.normal(size=s).astype(np.float32) for s in ((6, 8, 5), (8, 5), (8, 5))]
    for threads in (1, 2):
        with parallel.using_threads(threads):
            first, second = (_run(True, x, h0, c0, w, [6, 2, 5, 6, 1, 0, 3, 6], False, upstream) for _ in range(2))
        for a, b in zip(first[0] + first[1], second[0] + second[1]):
            np.testing.assert_array_equal(a, b)
    leaves = [tensor(a, requires_grad=True) for a in (x, *w)]
    y, _ = F.lstm_layer(leaves[0], None, *leaves[1:])
    y.sum().backward(retain_graph=True)
    once = [t.grad.numpy().copy() for t in leaves]
    y.sum().backward()  # the saved gates and states are intact: the second pass adds the same again
    for a, t in zip(once, leaves):
        np.testing.assert_allclose(t.grad.numpy(), 2 * a, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("reverse", [False, True])
def test_overlapped_block_gemms_equal_the_reference_and_the_serial_path_bitwise(backend, reverse):
    """One batch chunk, two threads: the block GEMMs run on the background thread beside the step loop
    (7 steps in blocks of 2); values and gradients equal the reference's, and bitwise the serial path's."""
    rng = np.random.default_rng(9)
    x, h0, c0, w = _inputs(rng, 7, 3, 2, 4)
    lengths = np.array([7, 2, 5])
    upstream = [rng.normal(size=s) for s in ((7, 3, 4), (3, 4), (3, 4))]
    reference = _run(False, x, h0, c0, w, lengths, reverse, upstream)
    old, _lstm_fused.MIN_CHUNK_ROWS = _lstm_fused.MIN_CHUNK_ROWS, 64  # 3 rows: one chunk
    try:
        with parallel.using_threads(2):
            xp = minitl.backend.get_array_module(tensor(x).data)
            assert _lstm_fused._overlapped(xp, _lstm_fused._chunks(xp, 3)) == (backend == "numpy")
            overlapped = _run(True, x, h0, c0, w, lengths, reverse, upstream)
        with parallel.using_threads(1):
            serial = _run(True, x, h0, c0, w, lengths, reverse, upstream)
    finally:
        _lstm_fused.MIN_CHUNK_ROWS = old
    for a, b, c in zip(reference[0] + reference[1], overlapped[0] + overlapped[1], serial[0] + serial[1]):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13)
        np.testing.assert_array_equal(b, c)


def test_fused_forward_under_no_grad_equals_with_grad():
    rng = np.random.default_rng(7)
    x, h0, c0, w = _inputs(rng, 5, 3, 2, 4)
    with minitl.no_grad():
        a, (ha, ca) = F.lstm_layer(tensor(x), (tensor(h0), tensor(c0)), *map(tensor, w))
    b, (hb, cb) = F.lstm_layer(tensor(x), (tensor(h0), tensor(c0)), *(tensor(v, requires_grad=True) for v in w))
    for u, v in ((a, b), (ha, hb), (ca, cb)):
        np.testing.assert_array_equal(u.numpy(), v.numpy())


def test_default_chunks_follow_blas_threads_counted_outside_the_one_thread_step_loops():
    """The thread count is looked up (and cached) before the step loops limit BLAS to one thread."""
    old = parallel.set_threads(None)
    try:
        rng = np.random.default_rng(8)
        x, h0, c0, w = _inputs(rng, 2, 4, 2, 3)
        F.lstm_layer(tensor(x), None, *map(tensor, w))
        assert parallel.threads() == max(1, parallel._blas_threads())
    finally:
        parallel.set_threads(old)
