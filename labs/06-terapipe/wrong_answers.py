"""Planted wrong answers and shortcuts: for each question, answer cells the hidden tests must catch.

`python -m lab_utils.grading prove labs/06-terapipe` grades the solution notebook with each of these
swapped in and fails unless the questions they answer score 0 and no other question loses points.
"""

WRONG_ANSWERS = {
    # K hand-overs instead of K - 1: counts the slowest slice once too often
    "q1": '''
def eq1_latency(times, K, repeats=1):
    if not isinstance(K, int) or K < 1 or not len(times) or min(times) < 0:
        raise ValueError("bad input")
    return repeats * sum(times) + K * max(times)
''',
    # minimises the sum only (Algorithm 1 without the sweep over caps): ignores that the slowest slice
    # is paid K - 1 more times
    "q2": '''
import math

def dp_slicing(cost, L, K):
    S, last = [0.0] + [math.inf] * L, [0] * (L + 1)
    for i in range(1, L + 1):
        for k in range(1, i + 1):
            if S[i - k] + cost(k, i - k) < S[i]:
                S[i], last[i] = S[i - k] + cost(k, i - k), k
    slices, i = [], L
    while i > 0:
        slices.append(last[i])
        i -= last[i]
    slices.reverse()
    times = [cost(s, sum(slices[:j])) for j, s in enumerate(slices)]
    return sum(times) + (K - 1) * max(times), slices
''',
    # drops the window's first tokens instead of keeping the last w: reads the keys of c - w tokens
    "q3": '''
def windowed_slicing(cost, L, K, w, slicer):
    return slicer(lambda length, c: cost(length, max(c - w, 0)), L, K)
''',
    # no KV cache: runs the slice together with its context, recomputing the c earlier tokens
    "q4": '''
from torch.utils.flop_counter import FlopCounterMode

def slice_flops(block, length, c, batch=1):
    d = block.attn.qkv.in_features

    def count(n):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            block(torch.randn(batch, n, d), [], [])
        return counter.get_total_flops()

    flops = count(c + length)
    return {"flops": flops, "per_context_token": (flops - count(length)) / c}
''',
}

_DP_WITH = '''
import math

def dp_slicing(cost, L, K):
    t = {{(a, c): float(cost(a, c)) for c in range(L) for a in range(1, L - c + 1)}}
    best, best_slices = math.inf, []
    for t_max in sorted(set(t.values())):
        if {stop} >= best:
            break
        S, last = [0.0] + [math.inf] * L, [0] * (L + 1)
        for i in range(1, L + 1):
            for k in range(1, i + 1):
                tk = t[(k, i - k)]
                if {cap} and S[i - k] + tk < S[i]:
                    S[i], last[i] = S[i - k] + tk, k
        if S[L] == math.inf:
            continue
        slices, i = [], L
        while i > 0:
            slices.append(last[i])
            i -= last[i]
        slices.reverse()
        latency = S[L] + (K - 1) * {slowest}
        if latency < best:
            best, best_slices = latency, slices
        {after}
    return best, best_slices
'''
_ACTUAL_MAX = "max(t[(s, sum(slices[:j]))] for j, s in enumerate(slices))"

