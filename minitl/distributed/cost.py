"""The cost of data parallelism: how long an all-reduce takes, and what it leaves of the speed-up.

One MPI call moving n bytes costs t(n) = α + β·n (α: latency, β = 1/bandwidth).  A ring
all-reduce over p nodes sends 2(p−1) messages of n/p bytes each (reduce-scatter, then
all-gather), so

    t_ring(n, p) = 2(p−1)·α + 2·(p−1)/p · n·β,

almost independent of p for large n: every node sends and receives about 2n bytes.  minitl
reduces after the whole backward pass (no overlap), so a step takes t_compute + t_ring and
the speed-up over one node, at the same per-node batch, is

    S(p) = p · t_compute / (t_compute + t_ring(n, p)),   efficiency E = S / p.
"""
from __future__ import annotations


def ring_allreduce_seconds(nbytes: float, nodes: int, alpha: float, beta: float) -> float:
    """t_ring(n, p) = 2(p−1)·α + 2(p−1)/p · n·β  (0 for a single node)."""
    if nodes < 1:
        raise ValueError(f"nodes must be >= 1, got {nodes}")
    return 2 * (nodes - 1) * alpha + 2 * (nodes - 1) / nodes * nbytes * beta


def data_parallel_speedup(compute_seconds: float, nbytes: float, nodes: int, alpha: float, beta: float) -> float:
    """S(p) = p · t_compute / (t_compute + t_ring): weak scaling, the per-node batch held fixed."""
    return nodes * compute_seconds / (compute_seconds + ring_allreduce_seconds(nbytes, nodes, alpha, beta))
