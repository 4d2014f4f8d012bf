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
