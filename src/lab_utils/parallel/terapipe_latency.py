"""Cost models ``t(l, c)`` for TeraPipe's slicer: an analytic FLOP/bandwidth model and a fit to measurements.

TeraPipe (Li et al. 2021, arXiv:2102.07988) needs, for a slice of ``l`` tokens after ``c`` tokens of
context, its time on one pipeline stage. Two ways here, both callables ``cost(l, c) -> seconds`` that
also take numpy arrays:

* :class:`AnalyticCost` — a *model*: the stage's Transformer-layer FLOPs over a GPU's throughput, with a
  utilisation term that makes short slices inefficient, plus tensor-parallel all-reduces and the hand-over
  to the next stage over the interconnect. Its hardware numbers are labelled assumptions or datasheet values.
* :class:`FittedCost` — from measurements of a real stage on this device, the way the authors' code
  estimates ``t`` (their ``latency_model.py``; the paper's cost estimation in §3.3): the measured no-context
  latency ``t(l, 0)`` for every slice length, plus a linear fit of the extra time the context adds,
  ``t(l, c) - t(l, 0) ~ a0 + a1 l + a2 c + a3 l c``, plus the measured inter-stage communication.

:data:`PAPER_SETTINGS` holds the GPT-3 shapes of the paper's evaluation (§5) for the chapter's simulated
comparison with its reported speed-ups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Hardware:
    """One GPU and its links. ``peak_flops``: dense fp16 FLOP/s; ``efficiency``: the share of it large
    matrix multiplies reach; ``half_tokens``: tokens per matrix multiply at which they reach half of that
    (the utilisation model ``n / (n + half_tokens)``: a thin slice pays about ``half_tokens`` tokens' worth
    of time whatever its length, for kernel launches, weight reads and idle cores); ``link_bandwidth`` /
    ``link_latency``: between pipeline stages (bytes/s, s); ``tp_bandwidth``: inside a tensor-parallel
    group (bytes/s)."""

    name: str
    peak_flops: float
    efficiency: float
    half_tokens: float
    link_bandwidth: float
    link_latency: float
    tp_bandwidth: float


# p3.16xlarge: 8 V100 (125 TFLOP/s fp16 tensor-core peak, V100 datasheet), NVLink inside the node
# (300 GB/s per GPU, datasheet; half of it per direction here), 25 Gbit/s between instances (AWS).
# efficiency, half_tokens and the link latency are assumptions of this model, not measured values.
V100_P3 = Hardware("V100 (p3.16xlarge)", peak_flops=125e12, efficiency=0.5, half_tokens=512.0,
                   link_bandwidth=25e9 / 8, link_latency=30e-6, tp_bandwidth=150e9)


@dataclass(frozen=True)
class AnalyticCost:
    """``t(l, c)`` of one stage (``layers`` Transformer layers of width ``hidden``) on a batch of ``batch``
    sequences, forward + backward, split ``tp`` ways by tensor (operator) parallelism. A model, not a
    measurement: FLOPs from the layer's matrix shapes, time = FLOPs / achieved throughput + messages."""

    layers: int
    hidden: int
    batch: int
    hw: Hardware = V100_P3
    tp: int = 1
    bytes_per_value: int = 2

    def flops(self, length, c):
        """Forward FLOPs of the stage on the slice: ``24 b l H^2`` for the QKV, output and MLP projections
        (2 FLOPs per multiply-add, MLP width 4H) plus ``4 b l (c + l) H`` for the scores and the weighted sum
        over the ``c + l`` keys (the masked upper triangle is computed too, as dense kernels do)."""
        b, H = self.batch, self.hidden
        return self.layers * (24.0 * b * length * H * H + 4.0 * b * length * (c + length) * H)

    def compute_time(self, length, c):
        """Forward + backward (backward = 2x forward FLOPs) on ``tp`` GPUs at the achieved throughput
        ``peak * efficiency * n / (n + half_tokens)``, ``n = b l`` the tokens of each matrix multiply."""
        n = self.batch * np.asarray(length, dtype=float)
        rate = self.hw.peak_flops * self.hw.efficiency * n / (n + self.hw.half_tokens)
        return 3.0 * self.flops(length, c) / self.tp / rate

    def comm_time(self, length):
        """The slice's activation forward and its gradient back over the stage link, plus Megatron-style
        tensor parallelism's 4 all-reduces per layer (2 forward, 2 backward) of ``b l H`` values, ring cost
        ``2 (tp-1)/tp`` of the bytes each."""
        size = self.batch * np.asarray(length, dtype=float) * self.hidden * self.bytes_per_value
        hop = 2 * (self.hw.link_latency + size / self.hw.link_bandwidth)
        allreduce = 4 * self.layers * 2 * (self.tp - 1) / self.tp * size / self.hw.tp_bandwidth
        return hop + allreduce

    def __call__(self, length, c):
        return self.compute_time(length, c) + self.comm_time(length)

    def with_batch(self, batch: int) -> AnalyticCost:
        """The same stage on micro-batches of ``batch`` sequences (§3.4)."""
        return replace(self, batch=batch)


