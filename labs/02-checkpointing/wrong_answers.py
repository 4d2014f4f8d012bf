"""Planted wrong answers: for each question, an answer cell the hidden tests must catch.

`make test` (tests/test_labs.py) grades the solution notebook with each of these swapped in
and fails unless that question loses points and no other question does.
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
}
