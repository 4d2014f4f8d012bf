"""Hidden tests of lab 02 (instructor only: never in the student's bundle nor in the sandbox).

Each test is a probe (runs in the sandbox on the student's functions, returns plain data) and a judge
(runs in the grading process with the full lab_utils). See lab_utils.grading.hidden. Every input here
is new: the public tests, the questions and the chapter use other depths, sizes and plans.
"""

from lab_utils.grading.hidden import Hidden

# ---------------------------------------------------------------- q1: sqrt(n) segments
Q1_DEPTHS = [1, 2, 3, 7, 11, 20, 41, 83, 143, 200]


def probe_q1_segments(sqrt_n_segments):
    return {n: [tuple(s) for s in sqrt_n_segments(n)] for n in [1, 2, 3, 7, 11, 20, 41, 83, 143, 200]}


def judge_q1_segments(out):
    import math

    for n in Q1_DEPTHS:
        segs = out[n]
        assert len(segs) == max(1, round(math.sqrt(n))), \
            f"n={n}: expected round(sqrt(n)) = {max(1, round(math.sqrt(n)))} segments, got {len(segs)}"
        assert segs[0][0] == 0 and segs[-1][1] == n, f"n={n}: segments must cover 0..{n}, got {segs}"
        assert all(a[1] == b[0] for a, b in zip(segs, segs[1:])), f"n={n}: gap or overlap in {segs}"
        lengths = [e - b for b, e in segs]
        assert min(lengths) >= 1 and max(lengths) - min(lengths) <= 1, f"n={n}: uneven lengths {lengths}"


def probe_q1_errors(sqrt_n_segments):
    out = []
    for bad in (0, -5, 2.5):
        try:
            out.append(repr(sqrt_n_segments(bad)))
        except ValueError as exc:
            out.append(f"ValueError: {exc}")
        except Exception as exc:  # noqa: BLE001 - the wrong exception is a wrong answer, not a crash
            out.append(f"{type(exc).__name__}: {exc}")
    return out


def judge_q1_errors(out):
    for got, bad in zip(out, (0, -5, 2.5)):
        assert got.startswith("ValueError"), f"sqrt_n_segments({bad}) must raise ValueError, got {got[:80]}"


# ---------------------------------------------------------------- q2: the Eq. 1 estimate
Q2_CASES = [  # (sizes a_0..a_n, segments): unequal feature maps, segments of unequal length
    ([5, 9, 2, 7, 3, 11, 4, 6], [(0, 3), (3, 4), (4, 7)]),
    ([40, 8, 8, 24, 16, 8, 32, 8, 8, 8], [(0, 2), (2, 6), (6, 9)]),
    ([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5], [(0, 1), (1, 5), (5, 10)]),
    ([100, 1, 1, 1], [(0, 3)]),
    ([7, 7, 70, 7, 7, 7], [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]),
]
# real networks Linear(w_i, w_{i+1}) -> ReLU; the last segment recomputes the most, so Eq. 1's peak is
# what live_feature_map_bytes measures (an earlier largest segment runs after later inputs are freed)
Q2_NETS = [([10, 30, 6, 18, 12, 40, 8, 36], [(0, 2), (2, 4), (4, 7)], 3),
           ([24, 8, 16, 4, 28, 20, 12, 44, 16], [(0, 3), (3, 5), (5, 8)], 5)]


def probe_q2_uneven(activation_estimate):
    cases = [([5, 9, 2, 7, 3, 11, 4, 6], [(0, 3), (3, 4), (4, 7)]),
             ([40, 8, 8, 24, 16, 8, 32, 8, 8, 8], [(0, 2), (2, 6), (6, 9)]),
             ([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5], [(0, 1), (1, 5), (5, 10)]),
             ([100, 1, 1, 1], [(0, 3)]),
             ([7, 7, 70, 7, 7, 7], [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)])]
    out = []
    for sizes, segs in cases:
        est = activation_estimate(list(sizes), list(segs))
        out.append({"stored": int(est["stored"]), "peak": int(est["peak"])})
    return out


def _eq1(sizes, segs):
    stored = sum(sizes[b] for b, _ in segs)
    return {"stored": stored, "peak": stored + max(sum(sizes[b + 1:e + 1]) for b, e in segs)}


def judge_q2_uneven(out):
    for got, (sizes, segs) in zip(out, Q2_CASES):
        want = _eq1(sizes, segs)
        assert got == want, f"sizes={sizes}, segments={segs}: expected {want}, got {got}"


def probe_q2_measured(activation_estimate):
    import torch
    from torch import nn

    from lab_utils.fitting.checkpointing import feature_map_bytes

    out = []
    for widths, segs, batch in [([10, 30, 6, 18, 12, 40, 8, 36], [(0, 2), (2, 4), (4, 7)], 3),
                                ([24, 8, 16, 4, 28, 20, 12, 44, 16], [(0, 3), (3, 5), (5, 8)], 5)]:
        layers = nn.Sequential(*[nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in zip(widths, widths[1:])])
        est = activation_estimate(feature_map_bytes(layers, torch.randn(batch, widths[0])), list(segs))
        out.append({"stored": int(est["stored"]), "peak": int(est["peak"])})
    return out


