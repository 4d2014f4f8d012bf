"""The arithmetic of sharded data parallelism: flat parameters, padding, shards, bytes and traffic.

* :func:`flatten_and_shard` / :func:`unshard_and_unflatten`: fairscale FSDP's and FSDP1's
  ``FlatParameter`` (Zhao et al., *PyTorch FSDP*, VLDB 2023, arXiv:2304.11277, §3.2.1): a unit's
  parameters concatenated into one vector, zero-padded to a multiple of the world size N, split into
  N equal shards; the inverse drops the padding and restores every shape exactly. The same layout as
  ZeRO stages 1-2 in :mod:`lab_utils.parallel.zero_stages` (ZeRO §5).
* :func:`fsdp2_padded_numel`: FSDP2 (``fully_shard``) shards each parameter on dim 0 instead,
  padding dim 0 to a multiple of N (PyTorch docs, ``fully_shard``: "per-parameter sharding").
* :func:`sharded_bytes_per_rank` and :func:`comm_volume_per_step`: the closed forms the chapter
  compares its measurements with (ZeRO §5 memory, §7 communication), per library variant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lab_utils.graded import graded_reference
from lab_utils.measure import TrainingBytes
from lab_utils.parallel.zero import memory_breakdown


@graded_reference
def flatten_and_shard(tensors: Sequence[torch.Tensor], world_size: int) -> list[torch.Tensor]:
    """Concatenate ``tensors`` (flattened, in order), zero-pad to a multiple of ``world_size``, and
    return the ``world_size`` equal shards (copies); shard r is what rank r keeps (FSDP §3.2.1)."""
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be an int >= 1, got {world_size!r}")
    if not tensors:
        raise ValueError("need at least one tensor to flatten")
    flat = torch.cat([t.detach().reshape(-1) for t in tensors])
    pad = (-flat.numel()) % world_size
    flat = torch.cat([flat, flat.new_zeros(pad)])
    return [s.clone() for s in flat.chunk(world_size)]


@graded_reference
def unshard_and_unflatten(shards: Sequence[torch.Tensor], shapes: Sequence[tuple[int, ...]]) -> list[torch.Tensor]:
    """The inverse of :func:`flatten_and_shard`: concatenate the shards (the all-gather), drop the
    padding, and cut the vector back into tensors of ``shapes``."""
    if len({s.numel() for s in shards}) != 1:
        raise ValueError(f"shards must be equal-sized, got sizes {[s.numel() for s in shards]}")
    flat = torch.cat([s.reshape(-1) for s in shards])
    sizes = [math.prod(shape) for shape in shapes]
    if not 0 <= flat.numel() - sum(sizes) < len(shards):
        raise ValueError(f"{flat.numel()} elements in {len(shards)} shards cannot hold shapes {list(shapes)} "
                         f"({sum(sizes)} elements) plus less than one element of padding per shard")
    out, offset = [], 0
    for shape, n in zip(shapes, sizes):
        out.append(flat[offset:offset + n].reshape(shape).clone())
        offset += n
    return out


@graded_reference
def fsdp2_padded_numel(shapes: Sequence[tuple[int, ...]], world_size: int) -> int:
    """Elements FSDP2 stores over all ranks: each parameter's dim 0 padded to a multiple of N."""
    total = 0
    for shape in shapes:
        rows = shape[0] if shape else 1
        total += math.ceil(rows / world_size) * world_size * math.prod(shape[1:])
    return total


# variant -> (ZeRO stage of its memory, communication per step in units of the model's bytes)
ZERO_STAGE = {"ddp": 0, "oss": 1, "oss_sdp": 2, "fsdp2": 3, "fsdp2_noreshard": 3, "fsdp2_whole": 3,
              "fsdp2_offload": 3, "fairscale_fsdp": 3, "deepspeed_zero2": 2, "deepspeed_zero3": 3}
COMM_UNITS = {
    "ddp": {"all_reduce": 2},
    "oss": {"all_reduce": 2, "broadcast": 1},
    "oss_sdp": {"reduce": 1, "broadcast": 1},
    "fsdp2": {"all_gather": 2, "reduce_scatter": 1},
    "fsdp2_noreshard": {"all_gather": 1, "reduce_scatter": 1},
    "fsdp2_whole": {"all_gather": 2, "reduce_scatter": 1},
    "fsdp2_offload": {"all_gather": 2, "reduce_scatter": 1},
    "fairscale_fsdp": {"all_gather": 2, "reduce_scatter": 1},
    "deepspeed_zero2": {"reduce_scatter": 1, "all_gather": 1},  # the paper's analysis, not counted here
    "deepspeed_zero3": {"all_gather": 2, "reduce_scatter": 1},
}


@graded_reference
def sharded_bytes_per_rank(variant: str, num_params: float, world_size: int, k: float = 8,
                           param_bytes: float = 4, grad_bytes: float = 4) -> TrainingBytes:
    """Model-state bytes per rank at rest by the ZeRO formula (§5) for the stage ``variant`` implements
    (fp32 Adam by default: 4 + 4 + 8 bytes per parameter)."""
    if variant not in ZERO_STAGE:
        raise ValueError(f"variant must be one of {list(ZERO_STAGE)}, got {variant!r}")
    return memory_breakdown(num_params, world_size, ZERO_STAGE[variant], k, param_bytes, grad_bytes)


@graded_reference
def comm_volume_per_step(variant: str, model_bytes: float, root_reshards: bool = True) -> dict[str, float]:
    """Logical volume per step and collective (ZeRO §7.1 convention), ``model_bytes`` = bytes of all
    parameters as the collectives see them (FSDP2: padded). DDP all-reduces 2Ψ; OSS under DDP adds a
    broadcast (3Ψ); ShardedDDP turns the all-reduce into a reduce (2Ψ); FSDP with resharding gathers
    twice and reduce-scatters once (3Ψ, §7.2.2), without it once (2Ψ). ``root_reshards``: whether
    ``fully_shard(model, reshard_after_forward=True)`` on the root is obeyed (torch >= 2.8) or
    overridden to False (older FSDP2: the root's parameters stay gathered, one all-gather)."""
    if variant not in COMM_UNITS:
        raise ValueError(f"variant must be one of {list(COMM_UNITS)}, got {variant!r}")
    units = dict(COMM_UNITS[variant])
    if variant == "fsdp2_whole" and not root_reshards:
        units["all_gather"] = 1
    return {k: v * model_bytes for k, v in units.items()}


def fsdp2_root_reshards() -> bool:
    """Whether the installed FSDP2 obeys an explicit ``reshard_after_forward=True`` on the root module
    (its default became ``None`` = "not the root" when it started to; before, the root never resharded)."""
    import inspect

    from torch.distributed.fsdp import fully_shard

    target = inspect.unwrap(fully_shard)
    return inspect.signature(target).parameters["reshard_after_forward"].default is None
