"""TeraPipe's latency formula and its dynamic-programming slicer (Li et al., ICML 2021, arXiv:2102.07988).

TeraPipe pipelines a Transformer language model *along the tokens of one sequence*: stage ``k`` of ``K``
works on token slice ``i`` while stage ``k+1`` works on slice ``i-1``. A token attends only to the tokens
before it, so slice ``i`` needs the keys and values of slices ``< i`` (the *context*, ``c`` tokens) and its
cost ``t(l, c)`` grows with ``c``: equal slices are *not* balanced. The paper (§3.3, "Selecting optimal
slicing scheme") writes the latency of slicing a length-``L`` sequence into ``l_1 .. l_M`` on ``K`` equal
stages as

    T = sum_i t_i + (K - 1) * max_j t_j,      t_i = t(l_i, l_1 + ... + l_{i-1})            (Eq. 1)

(every slice passes each stage once; the slowest slice paces the ``K - 1`` hand-overs) and minimises it
with Algorithm 1: for a cap ``t_max`` a dynamic program over prefixes finds the smallest ``sum_i t_i``
whose slices all cost ``<= t_max`` in O(L^2); the answer is the best ``S*(L; t_max) + (K-1) t_max`` over
the distinct slice costs ``t_max``, enumerated in increasing order and stopped early once
``(K-1) t_max`` alone exceeds the best latency found. §3.4 (combining with the batch dimension) splits
the batch into micro-batches of size ``b`` too: ``T = (B/b) S*(L; t_max) + (K-1) t_max``.

A *cost model* here is any callable ``cost(l, c) -> seconds`` (see :mod:`lab_utils.parallel.terapipe_latency`
for the analytic and the fitted ones). Everything in this module is arithmetic on a cost model: a model
of the latency, not a measurement of it. The section numbers are the arXiv v2 paper's.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from lab_utils.graded import graded_reference
from lab_utils.parallel.pipeline_sim import Schedule, simulate

Cost = Callable[[int, int], float]  # t(l, c): one slice of l tokens after c tokens of context, one stage


def check_slicing(slices: Sequence[int], L: int) -> list[int]:
    """``slices`` as a list of ints, or a ``ValueError`` unless they are positive and add up to ``L``."""
    out = [int(s) for s in slices]
    if not out or min(out) < 1 or sum(out) != L:
        raise ValueError(f"a slicing must be positive token counts adding up to the sequence length {L}, "
                         f"got {list(slices)} (sum {sum(out)})")
    return out


def _check_k(K: int) -> None:
    if not isinstance(K, int) or isinstance(K, bool) or K < 1:
        raise ValueError(f"K (pipeline stages) must be an int >= 1, got {K!r}")


def slice_times(slices: Sequence[int], cost: Cost) -> list[float]:
    """§3.3: ``t_i = t(l_i, l_1 + ... + l_{i-1})``, each slice's cost with the tokens before it as context."""
    context = [0, *itertools.accumulate(slices)][:-1]
    return [float(cost(int(length), int(c))) for length, c in zip(slices, context)]


@graded_reference  # labs/06-terapipe asks students to write it
def pipeline_latency(times: Sequence[float], K: int, repeats: int = 1) -> float:
    """Eq. (1) of §3.3: ``T = repeats * sum_i t_i + (K-1) * max_j t_j`` for ``K`` equal stages.

    ``repeats`` is §3.4's number of micro-batches ``B/b`` that each run the same slicing (1: one sequence).
    Exact for a forward-only pipeline of equal stages (the critical path runs slices ``1..j`` on the first
    stage, slice ``j`` through all ``K``, slices ``j..M`` on the last); with a backward that costs a fixed
    multiple of the forward, the reverse pass adds the same shape, so it holds for ``t = t_fwd + t_bwd``."""
    _check_k(K)
    if len(times) == 0 or min(times) < 0:
        raise ValueError(f"need one non-negative time per slice, got {list(times)}")
    return repeats * float(sum(times)) + (K - 1) * float(max(times))


@graded_reference  # twin: slicing_latency([1] * M, lambda l, c: times[c], K) is pipeline_latency(times, K)
def slicing_latency(slices: Sequence[int], cost: Cost, K: int, L: int | None = None) -> float:
    """Eq. (1) for ``slices`` under ``cost``: :func:`pipeline_latency` of :func:`slice_times`."""
    if L is not None:
        check_slicing(slices, L)
    return pipeline_latency(slice_times(slices, cost), K)