def judge_q2_measured(out):
    import torch
    from torch import nn

    from lab_utils.fitting.checkpointing import CheckpointedSequential
    from lab_utils.measure import live_feature_map_bytes, saved_activation_bytes

    for got, (widths, segs, batch) in zip(out, Q2_NETS):
        layers = nn.Sequential(*[nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in zip(widths, widths[1:])])
        model, x = CheckpointedSequential(layers, segs), torch.randn(batch, widths[0])
        with saved_activation_bytes(layers) as saved:
            loss = model(x).sum()
        del loss
        with live_feature_map_bytes(layers) as live:
            model(x).sum().backward()
        want = {"stored": saved.activations, "peak": live.peak}
        assert got == want, f"widths {widths}, batch {batch}, segments {segs}: measured {want}, got {got}"


# ---------------------------------------------------------------- q3: the cheapest plan under a budget
# feature maps of Linear->ReLU chains at batch 16 in fp32 (64 bytes per unit of width); Alg. 3
# (lab_utils' budgeted_segments at any B, and search_budget) misses the optimum on each of them
Q3_SIZES = [
    [128, 128, 384, 768, 128, 1024, 192, 768, 512, 64, 768],
    [64, 512, 64, 1024, 512, 64, 768, 256, 128],
    [256, 256, 512, 64, 384, 128, 384, 256, 192, 384, 384],
    [192, 1024, 1024, 64, 384, 384, 192, 64, 1024, 512, 512, 256, 64],
    [1024, 768, 1024, 256, 768, 1024, 128, 1024, 256, 256, 1024, 512],
    # 24 layers: 2^23 plans, more than trying them all allows
    [320, 64, 448, 128, 64, 960, 192, 256, 64, 640, 128, 384, 64, 192, 512, 64, 128, 832, 256, 64, 320,
     128, 576, 64, 192],
]


def probe_q3_plans(plan_under_budget):
    sizes_list = [
        [128, 128, 384, 768, 128, 1024, 192, 768, 512, 64, 768],
        [64, 512, 64, 1024, 512, 64, 768, 256, 128],
        [256, 256, 512, 64, 384, 128, 384, 256, 192, 384, 384],
        [192, 1024, 1024, 64, 384, 384, 192, 64, 1024, 512, 512, 256, 64],
        [1024, 768, 1024, 256, 768, 1024, 128, 1024, 256, 256, 1024, 512],
        [320, 64, 448, 128, 64, 960, 192, 256, 64, 640, 128, 384, 64, 192, 512, 64, 128, 832, 256, 64, 320,
         128, 576, 64, 192],
    ]
    optimum = [1920, 1792, 1472, 2688, 3712, 2112]   # the least Eq. 1 peak of each chain
    out = []
    for sizes, best in zip(sizes_list, optimum):
        row = []
        for budget in (best, best + 100, best - 1):     # tight, loose, one byte short
            try:
                plan = plan_under_budget(list(sizes), budget)
                row.append(None if plan is None else [[int(b), int(e)] for b, e in plan])
            except Exception as exc:  # noqa: BLE001
                row.append(f"{type(exc).__name__}: {exc}")
        out.append(row)
    return out


def _least_peak(sizes):
    """The least Eq. 1 peak over every segmentation: for each candidate largest segment y, the fewest
    stored bytes by dynamic programming (checked against brute force over all 2^(n-1) plans)."""
    n, inf = len(sizes) - 1, float("inf")
    inner = {(b, e): sum(sizes[b + 1:e + 1]) for b in range(n) for e in range(b + 1, n + 1)}
    best = inf
    for y in sorted(set(inner.values())):
        f = [0] + [inf] * n
        for e in range(1, n + 1):
            f[e] = min((f[b] + sizes[b] for b in range(e) if inner[(b, e)] <= y), default=inf)
        best = min(best, f[n] + y)
    return best


def _valid(plan, n):
    if not isinstance(plan, list) or not plan:
        return False
    return plan[0][0] == 0 and plan[-1][1] == n and all(b < e for b, e in plan) and \
        all(p[1] == q[0] for p, q in zip(plan, plan[1:]))


def judge_q3_fits(out):
    for sizes, row in zip(Q3_SIZES, out):
        best = _least_peak(sizes)
        for plan, budget in zip(row[:2], (best, best + 100)):
            n = len(sizes) - 1
            assert _valid(plan, n), f"sizes={sizes}, budget={budget}: a plan fits; expected segments covering " \
                                    f"0..{n} in order, got {plan}"
            peak = _eq1(sizes, plan)["peak"]
            assert peak <= budget, f"sizes={sizes}: plan {plan} peaks at {peak} bytes, over the budget {budget}"
    _measure_fits(Q3_SIZES[1], out[1][0], _least_peak(Q3_SIZES[1]))


