"""Memory layout and work splitting shared by convolution, pooling and BatchNorm.

    out_size(size, k, s, p, d)   ⌊(size + 2p − d(k − 1) − 1) / s⌋ + 1: a window's output length
    channels_last(a)             whether an NCHW-shaped array sits in NHWC memory
    to_nhwc(xp, a), pad_nhwc     an (N, C, H, W) array as contiguous (N, H, W, C), zero-padded or not
    chunk_padder(xp, x, ...)     the same per batch chunk, by the thread that uses it
    batch_chunks(xp, n, bytes)   batch ranges whose workspace (im2col columns, Winograd tiles) fits
                                 the workspace limit and, on the CPU, about one cache block
    cache_blocks(xp, n, bytes)   ranges of ~1 MiB for element-wise passes that re-read their data
    zeros_like_block(xp, block)  a read-only array of zeros shaped like a block (ReLU's max(0, ·))

The public API of the ops is NCHW; inside, convolution works on NHWC memory and hands back an
NCHW-*shaped* view of it, which pooling and BatchNorm read without a layout copy
(:func:`channels_last` tells them).  The workspace cap (512 MiB) is set with
:func:`set_workspace_limit` or :func:`workspace`; the block sizes are module constants.
"""
from __future__ import annotations

import contextlib
import threading

from .. import backend
from . import parallel

_WORKSPACE_BYTES = 512 * 2**20
_CACHE_BLOCK_BYTES = 8 * 2**20
_MIN_GEMM_ROWS = 1024
_POINTWISE_BLOCK_BYTES = 2**20
_REUSE_MAX_BYTES = 32 * 2**20  # scratch buffers up to this size are kept between calls (see reused_buffer)
_REUSED = threading.local()
_ZEROS: dict = {}  # dtype -> a read-only zero array of at least one block, shared by the threads


# ============================================================================ the knobs
def set_workspace_limit(nbytes: int) -> int:
    """Cap the im2col column matrix (and Winograd's transformed tiles) at ``nbytes``; returns the old cap.

    Bigger convolutions are computed in batch chunks; a single sample is never split, so one
    sample's columns may exceed a very small cap.
    """
    global _WORKSPACE_BYTES
    if int(nbytes) < 1:
        raise ValueError(f"workspace limit must be a positive number of bytes, got {nbytes}")
    old, _WORKSPACE_BYTES = _WORKSPACE_BYTES, int(nbytes)
    return old


def workspace_limit() -> int:
    return _WORKSPACE_BYTES


@contextlib.contextmanager
def workspace(nbytes: int):
    """``with workspace(64 * 2**20): ...`` — a temporary workspace cap."""
    old = set_workspace_limit(nbytes)
    try:
        yield
    finally:
        set_workspace_limit(old)


