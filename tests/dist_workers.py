"""Worker functions for tests of lab_utils.dist (spawned processes import them by name)."""

import os
import time

import torch
import torch.distributed as dist


def allreduce_rank(rank: int, world_size: int, scale: float = 1.0) -> dict:
    t = torch.tensor([float(rank) * scale])
    dist.all_reduce(t)
    print(f"hello from rank {rank}")
    return {"rank": rank, "world": dist.get_world_size(), "sum": t.item(),
            "backend": dist.get_backend()}


def raise_on_rank1(rank: int, world_size: int) -> int:
    if rank == 1:
        raise ValueError("planted failure on rank 1")
    dist.barrier()  # rank 0 would wait here forever without launch()'s kill
    return rank


def hang(rank: int, world_size: int) -> None:
    time.sleep(3600)


def exit_hard(rank: int, world_size: int) -> None:
    if rank == 1:
        os._exit(7)
    time.sleep(3600)


def echo_kwargs(rank: int, world_size: int, base: int, *, scale: int = 1, label: str = "") -> dict:
    """Takes keyword arguments through launch(); reports the device lab_utils.dist.rank_device picks."""
    from lab_utils.dist import rank_device

    dev = rank_device()
    t = torch.ones(1, device=dev) * (base + rank) * scale
    dist.all_reduce(t)
    return {"rank": rank, "world_size": world_size, "sum": t.item(), "label": label, "device": str(dev),
            "tensor_device": str(t.device)}


def traced_collectives(rank: int, world_size: int) -> dict:
    """Counts of lab_utils.parallel.comm_trace for known collectives (tests/test_sharded.py)."""
    from lab_utils.parallel.comm_trace import trace_collectives

    t = torch.ones(10)
    full = torch.zeros(10 * world_size)
    with trace_collectives() as trace:
        dist.all_reduce(t)
        dist.all_gather_into_tensor(full, t)  # deprecated name forwarding to all_gather_single: counted once
        dist.reduce_scatter_tensor(t, full)
        dist.broadcast(t, src=0)
        dist.reduce(t, dst=0)
        with trace.pause():
            dist.all_reduce(t)
    dist.all_reduce(t)  # after the block: not counted
    return {"bytes": trace.bytes, "ring": trace.ring_bytes, "calls": trace.calls}


def sharded_and_traced(rank: int, world_size: int, **options) -> tuple:
    """One process group for tests/test_sharded.py: every CPU variant, then the tracer's own check."""
    from lab_utils.parallel.sharded import sharded_worker

    return sharded_worker(rank, world_size, **options), traced_collectives(rank, world_size)
