"""Bytes of real tensors: each storage once; model states of training; sharded tensors' local parts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

KiB, MiB, GiB = 1024, 1024**2, 1024**3


def fmt_bytes(n: float) -> str:
    """Human-readable bytes (binary units)."""
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


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
        if isinstance(t, torch.Tensor) and (key := storage_key(t)) not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
    return total


def _optimizer_tensors(optimizer: torch.optim.Optimizer | None) -> list[torch.Tensor]:
    states = optimizer.state.values() if optimizer is not None else ()
    return [v for state in states for v in state.values() if isinstance(v, torch.Tensor)]


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


# ------------------------------------------------ sharded tensors and live-tensor peak on any device
def local_tensor(t: torch.Tensor) -> torch.Tensor:
    """The tensor this rank actually stores: a DTensor's local shard (FSDP2), else ``t`` itself."""
    return t._local_tensor if hasattr(t, "_local_tensor") else t


def sharded_state_bytes(params: Iterable[torch.Tensor],
                        optimizer: torch.optim.Optimizer | None = None) -> TrainingBytes:
    """:func:`training_state_bytes` of what *this rank* stores: DTensors count by their local shard
    (its storage, padding included), everything else as it is."""
    params = list(params)
    p_bytes = unique_storage_bytes(local_tensor(p) for p in params)
    g_bytes = unique_storage_bytes(local_tensor(p.grad) for p in params if p.grad is not None)
    o_bytes = unique_storage_bytes(local_tensor(t) for t in _optimizer_tensors(optimizer))
    return TrainingBytes(p_bytes, g_bytes, o_bytes)
