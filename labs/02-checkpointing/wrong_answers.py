"""Planted wrong answers and shortcuts: for each question, answer cells the hidden tests must catch.

`make test` (tests/test_labs.py) grades the solution notebook with each of these swapped in
and fails unless that question loses its points and no other question does (lab_utils.grading.prove).
"""

WRONG_ANSWERS = {
    # fixed segment length floor(sqrt(n)) with the remainder as an extra short segment:
    # right for perfect squares, wrong count and uneven lengths otherwise (n=10 -> 4 segments 3,3,3,1)
    "q1": '''
def sqrt_n_segments(n: int) -> list[tuple[int, int]]:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"need n >= 1 layers, got {n!r}")
    size = max(1, int(math.sqrt(n)))
    return [(b, min(b + size, n)) for b in range(0, n, size)]
''',
    # off by one: counts each segment's output a_e as kept and recomputes a_b..a_{e-1};
    # right only when all feature maps have the same size
    "q2": '''
def activation_estimate(sizes: list[int], segments: list[tuple[int, int]]) -> dict:
    stored = sum(sizes[e] for _, e in segments)
    segment = max(sum(sizes[b:e]) for b, e in segments)
    return {"stored": stored, "peak": stored + segment}
''',
    # Chen et al.'s greedy Alg. 3, written by hand, tried at every per-segment budget: a good plan,
    # not always the best, so it misses budgets set at the least possible peak
    "q3": '''
def plan_under_budget(sizes, budget):
    n = len(sizes) - 1
    best = None
    for B in sorted({sum(sizes[b + 1:e + 1]) for b in range(n) for e in range(b + 1, n + 1)} | {0}):
        temp, kept = 0, []
        for v in range(1, n + 1):
            temp += sizes[v]
            if v < n and temp > B:
                kept.append(v)
                temp = 0
        bounds = [0, *kept, n]
        plan = list(zip(bounds, bounds[1:]))
        peak = sum(sizes[b] for b, _ in plan) + max(sum(sizes[b + 1:e + 1]) for b, e in plan)
        if best is None or peak < best[0]:
            best = (peak, plan)
    return best[1] if best[0] <= budget else None
''',
    # ignores the flags: counts every segment's forward as recomputed
    "q4": '''
def measure_plan(layers, x, segments, checkpointed):
    plan = CheckpointedSequential(layers, segments, checkpointed)
    out = {"plain_flops": count_flops(lambda: layers(x).sum().backward()),
           "plan_flops": count_flops(lambda: plan(x).sum().backward())}
    with torch.no_grad():
        out["recomputed_flops"] = count_flops(lambda: layers(x))
    for name, model in (("plain_peak", layers), ("plan_peak", plan)):
        with live_feature_map_bytes(layers) as live:
            model(x).sum().backward()
        out[name] = live.peak
    return out
''',
}

# Shortcuts a student could try: each must score 0 on the questions it answers (see
# lab_utils.grading.prove). "calls the reference" is also run with the old guard switched off.
SHORTCUTS = {
    "calls the reference": {
        "q1": '''
from lab_utils.fitting.checkpointing import sqrt_n_segments
''',
        "q2": '''
import lab_utils.fitting.checkpointing as ck

def activation_estimate(sizes, segments):
    est = ck.activation_memory_estimate(sizes, segments)
    return {"stored": est.stored, "peak": est.peak}
''',
    },
    # the undecorated twin of the reference (now marked, so absent from the grading build)
    "undecorated twin": {
        "q1": '''
from lab_utils.fitting.checkpointing import even_segments

def sqrt_n_segments(n):
    if not isinstance(n, int) or n < 1:
        raise ValueError(n)
    return even_segments(n, max(1, round(math.sqrt(n))))
''',
    },
    # the chapter's planner (Alg. 3 with its budget search), which stays in lab_utils: not the best plan
    "Alg. 3 from lab_utils": {
        "q3": '''
from lab_utils.fitting.checkpointing import search_budget

def plan_under_budget(sizes, budget):
    plan = search_budget(sizes)
    return plan.segments if plan.cost <= budget else None
''',
    },
    # predicts the FLOPs (3x forward for a step, +1 forward per checkpointed layer) and Eq. 1's peaks
    "predicts instead of measuring": {
        "q4": '''
def measure_plan(layers, x, segments, checkpointed):
    sizes = feature_map_bytes(layers, x)
    flops = [2 * x.shape[0] * blk[0].in_features * blk[0].out_features for blk in layers]
    recomputed = sum(sum(flops[b:e]) for (b, e), ck in zip(segments, checkpointed) if ck)
    stored = sum(sizes[b] if ck else sum(sizes[b:e + 1]) for (b, e), ck in zip(segments, checkpointed))
    inner = max([sum(sizes[b + 1:e + 1]) for (b, e), ck in zip(segments, checkpointed) if ck], default=0)
    return {"plain_flops": 3 * sum(flops), "plan_flops": 3 * sum(flops) + recomputed,
            "recomputed_flops": recomputed, "plain_peak": sum(sizes), "plan_peak": stored + inner}
''',
    },
    # right for the public checks' and the questions' own examples, something plausible otherwise
    "public inputs only": {
        "q1": '''
def sqrt_n_segments(n):
    if n == 16:
        return [(0, 4), (4, 8), (8, 12), (12, 16)]
    size = max(1, int(math.sqrt(n)))
    return [(b, min(b + size, n)) for b in range(0, n, size)]
''',
        "q2": '''
def activation_estimate(sizes, segments):
    k, n = len(segments), len(sizes) - 1
    return {"stored": k * sizes[0], "peak": (k + math.ceil(n / k)) * sizes[0]}
''',
        "q3": '''
def plan_under_budget(sizes, budget):
    n = len(sizes) - 1
    k = max(1, round(math.sqrt(n)))
    bounds = [round(i * n / k) for i in range(k + 1)]
    plan = list(zip(bounds, bounds[1:]))
    peak = sum(sizes[b] for b, _ in plan) + max(sum(sizes[b + 1:e + 1]) for b, e in plan)
    return plan if peak <= budget else None
''',
        "q4": '''
def measure_plan(layers, x, segments, checkpointed):
    return {"plain_flops": 2816, "plan_flops": 3840, "recomputed_flops": 1024, "plain_peak": 320, "plan_peak": 256}
''',
    },
}
