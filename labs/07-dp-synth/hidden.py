"""Hidden tests of lab 07 (instructor only: never in the student's bundle nor in the sandbox).

Each test is a probe (runs in the sandbox on the student's objects, returns plain data) and a judge
(runs in the grading process with the full lab_utils). See lab_utils.grading.hidden. Every input here
is new: the question text, the public checks and the chapter never show it.
"""

import functools
import math

from lab_utils.grading.hidden import Hidden

# ---------------------------------------------------------------- q1: sensitivity of a new query
Q1_CASES = [(4, -2.0, 5.0, "add/remove"), (4, -2.0, 5.0, "substitution"), (1, -3.0, 0.5, "substitution"),
            (1, 1.0, 4.0, "add/remove"), (2, -1.5, 1.5, "substitution"), (5, 0.25, 0.75, "substitution"),
            (3, -6.0, -1.0, "add/remove"), (2, -6.0, -1.0, "substitution")]


def probe_q1_sensitivity(query_sensitivity):
    cases = [(4, -2.0, 5.0, "add/remove"), (4, -2.0, 5.0, "substitution"), (1, -3.0, 0.5, "substitution"),
             (1, 1.0, 4.0, "add/remove"), (2, -1.5, 1.5, "substitution"), (5, 0.25, 0.75, "substitution"),
             (3, -6.0, -1.0, "add/remove"), (2, -6.0, -1.0, "substitution")]
    out = []
    for k, lo, hi, relation in cases:
        try:
            l1, l2 = query_sensitivity(k, lo, hi, relation)
            out.append([float(l1), float(l2)])
        except Exception as exc:  # noqa: BLE001 - report, do not stop the other cases
            out.append(f"{type(exc).__name__}: {exc}")
    return out


def _q1_closed_form(k, lo, hi, relation):
    if relation == "add/remove":
        top = max(abs(lo), abs(hi))
        return 1.0 + top, math.sqrt(1.0 + top**2)
    hist = 2.0 if k > 1 else 0.0
    return hist + (hi - lo), math.sqrt(hist + (hi - lo) ** 2)


def _q1_brute_force(k, lo, hi, relation):
    """max ‖f(D) − f(D')‖₁, ‖·‖₂ over all data sets of ≤ 2 records from a grid that includes the clip
    bounds and values beyond them, and all their neighbours under ``relation``."""
    from itertools import product

    import numpy as np

    values = [lo - 1.0, lo, (lo + hi) / 2, 0.0, hi, hi + 1.0]
    records = list(product(range(k), values))

    def f(data):
        out = np.zeros(k + 1)
        for c, x in data:
            out[c] += 1
            out[k] += min(max(x, lo), hi)
        return out

    best1 = best2 = 0.0
    # every data set of 0 or 1 record, and 40 random pairs (the query is linear: the difference only
    # depends on the record added or replaced, which the pairs confirm)
    rng = np.random.default_rng(7)
    pairs = [(records[i], records[j]) for i, j in rng.integers(0, len(records), (40, 2))]
    datasets = [()] + [(r,) for r in records] + pairs
    for data in datasets:
        if relation == "add/remove":
            neighbours = [data + (r,) for r in records]
        else:
            neighbours = [data[:i] + (r,) + data[i + 1:] for i in range(len(data)) for r in records]
        base = f(data)
        for other in neighbours:
            diff = f(other) - base
            best1, best2 = max(best1, np.abs(diff).sum()), max(best2, float(np.sqrt((diff**2).sum())))
    return best1, best2


def _q1_check(out, reference, what):
    assert isinstance(out, list) and len(out) == len(Q1_CASES), f"expected {len(Q1_CASES)} results, got {out!r:.200}"
    for got, case in zip(out, Q1_CASES):
        want = reference(*case)
        assert not isinstance(got, str), f"query_sensitivity{case} raised {got}"
        assert all(abs(g - w) <= 1e-9 * max(1.0, w) for g, w in zip(got, want)), \
            f"query_sensitivity{case}: {what} (l1, l2) = {want}, got {tuple(got)}"


def judge_q1_closed_form(out):
    _q1_check(out, _q1_closed_form, "the exact suprema are")


def judge_q1_brute_force(out):
    for case in Q1_CASES:   # the trusted closed form, itself checked by the search
        brute, exact = _q1_brute_force(*case), _q1_closed_form(*case)
        assert all(abs(b - e) < 1e-9 for b, e in zip(brute, exact)), f"grader error: {case} {brute} {exact}"
    _q1_check(out, _q1_brute_force, "a brute-force search over neighbouring data sets finds")


