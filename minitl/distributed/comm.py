"""The communicator: the few collective operations data-parallel training needs, on MPI.

minitl does not implement message passing; it wraps mpi4py (any MPI: MPICH, Open MPI, a
vendor's).  ``world()`` returns the communicator of the running job — MPI's COMM_WORLD when
the process was started by ``mpiexec``/``srun`` with more than one rank, else a single-process
communicator whose collectives are identities, so the same training code runs everywhere.

Arrays: collectives take NumPy arrays.  A CuPy buffer is handed to MPI directly when the MPI
library is CUDA-aware (``MINITL_CUDA_AWARE_MPI=1``), else copied to the host once, reduced,
and copied back — once per bucket, not once per parameter.
"""
from __future__ import annotations

import os

import numpy

from .. import backend

# variables the common launchers set in every rank's environment
_LAUNCHER_VARIABLES = ("PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS",
                       "HYDI_CONTROL_FD")


class RankFailedError(RuntimeError):
    """A collective failed: another rank died or the MPI job is being torn down."""


def launched_by_mpi() -> bool:
    """True when a launcher (mpiexec, srun) started this process as one rank of a job."""
    return any(name in os.environ for name in _LAUNCHER_VARIABLES)


class Communicator:
    """rank, size, barrier, broadcast and sum-all-reduce over an mpi4py communicator (or none).

    ``Communicator()`` is the single-process stand-in (rank 0 of 1); ``Communicator(MPI.COMM_WORLD)``
    the real one.  ``cuda_aware``: pass device buffers to MPI directly (default from the
    ``MINITL_CUDA_AWARE_MPI`` environment variable).
    """

    def __init__(self, mpi_comm=None, cuda_aware: bool | None = None):
        self.mpi_comm = mpi_comm
        self.rank = 0 if mpi_comm is None else mpi_comm.Get_rank()
        self.size = 1 if mpi_comm is None else mpi_comm.Get_size()
        if cuda_aware is None:
            cuda_aware = os.environ.get("MINITL_CUDA_AWARE_MPI", "0") == "1"
        self.cuda_aware = cuda_aware

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def __repr__(self) -> str:
        return f"Communicator(rank={self.rank}, size={self.size})"

    # ----------------------------------------------------------------- collectives
    def barrier(self) -> None:
        if self.distributed:
            self._guarded(self.mpi_comm.Barrier)

    def allreduce_sum_(self, buffer) -> None:
        """buffer ← Σ_ranks buffer, in place (a contiguous NumPy or CuPy array)."""
        if not self.distributed:
            return
        if isinstance(buffer, numpy.ndarray) or self.cuda_aware:
            self._guarded(self.mpi_comm.Allreduce, _in_place(), buffer)
            return
        host = backend.to_numpy(buffer)  # one device->host copy per bucket
        self._guarded(self.mpi_comm.Allreduce, _in_place(), host)
        buffer[...] = backend.get_array_module(buffer).asarray(host)

    def broadcast_(self, buffer, root: int = 0) -> None:
        """buffer ← root's buffer, in place."""
        if not self.distributed:
            return
        if isinstance(buffer, numpy.ndarray) or self.cuda_aware:
            self._guarded(self.mpi_comm.Bcast, buffer, root)
            return
        host = numpy.ascontiguousarray(backend.to_numpy(buffer))
        self._guarded(self.mpi_comm.Bcast, host, root)
        buffer[...] = backend.get_array_module(buffer).asarray(host)

    def allreduce_scalars(self, values) -> numpy.ndarray:
        """Σ_ranks of a few numbers (metric sums and counts), as float64."""
        array = numpy.array(values, dtype=numpy.float64)
        self.allreduce_sum_(array)
        return array

    def gather_rows(self, rows: numpy.ndarray, root: int = 0) -> numpy.ndarray | None:
        """The ranks' row blocks (N_r, ...) concatenated in rank order at ``root`` (None elsewhere).

        Plain buffers (Gatherv), no pickle: every rank must pass rows of the same trailing shape and dtype.
        """
        rows = numpy.ascontiguousarray(rows)
        if not self.distributed:
            return rows
        counts = numpy.zeros(self.size, dtype=numpy.float64)
        counts[self.rank] = len(rows)
        self.allreduce_sum_(counts)
        row_size = int(numpy.prod(rows.shape[1:], dtype=numpy.int64))
        sizes = (counts.astype(numpy.int64) * row_size).tolist()
        out = None
        if self.rank == root:
            out = numpy.empty((int(counts.sum()),) + rows.shape[1:], dtype=rows.dtype)
        mpi_type = _mpi_type(rows.dtype)
        receive = [out, (sizes, None), mpi_type] if self.rank == root else None
        self._guarded(self.mpi_comm.Gatherv, [rows, mpi_type], receive, root)
        return out

    def broadcast_array(self, array: numpy.ndarray | None, root: int = 0) -> numpy.ndarray:
        """root's NumPy array on every rank (others pass None): shape and dtype travel first, as numbers."""
        if not self.distributed:
            return array
        header = numpy.zeros(10, dtype=numpy.int64)  # [ndim, dtype code, shape...]
        if self.rank == root:
            array = numpy.ascontiguousarray(array)
            if array.ndim > 8:
                raise ValueError(f"broadcast_array: at most 8 dimensions, got {array.ndim}")
            header[0], header[1] = array.ndim, _DTYPES.index(array.dtype.str)
            header[2:2 + array.ndim] = array.shape
        self.broadcast_(header, root)
        if self.rank != root:
            ndim = int(header[0])
            array = numpy.empty(tuple(int(n) for n in header[2:2 + ndim]), dtype=numpy.dtype(_DTYPES[int(header[1])]))
        self.broadcast_(array, root)
        return array

    def _guarded(self, call, *args):
        try:
            return call(*args)
        except Exception as error:  # MPI.Exception: a peer is gone or the job is aborting
            raise RankFailedError(f"rank {self.rank}/{self.size}: MPI collective failed ({error}); "
                                  "another rank has probably died - the last checkpoint is intact, "
                                  "rerun with --resume (at any number of ranks)") from error


_DTYPES = ["<f4", "<f8", "<i8", "<i4", "|u1", "<f2"]


def _mpi_type(dtype):
    from mpi4py import MPI  # noqa: PLC0415

    return MPI._typedict[numpy.dtype(dtype).char]  # noqa: SLF001 - mpi4py's NumPy type table


def _in_place():
    from mpi4py import MPI  # noqa: PLC0415

    return MPI.IN_PLACE


_WORLD: Communicator | None = None


def world() -> Communicator:
    """The job's communicator: MPI's COMM_WORLD when launched with several ranks, else a single process.

    mpi4py is imported only under a launcher, so a plain run never initialises MPI.
    """
    global _WORLD
    if _WORLD is None:
        comm = None
        if launched_by_mpi():
            try:
                from mpi4py import MPI  # noqa: PLC0415
            except ImportError as error:
                raise RuntimeError("this process was started by an MPI launcher, but mpi4py is not installed: "
                                   "pip install 'minitl[mpi]'") from error
            if MPI.COMM_WORLD.Get_size() > 1:
                comm = MPI.COMM_WORLD
                # errors come back as exceptions (RankFailedError), not an abort without a message
                comm.Set_errhandler(MPI.ERRORS_RETURN)
        _WORLD = Communicator(comm)
    return _WORLD
