"""Planted wrong answers: for each question, an answer cell the hidden tests must catch.

`make test` (tests/test_labs.py) grades the solution notebook with each of these swapped in
and fails unless that question loses points and no other question does.
"""

WRONG_ANSWERS = {
    # forgets the 2 in exp(ε s / 2Δ) (the factor that makes the mechanism ε-DP, not 2ε-DP);
    # still a probability vector ordered by score, so the public test passes
    "q1": '''
def selection_probabilities(scores, epsilon: float, sensitivity: float) -> np.ndarray:
    logits = epsilon * np.asarray(scores, dtype=float) / sensitivity
    p = np.exp(logits - logits.max())
    return p / p.sum()
''',
    # steps by (m - A(c)) / n instead of / (2n): moves the right way, keeps the total, wrong amount
    "q2": '''
def multiplicative_weights(hist: np.ndarray, axes: tuple, measured: np.ndarray, n: float) -> np.ndarray:
    other = tuple(a for a in range(hist.ndim) if a not in axes)
    current = hist.sum(axis=other)
    shape = [hist.shape[a] if a in axes else 1 for a in range(hist.ndim)]
    out = hist * np.exp((measured - current) / n).reshape(shape)
    return out * (n / out.sum())
''',
    # lets unrated items (rating 0) contribute similarity exp(-ρ/ρ0): right when everyone rated every aux item
    "q3": '''
def scoreboard(aux: dict, release: Ratings, weights: np.ndarray, rho0: float = 1.5, d0: float = 30.0) -> np.ndarray:
    items = aux["items"]
    r = release.ratings[:, items]
    sim = np.exp(-np.abs(aux["ratings"][None, :] - r) / rho0)
    if release.dates is not None and "dates" in aux:
        sim = sim + np.exp(-np.abs(aux["dates"][None, :] - release.dates[:, items]) / d0)
    return (sim * weights[items][None, :]).sum(axis=1)
''',
}
