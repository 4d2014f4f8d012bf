"""Measurements: time, memory, bytes of real tensors, FLOPs.

Everything here measures real objects; nothing is estimated:

* :func:`time_it` runs a callable (warm-up, repeats) and reports the median and spread,
  with CUDA events on a GPU and ``time.perf_counter`` on a CPU.
* :func:`training_state_bytes` adds up the bytes of a model's parameters, their
  gradients and an optimizer's state tensors, counting each storage once. Works on
  any device, so the memory anatomy of training can be checked on a CPU.
* :func:`saved_activation_bytes` counts the tensors autograd saves for backward while
  running a forward pass (``torch.autograd.graph.saved_tensors_hooks``), each storage
  once, separating parameters from activations.
* :func:`peak_cuda_memory` wraps ``torch.cuda.max_memory_allocated``.
* :func:`count_flops` uses ``torch.utils.flop_counter.FlopCounterMode``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

KiB, MiB, GiB = 1024, 1024**2, 1024**3


def fmt_bytes(n: float) -> str:
    """Human-readable bytes (binary units)."""
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


# --------------------------------------------------------------------------- time
@dataclass(frozen=True)
class Timing:
    """Wall-clock times of repeated runs, in seconds."""

    times: tuple[float, ...]
    device: str = "cpu"

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def spread(self) -> float:
        """Half the range (max - min) / 2: a robust-enough error bar for a few repeats."""
        return (max(self.times) - min(self.times)) / 2

    def __str__(self) -> str:
        return f"{self.median * 1e3:.2f} ms ± {self.spread * 1e3:.2f} ms (median of {len(self.times)}, {self.device})"


def time_it(fn: Callable[[], Any], warmup: int = 1, repeats: int = 5,
            device: torch.device | str | None = None) -> Timing:
    """Time ``fn()``: ``warmup`` unmeasured calls, then ``repeats`` measured ones."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    for _ in range(warmup):
        fn()
    times = []
    if dev.type == "cuda":
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(dev)
            times.append(start.elapsed_time(end) / 1e3)
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return Timing(tuple(times), dev.type)


# ----------------------------------------------------------------- tensor bytes
def storage_key(t: torch.Tensor) -> tuple[str, int]:
    """Identity of the storage behind ``t`` (views and aliases share it): device and data pointer."""
    s = t.untyped_storage()
    return (str(t.device), s.data_ptr())


def unique_storage_bytes(tensors: Iterable[torch.Tensor], exclude: set | None = None) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views and aliases count once)."""
    seen: set = set(exclude or ())
    total = 0
    for t in tensors:
        if t is None or not isinstance(t, torch.Tensor):
            continue
        key = storage_key(t)
        if key in seen:
            continue
        seen.add(key)
        total += t.untyped_storage().nbytes()
    return total


def _optimizer_tensors(optimizer: torch.optim.Optimizer | None) -> list[torch.Tensor]:
    if optimizer is None:
        return []
    out = []
    for state in optimizer.state.values():
        for v in state.values():
            if isinstance(v, torch.Tensor):
                out.append(v)
    return out


@dataclass(frozen=True)
class TrainingBytes:
    """Bytes of the persistent state of training (activations are separate).

    Measured by :func:`training_state_bytes` (ints), or predicted by a memory model
    (``lab_utils.fitting.memory``, ``lab_utils.parallel.zero``), so the two compare field by field.
    """

    params: float
    grads: float
    optimizer_states: float

    @property
    def total(self) -> float:
        return self.params + self.grads + self.optimizer_states

    def as_dict(self) -> dict[str, float]:
        return {"params": self.params, "grads": self.grads,
                "optimizer_states": self.optimizer_states, "total": self.total}

    def __str__(self) -> str:
        return ", ".join(f"{k}={fmt_bytes(v)}" for k, v in self.as_dict().items())


def training_state_bytes(model: torch.nn.Module | Iterable[torch.Tensor],
                         optimizer: torch.optim.Optimizer | None = None) -> TrainingBytes:
    """Measure bytes of parameters, gradients and optimizer state of real tensors.

    ``model`` may be a module or any iterable of parameters (e.g. one rank's shard).
    Optimizer state counts every tensor in ``optimizer.state`` (Adam: ``exp_avg``,
    ``exp_avg_sq`` and the 4-byte ``step`` scalar per parameter tensor).
    """
    params = list(model.parameters()) if isinstance(model, torch.nn.Module) else list(model)
    p_bytes = unique_storage_bytes(params)
    g_bytes = unique_storage_bytes(p.grad for p in params if p.grad is not None)
    o_bytes = unique_storage_bytes(_optimizer_tensors(optimizer))
    return TrainingBytes(p_bytes, g_bytes, o_bytes)


# ------------------------------------------------------------ saved activations
@dataclass
class SavedBytes:
    """What autograd saved for backward during a forward pass."""

    activations: int = 0
    params: int = 0
    count: int = 0
    _seen: set = field(default_factory=set, repr=False)

    @property
    def total(self) -> int:
        return self.activations + self.params

    def __str__(self) -> str:
        return (f"activations={fmt_bytes(self.activations)}, params={fmt_bytes(self.params)} "
                f"({self.count} distinct storages)")


@contextmanager
def saved_activation_bytes(params: Iterable[torch.Tensor] | torch.nn.Module = ()) -> Iterator[SavedBytes]:
    """Count the bytes autograd saves for backward inside the ``with`` block.

    Every tensor packed by autograd is recorded by its storage, once; storages that
    belong to ``params`` are reported separately (they exist anyway). Tensors kept by
    ``torch.utils.checkpoint`` (non-reentrant) are seen too: it saves each segment's
    inputs through autograd, and the tensors inside a checkpointed segment are not saved.
    The tensors must stay alive while the block runs (keep the loss), as they would in training.

    >>> with saved_activation_bytes(model) as saved:
    ...     loss = model(x).sum()
    >>> saved.activations
    """
    if isinstance(params, torch.nn.Module):
        params = list(params.parameters())
    param_keys = {storage_key(p) for p in params}
    result = SavedBytes()

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = storage_key(t)
        if key not in result._seen:
            result._seen.add(key)
            result.count += 1
            nbytes = t.untyped_storage().nbytes()
            if key in param_keys:
                result.params += nbytes
            else:
                result.activations += nbytes
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield result


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
    dev = torch.device(device) if device is not None else torch.device("cpu")
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


# ------------------------------------------------------------------------ FLOPs
def count_flops(fn: Callable[[], Any]) -> int:
    """Total floating-point operations of ``fn()`` (forward and any backward it runs)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())
