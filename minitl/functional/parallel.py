"""minitl's own threads for batch-chunked work on the CPU (convolution's im2col + GEMM chunks).

    run_chunks(xp, fn, chunks)   [fn(chunk, slot) for chunk in chunks], on up to ``threads()`` threads,
                                 each GEMM single-threaded; the results in the chunks' order
    run_together(xp, *works)     several independent chunked jobs (:class:`Work`) in one run_chunks call
    overlaps(xp)                 whether :func:`in_background` has a thread of its own (else: serial)
    in_background(fn)            fn() on one background thread, jobs in submission order, while the
                                 caller goes on (a recurrence's big GEMMs beside its step loop)

Why: OpenBLAS parallelises *each* GEMM call over its threads and synchronises them at every
call.  A cache-blocked convolution makes many calls (one per batch chunk), and when other
processes share the cores a descheduled BLAS thread stalls every one of them (measured under load:
the 64@32 forward+backward at 7× its GEMM time).  Here BLAS runs on one thread and minitl's
threads take whole chunks (column copy + GEMM, both release the GIL): no barrier per call, and a
slow thread delays only its own chunks.  ``slot`` (0 … threads − 1) names the thread, so each can
own a scratch buffer.

Reproducibility: the chunks and the order in which their results are combined do not depend on
which thread ran them, so for a fixed ``set_threads`` setting the results are bitwise the same
from run to run.  ``set_threads(1)`` is the serial path (each GEMM on BLAS's own threads).

The default thread count is BLAS's own (``OPENBLAS_NUM_THREADS`` … as threadpoolctl reports it;
1 without threadpoolctl), so a process limited to one BLAS thread stays on one core.  A GPU
always takes the serial path (its own parallelism is inside each kernel).
"""
from __future__ import annotations

import contextlib
import itertools
import threading
from typing import Callable, NamedTuple
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor

from .. import backend

_THREADS: int | None = None  # None: BLAS's thread count, looked up on first use
_POOL: ThreadPoolExecutor | None = None
_LOCAL = threading.local()
_BACKGROUND: ThreadPoolExecutor | None = None


def _blas_threads() -> int:
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415 (optional)
    except ImportError:
        return 1
    counts = [p.get("num_threads") or 1 for p in threadpool_info() if p.get("user_api") == "blas"]
    return max(counts) if counts else 1


def threads() -> int:
    """How many threads batch-chunked CPU work uses (1: serial, BLAS threads each call)."""
    global _THREADS
    if _THREADS is None:
        _THREADS = max(1, _blas_threads())
    return _THREADS


def set_threads(n: int | None) -> int | None:
    """Set minitl's thread count for batch-chunked work (None: BLAS's own count); returns the old setting."""
    global _THREADS, _POOL
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ValueError(f"threads must be a positive int or None, got {n!r}")
    old = _THREADS
    _THREADS = n
    if _POOL is not None and _POOL._max_workers != max(1, threads() - 1):  # sized by threads(): made anew
        _POOL.shutdown(wait=True)
        _POOL = None
    return old


@contextlib.contextmanager
def using_threads(n: int | None):
    """``with using_threads(1): ...`` — a temporary thread setting."""
    old = set_threads(n)
    try:
        yield
    finally:
        set_threads(old)


