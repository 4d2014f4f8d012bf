"""Hidden tests of lab 06 (instructor only: never in the student's bundle nor in the sandbox).

Each test is a probe (runs in the sandbox on the student's functions, returns plain data) and a judge
(runs in the grading process with the full lab_utils). See lab_utils.grading.hidden. The inputs are
none of the public tests', the questions' or the chapter's: other time lists, other random cost tables
(other seeds and another distribution than the chapter's ``randint(1, 40) / 8``), other model shapes,
other windows, other blocks.
"""

import functools
import random

from lab_utils.grading.hidden import Hidden, no_error, raised


# ---------------------------------------------------------------- q1: Eq. (1)
def _q1_cases():
    rng = random.Random(6101)
    cases = []
    for _ in range(25):
        m = rng.randint(1, 12)
        times = [round(rng.uniform(0.0, 9.0), 3) for _ in range(m)]
        cases.append((times, rng.randint(1, 40), rng.randint(1, 6)))
    return cases


def probe_q1_random(eq1_latency):
    import random

    rng = random.Random(6101)
    out = []
    for _ in range(25):
        m = rng.randint(1, 12)
        times = [round(rng.uniform(0.0, 9.0), 3) for _ in range(m)]
        K, repeats = rng.randint(1, 40), rng.randint(1, 6)
        out.append(eq1_latency(list(times), K, repeats=repeats))
    return out


def judge_q1_random(out):
    no_error(out, "random slice times")
    for got, (times, K, repeats) in zip(out, _q1_cases(), strict=True):
        want = repeats * sum(times) + (K - 1) * max(times)
        assert isinstance(got, (int, float)) and abs(got - want) <= 1e-9 * max(1.0, want), \
            f"times {times}, K={K}, repeats={repeats}: expected {want:g}, got {got!r}"


def probe_q1_edges(eq1_latency):
    return [eq1_latency([2.5, 0.75, 4.0], 1), eq1_latency([3.25], 9), eq1_latency([0.0, 0.0], 5),
            eq1_latency([1.5, 2.5], 1, repeats=3), eq1_latency([0.5, 6.0, 0.5], 2, repeats=4)]


def judge_q1_edges(out):
    no_error(out, "edge cases")
    want = [7.25, 9 * 3.25, 0.0, 12.0, 4 * 7.0 + 6.0]
    what = ["K=1 (no hand-overs)", "one slice, K=9", "zero times", "K=1, repeats=3", "K=2, repeats=4"]
    for got, w, name in zip(out, want, what, strict=True):
        assert abs(got - w) <= 1e-12, f"{name}: expected {w:g}, got {got!r}"


def probe_q1_errors(eq1_latency):
    out = []
    for times, K in [([1.0, 2.0], 0), ([1.0], -3), ([], 4), ([1.0, -0.5, 2.0], 3)]:
        try:
            out.append(eq1_latency(times, K))
        except ValueError as exc:
            out.append(f"ValueError: {exc}")
    return out


def judge_q1_errors(out):
    no_error(out, "invalid inputs")
    for got, case in zip(out, ["K=0", "K=-3", "no slices", "a negative time"], strict=True):
        assert isinstance(got, str) and got.startswith("ValueError"), f"{case} must raise ValueError, got {got!r}"


# ---------------------------------------------------------------- q2: the DP slicer
def _q2_tables():
    """(table, L, K) from the probe's seeds: uniform float costs, non-monotone in l and c."""
    out = []
    for seed in range(40):
        rng = random.Random(6200 + seed)
        L, K = rng.randint(2, 10), rng.randint(1, 9)
        table = {(a, b): round(rng.uniform(0.05, 6.0), 4) for a in range(1, L + 1) for b in range(L)}
        out.append((table, L, K))
    return out


def probe_q2_tables(dp_slicing):
    import random

    out = []
    for seed in range(40):
        rng = random.Random(6200 + seed)
        L, K = rng.randint(2, 10), rng.randint(1, 9)
        table = {(a, b): round(rng.uniform(0.05, 6.0), 4) for a in range(1, L + 1) for b in range(L)}
        latency, slices = dp_slicing(lambda length, c, table=table: table[(int(length), int(c))], L, K)
        out.append((float(latency), [int(s) for s in slices]))
    return out