# Shortcuts a student could try: each must score 0 on the questions it answers (see
# lab_utils.grading.prove). "calls the reference" is also run with the old guard switched off.
SHORTCUTS = {
    "calls the reference": {
        "q1": '''
from lab_utils.parallel.terapipe_cost import pipeline_latency

def eq1_latency(times, K, repeats=1):
    return pipeline_latency(times, K, repeats)
''',
        "q2": '''
import lab_utils.parallel.terapipe_cost as tc

def dp_slicing(cost, L, K):
    s = tc.optimal_slicing(cost, L, K)
    return s.latency, list(s.slices)
''',
        "q3": '''
from lab_utils.parallel.terapipe_cost import optimal_slicing

def windowed_slicing(cost, L, K, w, slicer):
    s = optimal_slicing(lambda length, c: cost(length, min(c, w)), L, K)
    return s.latency, list(s.slices)
''',
    },
    # the twins: Eq. (1) through slicing_latency with unit slices; the DP through joint_slicing with a
    # batch of one, or assembled from Algorithm 1's min_sum_under_cap on the book's cost_table
    "undecorated twin": {
        "q1": '''
from lab_utils.parallel.terapipe_cost import slicing_latency

def eq1_latency(times, K, repeats=1):
    one = slicing_latency([1] * len(times), lambda length, c: times[c], K)
    return one + (repeats - 1) * sum(times)
''',
        "q2": '''
from lab_utils.parallel.terapipe_cost import joint_slicing

def dp_slicing(cost, L, K):
    s = joint_slicing(lambda b: cost, L, 1, K)
    return s.latency, list(s.slices)
''',
    },
    "Algorithm 1 from the book": {
        "q2": '''
import numpy as np
from lab_utils.parallel.terapipe_cost import cost_table, min_sum_under_cap

def dp_slicing(cost, L, K):
    D = cost_table(lambda a, b: cost(int(a), int(b)), L)
    best = (float("inf"), [])
    for t_max in np.unique(D[np.isfinite(D)]):
        total, slices = min_sum_under_cap(D, float(t_max))
        if slices:
            ends = np.cumsum(slices)
            best = min(best, (total + (K - 1) * max(D[e, s] for e, s in zip(ends, slices)), slices))
    return best
''',
    },
    # every slicing tried: right, but 2^(L-1) of them -- hopeless past L = 25 or so
    "brute force instead of the DP": {
        "q2": '''
import itertools

def dp_slicing(cost, L, K):
    best = (float("inf"), [])
    for cuts in itertools.product((0, 1), repeat=L - 1):
        slices, run = [], 1
        for cut in cuts:
            if cut:
                slices.append(run)
                run = 0
            run += 1
        slices.append(run)
        times = [cost(s, sum(slices[:j])) for j, s in enumerate(slices)]
        best = min(best, (sum(times) + (K - 1) * max(times), slices))
    return best
''',
    },
    # more wrong answers, each on its own
    "mean instead of max": {
        "q1": '''
def eq1_latency(times, K, repeats=1):
    if not isinstance(K, int) or K < 1 or not len(times) or min(times) < 0:
        raise ValueError("bad input")
    return repeats * sum(times) + (K - 1) * sum(times) / len(times)
''',
    },
    "repeats on the hand-overs too": {
        "q1": '''
def eq1_latency(times, K, repeats=1):
    if not isinstance(K, int) or K < 1 or not len(times) or min(times) < 0:
        raise ValueError("bad input")
    return repeats * (sum(times) + (K - 1) * max(times))
''',
    },
    # the sweep over caps without the cap inside the DP: the min-sum slicing every time, priced with
    # the cap instead of its own slowest slice
    "drops the cap": {
        "q2": _DP_WITH.format(stop="(K - 1) * t_max", cap="True", slowest="t_max", after=""),
    },
    # a wrong early stop: ends the sweep at the first cap that does not improve on the best latency
    # (as if the latency were unimodal in the cap; the paper stops only once (K - 1) t_max >= best)
    "stops at the first cap that does not improve": {
        "q2": _DP_WITH.format(stop="(K - 1) * t_max", cap="tk <= t_max", slowest=_ACTUAL_MAX,
                              after="elif best < math.inf:\n            break"),
    },
    # the right sweep, but the DP prices the last slice with one token too little context
    "context off by one": {
        "q2": _DP_WITH.format(stop="(K - 1) * t_max", cap="tk <= t_max", slowest=_ACTUAL_MAX, after="").replace(
            "tk = t[(k, i - k)]", "tk = t[(k, max(i - k - 1, 0))]"),
    },
    # ignores the window: the full-attention slicing
    "ignores the window": {
        "q3": '''
def windowed_slicing(cost, L, K, w, slicer):
    return slicer(cost, L, K)
''',
    },
    # caps the keys the slice reads, c + l, at w instead of the context c
    "window on context and slice": {
        "q3": '''
def windowed_slicing(cost, L, K, w, slicer):
    return slicer(lambda length, c: cost(length, max(min(c + length, w) - length, 0)), L, K)
''',
    },
    # the analytic model's formula for the chapter's block (MLP of width 4 d), no measurement
    "formula instead of counting": {
        "q4": '''
def slice_flops(block, length, c, batch=1):
    d = block.attn.qkv.in_features
    return {"flops": 24 * batch * length * d * d + 4 * batch * length * (c + length) * d,
            "per_context_token": 4 * batch * length * d}
''',
    },
    # right for the inputs the public checks and the questions show, plausible elsewhere
    "public inputs only": {
        "q1": '''
def eq1_latency(times, K, repeats=1):
    known = {((1.0, 2.0, 3.0), 4, 1): 15.0, ((1.0, 2.0, 3.0), 4, 2): 21.0, ((4.0,), 3, 1): 12.0}
    key = (tuple(float(t) for t in times), K, repeats)
    if not times or K < 1 or min(times) < 0:
        raise ValueError("bad input")
    return known.get(key, repeats * sum(times) + (K - 1) * sum(times) / len(times))
''',
        "q2": '''
def dp_slicing(cost, L, K):
    slices = [L // 2, L - L // 2] if L > 1 else [1]
    times = [cost(slices[0], 0)] + ([cost(slices[1], slices[0])] if L > 1 else [])
    return sum(times) + (K - 1) * max(times), slices
''',
        "q4": '''
def slice_flops(block, length, c, batch=1):
    if (length, c, batch) == (8, 16, 1):
        return {"flops": 835584, "per_context_token": 2048.0}
    d = block.attn.qkv.in_features
    return {"flops": 24 * batch * length * d * d + 4 * batch * length * (c + length) * d,
            "per_context_token": 4 * batch * length * d}
''',
    },
}