def _pool() -> ThreadPoolExecutor:
    """The threads() − 1 helper threads that run slots 1, 2 … of :func:`run_chunks` (slot 0 is the caller
    itself); a call with fewer chunks than threads submits fewer jobs to the same pool."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(1, threads() - 1), thread_name_prefix="minitl-chunk")
    return _POOL


def workers(xp, n_chunks: int) -> int:
    """The threads :func:`run_chunks` will use for ``n_chunks`` chunks on this backend (1 = serial)."""
    if xp is not backend.NUMPY.xp or getattr(_LOCAL, "inside", False):
        return 1
    return max(1, min(threads(), n_chunks))


MIN_SPLIT_BYTES = 2**20  # below ~1 MiB of workspace in all, a thread hand-off costs more than it saves


def spread(xp, chunks: list, per_item_bytes: int) -> list:
    """Batch ranges re-cut so the threads share them evenly: fewer than 4 per thread and not a
    multiple of the thread count -> the next multiple, of equal size (never larger than before).
    Small work (under :data:`MIN_SPLIT_BYTES` of workspace in all) stays as it is."""
    k = workers(xp, 1 << 30)
    m, n = len(chunks), chunks[-1][1] if chunks else 0
    if k == 1 or m % k == 0 or m >= 4 * k or n < k or n * per_item_bytes < MIN_SPLIT_BYTES:
        return chunks
    pieces = min(n, -(-m // k) * k)
    bounds = [n * i // pieces for i in range(pieces + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(pieces)]


def run_chunks(xp, fn, chunks) -> list:
    """[fn(chunk, slot) for chunk in chunks], the chunks spread over :func:`workers` threads.

    Each of the k threads (its ``slot``: 0 is the calling thread, 1 … k − 1 the pool's helpers) takes the
    next chunk not yet taken, so a thread the system descheduled does fewer chunks; the results
    still come back in the chunks' order.  The caller working as slot 0 instead of waiting saves a
    thread hand-off per call (measured: 294 → 144 µs for four empty chunks on two threads).
    Inside, BLAS is single-threaded; nested calls run serially.
    """
    chunks = list(chunks)
    k = workers(xp, len(chunks))
    if k == 1:
        return [fn(chunk, 0) for chunk in chunks]
    counter = itertools.count()  # next() on it is atomic under the GIL

    def slot_work(slot):
        _LOCAL.inside = True
        done = []
        try:
            for i in iter(lambda: next(counter), None):
                if i >= len(chunks):
                    break
                done.append((i, fn(chunks[i], slot)))
        finally:
            _LOCAL.inside = False
        return done

    out = [None] * len(chunks)
    with backend.single_thread_blas(xp):
        helpers = [_pool().submit(slot_work, slot) for slot in range(1, k)]
        try:
            mine = slot_work(0)  # the calling thread is slot 0: one thread hand-off fewer per call
        finally:
            futures.wait(helpers)  # every helper has finished, even when the caller's chunk failed
        for part in [mine] + [helper.result() for helper in helpers]:
            for i, value in part:
                out[i] = value
    return out


class Work(NamedTuple):
    """A chunked job not yet run: ``run(chunk, slot)`` for each of ``chunks``, then ``finish(results)`` (the
    results in the chunks' order) gives the job's result."""
    chunks: list
    run: Callable
    finish: Callable


def run_together(xp, *works: Work) -> list:
    """[w.finish([w.run(c, slot) for c in w.chunks]) for w in works], all chunks in one :func:`run_chunks` call.

    Independent jobs (a convolution's dJ/dW and dJ/dx) then share one fork-join: a thread done with the
    last chunks of one job takes chunks of the next instead of waiting for the other thread to finish
    its last chunk (measured in a ResNet-18 step: ~80 thread-ms of such waits after the weight
    gradients' few large chunks).  Each job's results still come back in its chunks' order, so the
    results are the same bits as running the jobs one after another.
    """
    items = [(j, chunk) for j, work in enumerate(works) for chunk in work.chunks]
    results = run_chunks(xp, lambda item, slot: works[item[0]].run(item[1], slot), items)
    out, start = [], 0
    for work in works:
        out.append(work.finish(results[start:start + len(work.chunks)]))
        start += len(work.chunks)
    return out


def overlaps(xp) -> bool:
    """Whether work can overlap the caller on a thread of its own (NumPy, ≥ 2 threads, not inside a chunk)."""
    return workers(xp, 2) > 1


def in_background(fn):
    """Submit fn() to the one background thread; jobs run one at a time in submission order.

    Returns a future (``.result()`` waits and re-raises).  Used only where :func:`overlaps` is true:
    the caller keeps BLAS on one thread meanwhile, so the two threads use the two cores.
    """
    global _BACKGROUND
    if _BACKGROUND is None:
        _BACKGROUND = ThreadPoolExecutor(max_workers=1, thread_name_prefix="minitl-background")
    return _BACKGROUND.submit(fn)
