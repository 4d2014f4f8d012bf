"""Gradient checkpointing: keep a few activations, recompute the rest in the backward pass.

Chen, Xu, Zhang & Guestrin (2016), *Training Deep Nets with Sublinear Memory Cost*,
arXiv:1604.06174. A chain of ``n`` layers is cut into ``k`` segments; the forward pass
keeps only each segment's input (the paper's "inter-stage feature maps", mirror count
``m(v) = 0``) and drops everything inside a segment (``m(v) = 1``). The backward pass
re-runs one segment's forward at a time (Alg. 1), so (Sec. 4.3, Eq. 1)

    cost-total = max_i cost-of-segment(i) + O(k) = O(n / k) + O(k),

which is ``O(2 sqrt(n))`` for ``k = sqrt(n)`` at the price of one extra forward pass.
When layers differ in size, Alg. 3 ("Memory Planning with Budget") chooses the kept
nodes greedily under a per-segment budget ``B``, and ``B`` is searched.

Here a *segmentation* of an ``nn.Sequential`` with ``n`` children is a list of half-open
ranges ``[(begin, end), ...]`` that cover ``0..n`` in order; :class:`CheckpointedSequential`
runs each range through ``torch.utils.checkpoint.checkpoint(..., use_reentrant=False)``.
``sizes`` is always the list of feature-map bytes ``[a_0, a_1, ..., a_n]``: ``a_0`` is
the network input and ``a_i`` the output of child ``i - 1`` (see :func:`feature_map_bytes`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import skip_init
from torch.utils.checkpoint import checkpoint, checkpoint_sequential

from lab_utils.graded import graded_reference

Segments = list[tuple[int, int]]


# ------------------------------------------------------------------ segmentations
def _check_depth(n: int) -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"the network needs n >= 1 layers, got n={n!r}")


@graded_reference  # twin: sqrt_n_segments(n) is even_segments(n, round(sqrt(n)))
def even_segments(n: int, k: int) -> Segments:
    """Cut ``n`` layers into ``k`` contiguous segments whose lengths differ by at most one."""
    _check_depth(n)
    if not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"segments must be an int between 1 and the depth n={n}, got {k!r}: "
                         "use 1 for a single checkpointed segment or n for one layer per segment")
    bounds = [round(i * n / k) for i in range(k + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(k)]


@graded_reference  # labs/02-checkpointing asks students to write it
def sqrt_n_segments(n: int) -> Segments:
    """Chen et al. Sec. 4.3: ``k = sqrt(n)`` segments (rounded) of about ``sqrt(n)`` layers each."""
    _check_depth(n)
    return even_segments(n, max(1, round(math.sqrt(n))))


def checkpoint_sequential_segments(n: int, segments: int) -> tuple[Segments, Segments]:
    """What ``torch.utils.checkpoint.checkpoint_sequential(model, segments, x)`` does.

    Returns ``(checkpointed, plain)``: it checkpoints ``segments - 1`` chunks of
    ``n // segments`` layers and runs the rest (the last chunk) *without* checkpointing, so
    ``segments=1`` checkpoints nothing at all.
    """
    _check_depth(n)
    if not isinstance(segments, int) or not 1 <= segments <= n:
        raise ValueError(f"checkpoint_sequential needs 1 <= segments <= n={n}, got {segments!r}")
    size = n // segments
    checkpointed = [(s, s + size) for s in range(0, size * (segments - 1), size)]
    start = checkpointed[-1][1] if checkpointed else 0
    return checkpointed, [(start, n)]


def validate_segments(segments: Sequence[tuple[int, int]], n: int) -> Segments:
    """Check that ``segments`` are non-empty half-open ranges covering ``0..n`` in order."""
    _check_depth(n)
    segs = [(int(b), int(e)) for b, e in segments]
    if not segs:
        raise ValueError("segments is empty: pass at least one (begin, end) range, e.g. [(0, n)]")
    expected = 0
    for b, e in segs:
        if b != expected or e <= b:
            raise ValueError(f"segments must be non-empty ranges covering 0..{n} in order, got {segs}: "
                             f"range ({b}, {e}) should start at {expected} and end after it")
        expected = e
    if expected != n:
        raise ValueError(f"segments cover 0..{expected} but the network has n={n} layers: "
                         f"the last range must end at {n}")
    return segs


# ------------------------------------------------------------ Alg. 3: budgeted plan
@dataclass(frozen=True)
class MemoryPlan:
    """Output of Chen et al. Alg. 3: segments, kept nodes, ``x`` and ``y`` (bytes)."""

    segments: Segments
    kept: tuple[int, ...]  # indices i of feature maps a_i with m(v) = 0 (segment boundaries)
    x: int  # approximate cost to store inter-stage feature maps
    y: int  # approximate memory cost for each sub-stage (the largest)
    budget: float

    @property
    def cost(self) -> int:
        """Eq. 1: stored boundaries plus the largest segment, ``x + y``."""
        return self.x + self.y


def budgeted_segments(sizes: Sequence[int], budget: float,
                      candidates: Sequence[int] | None = None) -> MemoryPlan:
    """Chen et al. Alg. 3, *Memory Planning with Budget*, on a chain.

    Walk the layer outputs ``a_1..a_n`` in topological order accumulating ``temp``; at a
    candidate split point ``v`` with ``temp > B`` keep ``v`` (``m(v) = 0``: ``x += size(v)``,
    ``y = max(y, temp)``, ``temp = 0``), otherwise drop it (``m(v) = 1``). Kept outputs
    become the inputs of new segments. ``candidates`` (default: every layer output but the
    last) are indices ``i`` of ``a_i``; ``sizes`` is ``[a_0, ..., a_n]``.
    """
    sizes = [int(s) for s in sizes]
    n = len(sizes) - 1
    if n < 1 or any(s < 0 for s in sizes):
        raise ValueError("sizes must be [a_0, a_1, ..., a_n] (input and n >= 1 layer outputs, "
                         f"bytes >= 0), got {sizes}")
    if budget < 0:
        raise ValueError(f"the budget B must be >= 0 bytes, got {budget}")
    cand = set(range(1, n)) if candidates is None else set(candidates)
    if not cand <= set(range(1, n)):
        raise ValueError(f"candidate split points must be layer outputs 1..{n - 1}, got {sorted(cand)}")
    temp = x = y = 0
    kept = []
    for v in range(1, n + 1):
        temp += sizes[v]
        if v in cand and temp > budget:
            x += sizes[v]
            y = max(y, temp)
            kept.append(v)
            temp = 0
    y = max(y, temp)  # the last sub-stage, ending at the network output
    bounds = [0, *kept, n]
    segments = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
    return MemoryPlan(segments, tuple(kept), x, y, float(budget))


def search_budget(sizes: Sequence[int], trials: int = 6) -> MemoryPlan:
    """Heuristic search over ``B`` for the plan with the least ``x + y`` (Sec. 4.3).

    As in the authors' MXNet planner: start from ``B = 0``, re-guess ``B = sqrt(x * y / 2)``
    a few times, then try a grid of ``trials`` budgets between the smallest per-stage cost
    seen and ``sqrt(2)`` times the last guess; keep the cheapest plan.
    """
    history = []
    budget = 0.0
    for _ in range(3):
        plan = budgeted_segments(sizes, budget)
        history.append(plan)
        budget = math.sqrt(plan.x * plan.y / 2)
    low, high = min(p.y for p in history), budget * math.sqrt(2)
    step = (high - low) / max(trials, 1)
    history += [budgeted_segments(sizes, low + step * (i + 1)) for i in range(trials) if step > 0]
    return min(history, key=lambda p: (p.cost, len(p.segments)))


# --------------------------------------------------------- the memory estimate (Eq. 1)
@dataclass(frozen=True)
class ActivationEstimate:
    """Chen et al. Eq. 1 for a segmentation, in bytes of feature maps.

    ``stored`` is what the forward pass keeps for backward (segment inputs; every feature
    map of a segment that is not checkpointed); ``segment`` is the largest checkpointed
    segment re-materialised in the backward pass; ``peak = stored + segment``.
    """

    stored: int
    segment: int

    @property
    def peak(self) -> int:
        return self.stored + self.segment


@graded_reference  # labs/02-checkpointing asks students to write it
def activation_memory_estimate(sizes: Sequence[int], segments: Sequence[tuple[int, int]],
                               checkpointed: Sequence[bool] | None = None) -> ActivationEstimate:
    """Estimate activation memory of a segmentation (Chen et al. Sec. 4.3, Eq. 1).

    A checkpointed segment ``(b, e)`` stores only its input ``a_b`` in the forward pass and
    needs ``a_{b+1} + ... + a_e`` while it is recomputed; a plain segment stores
    ``a_b + ... + a_e``. With ``checkpointed`` all False this is ordinary backprop, ``sum(sizes)``.
    """
    n = len(sizes) - 1
    segs = validate_segments(segments, n)
    flags = [True] * len(segs) if checkpointed is None else list(checkpointed)
    if len(flags) != len(segs):
        raise ValueError(f"checkpointed has {len(flags)} flags for {len(segs)} segments: give one per segment")
    stored, seen, segment = 0, set(), 0
    for (b, e), ck in zip(segs, flags):
        keep = [b] if ck else list(range(b, e + 1))
        stored += sum(sizes[i] for i in keep if i not in seen)
        seen.update(keep)
        if ck:
            segment = max(segment, sum(sizes[b + 1:e + 1]))
    return ActivationEstimate(stored, segment)


def sqrt_n_bounds(n: int, feature_map: float) -> tuple[float, float]:
    """Upper bounds ``(stored, peak)`` in bytes for ``sqrt_n_segments(n)`` on equal feature maps.

    Sec. 4.3, Eq. 1 at ``k = round(sqrt(n))``: the forward pass stores the ``k <= sqrt(n) + 1/2``
    segment inputs, and the backward peak, those plus one recomputed segment of at most
    ``ceil(n / k)`` maps, stays within ``2 sqrt(n) + 1`` maps of ``feature_map`` bytes. A plan
    with the wrong number of segments breaks one: too many store too much (``n`` segments
    store ``n`` maps), too few recompute too much (one segment recomputes all ``n``).
    """
    _check_depth(n)
    return (math.sqrt(n) + 0.5) * feature_map, (2 * math.sqrt(n) + 1) * feature_map


# ------------------------------------------------------- applying it to nn.Sequential
def _run(layers: nn.Sequential, begin: int, end: int, x: torch.Tensor) -> torch.Tensor:
    for layer in layers[begin:end]:
        x = layer(x)
    return x


class CheckpointedSequential(nn.Module):
    """Run ``layers`` segment by segment, checkpointing each (Alg. 1 via PyTorch autograd).

    Each segment goes through ``torch.utils.checkpoint.checkpoint(..., use_reentrant=False)``,
    which saves the segment's input and recomputes its inside during backward (with the
    RNG state restored, so dropout masks match). ``layers`` is shared, not copied.
    """

    def __init__(self, layers: nn.Sequential, segments: Sequence[tuple[int, int]],
                 checkpointed: Sequence[bool] | None = None) -> None:
        super().__init__()
        if not isinstance(layers, nn.Sequential):
            raise TypeError(f"CheckpointedSequential needs an nn.Sequential, got {type(layers).__name__}")
        self.layers = layers
        self.segments = validate_segments(segments, len(layers))
        self.checkpointed = [True] * len(self.segments) if checkpointed is None else list(checkpointed)
        if len(self.checkpointed) != len(self.segments):
            raise ValueError("give one checkpointed flag per segment")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for (b, e), ck in zip(self.segments, self.checkpointed):
            if ck and torch.is_grad_enabled():
                x = checkpoint(_run, self.layers, b, e, x, use_reentrant=False)
            else:
                x = _run(self.layers, b, e, x)
        return x


def sqrt_n_checkpointed(layers: nn.Sequential) -> CheckpointedSequential:
    """``layers`` with ``sqrt(n)`` checkpointed segments (Chen et al. Sec. 4.3)."""
    n = len(layers)
    return CheckpointedSequential(layers, even_segments(n, max(1, round(math.sqrt(n)))))


class CheckpointSequential(nn.Module):
    """The library baseline: ``torch.utils.checkpoint.checkpoint_sequential`` (non-reentrant)."""

    def __init__(self, layers: nn.Sequential, segments: int) -> None:
        super().__init__()
        checkpoint_sequential_segments(len(layers), segments)  # validates
        self.layers, self.segments = layers, segments

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return checkpoint_sequential(self.layers, self.segments, x, use_reentrant=False)


# ---------------------------------------------------------------- models and sizes
def mlp_stack(depth: int, width: int, seed: int = 0,
              device: torch.device | str | None = None) -> nn.Sequential:
    """A deep MLP: ``depth`` blocks ``Linear(width, width) -> ReLU`` in an ``nn.Sequential``, seeded.

    Built directly on ``device``, one layer at a time: each weight matrix is drawn on the host
    from the seeded generator (Kaiming-uniform, which keeps the scale over depth; zero biases)
    and copied over, so every device gets the same weights and the host never holds the model.
    """
    _check_depth(depth)
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    gen = torch.Generator().manual_seed(seed)
    device = torch.get_default_device() if device is None else device
    blocks = []
    for _ in range(depth):
        lin = skip_init(nn.Linear, width, width, device=device)
        weight = nn.init.kaiming_uniform_(torch.empty(width, width), nonlinearity="relu", generator=gen)
        with torch.no_grad():
            lin.weight.copy_(weight)
            lin.bias.zero_()
        blocks.append(nn.Sequential(lin, nn.ReLU()))
    return nn.Sequential(*blocks)


def mlp_step_bytes(depth: int, width: int, batch: int, dtype_bytes: int = 4) -> int:
    """Bytes one training step of ``mlp_stack(depth, width)`` needs without checkpointing.

    Weights and their gradients, ``2 depth (width^2 + width)`` numbers, plus the ``depth + 1``
    feature maps plain backprop keeps (Eq. 1 with every node stored) and two more in flight
    (an output gradient and a pre-activation), ``batch * width`` numbers each. An arithmetic
    budget for sizing a sweep, not a measurement.
    """
    _check_depth(depth)
    return dtype_bytes * (2 * depth * (width * width + width) + (depth + 3) * batch * width)


def depths_that_fit(depths: Sequence[int], width: int, batch: int, free_bytes: int | None,
                    margin: float = 0.25, dtype_bytes: int = 4) -> list[int]:
    """The depths of a sweep whose :func:`mlp_step_bytes` fit in ``(1 - margin) * free_bytes``.

    ``free_bytes`` is what the device has free (``lab_utils.measure.free_memory_bytes``; ``None``
    when unknown keeps every depth). Each depth must fit on its own: free the previous model first.
    """
    if not 0 <= margin < 1:
        raise ValueError(f"margin is the fraction of free memory left unused, 0 <= margin < 1, got {margin}")
    if free_bytes is None:
        return list(depths)
    budget = (1 - margin) * free_bytes
    fit = [d for d in depths if mlp_step_bytes(d, width, batch, dtype_bytes) <= budget]
    if not fit:
        need = min(mlp_step_bytes(d, width, batch, dtype_bytes) for d in depths)
        raise ValueError(f"no depth of {list(depths)} fits at width={width}, batch={batch}: the smallest "
                         f"needs {need / 2**30:.2f} GiB and {free_bytes / 2**30:.2f} GiB are free (keeping "
                         f"{margin:.0%} spare); use a smaller width or batch, or free device memory")
    return fit


@torch.no_grad()
def feature_map_bytes(layers: nn.Sequential, x: torch.Tensor) -> list[int]:
    """Measure ``[a_0, ..., a_n]``: bytes of the input and of each child's output."""
    sizes = [x.untyped_storage().nbytes()]
    for layer in layers:
        x = layer(x)
        sizes.append(x.numel() * x.element_size())
    return sizes


