"""Peaks of memory: the CUDA allocator, live tensors on any device, Python objects; free device memory."""

from __future__ import annotations

import gc
import os
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.multiprocessing.reductions import StorageWeakRef

from lab_utils.measure.tensors import local_tensor
from lab_utils.measure.timing import as_device


# ------------------------------------------------------------ tracemalloc (Python objects)
def tracemalloc_peak(fn: Callable[[], Any]) -> int:
    """Peak bytes ``tracemalloc`` traces while ``fn()`` runs, above what it traced before.

    It sees Python's allocator (Python objects), not PyTorch's, which holds tensor storage.
    Tracing already on stays on (its peak is reset); otherwise it is started and stopped here.
    """
    was_tracing = tracemalloc.is_tracing()
    if was_tracing:
        tracemalloc.reset_peak()
    else:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        if not was_tracing:
            tracemalloc.stop()


# --------------------------------------------------------------------- GPU peak
@dataclass
class PeakMemory:
    """Peak bytes allocated by PyTorch's CUDA allocator inside a block (None on CPU)."""

    device: str
    peak: int | None = None
    start: int | None = None

    @property
    def increase(self) -> int | None:
        return None if self.peak is None else self.peak - (self.start or 0)


@contextmanager
def peak_cuda_memory(device: torch.device | str | None = None) -> Iterator[PeakMemory]:
    """``torch.cuda.max_memory_allocated`` over a block; on CPU ``peak`` stays ``None``.

    CPU tensors have no allocator statistics; use :func:`training_state_bytes` and
    :func:`saved_activation_bytes` there, which count the same tensors exactly.
    """
    dev = as_device(device)
    result = PeakMemory(dev.type)
    if dev.type != "cuda":
        yield result
        return
    torch.cuda.synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    result.start = torch.cuda.memory_allocated(dev)
    try:
        yield result
    finally:
        torch.cuda.synchronize(dev)
        result.peak = torch.cuda.max_memory_allocated(dev)


def free_memory_bytes(device: torch.device | str | None = None) -> int | None:
    """Bytes free on ``device``: ``torch.cuda.mem_get_info``; on MPS the recommended working set
    less what the driver holds; on a CPU the available physical memory, ``None`` if unknown."""
    dev = as_device(device)
    if dev.type == "cuda":
        return int(torch.cuda.mem_get_info(dev)[0])
    if dev.type == "mps":
        return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def release_cached_memory(device: torch.device | str | None = None) -> None:
    """Collect garbage and return cached blocks to the device (CUDA, MPS); drop references first."""
    dev = as_device(device)
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.empty_cache()
    elif dev.type == "mps":
        torch.mps.empty_cache()


@dataclass
class LivePeak:
    """Bytes of live tensor storages inside :func:`live_tensor_peak`: at the start and the largest total."""

    start: int = 0
    peak: int = 0
    ops: int = 0
    _refs: dict = field(default_factory=dict, repr=False)

    def track(self, t: Any) -> None:
        t = local_tensor(t) if isinstance(t, torch.Tensor) else t
        if not isinstance(t, torch.Tensor) or t.is_meta:
            return
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # a wrapper subclass without storage
            return
        self._refs[storage._cdata] = StorageWeakRef(storage)

    def live(self) -> int:
        total, dead = 0, []
        for key, ref in self._refs.items():
            storage = None if ref.expired() else torch.UntypedStorage._new_with_weak_ptr(ref.cdata)
            if storage is None:
                dead.append(key)
            else:
                total += storage.nbytes()  # current size: freed-by-resize_(0) storages count 0
        for key in dead:
            del self._refs[key]
        return total

    def sample(self) -> None:
        self.peak = max(self.peak, self.live())


@contextmanager
def live_tensor_peak(held: Iterable[torch.Tensor] = ()) -> Iterator[LivePeak]:
    """The peak bytes of tensor storages alive inside the block, on any device (CPU included).

    A ``TorchDispatchMode`` sees every operator the block runs (forward, autograd's backward,
    the optimizer, the buffers a library allocates for its collectives) and follows the storage of
    each input and output with a weak reference (inputs too: FSDP re-grows its gathered parameters'
    storages with ``resize_``, outside any operator, and they are seen at their first use); after every operator the storages still alive are summed at
    their *current* size (a storage freed with ``resize_(0)``, as FSDP does, counts 0). The
    tensors in ``held`` (parameters, gradients, optimizer states, the batch) are counted from the
    start. Not counted: storages created outside the block and not in ``held``, memory allocated
    without an operator (inside a communication library, C++ buffers), and allocator caching,
    so on a GPU ``torch.cuda.max_memory_allocated`` is the complete number, this the tensors'.
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    result = LivePeak()
    for t in held:
        result.track(t)

    class _Track(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tree_leaves((args, kwargs, out)):  # inputs too: storages allocated outside ops
                result.track(t)
            result.ops += 1
            result.sample()
            return out

    result.start = result.live()
    result.peak = result.start
    with _Track():
        yield result
    result.sample()
