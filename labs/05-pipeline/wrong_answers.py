"""Planted wrong answers: for each question, an answer cell the hidden tests must catch.

`make test` (tests/test_labs.py) grades the solution notebook with each of these swapped in
and fails unless that question loses points and no other question does.
"""

WRONG_ANSWERS = {
    # the equal-stage formula with the slowest stage's times everywhere: (m + p - 1)(max fwd + max bwd)
    "q1": '''
def gpipe_step_time(fwd, bwd, m):
    p = len(fwd)
    makespan = (m + p - 1) * (max(fwd) + max(bwd))
    return {"makespan": makespan, "bubble": 1 - m * (sum(fwd) + sum(bwd)) / (p * makespan)}
''',
    # one warm-up forward too many (p - s instead of p - s - 1): still deadlock-free and the example's last
    # stage is right, but every stage holds one micro-batch more than 1F1B does
    "q2": '''
def one_f_one_b(p: int, m: int) -> list[list[tuple[str, int]]]:
    orders = []
    for s in range(p):
        warmup = min(p - s, m) if s < p - 1 else 0
        order = [("F", i) for i in range(warmup)]
        for k in range(m - warmup):
            order += [("F", warmup + k), ("B", k)]
        order += [("B", i) for i in range(m - warmup, m)]
        orders.append(order)
    return orders
''',
    # treats 1F1B like GPipe: counts all m micro-batches against the cap whatever the schedule
    "q3": '''
def choose_micro_batches(p, bubble_target, cap_bytes, micro_batch_bytes, schedule="1f1b"):
    m = max(1, math.ceil((p - 1) * (1 - bubble_target) / bubble_target - 1e-12))
    return m if m * micro_batch_bytes <= cap_bytes else None
''',
    # measures, but ignores the stage's position: 1F1B holds p - s on stage s, not p on every stage
    "q4": '''
def peak_stage_bytes(stage, x, p, s, m, schedule):
    with saved_activation_bytes(stage) as saved:
        out = stage(x)
    del out
    return (m if schedule == "gpipe" else min(p, m)) * saved.activations
''',
}

# Shortcuts a student could try: each must score 0 on the questions it answers (see
# lab_utils.grading.prove). "calls the reference" is also run with the old guard switched off.
SHORTCUTS = {
    "calls the reference": {
        # the equal-stage bubble of the reference, scaled by the slowest stage
        "q1": '''
from lab_utils.parallel.pipeline_sim import bubble_fraction

def gpipe_step_time(fwd, bwd, m):
    p = len(fwd)
    makespan = (m + p - 1) * (max(fwd) + max(bwd))
    return {"makespan": makespan, "bubble": bubble_fraction(p, m)}
''',
        "q2": '''
from lab_utils.parallel.pipeline_sim import one_f_one_b_order

def one_f_one_b(p, m):
    return one_f_one_b_order(p, m)
''',
        "q3": '''
import lab_utils.parallel.pipeline_sim as sim

def choose_micro_batches(p, bubble_target, cap_bytes, micro_batch_bytes, schedule="1f1b"):
    return sim.choose_micro_batches(p, bubble_target, cap_bytes, micro_batch_bytes, schedule)
''',
    },
    # unmarked functions that reach the reference: schedule_order("1f1b", ...) calls one_f_one_b_order
    "undecorated twin": {
        "q2": '''
from lab_utils.parallel.pipeline_sim import schedule_order

def one_f_one_b(p, m):
    return schedule_order("1f1b", p, m)
''',
        # searches m with the simulator and the schedules' own orders
        "q3": '''
from lab_utils.parallel.pipeline_sim import peak_in_flight, schedule_order, simulate

def choose_micro_batches(p, bubble_target, cap_bytes, micro_batch_bytes, schedule="1f1b"):
    m = 1
    while simulate(schedule_order(schedule, p, m), 1.0, 2.0).bubble > bubble_target + 1e-12:
        m += 1
    held = max(peak_in_flight(schedule_order(schedule, p, m)))
    return m if held * micro_batch_bytes <= cap_bytes else None
''',
    },
    # replays the schedule event by event: right, but 2 m p operations for a million micro-batches
    "simulates instead of deriving": {
        "q1": '''
def gpipe_step_time(fwd, bwd, m):
    s = simulate(gpipe_order(len(fwd), m), fwd, bwd)
    return {"makespan": s.makespan, "bubble": s.bubble}
''',
    },
    # right for the inputs the public checks and the questions show, plausible elsewhere
    "public inputs only": {
        "q1": '''
def gpipe_step_time(fwd, bwd, m):
    p = len(fwd)
    makespan = 21 if (list(fwd), list(bwd), m) == ([1, 2], [2, 4], 3) else (m + p - 1) * (max(fwd) + max(bwd))
    return {"makespan": makespan, "bubble": 1 - m * (sum(fwd) + sum(bwd)) / (p * makespan)}
''',
        "q2": '''
def one_f_one_b(p, m):
    if (p, m) == (2, 3):
        return [[("F", 0), ("F", 1), ("B", 0), ("F", 2), ("B", 1), ("B", 2)],
                [("F", 0), ("B", 0), ("F", 1), ("B", 1), ("F", 2), ("B", 2)]]
    return [[("F", i) for i in range(m)] + [("B", i) for i in range(m)] for _ in range(p)]
''',
        "q3": '''
def choose_micro_batches(p, bubble_target, cap_bytes, micro_batch_bytes, schedule="1f1b"):
    m = max(1, math.ceil((p - 1) * (1 - bubble_target) / bubble_target - 1e-12))
    return m
''',
        "q4": '''
def peak_stage_bytes(stage, x, p, s, m, schedule):
    with saved_activation_bytes(stage) as saved:
        out = stage(x)
    del out
    return m * saved.activations
''',
    },
}
