"""Collectives that count what they move: the logical volume and the bytes a ring sends.

Rajbhandari et al. (ZeRO, Section 7.1) count communication as *volume*: a reduce-scatter or
an all-gather of a tensor of S bytes moves S, an all-reduce (= reduce-scatter + all-gather)
2S. A ring implementation (Patarasuk & Yuan 2009; NCCL's and gloo's ring algorithms) sends,
per rank, (N-1)/N of that: each of the N-1 ring steps passes one of N chunks of S/N bytes.
:class:`CommCounter` keeps both, so a chapter can show them side by side.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

_reduce_scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
_all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor

COLLECTIVES = ("all_reduce", "reduce_scatter", "all_gather")
# logical volume in units of the full tensor, per collective (ZeRO Section 7.1)
VOLUME_FACTOR = {"all_reduce": 2, "reduce_scatter": 1, "all_gather": 1}


def ring_bytes_sent(collective: str, full_bytes: int, world_size: int) -> float:
    """Bytes one rank sends in a ring ``collective`` over a full tensor of ``full_bytes``.

    ring reduce-scatter and ring all-gather: (N-1) steps of S/N bytes = (N-1)/N * S;
    ring all-reduce = both: 2 (N-1)/N * S.
    """
    if collective not in VOLUME_FACTOR:
        raise ValueError(f"collective must be one of {COLLECTIVES}, got {collective!r}")
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    return VOLUME_FACTOR[collective] * (world_size - 1) / world_size * full_bytes


class CommCounter:
    """Runs collectives on the default process group and counts their bytes both ways."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self.bytes = dict.fromkeys(COLLECTIVES, 0)  # logical volume (paper convention)
        self.ring_bytes = dict.fromkeys(COLLECTIVES, 0.0)  # sent per rank by a ring

    def _count(self, collective: str, full: torch.Tensor) -> None:
        size = full.numel() * full.element_size()
        self.bytes[collective] += VOLUME_FACTOR[collective] * size
        self.ring_bytes[collective] += ring_bytes_sent(collective, size, self.world_size)

    def all_reduce(self, t: torch.Tensor) -> None:
        dist.all_reduce(t)
        self._count("all_reduce", t)

    def reduce_scatter(self, out: torch.Tensor, full: torch.Tensor) -> None:
        _reduce_scatter(out, full)
        self._count("reduce_scatter", full)

    def all_gather(self, full: torch.Tensor, part: torch.Tensor) -> None:
        _all_gather(full, part)
        self._count("all_gather", full)

    @property
    def total(self) -> int:
        return sum(self.bytes.values())

    def per_step(self, steps: int) -> tuple[dict[str, float], dict[str, float]]:
        """(logical volume, ring bytes sent) per step, per collective."""
        return ({k: v / steps for k, v in self.bytes.items()},
                {k: v / steps for k, v in self.ring_bytes.items()})


def all_gather_uncounted(full: torch.Tensor, part: torch.Tensor) -> None:
    """An all-gather outside the experiment (e.g. collecting final parameters for a check)."""
    _all_gather(full, part)


def wire_bytes_worker(rank: int, world_size: int, numel: int = 1 << 20, repeats: int = 5) -> dict:
    """Worker: run each collective ``repeats`` times on ``numel`` fp32 elements and read, on rank 0,
    how many bytes crossed the loopback interface meanwhile (all ranks together; gloo on one machine).

    Returns, per collective, the measured bytes and what the two conventions predict for all ranks:
    the paper's volume (N x the per-rank volume) and a ring (N x (N-1)/N of it).
    """
    from lab_utils.dist import rank_device
    from lab_utils.measure import interface_bytes_sent

    device = rank_device()
    full = torch.ones(numel, device=device)
    part = torch.ones(numel // world_size, device=device)
    out = {}
    for name in COLLECTIVES:
        counter = CommCounter(world_size)
        args = (full,) if name == "all_reduce" else (part, full) if name == "reduce_scatter" else (full, part)
        dist.barrier()
        before = interface_bytes_sent("lo") if rank == 0 else None
        for _ in range(repeats):
            getattr(counter, name)(*args)
        dist.barrier()
        after = interface_bytes_sent("lo") if rank == 0 else None
        if rank == 0 and before is not None:
            out[name] = {"measured": (after - before) / repeats,
                         "volume": world_size * counter.bytes[name] / repeats,
                         "ring": world_size * counter.ring_bytes[name] / repeats}
    return out
