"""Data-parallel training: the same script on one process or many, one allreduce of the gradient vector a step.

Why it works. A batch's loss is the mean of its B samples' losses, so its gradient is the mean of
theirs: g = (1/B) sum_i grad l_i. Cut the batch into N shards of n_1 + ... + n_N = B samples; the
process holding shard r computes g_r = (1/n_r) sum_{i in r} grad l_i, the gradient of its shard's
mean loss, and

    g = sum_r (n_r / B) g_r

So if every process multiplies its g_r by n_r / B and all of them add the results up (an
*allreduce*: every process ends with the sum), each holds the whole batch's gradient g, exactly,
whatever the shard sizes. They started from the same weights (rank 0's, broadcast), they apply the
same optimizer step with the same g, and so their weights stay the same, step after step. fit
does this when `tinynet.distributed.init()` has joined an MPI world (`mpirun -n N python ...`):
`batch_size` is the global batch, each process takes its shard of every batch, and the one
allreduce is over `model.grads`, the flat vector that holds every gradient of the network.

What it costs. The tutorial's MLP has 669,706 weights: one allreduce of 2.7 MB (float32) a step.
A ring allreduce sends and receives about 2 (N - 1) / N of that per process: 2.7 MB at N = 2,
469 times an epoch. Through shared memory on one machine that is a fraction of a millisecond;
over a 10 Gb/s network, about 2 ms a step. It pays when each process's share of the step's
arithmetic takes longer than that: large batches and layers, or slow steps; a step of the MLP
on one core takes about 5 ms, so on one machine two processes can nearly halve an epoch, and
across machines the network decides (benchmarks/bench_distributed.py measures it).

    init()       join the MPI world (a no-op in a plain one-process run); rank() and size() say where we are
    shard(n)     the rows of an n-row batch that this process takes
    average_gradients(grads, loss, rows)   the allreduce above; returns the whole batch's loss and size
    sum_over_processes(array)              for an epoch's totals, validation sums
    broadcast(array)                       rank 0's weights, optimizer state and shuffle order to everyone

On the GPU (backend "cupy") the allreduce runs through NCCL (cupy.cuda.nccl) where it is available,
else the arrays go through the host and MPI.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import time
import traceback
from typing import Any

import numpy as np

from tinynet import backend

LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")
ABORT_GRACE_S = 1.0  # seconds between a failing process's error report and MPI_Abort
INSTALL_HINT = 'install the MPI extra: pip install "tinynet-from-scratch[mpi]" (mpi4py and the mpich wheel)'

_world: Any = None  # the communicator once init() joined a world of more than one process
_initialized = False


def mpi_installed() -> bool:
    """Whether mpi4py can be imported (without importing it: that would start MPI)."""
    return importlib.util.find_spec("mpi4py") is not None


def launched_by_mpi() -> bool:
    """Whether mpirun/mpiexec started this process (its launcher leaves these variables)."""
    return any(name in os.environ for name in LAUNCHER_VARIABLES)


def init() -> None:
    """Join the MPI world this process was started in; in a plain run, stay one process (no MPI needed).

    Every process's weights will be rank 0's: fit broadcasts them. An exception on any process
    aborts them all (MPI_Abort) instead of leaving the others waiting in an allreduce forever.
    """
    global _world, _initialized
    if _initialized:
        raise ValueError("tinynet.distributed.init: already initialized; call it once, at the start of the script")
    _initialized = True
    try:
        from mpi4py import MPI
    except ImportError as err:
        if launched_by_mpi():
            raise ValueError(f"tinynet.distributed.init: started by an MPI launcher, but mpi4py is missing; "
                             f"{INSTALL_HINT}") from err
        return  # a plain run: one process, nothing to join
    comm = MPI.COMM_WORLD
    if comm.Get_size() == 1:
        return
    _world = Communicator(comm)
    sys.excepthook = _abort_all(sys.excepthook, comm)


def rank() -> int:
    """This process's number, 0 to size() - 1 (0 in a one-process run)."""
    return 0 if _world is None else _world.rank


def size() -> int:
    """How many processes train together (1 in a one-process run)."""
    return 1 if _world is None else _world.size


def active() -> bool:
    return _world is not None


def is_root() -> bool:
    """Whether this process prints and saves (rank 0)."""
    return rank() == 0