def _check_slicing(got, cost, L, K, want, what):
    from lab_utils.parallel.terapipe_cost import check_slicing, slicing_latency

    assert isinstance(got, (tuple, list)) and len(got) == 2, f"{what}: return (latency, slices), got {got!r}"
    latency, slices = got
    try:
        check_slicing(slices, L)
    except ValueError as exc:
        raise AssertionError(f"{what}: {exc}") from None
    actual = slicing_latency(slices, cost, K)
    tol = 1e-9 * max(1.0, want)
    assert abs(actual - want) <= tol, \
        f"{what}: the optimum is {want:.6g}, your slicing {slices} has latency {actual:.6g} by Eq. (1)"
    assert abs(latency - actual) <= tol, \
        f"{what}: you return latency {latency:.6g} for slicing {slices}, whose Eq. (1) latency is {actual:.6g}"


@functools.cache
def _q2_brute_force_optima():
    from lab_utils.parallel.terapipe_cost import brute_force_slicing

    return [brute_force_slicing(lambda length, c, table=table: table[(length, c)], L, K)[0]
            for table, L, K in _q2_tables()]


def judge_q2_brute_force(out):
    no_error(out, "random cost tables")
    for got, (table, L, K), want in zip(out, _q2_tables(), _q2_brute_force_optima(), strict=True):
        cost = lambda length, c, table=table: table[(int(length), int(c))]
        _check_slicing(got, cost, L, K, want, f"random table, L={L}, K={K}")


# long sequences: 2^(L-1) slicings are too many to enumerate, the DP's O(L^4) is not
Q2_LONG = [(2, 4096, 1, 64, 32, 16), (1, 6144, 2, 32, 40, 5), (3, 2048, 4, 48, 28, 1)]


def _analytic(layers, hidden, batch, unit):
    from lab_utils.parallel.terapipe_latency import AnalyticCost

    m = AnalyticCost(layers=layers, hidden=hidden, batch=batch, tp=8)
    return lambda length, c: 1e3 * float(m(unit * length, unit * c))


def probe_q2_long(dp_slicing):
    from lab_utils.parallel.terapipe_latency import AnalyticCost

    out = []
    for layers, hidden, batch, unit, L, K in [(2, 4096, 1, 64, 32, 16), (1, 6144, 2, 32, 40, 5),
                                              (3, 2048, 4, 48, 28, 1)]:
        m = AnalyticCost(layers=layers, hidden=hidden, batch=batch, tp=8)
        latency, slices = dp_slicing(lambda length, c, m=m, unit=unit: 1e3 * float(m(unit * length, unit * c)), L, K)
        out.append((float(latency), [int(s) for s in slices]))
    return out


@functools.cache
def _optimum(key, L, K, w=None):
    """The reference DP's latency on the analytic stage ``key`` (or the window ``w`` on it)."""
    from lab_utils.parallel.terapipe_cost import optimal_slicing

    cost = _analytic(*key)
    return optimal_slicing(cost if w is None else (lambda length, c: cost(length, min(c, w))), L, K).latency


def judge_q2_long(out):
    assert not raised(out, "ProbeTimeout"), f"{out.message}: L up to 40 needs the DP, not brute force"
    no_error(out, "long sequences")
    for got, (layers, hidden, batch, unit, L, K) in zip(out, Q2_LONG, strict=True):
        cost = _analytic(layers, hidden, batch, unit)
        want = _optimum((layers, hidden, batch, unit), L, K)
        _check_slicing(got, cost, L, K, want, f"analytic stage ({layers} layers of width {hidden}, batch "
                       f"{batch}), L={L} units of {unit} tokens, K={K}")


def probe_q2_edges(dp_slicing):
    table = {(1, 0): 2.5}
    one = dp_slicing(lambda length, c: table[(length, c)], 1, 7)
    # K = 1: no hand-overs, the plain minimum of the sum (long slices are cheap per token here)
    two = dp_slicing(lambda length, c: 3.0 + 0.5 * length + 0.25 * length * c, 6, 1)
    return [(float(x[0]), [int(s) for s in x[1]]) for x in (one, two)]