# ---------------------------------------------------------------- q2: Gaussian calibration, measured δ
Q2_SIGMA_CASES = [(1.0, 0.3, 1e-6), (2.5, 1.7, 1e-6), (0.7, 6.0, 1e-4), (3.0, 0.9, 2e-5), (1.0, 12.0, 1e-8)]
Q2_MEASURE_CASES = [(1.3, 1.0, 1.2, 400_000, 11), (0.9, 2.0, 3.0, 400_000, 12), (4.0, 1.5, 0.2, 400_000, 13)]


def _delta_spent(sigma, l2, epsilon):
    """Balle & Wang 2018, Thm 8: the exact δ of the Gaussian mechanism at ε (computed in logs)."""
    import numpy as np
    from scipy.stats import norm

    a, b = l2 / (2 * sigma), epsilon * sigma / l2
    return float(np.exp(norm.logcdf(a - b)) - np.exp(epsilon + norm.logcdf(-a - b)))


def _exact_sigma(l2, epsilon, delta):
    from scipy.optimize import brentq

    hi = l2
    while _delta_spent(hi, l2, epsilon) > delta:
        hi *= 2
    return brentq(lambda s: _delta_spent(s, l2, epsilon) - delta, 1e-6 * l2, hi, xtol=1e-14, rtol=1e-13)


def probe_q2_sigma(gaussian_sigma):
    cases = [(1.0, 0.3, 1e-6), (2.5, 1.7, 1e-6), (0.7, 6.0, 1e-4), (3.0, 0.9, 2e-5), (1.0, 12.0, 1e-8)]
    return [float(gaussian_sigma(*c)) for c in cases]


def judge_q2_sigma(out):
    for got, (l2, eps, delta) in zip(out, Q2_SIGMA_CASES):
        want = _exact_sigma(l2, eps, delta)
        classic = l2 * math.sqrt(2 * math.log(1.25 / delta)) / eps
        assert abs(got - want) <= 1e-5 * want, \
            (f"gaussian_sigma(Δ={l2}, ε={eps}, δ={delta}): the smallest σ spending δ is {want:.6g}, got {got:.6g}"
             f" (it spends δ = {_delta_spent(got, l2, eps):.3g}; the textbook formula gives {classic:.6g})")


def probe_q2_measured(measured_delta):
    import numpy as np

    cases = [(1.3, 1.0, 1.2, 400_000, 11), (0.9, 2.0, 3.0, 400_000, 12), (4.0, 1.5, 0.2, 400_000, 13)]
    return [float(measured_delta(s, l2, eps, n, np.random.default_rng(seed))) for s, l2, eps, n, seed in cases]


def judge_q2_measured(out):
    import numpy as np

    for got, (sigma, l2, eps, draws, seed) in zip(out, Q2_MEASURE_CASES):
        exact = _delta_spent(sigma, l2, eps)
        # the judge's own measurement, and its Monte Carlo error
        y = np.random.default_rng(1000 + seed).normal(0.0, sigma, draws)
        terms = np.maximum(0.0, 1.0 - np.exp(eps - (l2**2 - 2 * y * l2) / (2 * sigma**2)))
        mine, err = terms.mean(), terms.std() / math.sqrt(draws)
        assert abs(mine - exact) < 6 * err + 1e-12, f"grader error: {mine} vs {exact}"
        assert abs(got - exact) < 8 * err + 0.01 * exact, \
            (f"measured_delta(σ={sigma}, Δ={l2}, ε={eps}, {draws} draws): measured {mine:.4g} here "
             f"(exact {exact:.4g}), got {got:.4g}")


def probe_q2_classic_delta(CLASSIC_DELTA):
    return float(CLASSIC_DELTA)


def judge_q2_classic_delta(out):
    sigma = math.sqrt(2 * math.log(1.25 / 1e-5)) / 20
    exact = _delta_spent(sigma, 1.0, 20.0)
    assert abs(out - exact) < 0.1 * exact, \
        f"the textbook σ = {sigma:.4f} at ε = 20 spends δ = {exact:.3g} (measured here), not {out:.3g}"


# ---------------------------------------------------------------- q3: DP-SGD ε by RDP composition
Q3_SUBSAMPLED = [(0.85, 0.03, 2000, 1e-5), (1.6, 0.001, 20000, 1e-6), (1.05, 0.25, 120, 1e-7),
                 (0.7, 0.008, 700, 1e-5)]
Q3_FULL = [(3.0, 1.0, 40, 1e-5), (0.6, 1.0, 3, 1e-5), (5.5, 1.0, 1, 1e-6)]
Q3_LIBRARIES = ("opacus", "dp_accounting", "tensorflow_privacy", "autodp", "prv_accountant")


