"""Hidden tests of lab 05 (instructor only: never in the student's bundle nor in the sandbox).

Each test is a probe (runs in the sandbox on the student's functions, returns plain data) and a judge
(runs in the grading process with the full lab_utils). See lab_utils.grading.hidden. The inputs are
none of the public tests', the questions' or the chapter's.
"""

from lab_utils.grading.hidden import Hidden, no_error, raised

# ---------------------------------------------------------------- q1: GPipe with unequal stages
Q1_SMALL = [([1.0, 3.0, 2.0], [2.0, 5.0, 3.0], 4), ([0.5, 0.5, 0.5, 2.0], [1.0, 1.0, 1.0, 3.5], 7),
            ([2.0], [3.0], 5), ([1.5, 1.0], [1.0, 4.0], 1), ([1.0] * 5, [2.0] * 5, 6),
            ([3.0, 1.0, 1.0, 1.0, 2.5, 0.5], [0.5, 6.0, 2.0, 2.0, 1.0, 1.0], 3)]
# too many micro-batches to simulate event by event (the simulator needs 2 m p events): derive it
Q1_HUGE = [([1.0 + (7 * s % 5) / 4 for s in range(64)], [2.0 + (3 * s % 7) / 3 for s in range(64)], 10**6),
           ([0.8, 1.1, 0.9, 1.3, 1.0, 0.7, 1.2, 1.0], [1.6, 2.0, 2.2, 2.5, 1.9, 1.5, 2.4, 2.1], 500_000)]


def probe_q1_small(gpipe_step_time):
    cases = [([1.0, 3.0, 2.0], [2.0, 5.0, 3.0], 4), ([0.5, 0.5, 0.5, 2.0], [1.0, 1.0, 1.0, 3.5], 7),
             ([2.0], [3.0], 5), ([1.5, 1.0], [1.0, 4.0], 1), ([1.0] * 5, [2.0] * 5, 6),
             ([3.0, 1.0, 1.0, 1.0, 2.5, 0.5], [0.5, 6.0, 2.0, 2.0, 1.0, 1.0], 3)]
    return [gpipe_step_time(list(f), list(b), m) for f, b, m in cases]


def probe_q1_huge(gpipe_step_time):
    cases = [([1.0 + (7 * s % 5) / 4 for s in range(64)], [2.0 + (3 * s % 7) / 3 for s in range(64)], 10**6),
             ([0.8, 1.1, 0.9, 1.3, 1.0, 0.7, 1.2, 1.0], [1.6, 2.0, 2.2, 2.5, 1.9, 1.5, 2.4, 2.1], 500_000)]
    return [gpipe_step_time(list(f), list(b), m) for f, b, m in cases]


def _q1_not_raised(out):
    assert not raised(out, "ProbeTimeout", "MemoryError"), \
        f"{out.type} ({out.message[:80]}): too many micro-batches to simulate, derive the step time"
    no_error(out)


def _q1_check(got, want_makespan, want_bubble, what):
    assert isinstance(got, dict) and {"makespan", "bubble"} <= set(got), f"{what}: return {{'makespan', 'bubble'}}, got {got!r}"
    assert abs(got["makespan"] - want_makespan) <= 1e-9 * want_makespan, \
        f"{what}: makespan expected {want_makespan}, got {got['makespan']}"
    assert abs(got["bubble"] - want_bubble) <= 1e-9, f"{what}: bubble expected {want_bubble:.6f}, got {got['bubble']}"


def judge_q1_against_the_simulator(out):
    from lab_utils.parallel.pipeline_sim import gpipe_order, simulate

    _q1_not_raised(out)
    for got, (f, b, m) in zip(out, Q1_SMALL):
        s = simulate(gpipe_order(len(f), m), f, b)
        _q1_check(got, s.makespan, s.bubble, f"fwd {f}, bwd {b}, m={m}")