def judge_q2_edges(out):
    no_error(out, "edge cases")
    assert out[0][1] == [1] and abs(out[0][0] - 7 * 2.5) < 1e-12, \
        f"L=1, K=7, t(1, 0)=2.5: expected (17.5, [1]), got {out[0]!r}"
    cost = lambda length, c: 3.0 + 0.5 * length + 0.25 * length * c
    _check_slicing(out[1], cost, 6, 1, 6.0, "K=1 (minimise the sum)")


# ---------------------------------------------------------------- q3: a sliding window
# (L, K, w) on the analytic stage (1 layer of width 5120, batch 2, tensor-parallel 8) in units of 512 tokens
Q3_ANALYTIC = [(12, 8, 2), (11, 3, 5), (10, 24, 1), (9, 6, 30)]


def probe_q3_windowed(windowed_slicing):
    from lab_utils.parallel.terapipe_latency import AnalyticCost

    def slicer(cost, L, K):          # brute force over every slicing: this test's own, trusted slicer
        best = (float("inf"), [])
        for mask in range(2 ** (L - 1)):
            slices, run = [], 1
            for bit in range(L - 1):
                if mask >> bit & 1:
                    slices.append(run)
                    run = 0
                run += 1
            slices.append(run)
            times, c = [], 0
            for s in slices:
                times.append(cost(s, c))
                c += s
            best = min(best, (sum(times) + (K - 1) * max(times), slices))
        return best

    m = AnalyticCost(layers=1, hidden=5120, batch=2, tp=8)
    cost = lambda length, c: 1e3 * float(m(512 * length, 512 * c))
    out = {}
    for L, K, w in [(12, 8, 2), (11, 3, 5), (10, 24, 1), (9, 6, 30)]:
        latency, slices = windowed_slicing(cost, L, K, w, slicer)
        out[("analytic", L, K, w)] = (float(latency), [int(s) for s in slices])
    import random

    for seed in range(6):
        rng = random.Random(6300 + seed)
        L, K, w = rng.randint(5, 10), rng.randint(2, 8), rng.randint(1, 4)
        table = {(a, b): round(a * (1 + rng.uniform(0, 1)) + 0.3 * a * b * rng.uniform(0.5, 1.5), 4)
                 for a in range(1, L + 1) for b in range(L)}
        latency, slices = windowed_slicing(lambda length, c, table=table: table[(int(length), int(c))], L, K, w, slicer)
        out[("table", seed)] = (float(latency), [int(s) for s in slices])
    return out


def _q3_tables():
    out = []
    for seed in range(6):
        rng = random.Random(6300 + seed)
        L, K, w = rng.randint(5, 10), rng.randint(2, 8), rng.randint(1, 4)
        table = {(a, b): round(a * (1 + rng.uniform(0, 1)) + 0.3 * a * b * rng.uniform(0.5, 1.5), 4)
                 for a in range(1, L + 1) for b in range(L)}
        out.append((seed, table, L, K, w))
    return out


def _windowed_check(got, cost, L, K, w, want, what):
    _check_slicing(got, lambda length, c: cost(length, min(c, w)), L, K, want, what)


def judge_q3_analytic(out):
    no_error(out, "sliding window")
    cost = _analytic(1, 5120, 2, 512)
    for L, K, w in Q3_ANALYTIC:
        _windowed_check(out.get(("analytic", L, K, w)), cost, L, K, w, _optimum((1, 5120, 2, 512), L, K, w),
                        f"analytic stage, L={L} x 512 tokens, K={K}, window {w} x 512 tokens")


@functools.cache
def _q3_table_optima():
    from lab_utils.parallel.terapipe_cost import optimal_slicing

    return [optimal_slicing(lambda length, c, table=table, w=w: table[(length, min(c, w))], L, K).latency
            for _, table, L, K, w in _q3_tables()]


def judge_q3_tables(out):
    no_error(out, "sliding window")
    for (seed, table, L, K, w), want in zip(_q3_tables(), _q3_table_optima(), strict=True):
        cost = lambda length, c, table=table: table[(int(length), int(c))]
        _windowed_check(out.get(("table", seed)), cost, L, K, w, want, f"a cost table, L={L}, K={K}, window {w}")