def _measure_fits(sizes, plan, budget):
    """Run the plan on a real network with these feature maps and measure its backward peak."""
    import torch
    from torch import nn

    from lab_utils.fitting.checkpointing import CheckpointedSequential
    from lab_utils.measure import live_feature_map_bytes

    widths = [s // 64 for s in sizes]           # batch 16, fp32: 64 bytes per unit of width
    layers = nn.Sequential(*[nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in zip(widths, widths[1:])])
    with live_feature_map_bytes(layers) as live:
        CheckpointedSequential(layers, [tuple(s) for s in plan])(torch.randn(16, widths[0])).sum().backward()
    assert live.peak <= budget, f"measured backward peak {live.peak} bytes over the budget {budget} for plan {plan}"


def judge_q3_none_fits(out):
    for sizes, row in zip(Q3_SIZES, out):
        budget = _least_peak(sizes) - 1
        assert row[2] is None, f"sizes={sizes}: no segmentation peaks at or under {budget} bytes; " \
                               f"expected None, got {row[2]}"


# ---------------------------------------------------------------- q4: measure a plan's cost
Q4_CASES = [  # (widths, batch, segments, checkpointed)
    ([14, 50, 10, 36, 22, 60, 12, 28], 6, [(0, 3), (3, 5), (5, 7)], [True, False, True]),
    ([30, 8, 44, 16, 16, 52, 20, 40, 10], 4, [(0, 1), (1, 6), (6, 8)], [False, True, True]),
]
Q4_KEYS = ("plain_flops", "plan_flops", "recomputed_flops", "plain_peak", "plan_peak")


def probe_q4_measure(measure_plan):
    import torch
    from torch import nn

    out = []
    for widths, batch, segs, flags in [
            ([14, 50, 10, 36, 22, 60, 12, 28], 6, [(0, 3), (3, 5), (5, 7)], [True, False, True]),
            ([30, 8, 44, 16, 16, 52, 20, 40, 10], 4, [(0, 1), (1, 6), (6, 8)], [False, True, True])]:
        torch.manual_seed(len(widths))
        layers = nn.Sequential(*[nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in zip(widths, widths[1:])])
        got = measure_plan(layers, torch.randn(batch, widths[0]), list(segs), list(flags))
        out.append({k: float(got[k]) for k in ("plain_flops", "plan_flops", "recomputed_flops",
                                               "plain_peak", "plan_peak")})
    return out


def _measured_q4(widths, batch, segs, flags):
    import torch
    from torch import nn

    from lab_utils.fitting.checkpointing import CheckpointedSequential
    from lab_utils.measure import count_flops, live_feature_map_bytes

    torch.manual_seed(len(widths))
    layers = nn.Sequential(*[nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in zip(widths, widths[1:])])
    x = torch.randn(batch, widths[0])
    plan = CheckpointedSequential(layers, segs, flags)
    m = {"plain_flops": count_flops(lambda: layers(x).sum().backward()),
         "plan_flops": count_flops(lambda: plan(x).sum().backward())}
    with torch.no_grad():
        a, recomputed = x, 0
        for (b, e), ck in zip(segs, flags):
            if ck:
                recomputed += count_flops(lambda a=a, b=b, e=e: layers[b:e](a))
            a = layers[b:e](a)
    m["recomputed_flops"] = recomputed
    with live_feature_map_bytes(layers) as live:
        layers(x).sum().backward()
    m["plain_peak"] = live.peak
    with live_feature_map_bytes(layers) as live:
        plan(x).sum().backward()
    m["plan_peak"] = live.peak
    return m


def judge_q4_flops(out):
    for got, case in zip(out, Q4_CASES):
        want = _measured_q4(*case)
        for k in ("plain_flops", "plan_flops", "recomputed_flops"):
            assert abs(got[k] - want[k]) <= 0.01 * want[k], f"widths {case[0]}, plan {case[2]} {case[3]}: " \
                                                             f"{k} measured {want[k]}, got {got[k]}"


def judge_q4_peaks(out):
    for got, case in zip(out, Q4_CASES):
        want = _measured_q4(*case)
        for k in ("plain_peak", "plan_peak"):
            assert abs(got[k] - want[k]) <= 0.01 * want[k], f"widths {case[0]}, plan {case[2]} {case[3]}: " \
                                                             f"{k} measured {want[k]}, got {got[k]}"


HIDDEN = [
    Hidden("q1", 2, probe_q1_segments, judge_q1_segments),
    Hidden("q1", 1, probe_q1_errors, judge_q1_errors, requires=("judge_q1_segments",)),
    Hidden("q2", 2, probe_q2_uneven, judge_q2_uneven, requires=("judge_q2_measured",)),
    Hidden("q2", 1, probe_q2_measured, judge_q2_measured, requires=("judge_q2_uneven",)),
    Hidden("q3", 2, probe_q3_plans, judge_q3_fits, requires=("judge_q3_none_fits",)),
    Hidden("q3", 1, probe_q3_plans, judge_q3_none_fits, requires=("judge_q3_fits",)),
    Hidden("q4", 1, probe_q4_measure, judge_q4_flops, requires=("judge_q4_peaks",)),
    Hidden("q4", 1, probe_q4_measure, judge_q4_peaks, requires=("judge_q4_flops",)),
]