# ---------------------------------------------- the drawing's data, a unit-time simulation
def recompute_schedule(n: int, segments: Sequence[tuple[int, int]] | None = None
                       ) -> tuple[list[tuple[str, int, int, str]], list[int]]:
    """Simulate Alg. 1 in unit time steps: ``(events, live)`` for a plot.

    ``events`` are ``(lane, start, end, label)`` with lanes ``forward`` (``F3`` computes
    ``a_3``), ``recompute`` (``R3``) and ``backward`` (``B3``); ``live[t]`` is how many feature
    maps are held after step ``t``. ``segments=None`` is ordinary backprop (keep everything).
    This counts feature maps of a simulated chain, it does not measure tensors; draw it with
    ``lab_utils.plot.schedule_and_memory(events, live)``.
    """
    segs = [(0, n)] if segments is None else validate_segments(segments, n)
    ckpt = segments is not None
    kept = {b for b, _ in segs} if ckpt else set(range(n + 1))
    live, events, counts, t = {0}, [], [], 0

    def step(lane: str, label: str) -> None:
        nonlocal t
        events.append((lane, t, t + 1, label))
        counts.append(len(live))
        t += 1

    for b, e in segs:  # forward: keep a_b, drop the inside once it has been used
        for i in range(b, e):
            live.add(i + 1)
            step("forward", f"F{i + 1}")
            if ckpt and i not in kept:
                live.discard(i)
    if ckpt:
        live.discard(n)
    for b, e in reversed(segs):  # backward, last segment first
        if ckpt:
            for i in range(b, e):
                live.add(i + 1)
                step("recompute", f"R{i + 1}")
        for i in reversed(range(b, e)):
            live.discard(i + 1)
            step("backward", f"B{i + 1}")
    return events, counts
