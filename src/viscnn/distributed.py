"""Work split across the processes torchrun starts: who this process is, and the few exchanges viscnn needs.

    torchrun --nproc_per_node=N -m viscnn prepare|score|examples|evaluate|visualize ...

A command runs inside `session(device)`, which joins torchrun's group (gloo on a CPU, nccl on CUDA,
one GPU per local process) and returns this process's device. Work is then split by its natural unit:
`share` gives this process's images (whole batches, so every batch is the one a single process would
see), `assign` its units of unequal cost (targets x methods, objectives, layers). Sums meet in
`all_sum` (float64), results in `gather`; what only one process may do (read the store, decide what is
cached) happens in `from_main`, whose answer every process gets. Rank 0 alone writes.

Outside torchrun (or before `session`) every function acts as the only process of one, so library code
calls them unconditionally. A ViscnnError raised by one process inside `gather`, `from_main` or
`agree` is raised by every process, so all of them stop with the same one-line message instead of
waiting for each other forever.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from viscnn.errors import ViscnnError

T = TypeVar("T")
TIMEOUT = timedelta(hours=6)  # how long a process waits in a collective for the others


def launched() -> bool:
    """True when torchrun started this process as one of several (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """True inside a torch.distributed group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """True for the process that prints and writes (rank 0, or the only process)."""
    return rank() == 0


def backend(device: str | torch.device) -> str:
    """nccl for CUDA devices, gloo otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def local_device(device: str | torch.device) -> str:
    """This process's device: under torchrun a bare `cuda` becomes `cuda:LOCAL_RANK` (one GPU per process)."""
    text = str(device)
    if text == "cuda" and launched():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return text


@contextmanager
def session(device: str | torch.device) -> Iterator[str]:
    """Join torchrun's group for the duration of a command (nothing to join outside torchrun); yields this
    process's device. On a clean exit every process waits for the others, then the group is taken down."""
    mine = local_device(device)
    if not launched() or dist.is_initialized():
        yield mine
        return
    # numba (UMAP's projections) starts a thread per core in every process unless told otherwise; its workers
    # then slowed this process's torch ops ~5x (fmnist prepare's renders under 2 processes: 38.9 s, 3.8 s with
    # this). numba reads it when first imported, which is later (the layout imports umap lazily).
    os.environ.setdefault("NUMBA_NUM_THREADS", str(torch.get_num_threads()))
    if torch.device(mine).type == "cuda":
        torch.cuda.set_device(torch.device(mine))
    # the others may wait long for rank 0's writing (a sheet of examples per node) at the closing barrier; a process
    # that dies makes torchrun stop the rest, so a long timeout never leaves them waiting on a dead peer
    dist.init_process_group(backend(mine), timeout=TIMEOUT)
    failed = False
    try:
        yield mine
    except BaseException:
        failed = True  # the others may be inside a collective: no barrier, torchrun stops them
        raise
    finally:
        if not failed:
            dist.barrier()
        # leaving gloo's threads to die at interpreter exit aborts the process ("terminate called ...")
        dist.destroy_process_group()


def share(count: int, batch_size: int) -> list[int]:
    """The indices of `count` images this process takes (see `deal_images`); fewer images than processes is an
    error (every process reaches it together: the count is the same everywhere)."""
    n = world()
    if n == 1:
        return list(range(count))
    if count < n:
        raise ViscnnError(f"{count} images cannot be split across {n} processes: give at least {n} images")
    return deal_images(count, batch_size, n)[rank()]


def deal_images(count: int, batch_size: int, processes: int) -> list[list[int]]:
    """Each process's image indices: whole batches of `batch_size`, dealt round-robin, so every batch is the one a
    single process would form. Sets with fewer batches than processes are dealt in smaller blocks, so that every
    process gets an image when there are enough."""
    block = max(1, min(batch_size, count // max(1, processes)))
    return [[i for i in range(count) if (i // block) % processes == r] for r in range(processes)]


def assign(costs: Sequence[float]) -> list[int]:
    """The units (indices into `costs`) this process does (see `deal_units`)."""
    return list(range(len(costs))) if world() == 1 else deal_units(costs, world())[rank()]


def deal_units(costs: Sequence[float], processes: int) -> list[list[int]]:
    """Units of unequal cost dealt to processes: the costliest first, each to the least loaded process (ties to
    the lower rank; equal costs go round-robin in order). Every process computes the same deal."""
    loads = [0.0] * processes
    dealt: list[list[int]] = [[] for _ in range(processes)]
    for index in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        owner = min(range(processes), key=lambda r: (loads[r], r))
        loads[owner] += costs[index]
        dealt[owner].append(index)
    return [sorted(units) for units in dealt]


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of `tensor` over all processes, added in float64 (so the sum does not depend on the order of
    the processes beyond float64 rounding), returned in the tensor's own dtype and device."""
    if not active():
        return tensor
    total = tensor.detach().to(_comm_device(), torch.float64)
    dist.all_reduce(total)
    return total.to(tensor.device, tensor.dtype)


def _raise_first(outcomes: Sequence[tuple[bool, Any]]) -> None:
    for ok, value in outcomes:
        if not ok:
            raise ViscnnError(value)


def _attempt(work: Callable[[], T]) -> tuple[bool, Any]:
    try:
        return True, work()
    except ViscnnError as exc:
        return False, str(exc)


def gather(work: Callable[[], T]) -> list[T]:
    """Run `work` here and return every process's result, by rank (pickled: keep results to what the
    merge needs). A ViscnnError in any process is raised in all of them."""
    outcome = _attempt(work)
    if not active():
        _raise_first([outcome])
        return [outcome[1]]
    outcomes: list[Any] = [None] * world()
    dist.all_gather_object(outcomes, outcome)
    _raise_first(outcomes)
    return [value for _, value in outcomes]


def agree(work: Callable[[], T]) -> T:
    """Run `work` here; if it raised a ViscnnError in any process, raise it in all (before a collective
    that the failed process would never reach)."""
    outcome = _attempt(work)
    if active():
        flags: list[Any] = [None] * world()
        dist.all_gather_object(flags, (outcome[0], None if outcome[0] else outcome[1]))
        _raise_first(flags)
    _raise_first([outcome])
    return outcome[1]


def from_main(work: Callable[[], T]) -> T:
    """`work()` as rank 0 computes it, given to every process (the others do not call it): reading the
    store, deciding what is cached, anything every process must agree on."""
    if not active():
        return work()
    box: list[Any] = [_attempt(work) if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    _raise_first(box)
    return box[0][1]


def on_main(work: Callable[[], T]) -> T | None:
    """`work()` on rank 0 only (opening the store, writing a file): its result there, None elsewhere; a
    ViscnnError it raises is raised by every process."""
    if not active():
        return work()
    outcome = _attempt(work) if is_main() else (True, None)
    box: list[Any] = [(outcome[0], None if outcome[0] else outcome[1])]
    dist.broadcast_object_list(box, src=0)
    _raise_first(box)
    return outcome[1]


def barrier() -> None:
    if active():
        dist.barrier()