def probe_q3_epsilon(dpsgd_epsilon):
    import gc
    import sys
    import types
    import warnings

    libs = ("opacus", "dp_accounting", "tensorflow_privacy", "autodp", "prv_accountant")
    with warnings.catch_warnings():   # touching some objects' __class__ warns (torch's deprecated aliases)
        warnings.simplefilter("ignore")
        loaded = sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in libs}
                        | {o.__name__.split(".")[0] for o in gc.get_objects()
                           if isinstance(o, types.ModuleType) and o.__name__.split(".")[0] in libs})
    if loaded:
        return f"an accounting library was imported: {loaded[0]}"
    blocked = {lib: sys.modules.get(lib) for lib in libs}
    for lib in libs:
        sys.modules[lib] = None   # importing it now raises ImportError
    try:
        sub = [float(dpsgd_epsilon(*c)) for c in [(0.85, 0.03, 2000, 1e-5), (1.6, 0.001, 20000, 1e-6),
                                                   (1.05, 0.25, 120, 1e-7), (0.7, 0.008, 700, 1e-5)]]
        full = [float(dpsgd_epsilon(*c)) for c in [(3.0, 1.0, 40, 1e-5), (0.6, 1.0, 3, 1e-5), (5.5, 1.0, 1, 1e-6)]]
    finally:
        for lib, mod in blocked.items():
            if mod is None:
                sys.modules.pop(lib, None)
    return {"subsampled": sub, "full": full}


@functools.cache   # the grading process judges many submissions on the same cases
def _opacus_epsilon(sigma, q, steps, delta):
    import warnings

    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    orders = list(range(2, 257))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(get_privacy_spent(orders=orders, rdp=compute_rdp(q=q, noise_multiplier=sigma, steps=steps,
                                                                      orders=orders), delta=delta)[0])


def _q3_check(out, key, cases):
    assert not isinstance(out, str), out
    for got, (sigma, q, steps, delta) in zip(out[key], cases):
        want = _opacus_epsilon(sigma, q, steps, delta)
        assert abs(got - want) <= 0.005 * want, \
            f"dpsgd_epsilon(σ={sigma}, q={q}, steps={steps}, δ={delta}): Opacus' RDP accountant gives {want:.5g}, got {got:.5g}"


def judge_q3_subsampled(out):
    _q3_check(out, "subsampled", Q3_SUBSAMPLED)


def judge_q3_full_batch(out):
    for sigma, _, steps, delta in Q3_FULL:   # q = 1: ε_α = α / 2σ² per step, in closed form
        closed = min(steps * a / (2 * sigma**2) + math.log((a - 1) / a) - (math.log(delta) + math.log(a)) / (a - 1)
                     for a in range(2, 257))
        assert abs(closed - _opacus_epsilon(sigma, 1.0, steps, delta)) < 1e-9 * closed, "grader error"
    _q3_check(out, "full", Q3_FULL)


# ---------------------------------------------------------------- q4: one MWEM round
Q4_CASES = [([3000.0, 2990.0, 0.0, 2995.5], 8.0, 4), ([0.0, 1.0, 5.0], 0.6, 3),
            ([12.0, 12.0, 7.0, 0.5, 30.0], 2.0, 10), ([40.0, 10.0], 0.05, 1)]


def probe_q4_round(mwem_round):
    import numpy as np

    cases = [([3000.0, 2990.0, 0.0, 2995.5], 8.0, 4), ([0.0, 1.0, 5.0], 0.6, 3),
             ([12.0, 12.0, 7.0, 0.5, 30.0], 2.0, 10), ([40.0, 10.0], 0.05, 1)]
    out = []
    for scores, eps, rounds in cases:
        p, b = mwem_round(list(scores), eps, rounds)
        out.append((np.asarray(p, dtype=float), float(b)))
    return out


def judge_q4_probabilities(out):
    import numpy as np

    for (p, _), (scores, eps, rounds) in zip(out, Q4_CASES):
        logits = (eps / rounds / 2) * np.asarray(scores) / 2
        want = np.exp(logits - logits.max())
        want /= want.sum()
        assert p.shape == want.shape and np.isfinite(p).all() and np.allclose(p, want, rtol=1e-9, atol=1e-12), \
            f"mwem_round({scores}, ε={eps}, T={rounds}): expected probabilities {want}, got {p}"