# ---------------------------------------------------------------- q4: count, and say why
# (d_model, n_head, MLP width, l, c, batch): the chapter's block and two with another MLP width
Q4_CASES = [(48, 3, 192, 6, 10, 2), (80, 5, 240, 4, 9, 1), (32, 2, 32, 7, 3, 3), (40, 8, 160, 1, 21, 1)]


def _q4_block(d, heads, width):
    from torch import nn

    from lab_utils.parallel.terapipe_gpt import Block

    block = Block(d, heads)
    block.mlp = nn.Sequential(nn.Linear(d, width), nn.GELU(), nn.Linear(width, d))
    return block


def probe_q4_counts(slice_flops):
    from torch import nn

    from lab_utils.parallel.terapipe_gpt import Block

    out = []
    for d, heads, width, length, c, batch in [(48, 3, 192, 6, 10, 2), (80, 5, 240, 4, 9, 1),
                                              (32, 2, 32, 7, 3, 3), (40, 8, 160, 1, 21, 1)]:
        block = Block(d, heads)
        block.mlp = nn.Sequential(nn.Linear(d, width), nn.GELU(), nn.Linear(width, d))
        got = slice_flops(block, length, c, batch=batch)
        out.append({"flops": got["flops"], "per_context_token": got["per_context_token"]}
                   if isinstance(got, dict) else repr(got)[:200])
    return out


@functools.cache
def _recount(d, heads, width, length, c, batch):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    block = _q4_block(d, heads, width)
    kv = [torch.zeros(batch, heads, c, d // heads)] if c else []
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        block(torch.zeros(batch, length, d), kv, list(kv))
    return counter.get_total_flops()


def judge_q4_flops(out):
    no_error(out, "counting FLOPs")
    for got, case in zip(out, Q4_CASES, strict=True):
        want = _recount(*case)
        assert isinstance(got, dict) and got["flops"] == want, \
            f"block (d_model, heads, MLP width)={case[:3]}, slice l={case[3]}, context c={case[4]}, batch " \
            f"{case[5]}: the grader counts {want} FLOPs, got {got!r}"


def judge_q4_growth(out):
    no_error(out, "counting FLOPs")
    for got, (d, heads, width, length, c, batch) in zip(out, Q4_CASES, strict=True):
        want = (_recount(d, heads, width, length, c, batch) - _recount(d, heads, width, length, 0, batch)) / c
        assert want == 4 * batch * length * d                  # the analytic model's 4 b l (c + l) H term
        assert isinstance(got, dict) and abs(float(got["per_context_token"]) - want) <= 1e-9 * want, \
            f"d_model={d}, l={length}, c={c}, batch {batch}: the grader counts {want:g} more FLOPs per " \
            f"context token, got {got!r}"


HIDDEN = [
    Hidden("q1", 1, probe_q1_random, judge_q1_random, requires=("judge_q1_edges",)),
    Hidden("q1", 0.5, probe_q1_edges, judge_q1_edges, requires=("judge_q1_random",)),
    Hidden("q1", 0.5, probe_q1_errors, judge_q1_errors, requires=("judge_q1_random", "judge_q1_edges")),
    Hidden("q2", 1.5, probe_q2_tables, judge_q2_brute_force, requires=("judge_q2_long",)),
    Hidden("q2", 1, probe_q2_long, judge_q2_long, requires=("judge_q2_brute_force",), timeout=25),
    Hidden("q2", 0.5, probe_q2_edges, judge_q2_edges, requires=("judge_q2_brute_force", "judge_q2_long")),
    Hidden("q3", 1, probe_q3_windowed, judge_q3_analytic, requires=("judge_q3_tables",)),
    Hidden("q3", 1, probe_q3_windowed, judge_q3_tables, requires=("judge_q3_analytic",)),
    Hidden("q4", 1, probe_q4_counts, judge_q4_flops, requires=("judge_q4_growth",)),
    Hidden("q4", 1, probe_q4_counts, judge_q4_growth, requires=("judge_q4_flops",)),
]
