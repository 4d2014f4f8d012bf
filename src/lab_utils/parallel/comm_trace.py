"""Count what library code (DDP, fairscale, FSDP2, ...) sends through ``torch.distributed``.

:class:`lab_utils.parallel.comm.CommCounter` counts collectives the book's own code issues.
Library code calls ``torch.distributed`` itself, so :func:`trace_collectives` patches the
module's collective functions for the duration of a ``with`` block and counts every call in
the same two conventions (:data:`lab_utils.parallel.comm.VOLUME_FACTOR`, plus reduce and broadcast):

* the ZeRO paper's **logical volume** (Rajbhandari et al. 2020, §7.1): an all-reduce moves 2x
  the tensor, a reduce-scatter, an all-gather, a reduce or a broadcast 1x (counted on the *full*
  tensor: the input of a reduce-scatter, the output of an all-gather);
* the bytes one rank **sends** in a ring/pipelined-chain implementation: (N-1)/N of that
  (:func:`lab_utils.parallel.comm.ring_bytes_sent`).

Deprecated names that forward to new ones (``all_gather_into_tensor`` → ``all_gather_single``)
are counted once: only the outermost patched call counts. ``torch.nn.parallel.DistributedDataParallel``
all-reduces its gradient buckets in C++ without going through Python; :func:`counting_allreduce_hook`
is a DDP communication hook (``ddp.register_comm_hook``) that does the same all-reduce through the
patched ``dist.all_reduce``, so it is counted too. Collectives issued in C++ by other code
(``dist._broadcast_coalesced`` in DDP's constructor) are not seen; trace only the training steps.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist

from lab_utils.parallel.comm import VOLUME_FACTOR, ring_bytes_sent

# a reduce to one rank and a broadcast from one rank (fairscale OSS/ShardedDDP) move the tensor once,
# and a pipelined chain sends (N-1)/N of it per rank on average over roots, as a reduce-scatter does
TRACE_FACTOR = {**VOLUME_FACTOR, "reduce": 1, "broadcast": 1}
RING_RULE = {"reduce": "reduce_scatter", "broadcast": "all_gather"}


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _full_bytes(name: str, args: tuple, kwargs: dict) -> int:
    """Bytes of the full tensor a collective works on, from its call arguments."""
    def arg(i: int, *keys: str):
        for k in keys:
            if k in kwargs:
                return kwargs[k]
        return args[i]

    if name in ("all_reduce", "reduce", "broadcast"):
        return _nbytes(arg(0, "tensor"))
    if name in ("reduce_scatter_single", "reduce_scatter_tensor", "_reduce_scatter_base"):
        return _nbytes(arg(1, "input", "input_tensor"))
    if name in ("all_gather_single", "all_gather_into_tensor", "_all_gather_base"):
        return _nbytes(arg(0, "output", "output_tensor"))
    if name == "all_gather":  # (tensor_list, tensor)
        return sum(_nbytes(t) for t in arg(0, "tensor_list"))
    if name == "reduce_scatter":  # (output, input_list)
        return sum(_nbytes(t) for t in arg(1, "input_list"))
    raise ValueError(f"no byte rule for collective {name!r}")


# patched name -> the collective it is counted as
TRACED = {
    "all_reduce": "all_reduce", "reduce": "reduce", "broadcast": "broadcast",
    "reduce_scatter_single": "reduce_scatter", "reduce_scatter_tensor": "reduce_scatter",
    "_reduce_scatter_base": "reduce_scatter", "reduce_scatter": "reduce_scatter",
    "all_gather_single": "all_gather", "all_gather_into_tensor": "all_gather",
    "_all_gather_base": "all_gather", "all_gather": "all_gather",
}


class CollectiveTrace:
    """What crossed the process group inside :func:`trace_collectives`: bytes and calls per collective."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self.bytes: dict[str, float] = {}
        self.ring_bytes: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.paused = False

    def count(self, collective: str, full_bytes: int) -> None:
        if self.paused:
            return
        self.bytes[collective] = self.bytes.get(collective, 0) + TRACE_FACTOR[collective] * full_bytes
        ring = ring_bytes_sent(RING_RULE.get(collective, collective), full_bytes, self.world_size)
        self.ring_bytes[collective] = self.ring_bytes.get(collective, 0.0) + ring
        self.calls[collective] = self.calls.get(collective, 0) + 1

    @contextmanager
    def pause(self) -> Iterator[None]:
        """Collectives inside this block are not counted (logging, final checks)."""
        self.paused = True
        try:
            yield
        finally:
            self.paused = False

    @property
    def total(self) -> float:
        return sum(self.bytes.values())

    def per_step(self, steps: int) -> tuple[dict[str, float], dict[str, float]]:
        """(logical volume, ring bytes sent) per step, per collective."""
        return ({k: v / steps for k, v in self.bytes.items()}, {k: v / steps for k, v in self.ring_bytes.items()})


@contextmanager
def trace_collectives(world_size: int | None = None) -> Iterator[CollectiveTrace]:
    """Patch ``torch.distributed``'s collectives inside the block and count every call (outermost only)."""
    trace = CollectiveTrace(world_size or dist.get_world_size())
    modules = (dist, dist.distributed_c10d)
    originals = {(m, n): getattr(m, n) for m in modules for n in TRACED if hasattr(m, n)}
    depth = [0]

    def wrap(name: str, fn):
        @functools.wraps(fn)
        def counted(*args, **kwargs):
            if depth[0] == 0:
                trace.count(TRACED[name], _full_bytes(name, args, kwargs))
            depth[0] += 1
            try:
                return fn(*args, **kwargs)
            finally:
                depth[0] -= 1
        return counted

    for (m, n), fn in originals.items():
        setattr(m, n, wrap(n, fn))
    try:
        yield trace
    finally:
        for (m, n), fn in originals.items():
            setattr(m, n, fn)


def counting_allreduce_hook(state, bucket):  # no annotations: DDP checks them against dist.GradBucket
    """A DDP comm hook equal to DDP's default (average the bucket with an all-reduce), but issued
    through ``dist.all_reduce`` so :func:`trace_collectives` sees it (DDP comm hooks: PyTorch docs,
    "DDP Communication Hooks")."""
    buffer = bucket.buffer()
    buffer.div_(dist.get_world_size())
    fut = dist.all_reduce(buffer, async_op=True).get_future()
    return fut.then(lambda f: f.value()[0])
