"""The small regression task every parallel reference trains, identical on every rank and device.

Batches are drawn on the CPU from fixed generators and then moved to the rank's device, so a
GPU run sees exactly the numbers a CPU run sees; each rank takes its slice of the global batch
with :func:`lab_utils.dist.shard_range`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn

from lab_utils.dist import require_divisible, shard_range
from lab_utils.record import RunRecord

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {name!r}")
    return DTYPES[name]


def make_model(sizes: tuple[int, ...] = (16, 32, 32, 4), seed: int = 0,
               device: torch.device | str = "cpu", dtype: str = "float32") -> nn.Sequential:
    """An MLP ``Linear-Tanh-...-Linear`` with deterministic initial weights, placed on ``device``.

    The weights are drawn in fp32 and then cast, so a ``float64`` model starts from the same point."""
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must list >= 2 positive layer widths, got {sizes}")
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers).to(device=device, dtype=_dtype(dtype))


def make_batch(step: int, global_batch: int, sizes: tuple[int, ...], seed: int = 0,
               device: torch.device | str = "cpu", dtype: str = "float32") -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``step`` of a fixed regression task ``y = sin(x W)``; identical on every rank."""
    w = torch.randn(sizes[0], sizes[-1], generator=torch.Generator().manual_seed(seed))
    x = torch.randn(global_batch, sizes[0], generator=torch.Generator().manual_seed(seed + 1 + step))
    like = dict(device=device, dtype=_dtype(dtype))
    return x.to(**like), torch.sin(x @ w).to(**like)


def local_batch(step: int, rank: int, world_size: int, global_batch: int, sizes: tuple[int, ...],
                seed: int = 0, device: torch.device | str = "cpu", dtype: str = "float32"
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's equal slice of global batch ``step`` (the global batch must split evenly)."""
    require_divisible(global_batch, world_size, "global batch")
    start, end = shard_range(global_batch, rank, world_size)
    x, y = make_batch(step, global_batch, sizes, seed, device, dtype)
    return x[start:end], y[start:end]


def mean_loss(loss: torch.Tensor, world_size: int) -> float:
    """The loss averaged over ranks, for the log: an all-reduce outside the counted communication."""
    logged = loss.detach().clone()
    dist.all_reduce(logged)
    return logged.item() / world_size


def train_steps(rank: int, world_size: int, step_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                steps: int, global_batch: int, sizes: tuple[int, ...], seed: int, device: torch.device,
                dtype: str = "float32") -> tuple[list[float], list[float]]:
    """The loop every data-parallel reference shares: ``step_fn(x, y) -> loss`` (forward, backward,
    communication, update) on this rank's slice of each global batch, timed on the wall clock (CUDA
    synchronised first); returns the mean loss over ranks and the seconds of each step."""
    losses, times = [], []
    for step in range(steps):
        x, y = local_batch(step, rank, world_size, global_batch, sizes, seed, device, dtype)
        t0 = time.perf_counter()
        loss = step_fn(x, y)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
        losses.append(mean_loss(loss, world_size))
    return losses, times


def train_single(sizes: tuple[int, ...], steps: int, global_batch: int, lr: float = 1e-2,
                 seed: int = 0, device: torch.device | str = "cpu", dtype: str = "float32") -> RunRecord:
    """The baseline: one process, ``torch.optim.Adam`` on the whole global batch."""
    model = make_model(sizes, seed, device, dtype)
    opt = torch.optim.Adam(model.parameters(), lr=lr, foreach=False)
    losses = []
    for step in range(steps):
        x, y = make_batch(step, global_batch, sizes, seed, device, dtype)
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    params = torch.cat([p.detach().flatten() for p in model.parameters()]).cpu()
    return RunRecord("single-process Adam", rank=0, world_size=1, device=str(torch.device(device)),
                     config=dict(sizes=tuple(sizes), steps=steps, global_batch=global_batch, lr=lr, seed=seed,
                                 dtype=dtype),
                     losses=losses, params=params, extra={"num_params": params.numel()})