def fit_context_term(length: Sequence[float], c: Sequence[float], extra: Sequence[float]) -> tuple[float, ...]:
    """Least squares of ``extra ~ a0 + a1 l + a2 c + a3 l c`` (the context's added time; the features of the
    authors' ``latency_model.py``): the coefficients ``(a0, a1, a2, a3)``."""
    length, c, y = (np.asarray(v, dtype=float) for v in (length, c, extra))
    if not (len(length) == len(c) == len(y)) or len(y) < 4:
        raise ValueError(f"need >= 4 measured (l, c, extra time) points of equal length, got {len(length)}, {len(c)}, "
                         f"{len(y)}")
    X = np.stack([np.ones_like(length), length, c, length * c], axis=1)
    return tuple(float(a) for a in np.linalg.lstsq(X, y, rcond=None)[0])


def fit_comm(sizes: Sequence[float], times: Sequence[float]) -> tuple[float, float]:
    """``time ~ alpha + beta * tokens`` through measured hand-over times (two or more slice lengths)."""
    s, t = np.asarray(sizes, dtype=float), np.asarray(times, dtype=float)
    if len(s) < 2 or len(set(s.tolist())) < 2:
        return (float(np.mean(t)) if len(t) else 0.0), 0.0
    beta, alpha = np.polyfit(s, t, 1)
    return float(alpha), float(beta)


@dataclass(frozen=True)
class FittedCost:
    """``t(l, c) = t0(l) + [c > 0] (a0 + a1 l + a2 c + a3 l c) + alpha + beta l``: ``t0`` interpolated in the
    measured no-context latencies ``(lengths, t0)``, ``context`` the fitted coefficients, ``comm`` the fitted
    hand-over ``(alpha, beta)``. Clipped at zero."""

    lengths: tuple[float, ...]
    t0: tuple[float, ...]
    context: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    comm: tuple[float, float] = (0.0, 0.0)

    def __call__(self, length, c):
        length, c = np.asarray(length, dtype=float), np.asarray(c, dtype=float)
        a0, a1, a2, a3 = self.context
        base = np.interp(length, self.lengths, self.t0)
        extra = np.where(c > 0, a0 + a1 * length + a2 * c + a3 * length * c, 0.0)
        out = np.maximum(base + extra + self.comm[0] + self.comm[1] * length, 0.0)
        return float(out) if out.ndim == 0 else out

    @classmethod
    def fit(cls, no_context: dict[int, float], with_context: dict[tuple[int, int], float],
            comm: tuple[float, float] = (0.0, 0.0)) -> FittedCost:
        """From measured seconds: ``no_context[l] = t(l, 0)`` and ``with_context[(l, c)] = t(l, c)`` (c > 0);
        the context term is fitted to ``t(l, c) - t(l, 0)``."""
        if len(no_context) < 2:
            raise ValueError("measure t(l, 0) for at least two slice lengths")
        lengths = sorted(no_context)
        t0 = [no_context[length] for length in lengths]
        pts = sorted(with_context)
        extra = [with_context[p] - float(np.interp(p[0], lengths, t0)) for p in pts]
        ctx = fit_context_term([p[0] for p in pts], [p[1] for p in pts], extra) if len(pts) >= 4 else (0.0,) * 4
        return cls(tuple(float(v) for v in lengths), tuple(float(v) for v in t0), ctx, comm)


def max_cost(costs: Sequence):
    """The slowest stage's cost ``t(l, c) = max_k cost_k(l, c)``: Eq. (1) assumes equal stages, and the
    slowest one paces a pipeline of unequal ones."""
    costs = list(costs)
    if not costs:
        raise ValueError("need at least one stage's cost model")

    def cost(length, c):
        out = np.max(np.stack([np.asarray(f(length, c), dtype=float) for f in costs]), axis=0)
        return float(out) if out.ndim == 0 else out
    return cost


@dataclass(frozen=True)
class PaperSetting:
    """One model of the paper's evaluation: GPT-3 shape (Brown et al. 2020, Table 2.1; the same numbers in
    the authors' ``transformer_models.py``), the cluster it ran on, and what the paper reports for it."""

    model: str
    layers: int
    hidden: int
    nodes: int
    seq_len: int = 2048
    reported: str = "to be checked against the paper (Fig. 5)"


# Nodes per model: the authors' evaluation script (auto_mpirun_dp_slices_evaluation.sh) runs GPT3-1B on 24,
# GPT3-13B on 40 and GPT3-175B on 48 p3.16xlarge (8 V100 each). The 175B number is the abstract's.
PAPER_SETTINGS = (
    PaperSetting("GPT3-1B", 24, 2048, 24),
    PaperSetting("GPT3-13B", 40, 5120, 40),
    PaperSetting("GPT3-175B", 96, 12288, 48,
                 reported="5.0x (abstract, 48 p3.16xlarge); up to 6.75x in one configuration (§5, to be checked)"),
    PaperSetting("GPT3-13B, L=8192", 40, 5120, 40, seq_len=8192,
                 reported="gain grows with L (§5, Fig. 7; exact numbers to be checked)"),
)


def setting_cost(s: PaperSetting, batch: int, hw: Hardware = V100_P3, gpus_per_node: int = 8) -> AnalyticCost:
    """One pipeline stage per node (``K = nodes``, layers split evenly), tensor parallelism over the node's
    GPUs: the analytic cost of a stage of setting ``s`` on ``batch`` sequences."""
    if s.layers % s.nodes and s.nodes % s.layers:
        raise ValueError(f"{s.model}: {s.layers} layers do not split over {s.nodes} stages")
    return AnalyticCost(layers=max(1, s.layers // s.nodes), hidden=s.hidden, batch=batch, hw=hw, tp=gpus_per_node)
