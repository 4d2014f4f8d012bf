"""Time real runs (CUDA events on a GPU, synchronised wall clock elsewhere) and count FLOPs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch


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


def as_device(device: torch.device | str | None, timed: bool = False) -> torch.device:
    """``device`` as a ``torch.device`` (``None``: the CPU); ``timed``: refuse a device the timers cannot sync."""
    dev = torch.device("cpu") if device is None else torch.device(device)
    if timed and dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"time_it times 'cpu', 'cuda' and 'mps' devices, got {str(dev)!r}")
    return dev


def _sync(dev: torch.device) -> None:
    """Wait for ``dev``'s queued kernels: Apple MPS runs asynchronously, like CUDA."""
    if dev.type == "mps":
        torch.mps.synchronize()


def _run_timed(fn: Callable[[], Any], dev: torch.device) -> float:
    """Seconds of one ``fn()``: CUDA events on CUDA; else ``perf_counter`` between synchronisations."""
    if dev.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(dev)
        return start.elapsed_time(end) / 1e3
    _sync(dev)
    t0 = time.perf_counter()
    fn()
    _sync(dev)
    return time.perf_counter() - t0


def time_it(fn: Callable[[], Any], warmup: int = 1, repeats: int = 5,
            device: torch.device | str | None = None) -> Timing:
    """Time ``fn()``: ``warmup`` unmeasured calls, then ``repeats`` measured ones.

    CUDA: CUDA events around each repeat. CPU: ``time.perf_counter``. Apple MPS: the same
    clock, with the queue drained (``torch.mps.synchronize``) before and after each repeat,
    so that a repeat measures the kernels rather than the time to launch them.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    dev = as_device(device, timed=True)
    for _ in range(warmup):
        fn()
    return Timing(tuple(_run_timed(fn, dev) for _ in range(repeats)), dev.type)


def interleaved_times(steps: Mapping[str, Callable[[], Any]], repeats: int = 5,
                      device: torch.device | str | None = None) -> dict[str, Timing]:
    """Time several callables in rounds, each round calling every step once, in order.

    One unmeasured warm-up round comes first. Interleaving means a busy moment on a shared
    machine slows all steps alike instead of whichever happened to be running: compare
    medians. Each call is timed as in :func:`time_it`.
    """
    if not steps or repeats < 1:
        raise ValueError(f"need at least one step (a mapping name -> callable) and repeats >= 1, "
                         f"got {len(steps)} steps and repeats={repeats}")
    dev = as_device(device, timed=True)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(repeats + 1):
        for name, step in steps.items():
            t = _run_timed(step, dev)
            if r > 0:
                times[name].append(t)
    return {name: Timing(tuple(ts), dev.type) for name, ts in times.items()}


# ------------------------------------------------------------------------ FLOPs
def count_flops(fn: Callable[[], Any]) -> int:
    """Total floating-point operations of ``fn()`` (forward and any backward it runs)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())