def uniform_slicing(L: int, m: int) -> list[int]:
    """``L`` tokens in ``m`` slices as equal as possible (earlier slices take the extra token)."""
    if not 1 <= m <= L:
        raise ValueError(f"need 1 <= number of slices ({m}) <= sequence length ({L})")
    base, extra = divmod(L, m)
    return [base + (1 if i < extra else 0) for i in range(m)]


def cost_table(cost: Cost, L: int, unit: int = 1) -> np.ndarray:
    """``D[i, k] = t(k, i - k)`` (in tokens times ``unit``): the cost of the slice of ``k`` units that *ends*
    at unit ``i``; ``inf`` where ``k > i``. Slice lengths are multiples of ``unit`` (the paper's code uses a
    granularity of 8 tokens); ``L`` must be one too."""
    if unit < 1 or L < 1 or L % unit:
        raise ValueError(f"the sequence length {L} must be a positive multiple of the slice unit {unit}")
    n = L // unit
    i, k = np.tril_indices(n + 1)                   # all pairs k <= i
    keep = k >= 1
    i, k = i[keep], k[keep]
    D = np.full((n + 1, n + 1), np.inf)
    try:                                            # a cost model that takes arrays: one call
        values = np.asarray(cost(k * unit, (i - k) * unit), dtype=float)
        if values.shape != i.shape:
            raise TypeError
    except (TypeError, ValueError):                 # a scalar-only cost model: one call per pair
        values = np.array([cost(int(a) * unit, int(b - a) * unit) for b, a in zip(i, k)], dtype=float)
    D[i, k] = values
    return D


@graded_reference  # twin: Algorithm 1, the core of labs/06-terapipe's slicer (q2)
def min_sum_under_cap(D: np.ndarray, t_max: float) -> tuple[float, list[int]]:
    """Algorithm 1 (§3.3) for one cap: ``S*(i) = min_{1<=k<=i} { S*(i-k) + t(k, i-k) : t(k, i-k) <= t_max }``,
    ``S*(0) = 0``; returns ``S*(n)`` and its slicing (in units), ``(inf, [])`` when no slicing fits the cap.
    O(n^2) for ``n`` units: each prefix ``i`` looks at every last-slice length ``k``."""
    n = D.shape[0] - 1
    S = np.full(n + 1, np.inf)
    S[0] = 0.0
    last = np.zeros(n + 1, dtype=int)
    for i in range(1, n + 1):
        row = D[i, 1:i + 1]                                  # t(k, i-k) for k = 1..i
        cand = S[i - 1::-1] + np.where(row <= t_max, row, np.inf)  # S*(i-k) + t(k, i-k), capped
        k = int(np.argmin(cand))
        S[i], last[i] = cand[k], k + 1
    if not np.isfinite(S[n]):
        return float("inf"), []
    slices, i = [], n                                         # backtrack the argmin of each prefix
    while i > 0:
        slices.append(int(last[i]))
        i -= int(last[i])
    return float(S[n]), slices[::-1]


@dataclass(frozen=True)
class Slicing:
    """The DP's answer: ``slices`` (tokens), its latency by Eq. (1), the cap it came from, how many caps
    the sweep tried before the early stop, and ``micro_batch`` (§3.4; the whole batch when not split)."""

    slices: tuple[int, ...]
    latency: float
    t_max: float
    caps_tried: int
    micro_batch: int | None = None


@graded_reference  # labs/06-terapipe asks students to write it
def optimal_slicing(cost: Cost, L: int, K: int, unit: int = 1, eps: float = 0.0,
                    repeats: int = 1, table: np.ndarray | None = None) -> Slicing:
    """TeraPipe's slicer (§3.3, Algorithm 1 and the enumeration around it): the slicing of ``L`` tokens that
    minimises Eq. (1) on ``K`` stages (``repeats`` micro-batches per slicing, §3.4).

    Caps ``t_max`` run over the distinct slice costs in increasing order; each costs one O(n^2) DP
    (``n = L/unit``), so the worst case is O(n^4) and the early stop does the work: once
    ``(K-1) t_max >= T_best`` no larger cap can win (its latency is at least ``(K-1) t_max``).
    ``eps > 0`` skips caps closer than ``eps`` to the last one tried (a practical shortcut, inexact)."""
    _check_k(K)
    D = cost_table(cost, L, unit) if table is None else table
    caps = np.unique(D[np.isfinite(D)])
    best: Slicing | None = None
    tried, last_cap = 0, -np.inf
    for t_max in caps:
        if best is not None and (K - 1) * t_max >= best.latency:   # the paper's early stop
            break
        if t_max - last_cap < eps:
            continue
        last_cap, tried = t_max, tried + 1
        total, units = min_sum_under_cap(D, float(t_max))
        if not units:
            continue
        slices = tuple(u * unit for u in units)
        actual_max = max(D[end, u] for end, u in zip(itertools.accumulate(units), units))
        latency = repeats * total + (K - 1) * float(actual_max)   # S*(L; t_max) + (K-1) max_i t_i
        if best is None or latency < best.latency:
            best = Slicing(slices, latency, float(t_max), tried)
    assert best is not None  # the largest cap admits every slicing
    return Slicing(best.slices, best.latency, best.t_max, tried)


