"""Activations: what autograd saves for backward, and the feature maps alive during a step."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.multiprocessing.reductions import StorageWeakRef

from lab_utils.measure.tensors import fmt_bytes, storage_key


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


# ------------------------------------------------------- live feature maps
@dataclass
class LiveBytes:
    """Bytes of the followed tensor storages alive at each sample, and the peak (weak references)."""

    samples: list[int] = field(default_factory=list)
    _refs: dict = field(default_factory=dict, repr=False)

    @property
    def peak(self) -> int:
        return max(self.samples, default=0)

    def track(self, value: Any) -> None:
        """Follow the storage of a tensor (or of the tensors in a tuple/list) until it is freed."""
        for t in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = storage_key(t)
                old = self._refs.get(key)
                if old is None or old[0].expired():  # a freed storage's address can be reused
                    self._refs[key] = (StorageWeakRef(storage), storage.nbytes())

    def sample(self) -> int:
        """Add up the followed storages still alive, record and return the total."""
        live = sum(n for ref, n in self._refs.values() if not ref.expired())
        self.samples.append(live)
        return live


@contextmanager
def live_feature_map_bytes(module: torch.nn.Module) -> Iterator[LiveBytes]:
    """Follow the bytes of the feature maps of ``module``'s children alive inside the block.

    A feature map is an input or output of a direct child (``a_0 .. a_n`` of an ``nn.Sequential``),
    followed by its storage through a C++ weak reference: it stops counting the moment autograd
    or ``torch.utils.checkpoint`` frees it. The live total is sampled before and after every
    child's forward, the ones checkpointing re-runs in backward included; feature maps are only
    allocated there, so the largest sample is the peak. ``torch.utils.checkpoint``'s early stop
    is off inside the block so that a recomputation reaches its last layer's hook (early stop
    skips only the ops after the last tensor backward needs). A last sample is taken as the
    block ends. Any device; weights and gradients are not counted. Run a training step in it:

    >>> with live_feature_map_bytes(layers) as live:
    ...     model(x).sum().backward()
    >>> live.peak
    """
    from torch.utils.checkpoint import set_checkpoint_early_stop

    result = LiveBytes()

    def before(_module: torch.nn.Module, args: tuple) -> None:
        result.track(args)
        result.sample()

    def after(_module: torch.nn.Module, _args: tuple, output: Any) -> None:
        result.track(output)
        result.sample()

    handles = []
    for child in module.children():
        handles += [child.register_forward_pre_hook(before), child.register_forward_hook(after)]
    if not handles:
        raise ValueError(f"{type(module).__name__} has no children whose feature maps could be followed: "
                         "pass the nn.Sequential (or other container) that runs the layers")
    try:
        with set_checkpoint_early_stop(False):
            yield result
        result.sample()  # what is still held at the end of the block
    finally:
        for h in handles:
            h.remove()


# ------------------------------------------------ saved tensors of a graph, from any thread
def _node_tensors(node: Any) -> list[torch.Tensor]:
    """The tensors an autograd node keeps for backward (built-in ``_saved_*`` fields and, for a
    custom ``autograd.Function``, its ``saved_tensors``)."""
    found: list[torch.Tensor] = []
    names = [a for a in dir(node) if a.startswith("_saved_")] + (["saved_tensors"] if hasattr(node, "saved_tensors") else [])
    for name in names:
        try:
            value = getattr(node, name)
        except RuntimeError:  # already freed by a backward
            continue
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(v, torch.Tensor):
                found.append(v)
    return found


def graph_saved_bytes(outputs: torch.Tensor | Iterable[torch.Tensor],
                      params: Iterable[torch.Tensor] | torch.nn.Module = ()) -> SavedBytes:
    """Bytes autograd holds for the backward of ``outputs``: walk their graph and add up the storages
    every node saved, each once, parameters apart. Unlike :func:`saved_activation_bytes` (thread-local
    hooks) it sees graphs built in other threads, e.g. by ``fairscale.nn.Pipe``'s per-device workers,
    and tensors that checkpointing functions stash with ``save_for_backward``."""
    if isinstance(params, torch.nn.Module):
        params = list(params.parameters())
    param_keys = {storage_key(p) for p in params}
    outputs = [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)
    result, stack, visited = SavedBytes(), [o.grad_fn for o in outputs], set()
    while stack:
        node = stack.pop()
        if node is None or node in visited:
            continue
        visited.add(node)
        for t in _node_tensors(node):
            key = storage_key(t)
            if key not in result._seen:
                result._seen.add(key)
                result.count += 1
                if key in param_keys:
                    result.params += t.untyped_storage().nbytes()
                else:
                    result.activations += t.untyped_storage().nbytes()
        stack += [n for n, _ in node.next_functions]
    return result


@dataclass
class LiveSaved(LiveBytes):
    """Bytes of saved-for-backward tensors alive at each :meth:`sample`, and the peak."""

    _params: set = field(default_factory=set, repr=False)


@contextmanager
def live_saved_bytes(params: Iterable[torch.Tensor] | torch.nn.Module = ()) -> Iterator[LiveSaved]:
    """Follow every tensor autograd saves inside the block (this thread) by a weak reference to its
    storage, until backward frees it; :meth:`LiveSaved.sample` adds up the ones still alive. Sample
    after each micro-batch's forward and backward to get the peak a pipeline stage holds."""
    if isinstance(params, torch.nn.Module):
        params = list(params.parameters())
    result = LiveSaved(_params={storage_key(p) for p in params})

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = storage_key(t)
        old = result._refs.get(key)
        if key not in result._params and (old is None or old[0].expired()):
            storage = t.untyped_storage()
            result._refs[key] = (StorageWeakRef(storage), storage.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield result