# ============================================================================ layout
def out_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """⌊(size + 2·padding − dilation·(kernel − 1) − 1) / stride⌋ + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def channels_last(a) -> bool:
    """Whether an NCHW-shaped array sits in NHWC memory (channels contiguous)."""
    return a.ndim == 4 and a.shape[1] > 1 and a.strides[1] == a.itemsize and a.strides[3] == a.shape[1] * a.itemsize


def to_nhwc(xp, a):
    """An (N, C, H, W) array as a C-contiguous (N, H, W, C) array (a free view when already NHWC in memory)."""
    return xp.ascontiguousarray(a.transpose(0, 2, 3, 1))


def reused_buffer(xp, kind: str, size: int, dtype):
    """A flat scratch array of ``size`` elements for the calling thread, kept between calls on the CPU.

    Fresh memory costs a page fault per 4 KiB page on first touch: allocating the column and padding
    scratch anew for every convolution made ~2,000 of the ~4,600 page faults of a 64@32 forward +
    backward.  So each thread keeps its own buffers (one per ``kind``, grown as needed, at most
    ``_REUSE_MAX_BYTES`` each; larger ones are allocated per call), asked for by the thread that runs
    a chunk, inside it: a thread runs one chunk at a time, whichever job of a
    :func:`~minitl.functional.parallel.run_together` call it belongs to.  Only for work whose result
    never holds a view of the buffer.  A GPU allocates (CuPy has its own memory pool).
    """
    dtype = xp.dtype(dtype)
    if xp is not backend.NUMPY.xp or size * dtype.itemsize > _REUSE_MAX_BYTES:
        return xp.empty(size, dtype=dtype)
    cache = _REUSED.__dict__.setdefault("buffers", {})
    key = (kind, dtype.str)
    buffer = cache.get(key)
    if buffer is None or buffer.size < size:
        buffer = cache[key] = xp.empty(size, dtype=dtype)
    return buffer[:size]


def chunk_padder(xp, x, ph: int, pw: int, chunks, kind: str = "pad"):
    """``pad(n0, n1)``: samples n0..n1 of x (N, C, H, W) as zero-padded NHWC (n1 − n0, H + 2ph, W + 2pw, C).

    Each chunk is padded by the thread that uses it, into that thread's own buffer (:func:`reused_buffer`,
    kept between calls; its borders are zeroed at the thread's first chunk of the call, later chunks
    overwrite only the interior): the copy runs in parallel and the padded chunk is still in cache
    when its columns are copied out, instead of one serial pass over the whole batch.  Two padders
    whose chunks run in the same :func:`~minitl.functional.parallel.run_together` call need different
    ``kind`` s.  Without padding, the NHWC array itself is sliced.
    """
    if ph == pw == 0:
        nhwc = to_nhwc(xp, x)
        return lambda n0, n1: nhwc[n0:n1]
    N, C, H, W = x.shape
    source = x.transpose(0, 2, 3, 1)  # NHWC view (free when x sits in NHWC memory)
    step = max(n1 - n0 for n0, n1 in chunks)
    shape = (step, H + 2 * ph, W + 2 * pw, C)

    def bordered_buffer():  # a thread's buffer for this call, its zero border written once
        buffer = reused_buffer(xp, kind, step * shape[1] * shape[2] * C, x.dtype).reshape(shape)
        _zero_border(buffer, ph, pw, H, W)
        return buffer

    buffer_of_this_thread = per_thread(bordered_buffer)

    def pad(n0, n1):
        out = buffer_of_this_thread()[: n1 - n0]
        out[:, ph:ph + H, pw:pw + W] = source[n0:n1]
        return out

    return pad


def per_thread(make):
    """``get()``: the calling thread's own ``make()``, made at the thread's first ``get`` and kept while ``get``
    lives (one call's chunks).  A chunk's scratch is asked for by the thread that runs it; holding it
    for the call keeps what was written into it once (a zero border) even where :func:`reused_buffer`
    allocates afresh (a GPU, a buffer over ``_REUSE_MAX_BYTES``)."""
    made = {}

    def get():
        thread = threading.get_ident()
        if thread not in made:
            made[thread] = make()
        return made[thread]

    return get


def pad_nhwc(xp, x, ph: int, pw: int, extra_h: int = 0, extra_w: int = 0):
    """x (N, C, H, W) -> zero-padded NHWC (N, H + 2ph + extra_h, W + 2pw + extra_w, C), contiguous."""
    N, C, H, W = x.shape
    if ph == pw == extra_h == extra_w == 0:
        return to_nhwc(xp, x)
    Hp, Wp = H + 2 * ph + extra_h, W + 2 * pw + extra_w
    out = xp.empty((N, Hp, Wp, C), dtype=x.dtype)
    _zero_border(out, ph, pw, H, W)  # the interior is copied over
    out[:, ph:ph + H, pw:pw + W] = x.transpose(0, 2, 3, 1)
    return out


def _zero_border(out, ph: int, pw: int, H: int, W: int):
    """Zero everything of the NHWC ``out`` outside the interior [ph, ph + H) × [pw, pw + W)."""
    out[:, :ph] = 0
    out[:, ph + H:] = 0
    out[:, ph:ph + H, :pw] = 0
    out[:, ph:ph + H, pw + W:] = 0


def batch_chunks(xp, n: int, per_item_bytes: int, rows_per_item: int = 1 << 30):
    """Batch ranges [(start, stop), ...] for a workspace of ``per_item_bytes`` per sample.

    Never above the workspace limit.  On the CPU also about one cache block, 8 MiB shared by the
    threads that run chunks side by side (4 MiB each on two): the column copy then stays in the
    cache for the GEMM that reads it — measured ~1.3× faster for the whole im2col + GEMM than one
    big column matrix on one thread, and on two threads a ResNet-18 CIFAR training step at 4 MiB
    per chunk 3.12 s against 3.44 s at 8 MiB (2 MiB: 3.26 s; medians of 4 alternated rounds) —
    unless that leaves the GEMM fewer than ~1024 rows (``rows_per_item`` per sample), where it runs
    below full speed (2048 before: at 256@8 a chunk then held 32 samples, 19 MB of columns, and the
    two threads one chunk each; with 1024, a ResNet-18 CIFAR step 2.89 vs 3.26 s, ResNet-50 224
    batch 16 6.79 vs 6.97 s, in-process alternated medians; 512: 2.94 and 6.75 s).  At least one
    sample per chunk.
    """
    limit = max(1, _WORKSPACE_BYTES // max(1, per_item_bytes))
    step = limit
    if xp is backend.NUMPY.xp:
        block_bytes = _CACHE_BLOCK_BYTES // parallel.workers(xp, n)
        block = max(block_bytes // max(1, per_item_bytes), -(-_MIN_GEMM_ROWS // max(1, rows_per_item)))
        step = min(limit, block)
    step = max(1, min(n, step))
    return [(i, min(n, i + step)) for i in range(0, n, step)]


def cache_blocks(xp, n: int, per_item_bytes: int, block_bytes: int | None = None):
    """Ranges [(start, stop), ...] over n items (a leading axis) of about ``block_bytes`` each.

    Element-wise work that makes several passes over the same data (pooling's taps, BatchNorm's
    centre/scale/shift) runs block by block on the CPU, so the later passes read the block from
    the cache instead of memory.  A GPU gets one block.
    """
    if xp is not backend.NUMPY.xp:
        return [(0, n)]
    step = max(1, (block_bytes or _POINTWISE_BLOCK_BYTES) // max(1, per_item_bytes))
    return [(i, min(n, i + step)) for i in range(0, n, step)]


def zeros_like_block(xp, block):
    """A read-only array of zeros with ``block``'s shape and dtype: the other operand of ReLU's max(0, ·).

    NumPy's ``maximum(a, 0)`` with a scalar runs ~3-4× slower than against an array of zeros (measured
    on a 1 MiB block: 259 vs 88 µs; 16 MiB: 4.2 vs 3.0 ms), so block-wise ReLUs read one shared,
    cache-resident block of zeros instead.  A GPU gets the scalar 0.
    """
    if xp is not backend.NUMPY.xp:
        return 0
    zeros = _ZEROS.get(block.dtype.str)
    if zeros is None or zeros.size < block.size:
        zeros = xp.zeros(max(block.size, _POINTWISE_BLOCK_BYTES // block.itemsize), dtype=block.dtype)
        zeros.flags.writeable = False
        _ZEROS[block.dtype.str] = zeros
    return zeros[:block.size].reshape(block.shape)