def shard(n: int) -> slice:
    """The rows of an n-row batch that this process takes: n * r // N to n * (r + 1) // N (sizes differ by one at most)."""
    r, count = rank(), size()
    return slice(n * r // count, n * (r + 1) // count)


def average_gradients(grads: Any, loss: Any, rows: int) -> tuple[Any, int]:
    """The whole batch's gradient in `grads` (in place) and its mean loss, from this process's shard of `rows` rows.

    g = sum_r (n_r / B) g_r: each process scales its gradient by its share of rows, then one allreduce adds them.
    """
    if _world is None:
        return loss, rows
    loss_and_rows = backend.xp().stack([loss * rows, backend.xp().asarray(rows, dtype=loss.dtype)])
    _world.allreduce(loss_and_rows)  # the batch's summed loss, and B
    total = int(round(float(loss_and_rows[1])))  # a host read; the gradient's allreduce below waits anyway
    grads *= rows / total
    _world.allreduce(grads)
    return loss_and_rows[0] / total, total


def sum_over_processes(array: Any) -> Any:
    """The element-wise sum of `array` over all processes, as a new array (the array itself in a plain run)."""
    if _world is None:
        return array
    total = backend.xp().array(array, dtype=np.float64)
    _world.allreduce(total)
    return total


def average(array: Any) -> Any:
    """Overwrite `array` (in place) with its mean over all processes; returns it."""
    if _world is not None and array.size:
        _world.allreduce(array)
        array /= _world.size
    return array


def broadcast(array: Any) -> Any:
    """Overwrite `array` (in place) with rank 0's; returns it."""
    if _world is not None:
        _world.broadcast(array)
    return array


def prepare_fit(model: Any, samples: int, batch_size: int) -> None:
    """Before fit on several processes: the same data everywhere, a share of every batch for each process,
    and rank 0's weights and optimizer state on all of them."""
    check_same(samples, "numbers of training samples")
    batch = min(batch_size, samples)
    last = samples % batch or batch
    if min(batch, last) < size():
        raise ValueError(f"fit: with {size()} processes every batch must have at least {size()} samples, one for "
                         f"each; batch_size={batch_size} over {samples} samples leaves a batch of {min(batch, last)}: "
                         f"choose a batch size that leaves a larger last batch")
    broadcast(model.params)
    broadcast(model.non_trainable)
    optimizer = model.optimizer
    check_same(int(optimizer.is_built_for(model.params)), "optimizer states (built on some processes only)")
    check_same(optimizer.iterations, "optimizer step counts")
    for slot in optimizer.slots.values():
        broadcast(slot)


def check_same(value: int, what: str) -> None:
    """A clear error on every process, rather than a hang, when the processes disagree about `value`."""
    if _world is None:
        return
    values = _world.comm.allgather(int(value))
    if len(set(values)) > 1:
        raise ValueError(f"tinynet.distributed: the processes were given different {what}: "
                         f"{', '.join(f'rank {r}: {v}' for r, v in enumerate(values))}; give every process the "
                         f"same data (each takes its own share of every batch itself)")


class Communicator:
    """MPI's Allreduce and Bcast on NumPy arrays; CuPy arrays through NCCL where CuPy has it, else via the host."""

    def __init__(self, comm: Any) -> None:
        self.comm, self.rank, self.size = comm, comm.Get_rank(), comm.Get_size()
        self.nccl: Any = None

    def allreduce(self, array: Any) -> None:
        from mpi4py import MPI
        if isinstance(array, np.ndarray):
            self.comm.Allreduce(MPI.IN_PLACE, array, op=MPI.SUM)
        elif self._nccl() is not None:
            self._nccl().allreduce(array)
        else:  # a GPU array through the host
            host = backend.to_numpy(array).copy()
            self.comm.Allreduce(MPI.IN_PLACE, host, op=MPI.SUM)
            array[...] = backend.to_device(host, array.dtype)

    def broadcast(self, array: Any) -> None:
        if isinstance(array, np.ndarray):
            self.comm.Bcast(array, root=0)
        else:
            host = backend.to_numpy(array).copy()
            self.comm.Bcast(host, root=0)
            array[...] = backend.to_device(host, array.dtype)

    def _nccl(self) -> Any:
        """NCCL's communicator for GPU arrays, made at the first use (unverified on hardware: no GPU here)."""
        if self.nccl is None:
            self.nccl = Nccl.create(self.comm) or False
        return self.nccl or None


class Nccl:
    """An allreduce of CuPy arrays through NCCL (cupy.cuda.nccl), on the current stream."""

    def __init__(self, communicator: Any) -> None:
        self.communicator = communicator

    @staticmethod
    def create(comm: Any) -> Nccl | None:
        """NCCL's communicator for the MPI world (rank 0 makes the id, MPI broadcasts it), or None without NCCL."""
        try:
            from cupy.cuda import nccl
        except ImportError:
            return None
        if not getattr(nccl, "available", True):
            return None
        uid = comm.bcast(nccl.get_unique_id() if comm.Get_rank() == 0 else None, root=0)
        return Nccl(nccl.NcclCommunicator(comm.Get_size(), uid, comm.Get_rank()))

    def allreduce(self, array: Any) -> None:
        import cupy
        from cupy.cuda import nccl
        types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}
        self.communicator.allReduce(array.data.ptr, array.data.ptr, array.size, types[np.dtype(array.dtype)],
                                    nccl.NCCL_SUM, cupy.cuda.get_current_stream().ptr)


def _abort_all(previous: Any, comm: Any) -> Any:
    """An excepthook that reports the error, then aborts every process (MPI_Abort), so none waits forever."""
    def hook(kind: type, error: BaseException, trace: Any) -> None:
        report = "".join(traceback.format_exception(kind, error, trace))
        sys.stderr.write(f"{report}tinynet.distributed: rank {comm.Get_rank()} failed; aborting all "
                         f"{comm.Get_size()} processes\n")
        sys.stderr.flush()
        time.sleep(ABORT_GRACE_S)  # the launcher forwards our stderr asynchronously: let the report out first
        comm.Abort(1)
    return hook
