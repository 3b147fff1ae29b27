"""Data-parallel training across processes with ``torch.distributed``, launched by ``torchrun``.

    torchrun --nproc_per_node 2 experiments/gesture.py --smoke --device cpu   # 2 CPU processes (gloo)
    torchrun --nproc_per_node 4 experiments/gesture.py --device cuda          # one GPU per process (nccl)

torchrun starts one process per rank and describes the group in the environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); :func:`setup` joins it. The other helpers answer for a single
process (rank 0 of 1) when no group is initialised, so the same code runs with and without torchrun; a group
initialised by other means (``torch.multiprocessing.spawn``, say) is used as it is.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import nn

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def local_rank() -> int:
    """This process's index on its machine (torchrun's ``LOCAL_RANK``): the GPU it trains on."""
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main_process() -> bool:
    """Rank 0: the one process that prints progress and errors and writes results and checkpoints. Under torchrun
    that is RANK 0 also before the process group is set up (an error in the arguments comes before that)."""
    if is_initialized():
        return rank() == 0
    return not launched_by_torchrun() or os.environ["RANK"] == "0"


def setup(device: str | torch.device = "cpu") -> bool:
    """Joins the process group that torchrun describes, with nccl for a CUDA ``device`` (selecting the GPU of
    this rank) and gloo otherwise. Does nothing outside torchrun or when a group exists already. Returns whether a
    process group is initialised."""
    if launched_by_torchrun() and not is_initialized():
        cuda = torch.device(device).type == "cuda"
        if cuda:
            torch.cuda.set_device(local_rank())
        dist.init_process_group("nccl" if cuda else "gloo")
    return is_initialized()


def teardown(*, finished: bool = True) -> None:
    """Leaves the process group (if any). When every rank has ``finished`` its work, a barrier comes first: gloo's
    worker threads drop the tensors of the last collectives after the ranks have their results, which takes the
    GIL, and a group destroyed while one of them waits for it deadlocks (torch 2.13 joins those threads with the
    GIL held; seen in about one run in four of tests/test_distributed.py). Inside the barrier the GIL is free, so
    they finish first. A rank that failed leaves without it, not waiting on the others."""
    if is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def rank_device(device: str | torch.device) -> torch.device:
    """The device this rank computes on: with several processes a CUDA device becomes ``cuda:LOCAL_RANK`` (one
    GPU per process); any other device is returned as it is."""
    device = torch.device(device)
    if device.type == "cuda" and world_size() > 1:
        return torch.device("cuda", local_rank())
    return device


def data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped in ``DistributedDataParallel`` (whose backward averages the gradients over all ranks)
    when several processes train; ``model`` itself otherwise."""
    if world_size() == 1:
        return model
    # No buffer copies before each forward (DDP's default copies rank 0's registered buffers to every rank). Here
    # the buffers are constants (alpha / theta / filter coefficients that are not learned), equal on all ranks
    # from construction, so the copy would only cost time. And the state that stateful LIF neurons and "preserved"
    # IIR filters carry from one batch to the next is per sample: each rank must keep the state of its own shard
    # of the batch, which rank 0's state (other samples) would overwrite. That state lives in plain attributes,
    # out of DDP's reach; this keeps it so should it become a buffer. torch 2.13 renamed the option
    # (broadcast_buffers=False, deprecated, no longer syncs buffers at construction either).
    parameters = inspect.signature(nn.parallel.DistributedDataParallel).parameters
    option = "forward_sync_buffers" if "forward_sync_buffers" in parameters else "broadcast_buffers"
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device] if device.type == "cuda" else None, **{option: False}
    )


def _all_reduce(values: list[float], op: dist.ReduceOp) -> list[float]:
    if world_size() == 1:
        return list(values)
    # nccl reduces only GPU tensors; float64 keeps sums of counts exact
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=op)
    return tensor.tolist()


def sum_over_ranks(values: list[float]) -> list[float]:
    """Element-wise sums of ``values`` over all ranks (``values`` in one process); every rank must call it."""
    return _all_reduce(values, dist.ReduceOp.SUM)


def max_over_ranks(value: float) -> float:
    """The largest ``value`` of all ranks; every rank must call it."""
    return _all_reduce([value], dist.ReduceOp.MAX)[0]


def gather_objects(value: object) -> list:
    """``value`` of every rank, in rank order (picklable values); every rank must call it."""
    if world_size() == 1:
        return [value]
    values = [None] * world_size()
    dist.all_gather_object(values, value)
    return values


def barrier() -> None:
    """Waits until every rank arrives here."""
    if is_initialized():
        dist.barrier()


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Rank 0 runs the block first, then the other ranks: for work that fills a shared cache (generating a data
    set) once, which the others then only read."""
    if not is_main_process():
        barrier()
    yield
    if is_main_process():
        barrier()


def print_once(*args, **kwargs) -> None:
    """``print`` on rank 0 only, so a message appears once however many processes run."""
    if is_main_process():
        print(*args, **kwargs)


@contextlib.contextmanager
def session(device: str | torch.device = "cpu") -> Iterator[bool]:
    """:func:`setup` on entry and :func:`teardown` on exit, however the block ends: the frame of a driver's
    ``main``. Yields whether a process group is initialised."""
    try:
        yield setup(device)
    except BaseException:
        teardown(finished=False)
        raise
    teardown()