def judge_q4_laplace_scale(out):
    for (_, b), (_scores, eps, rounds) in zip(out, Q4_CASES):
        want = 2 * rounds / eps
        assert abs(b - want) <= 1e-9 * want, f"mwem_round(ε={eps}, T={rounds}): expected Laplace scale {want}, got {b}"


# ---------------------------------------------------------------- q5: the de-anonymisation score
def probe_q5_scores(scoreboard):
    import numpy as np

    from lab_utils.synth.reident import Ratings

    rng = np.random.default_rng(2024)
    users, items = 9, 14
    ratings = rng.integers(1, 6, (users, items)) * (rng.random((users, items)) < 0.55)
    dates = np.where(ratings > 0, rng.integers(0, 900, (users, items)), -1)
    known = np.sort(rng.choice(items, 6, replace=False))
    aux = {"items": known, "ratings": np.clip(ratings[3, known] + rng.integers(-1, 2, 6), 1, 5),
           "dates": np.maximum(dates[3, known], 0) + rng.integers(-20, 21, 6)}
    weights = rng.random(items) + 0.2
    inputs = {"ratings": ratings.copy(), "dates": dates.copy(), "items": known.copy(),
              "aux_ratings": aux["ratings"].copy(), "aux_dates": aux["dates"].copy(), "weights": weights.copy()}
    no_dates = {"items": known.copy(), "ratings": aux["ratings"].copy()}
    return {
        "inputs": inputs,
        "dated": np.asarray(scoreboard(dict(aux), Ratings(ratings.copy(), dates.copy()), weights.copy(),
                                       rho0=1.1, d0=45.0), dtype=float),
        "aux_without_dates": np.asarray(scoreboard(no_dates, Ratings(ratings.copy(), dates.copy()), weights.copy()),
                                        dtype=float),
        "release_without_dates": np.asarray(scoreboard(dict(aux), Ratings(ratings.copy()), weights.copy()), dtype=float),
    }


def _q5_reference(out, case):
    from lab_utils.synth.reident import Ratings, scoreboard

    x = out["inputs"]
    aux = {"items": x["items"], "ratings": x["aux_ratings"], "dates": x["aux_dates"]}
    if case == "dated":
        return scoreboard(aux, Ratings(x["ratings"], x["dates"]), x["weights"], rho0=1.1, d0=45.0)
    if case == "aux_without_dates":
        return scoreboard({"items": x["items"], "ratings": x["aux_ratings"]}, Ratings(x["ratings"], x["dates"]),
                          x["weights"])
    return scoreboard(aux, Ratings(x["ratings"]), x["weights"])


def judge_q5_ratings_only(out):
    import numpy as np

    for case in ("aux_without_dates", "release_without_dates"):
        want, got = _q5_reference(out, case), out[case]
        assert got.shape == want.shape and np.allclose(got, want, rtol=1e-9, atol=1e-12), \
            f"{case.replace('_', ' ')} (9 records, 6 known items, some unrated): expected {want.round(4)}, got {got.round(4)}"


def judge_q5_dates(out):
    import numpy as np

    want, got = _q5_reference(out, "dated"), out["dated"]
    assert got.shape == want.shape and np.allclose(got, want, rtol=1e-9, atol=1e-12), \
        f"with dates (ρ0 = 1.1, d0 = 45): expected {want.round(4)}, got {got.round(4)}"


HIDDEN = [
    Hidden("q1", 1, probe_q1_sensitivity, judge_q1_closed_form),
    Hidden("q1", 1, probe_q1_sensitivity, judge_q1_brute_force, requires=("judge_q1_closed_form",)),
    Hidden("q2", 2, probe_q2_sigma, judge_q2_sigma, requires=("judge_q2_measured",)),
    Hidden("q2", 1, probe_q2_measured, judge_q2_measured, requires=("judge_q2_sigma",)),
    Hidden("q2", 1, probe_q2_classic_delta, judge_q2_classic_delta, requires=("judge_q2_sigma", "judge_q2_measured")),
    Hidden("q3", 2, probe_q3_epsilon, judge_q3_subsampled, timeout=120),
    Hidden("q3", 1, probe_q3_epsilon, judge_q3_full_batch, requires=("judge_q3_subsampled",), timeout=120),
    Hidden("q4", 1, probe_q4_round, judge_q4_probabilities, requires=("judge_q4_laplace_scale",)),
    Hidden("q4", 1, probe_q4_round, judge_q4_laplace_scale, requires=("judge_q4_probabilities",)),
    Hidden("q5", 1, probe_q5_scores, judge_q5_ratings_only),
    Hidden("q5", 1, probe_q5_scores, judge_q5_dates, requires=("judge_q5_ratings_only",)),
]
