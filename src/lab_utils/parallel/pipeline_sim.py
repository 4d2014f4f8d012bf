"""Pipeline schedules as event lists: GPipe and 1F1B, their makespan, bubble and in-flight activations.

A *simulation*, not a measurement: given how long each stage takes to run one micro-batch forward
and backward, it says when each stage runs what, if every stage starts an operation as soon as its
inputs are there.

* **GPipe** (Huang et al. 2019, arXiv:1811.06965, §2.2-2.3): each stage runs the forward of all
  ``m`` micro-batches, then all backwards. With ``K`` equal stages the idle share of the pipeline,
  the *bubble*, is ``(K-1)/(M+K-1)`` (§2.3, "O((K-1)/(M+K-1))"), and every stage holds the
  activations of all ``M`` micro-batches when the backward starts (or only their inputs, with
  re-materialisation).
* **1F1B**, PipeDream-Flush (Narayanan et al. 2021, arXiv:2006.09503, §3, PipeDream-Flush; Megatron-LM,
  Narayanan et al. 2021, arXiv:2104.04473, §2.2.1, Figure 4): stage ``s`` (0-based, ``p`` stages)
  runs ``p-s-1`` warm-up forwards, then alternates one forward and one backward, then drains the
  remaining backwards. Same bubble as GPipe — Megatron-LM §2.2.1 counts the bubble time
  ``(p-1)(t_f+t_b)`` against the ideal ``m(t_f+t_b)`` (its "bubble time fraction" ``(p-1)/m``); as a
  share of the whole step that is ``(p-1)/(m+p-1)`` — but a stage never holds more than ``p-s``
  micro-batches' activations instead of ``m``.

Operations are ``("F", i)`` / ``("B", i)`` for micro-batch ``i``; a schedule is one list of
operations per stage (its *order*); :func:`simulate` turns orders and stage times into events.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from lab_utils.graded import graded_reference

Op = tuple[str, int]
SCHEDULES = ("gpipe", "1f1b")


@graded_reference
def bubble_fraction(p: int, m: int) -> float:
    """GPipe §2.3 / Megatron-LM §2.2.1: the idle share of ``p`` equal stages running ``m`` micro-batches,
    ``(p-1) / (m+p-1)``: bubble time ``(p-1)(t_f+t_b)`` over the makespan ``(m+p-1)(t_f+t_b)``
    (Megatron's "bubble time fraction" ``(p-1)/m`` divides by the ideal time ``m(t_f+t_b)`` instead)."""
    _check_pm(p, m)
    return (p - 1) / (m + p - 1)


def _check_pm(p: int, m: int) -> None:
    for name, v in (("p (stages)", p), ("m (micro-batches)", m)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")


def gpipe_order(p: int, m: int) -> list[list[Op]]:
    """GPipe (§2.2): every stage runs ``F0 .. F(m-1)``, then ``B0 .. B(m-1)`` (the order
    ``torch.distributed.pipelining.ScheduleGPipe`` uses)."""
    _check_pm(p, m)
    return [[("F", i) for i in range(m)] + [("B", i) for i in range(m)] for _ in range(p)]


@graded_reference
def one_f_one_b_order(p: int, m: int) -> list[list[Op]]:
    """PipeDream-Flush / 1F1B (arXiv:2006.09503 §3; Megatron-LM arXiv:2104.04473 §2.2.1, Fig. 4).

    Stage ``s`` runs ``w = min(p-s-1, m)`` warm-up forwards; then, in the steady state, the forward of
    micro-batch ``w+k`` followed by the backward of micro-batch ``k``; then the ``w`` cool-down backwards.
    At most ``w+1 <= p-s`` micro-batches are in flight on stage ``s`` (``min(p-s, m)``)."""
    _check_pm(p, m)
    orders = []
    for s in range(p):
        warmup = min(p - s - 1, m)
        order: list[Op] = [("F", i) for i in range(warmup)]
        for k in range(m - warmup):          # steady state: one forward, one backward
            order += [("F", warmup + k), ("B", k)]
        order += [("B", i) for i in range(m - warmup, m)]  # cool-down
        orders.append(order)
    return orders


def schedule_order(kind: str, p: int, m: int) -> list[list[Op]]:
    """The per-stage order of ``kind`` (``"gpipe"`` or ``"1f1b"``)."""
    if kind == "gpipe":
        return gpipe_order(p, m)
    if kind == "1f1b":
        return one_f_one_b_order(p, m)
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {kind!r}")


@dataclass
class Schedule:
    """The events of a simulated schedule: ``(stage, op, micro_batch, start, end)`` tuples."""

    events: list[tuple[int, str, int, float, float]]
    p: int
    m: int
    peak_in_flight: list[int] = field(default_factory=list)

    @property
    def makespan(self) -> float:
        return max(e[4] for e in self.events) - min(e[3] for e in self.events)

    @property
    def busy(self) -> list[float]:
        """Seconds (or time units) each stage computes."""
        out = [0.0] * self.p
        for s, _, _, start, end in self.events:
            out[s] += end - start
        return out

    @property
    def bubble(self) -> float:
        """Idle share of the pipeline: ``1 - sum(busy) / (p * makespan)``; GPipe's
        ``(p-1)/(m+p-1)`` when the stages are equal."""
        return 1.0 - sum(self.busy) / (self.p * self.makespan)

    def gantt_events(self, lane: str = "stage {s}") -> list[tuple[str, float, float, str]]:
        """``(lane, start, end, label)`` rows for :func:`lab_utils.plot.gantt`."""
        return [(lane.format(s=s), a, b, f"{op}{i}") for s, op, i, a, b in self.events]


def peak_in_flight(orders: list[list[Op]]) -> list[int]:
    """Per stage, the most micro-batches whose forward has run and whose backward has not:
    how many micro-batches' activations the stage holds at its peak."""
    peaks = []
    for order in orders:
        held, peak = 0, 0
        for op, _ in order:
            held += 1 if op == "F" else -1
            peak = max(peak, held)
        peaks.append(peak)
    return peaks


def _as_stage_times(t: float | list[float], p: int, what: str) -> list[float]:
    times = [float(t)] * p if isinstance(t, (int, float)) else [float(v) for v in t]
    if len(times) != p or min(times) < 0:
        raise ValueError(f"{what} needs one non-negative time per stage ({p}), got {t!r}")
    return times


def _check_orders(orders: list[list[Op]]) -> int:
    m = sum(op == "F" for op, _ in orders[0])
    want = sorted([("F", i) for i in range(m)] + [("B", i) for i in range(m)])
    for s, order in enumerate(orders):
        if sorted(order) != want:
            raise ValueError(f"stage {s}'s order must run F and B of micro-batches 0..{m - 1} exactly once each, "
                             f"got {order}")
    return m


def simulate(orders: list[list[Op]], fwd: float | list[float], bwd: float | list[float],
             comm: float = 0.0, op_times: dict[tuple[int, str, int], float] | None = None) -> Schedule:
    """Run ``orders`` (one list of ops per stage) with per-stage forward/backward times per micro-batch.

    ``op_times`` overrides single operations: ``{(stage, "F", i): seconds, ...}`` (e.g. each measured
    duration of a real run, so that the prediction sees its micro-batch-to-micro-batch variation).

    An op starts when its stage is free and its inputs exist: ``F(s, i)`` after ``F(s-1, i)``,
    ``B(s, i)`` after ``F(s, i)`` and ``B(s+1, i)``; a hop between stages adds ``comm``.
    Raises ``ValueError`` for an order that deadlocks (an op waits for one that never comes).
    """
    p = len(orders)
    if p < 1:
        raise ValueError("orders must hold one list of operations per stage (at least one stage)")
    m = _check_orders(orders)
    times = {"F": _as_stage_times(fwd, p, "fwd"), "B": _as_stage_times(bwd, p, "bwd")}
    done: dict[tuple[str, int, int], float] = {}  # (op, stage, micro-batch) -> end time
    nxt, free, events = [0] * p, [0.0] * p, []
    while len(events) < 2 * m * p:
        progressed = False
        for s in range(p):
            if nxt[s] == len(orders[s]):
                continue
            op, i = orders[s][nxt[s]]
            deps = [done.get(("F", s - 1, i), None) if s > 0 else 0.0] if op == "F" else \
                [done.get(("F", s, i)), done.get(("B", s + 1, i)) if s < p - 1 else 0.0]
            if any(d is None for d in deps):
                continue
            hop = comm if (op == "F" and s > 0) or (op == "B" and s < p - 1) else 0.0
            start = max([free[s]] + [d + hop for d in deps])
            duration = op_times.get((s, op, i), times[op][s]) if op_times else times[op][s]
            free[s] = done[(op, s, i)] = start + duration
            events.append((s, op, i, start, free[s]))
            nxt[s] += 1
            progressed = True
        if not progressed:
            stuck = {s: orders[s][nxt[s]] for s in range(p) if nxt[s] < len(orders[s])}
            raise ValueError(f"the orders deadlock: each stage's next op waits for another ({stuck})")
    events.sort(key=lambda e: (e[3], e[0]))
    return Schedule(events, p, m, peak_in_flight(orders))


def simulate_schedule(kind: str, p: int, m: int, fwd: float | list[float] = 1.0,
                      bwd: float | list[float] = 2.0, comm: float = 0.0) -> Schedule:
    """:func:`simulate` of :func:`schedule_order` ``(kind, p, m)``."""
    return simulate(schedule_order(kind, p, m), fwd, bwd, comm)


# ----------------------------------------------------------------- choosing m and a balance
@graded_reference
def choose_micro_batches(p: int, bubble_target: float, cap_bytes: float, micro_batch_bytes: float,
                         schedule: str = "1f1b") -> int | None:
    """The smallest number of micro-batches ``m`` (of a fixed size, ``micro_batch_bytes`` of activations
    each per stage) whose bubble ``(p-1)/(m+p-1)`` is at most ``bubble_target`` while the busiest stage's
    in-flight activations stay within ``cap_bytes``; ``None`` when none does.

    The bubble falls with ``m`` (GPipe §2.3), so the smallest ``m`` is ``ceil((p-1)(1-t)/t)``. What the
    stage holds is the schedule's: GPipe keeps all ``m`` micro-batches (§2.2), 1F1B at most ``min(p, m)``
    on stage 0 (arXiv:2104.04473 §2.2.1). Both only grow with ``m``, so if the smallest ``m`` does not fit
    under the cap, no larger one does."""
    _check_pm(p, 1)
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if not 0 < bubble_target < 1:
        return 1 if bubble_target >= 1 or p == 1 else None
    m = max(1, math.ceil((p - 1) * (1 - bubble_target) / bubble_target - 1e-12))
    held = m if schedule == "gpipe" else min(p, m)
    return m if held * micro_batch_bytes <= cap_bytes else None


def balance_by_time(layer_times: list[float], p: int) -> list[int]:
    """Split a chain of layers into ``p`` contiguous stages minimising the slowest stage's time,
    returned as fairscale's ``balance=`` (layers per stage). In the steady state a pipeline advances
    at the pace of its slowest stage (GPipe §2.2 partitions to "approximately match" stage costs;
    torchgpipe §3.3 / fairscale ``balance_by_time`` do it from measured times). Exact, by dynamic
    programming over (stages, layers): O(p n^2)."""
    n = len(layer_times)
    if not 1 <= p <= n:
        raise ValueError(f"need 1 <= p <= number of layers ({n}), got p={p}")
    prefix = [0.0] + list(itertools.accumulate(layer_times))
    best = [[math.inf] * (n + 1) for _ in range(p + 1)]  # best[k][j]: first j layers on k stages
    cut = [[0] * (n + 1) for _ in range(p + 1)]
    best[0][0] = 0.0
    for k in range(1, p + 1):
        for j in range(k, n + 1):
            for i in range(k - 1, j):
                cost = max(best[k - 1][i], prefix[j] - prefix[i])
                if cost < best[k][j]:
                    best[k][j], cut[k][j] = cost, i
    sizes, j = [], n
    for k in range(p, 0, -1):
        sizes.append(j - cut[k][j])
        j = cut[k][j]
    return sizes[::-1]


def stage_times(layer_times: list[float], balance: list[int]) -> list[float]:
    """Per-stage time of ``balance`` (layers per stage) over ``layer_times``."""
    if sum(balance) != len(layer_times) or min(balance) < 1:
        raise ValueError(f"balance {balance} must split the {len(layer_times)} layers into non-empty stages")
    bounds = [0] + list(itertools.accumulate(balance))
    return [sum(layer_times[a:b]) for a, b in zip(bounds, bounds[1:])]