def judge_q1_too_many_to_simulate(out):
    _q1_not_raised(out)
    for got, (f, b, m) in zip(out, Q1_HUGE):
        # GPipe's forwards are a flow shop of m identical jobs: the first micro-batch crosses every stage,
        # the others follow one slowest stage apart; the same for the backwards (checked against
        # lab_utils.parallel.pipeline_sim.simulate on random small cases when this lab was written)
        makespan = sum(f) + (m - 1) * max(f) + sum(b) + (m - 1) * max(b)
        bubble = 1 - m * (sum(f) + sum(b)) / (len(f) * makespan)
        _q1_check(got, makespan, bubble, f"{len(f)} stages, m={m}")


# ---------------------------------------------------------------- q2: 1F1B
Q2_CASES = [(4, 7), (6, 2), (2, 9), (7, 7), (1, 3), (5, 4)]


def probe_q2_orders(one_f_one_b):
    return [[[(str(op), int(i)) for op, i in stage] for stage in one_f_one_b(p, m)]
            for p, m in [(4, 7), (6, 2), (2, 9), (7, 7), (1, 3), (5, 4)]]


def judge_q2_bubble_and_memory(out):
    no_error(out)
    from lab_utils.parallel.pipeline_sim import peak_in_flight, simulate

    for orders, (p, m) in zip(out, Q2_CASES):
        assert len(orders) == p, f"p={p}, m={m}: expected one list per stage, got {len(orders)}"
        try:
            s = simulate(orders, 1.0, 2.0)
        except ValueError as exc:
            raise AssertionError(f"p={p}, m={m}: {exc}") from None
        assert abs(s.makespan - (m + p - 1) * 3.0) < 1e-9, \
            f"p={p}, m={m}: 1F1B keeps GPipe's makespan {(m + p - 1) * 3.0}, yours takes {s.makespan}"
        want = [min(p - k, m) for k in range(p)]
        assert peak_in_flight(orders) == want, \
            f"p={p}, m={m}: stages must hold at most {want} micro-batches, yours hold {peak_in_flight(orders)}"


def judge_q2_exact_order(out):
    no_error(out)
    from lab_utils.parallel.pipeline_sim import one_f_one_b_order

    for orders, (p, m) in zip(out, Q2_CASES):
        want = [[tuple(op) for op in stage] for stage in one_f_one_b_order(p, m)]
        for s, (got, ref) in enumerate(zip(orders, want)):
            assert [tuple(op) for op in got] == ref, f"p={p}, m={m}, stage {s}: expected {ref}, got {got}"


# ---------------------------------------------------------------- q3: how many micro-batches
Q3_GPIPE = [(5, 0.15, 23e6, 1e6), (5, 0.15, 22.9e6, 1e6), (2, 0.5, 10, 1), (8, 0.3, 1000, 60), (7, 0.05, 5000, 40)]
Q3_1F1B = [(5, 0.15, 5e6, 1e6), (5, 0.15, 4.9e6, 1e6), (8, 0.6, 4, 1), (8, 0.6, 5, 1), (7, 0.05, 280, 40),
           (3, 0.45, 3, 1)]


def probe_q3_choices(choose_micro_batches):
    gpipe = [(5, 0.15, 23e6, 1e6), (5, 0.15, 22.9e6, 1e6), (2, 0.5, 10, 1), (8, 0.3, 1000, 60), (7, 0.05, 5000, 40)]
    one_f = [(5, 0.15, 5e6, 1e6), (5, 0.15, 4.9e6, 1e6), (8, 0.6, 4, 1), (8, 0.6, 5, 1), (7, 0.05, 280, 40),
             (3, 0.45, 3, 1)]
    return {"gpipe": [choose_micro_batches(*c, schedule="gpipe") for c in gpipe],
            "1f1b": [choose_micro_batches(*c, schedule="1f1b") for c in one_f]}


def _q3_check(got, cases, schedule):
    from lab_utils.parallel.pipeline_sim import choose_micro_batches

    for g, (p, target, cap, mb) in zip(got, cases):
        want = choose_micro_batches(p, target, cap, mb, schedule)
        assert g == want, f"{schedule}, p={p}, bubble <= {target}, cap {cap:g}, {mb:g} B per micro-batch: " \
                          f"expected {want}, got {g}"


