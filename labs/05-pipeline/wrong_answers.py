"""Planted wrong answers: for each question, an answer cell the hidden tests must catch.

`make test` (tests/test_labs.py) grades the solution notebook with each of these swapped in
and fails unless that question loses points and no other question does.
"""

WRONG_ANSWERS = {
    # idle slots over the *busy* slots, (p-1)/m: right in the limit of many micro-batches only
    "q1": '''
def bubble_fraction(p: int, m: int) -> float:
    if p < 1 or m < 1:
        raise ValueError("p and m must be >= 1")
    return (p - 1) / m if m > 1 else (p - 1) / p
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
