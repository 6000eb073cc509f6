"""The communicator layer: the only module that imports mpi4py.

Everything else receives a communicator object with the small interface of
:class:`SerialComm`.  Under ``mpiexec`` :func:`world` returns an
:class:`MPIComm` around ``MPI.COMM_WORLD``; in a single process it returns a
:class:`SerialComm`, so the package runs without MPI installed.

Arrays move between ranks as numpy buffers (uppercase mpi4py calls); only
small Python objects (metadata, per-frame centres) are pickled.
"""

import logging
import os
import sys

import numpy as np

log = logging.getLogger(__name__)

# Variables that MPICH/Hydra, Open MPI, Intel MPI and PMIx set in launched processes.
_LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK",
                       "MPI_LOCALNRANKS", "HYDRA_CONTROL_FD", "SLURM_PMI_SIZE")


class SerialComm:
    """Stand-in communicator for one process: every collective is the identity."""

    rank = 0
    size = 1

    def barrier(self):
        pass

    def bcast(self, obj, root=0):
        return obj

    def allgather(self, obj):
        return [obj]

    def allreduce_sum(self, array):
        return np.array(array, copy=True)

    def allreduce_max(self, value):
        return value

    def gatherv(self, array, root=0):
        """Concatenate every rank's ``array`` along axis 0 on ``root`` (None elsewhere)."""
        return np.ascontiguousarray(array)

    def abort(self, code=1):
        sys.exit(code)

    def exit_together(self, code):
        sys.exit(code)


class MPIComm:
    """Wrapper of an mpi4py communicator with the interface of :class:`SerialComm`."""

    def __init__(self, mpi_comm):
        self._comm = mpi_comm
        self.rank = mpi_comm.Get_rank()
        self.size = mpi_comm.Get_size()

    def barrier(self):
        self._comm.Barrier()

    def bcast(self, obj, root=0):
        return self._comm.bcast(obj, root=root)

    def allgather(self, obj):
        return self._comm.allgather(obj)

    def allreduce_sum(self, array):
        from mpi4py import MPI

        send = np.ascontiguousarray(array)
        recv = np.empty_like(send)
        self._comm.Allreduce(send, recv, op=MPI.SUM)
        return recv

    def allreduce_max(self, value):
        from mpi4py import MPI

        return self._comm.allreduce(value, op=MPI.MAX)

    def gatherv(self, array, root=0):
        """Concatenate every rank's ``array`` along axis 0 on ``root`` (None elsewhere).

        All ranks must pass arrays of one dtype and one trailing shape; a rank
        may contribute zero rows.
        """
        send = np.ascontiguousarray(array)
        rows = self._comm.allgather(send.shape[0])
        row_size = int(np.prod(send.shape[1:], dtype=np.int64))
        counts = np.asarray(rows, dtype=np.int64) * row_size
        if self.rank == root:
            recv = np.empty((sum(rows),) + send.shape[1:], dtype=send.dtype)
            displs = np.concatenate([[0], np.cumsum(counts)[:-1]])
            self._comm.Gatherv(send, [recv, counts, displs, _mpi_type(send.dtype)], root=root)
            return recv
        self._comm.Gatherv(send, None, root=root)
        return None

    def abort(self, code=1):
        """End every rank of the job now with exit status ``code``."""
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        self._comm.Abort(code)

    def exit_together(self, code):
        """Collective: end this process with exit status ``code`` once every rank is here
        (each rank ends by itself, after an error raised on every rank alike: no abort)."""
        from mpi4py import MPI

        self._comm.Barrier()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        MPI.Finalize()      # before the exit: ``python -m mpi4py`` would abort on status != 0
        os._exit(code)


def _mpi_type(dtype):
    from mpi4py.util import dtlib

    return dtlib.from_numpy_dtype(np.dtype(dtype))


def launched_by_mpi():
    """True when this process was started by an MPI launcher (or ``python -m mpi4py``)."""
    return "mpi4py.MPI" in sys.modules or any(v in os.environ for v in _LAUNCHER_VARIABLES)


def world():
    """The communicator of this job: MPI's world under ``mpiexec``, else :class:`SerialComm`."""
    if not launched_by_mpi():
        return SerialComm()
    try:
        from mpi4py import MPI
    except ImportError:
        log.warning("launched by an MPI launcher but mpi4py is not installed; running serially")
        return SerialComm()
    if MPI.COMM_WORLD.Get_size() == 1:
        return SerialComm()
    return MPIComm(MPI.COMM_WORLD)
