"""The run record: what one rank of a training experiment measured, in one shape for every chapter.

ZeRO's reference stages, DeepSpeed, sharded data parallel, the pipelines and TeraPipe all
return a :class:`RunRecord` per rank (from :func:`lab_utils.dist.launch` or from
``torchrun -m lab_utils.run``), so the chapters compare them field by field and
:mod:`lab_utils.run` saves any of them as JSON.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import torch


@dataclass
class RunRecord:
    """One rank's measurements of one training run.

    ``losses``        the global (all-reduced mean) loss after each step
    ``step_times``    seconds per step on this rank (forward + backward + communication + update)
    ``state_bytes``   bytes of model states this rank holds at the end (``params``, ``grads``,
                      ``optimizer_states``, ``total``; measured on the real tensors)
    ``comm_bytes``    per step and per collective: the *logical volume* in the ZeRO paper's
                      convention (Section 7.1: an all-reduce moves 2x the tensor, a
                      reduce-scatter or all-gather 1x)
    ``comm_ring_bytes``  per step and per collective: what one rank *sends* in a ring implementation
                      ((N-1)/N of the logical volume)
    ``params``        the final parameters, flattened, on the CPU (``None`` when not kept)
    ``extra``         experiment-specific numbers (padding, partition sizes, optimizer names, ...)
    """

    experiment: str
    rank: int
    world_size: int
    config: dict[str, Any]
    device: str = "cpu"
    backend: str = ""
    losses: list[float] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)
    state_bytes: dict[str, float] = field(default_factory=dict)
    comm_bytes: dict[str, float] = field(default_factory=dict)
    comm_ring_bytes: dict[str, float] = field(default_factory=dict)
    params: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def comm_bytes_per_step(self) -> float:
        """Logical communication volume of one step, all collectives together."""
        return sum(self.comm_bytes.values())

    @property
    def median_step_time(self) -> float:
        return statistics.median(self.step_times) if self.step_times else float("nan")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; the parameters become their count and L2 norm (not the values)."""
        out = asdict(self)
        params = out.pop("params")
        if params is not None:
            out["params_numel"] = params.numel()
            out["params_norm"] = params.double().norm().item()
        out["comm_bytes_per_step"] = self.comm_bytes_per_step
        return out