def judge_q3_gpipe(out):
    no_error(out)
    _q3_check(out["gpipe"], Q3_GPIPE, "gpipe")


def judge_q3_1f1b(out):
    no_error(out)
    _q3_check(out["1f1b"], Q3_1F1B, "1f1b")


# ---------------------------------------------------------------- q4: measured peak of a stage
Q4_CASES = [((10, 24, 24, 24), 6, 4, 0, 9, "gpipe"), ((10, 24, 24, 24), 6, 4, 0, 9, "1f1b"),
            ((7, 18, 18), 11, 5, 3, 6, "1f1b"), ((7, 18, 18), 11, 6, 1, 3, "1f1b"),
            ((7, 18, 18), 11, 3, 2, 4, "gpipe")]


def probe_q4_peaks(peak_stage_bytes):
    import torch

    from lab_utils.parallel.pipeline_run import make_blocks

    torch.manual_seed(5)
    out = []
    for sizes, batch, p, s, m, schedule in [((10, 24, 24, 24), 6, 4, 0, 9, "gpipe"),
                                            ((10, 24, 24, 24), 6, 4, 0, 9, "1f1b"),
                                            ((7, 18, 18), 11, 5, 3, 6, "1f1b"), ((7, 18, 18), 11, 6, 1, 3, "1f1b"),
                                            ((7, 18, 18), 11, 3, 2, 4, "gpipe")]:
        out.append(peak_stage_bytes(make_blocks(sizes, seed=3), torch.randn(batch, sizes[0]), p, s, m, schedule))
    return out


def _measured_peak(sizes, batch, p, s, m, schedule):
    """The grader's own run: micro-batches through the stage in the schedule's order, the saved
    activations still alive sampled after every operation."""
    import torch

    from lab_utils.measure import live_saved_bytes
    from lab_utils.parallel.pipeline_run import make_blocks
    from lab_utils.parallel.pipeline_sim import gpipe_order, one_f_one_b_order

    stage = make_blocks(sizes, seed=11)
    order = (gpipe_order if schedule == "gpipe" else one_f_one_b_order)(p, m)[s]
    outs = {}
    with live_saved_bytes(stage) as live:
        for op, i in order:
            if op == "F":
                outs[i] = stage(torch.randn(batch, sizes[0]))
            else:
                outs.pop(i).sum().backward()
            live.sample()
    return live.peak


def judge_q4_against_a_real_run(out):
    no_error(out)
    for got, (sizes, batch, p, s, m, schedule) in zip(out, Q4_CASES):
        want = _measured_peak(sizes, batch, p, s, m, schedule)
        assert isinstance(got, (int, float)) and abs(got - want) <= 0.01 * want, \
            f"{schedule}, p={p}, stage {s}, m={m}, blocks {sizes}, batch {batch}: a real run holds {want} bytes " \
            f"at its peak, you said {got}"


HIDDEN = [
    Hidden("q1", 1, probe_q1_small, judge_q1_against_the_simulator, requires=("judge_q1_too_many_to_simulate",)),
    Hidden("q2", 2, probe_q2_orders, judge_q2_bubble_and_memory, requires=("judge_q2_exact_order",)),
    Hidden("q2", 1, probe_q2_orders, judge_q2_exact_order, requires=("judge_q2_bubble_and_memory",)),
    Hidden("q3", 1, probe_q3_choices, judge_q3_gpipe, requires=("judge_q3_1f1b",)),
    Hidden("q3", 1, probe_q3_choices, judge_q3_1f1b, requires=("judge_q3_gpipe",)),
    Hidden("q4", 2, probe_q4_peaks, judge_q4_against_a_real_run),
    # last, so that a submission that simulates a million micro-batches has every other probe done
    # before this one runs out of its (short: the closed form takes microseconds) time
    Hidden("q1", 1, probe_q1_huge, judge_q1_too_many_to_simulate, timeout=5,
           requires=("judge_q1_against_the_simulator",)),
]