@graded_reference  # twin: joint_slicing(lambda b: cost, L, 1, K) is optimal_slicing(cost, L, K)
def joint_slicing(cost_for_batch: Callable[[int], Cost], L: int, B: int, K: int, unit: int = 1,
                  eps: float = 0.0) -> Slicing:
    """§3.4: split the batch ``B`` into ``B/b`` micro-batches of ``b`` sequences *and* slice the tokens;
    every micro-batch size ``b`` dividing ``B`` is tried, each with :func:`optimal_slicing` of
    ``(B/b) S*(L; t_max) + (K-1) t_max``. One slice per micro-batch is GPipe's micro-batch pipelining,
    so the answer is never worse than it under the same cost model."""
    if B < 1:
        raise ValueError(f"the batch B must be >= 1 sequences, got {B}")
    best: Slicing | None = None
    for b in (d for d in range(1, B + 1) if B % d == 0):
        s = optimal_slicing(cost_for_batch(b), L, K, unit, eps, repeats=B // b)
        if best is None or s.latency < best.latency:
            best = Slicing(s.slices, s.latency, s.t_max, s.caps_tried, b)
    assert best is not None
    return best


def microbatch_latency(cost_for_batch: Callable[[int], Cost], L: int, B: int, K: int) -> tuple[float, int]:
    """The micro-batch baseline (GPipe, one whole-sequence slice per micro-batch) under the same cost model:
    the best ``(B/b + K - 1) t(L, 0; b)`` over micro-batch sizes ``b`` dividing ``B``; (latency, b)."""
    options = [(pipeline_latency([cost_for_batch(b)(L, 0)], K, repeats=B // b), b)
               for b in range(1, B + 1) if B % b == 0]
    return min(options)


@graded_reference  # twin: the same optimum as optimal_slicing for small L
def brute_force_slicing(cost: Cost, L: int, K: int) -> tuple[float, list[int]]:
    """Every one of the ``2^(L-1)`` slicings of ``L`` tokens, scored by Eq. (1): the reference the DP must
    equal (small ``L`` only)."""
    if L > 20:
        raise ValueError(f"brute force enumerates 2^(L-1) slicings; L={L} is too long (use L <= 20)")
    best = (float("inf"), [])
    for cuts in itertools.product((0, 1), repeat=L - 1):
        slices, run = [], 1
        for cut in cuts:
            if cut:
                slices.append(run)
                run = 0
            run += 1
        slices.append(run)
        best = min(best, (slicing_latency(slices, cost, K), slices))
    return best


# ----------------------------------------------------------- schedules, for the event simulator
def terapipe_order(K: int, M: int) -> list[list[tuple[str, int]]]:
    """Each stage runs the forwards of slices ``0..M-1``, then the backwards in reverse (slice ``i``'s
    key/value gradient collects contributions from every later slice, so its backward comes after theirs)."""
    _check_k(K)
    return [[("F", i) for i in range(M)] + [("B", i) for i in reversed(range(M))] for _ in range(K)]


def simulate_slicing(fwd: Sequence[Sequence[float]], bwd: Sequence[Sequence[float]], comm: float = 0.0
                     ) -> Schedule:
    """The token pipeline as events: ``fwd[k][i]`` / ``bwd[k][i]`` is stage ``k``'s time on slice ``i``.
    A simulation (:func:`lab_utils.parallel.pipeline_sim.simulate` with one duration per operation)."""
    K, M = len(fwd), len(fwd[0])
    op_times = {(k, op, i): float(t[k][i]) for op, t in (("F", fwd), ("B", bwd)) for k in range(K) for i in range(M)}
    return simulate(terapipe_order(K, M), 0.0, 0.0, comm=comm, op_times=op_times)
