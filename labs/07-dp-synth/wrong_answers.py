"""Planted wrong answers and shortcuts: each must score 0 on the question(s) it answers.

`make test` (tests/test_labs.py, via lab_utils.grading.prove) grades the solution notebook with each
of these swapped in and fails unless those questions lose all their points and no other question
loses any.
"""

WRONG_ANSWERS = {
    # "substitution is twice add/remove": right for the histogram alone, wrong for the clipped sum
    # (a replaced value moves the sum by at most hi - lo, not 2 max(|lo|, |hi|)) and for k = 1
    "q1": '''
def query_sensitivity(categories: int, lo: float, hi: float, relation: str) -> tuple[float, float]:
    top = max(abs(lo), abs(hi))
    l1, l2 = 1.0 + top, math.sqrt(1.0 + top**2)
    return (l1, l2) if relation == "add/remove" else (2 * l1, 2 * l2)
''',
    # the textbook σ (valid only for ε < 1, and loose there); the measurement is right, but the
    # number reported for the textbook σ is the promise, not what was measured
    "q2": '''
def gaussian_sigma(l2_sensitivity: float, epsilon: float, delta: float) -> float:
    return l2_sensitivity * math.sqrt(2 * math.log(1.25 / delta)) / epsilon


def measured_delta(sigma: float, l2_sensitivity: float, epsilon: float, draws: int, rng) -> float:
    y = rng.normal(0.0, sigma, draws)
    loss = (l2_sensitivity**2 - 2 * y * l2_sensitivity) / (2 * sigma**2)
    return float(np.mean(np.maximum(0.0, 1.0 - np.exp(epsilon - loss))))


CLASSIC_DELTA = 1e-5
''',
    # composes ε instead of RDP: the best per-step ε (at δ/steps) times the number of steps
    "q3": '''
def dpsgd_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    from scipy.special import gammaln, logsumexp

    q, s, d = sample_rate, noise_multiplier, delta / steps
    best = math.inf
    for a in range(2, 257):
        k = np.arange(a + 1)
        if q < 1:
            terms = (gammaln(a + 1) - gammaln(k + 1) - gammaln(a - k + 1)
                     + (a - k) * np.log1p(-q) + k * math.log(q) + (k * k - k) / (2 * s * s))
            per_step = logsumexp(terms) / (a - 1)
        else:
            per_step = a / (2 * s * s)
        best = min(best, per_step + math.log((a - 1) / a) - (math.log(d) + math.log(a)) / (a - 1))
    return float(steps * best)
''',
    # gives each of the two mechanisms the whole round's ε/T: the run spends 2ε
    "q4": '''
def mwem_round(scores, epsilon: float, rounds: int) -> tuple[np.ndarray, float]:
    eps_round = epsilon / rounds
    logits = eps_round * np.asarray(scores, dtype=float) / 2
    p = np.exp(logits - logits.max())
    return p / p.sum(), 1.0 / eps_round
''',
    # lets unrated items (rating 0) contribute similarity exp(-ρ/ρ0): right when everyone rated every aux item
    "q5": '''
def scoreboard(aux: dict, release: Ratings, weights: np.ndarray, rho0: float = 1.5, d0: float = 30.0) -> np.ndarray:
    items = aux["items"]
    r = release.ratings[:, items]
    sim = np.exp(-np.abs(aux["ratings"][None, :] - r) / rho0)
    if release.dates is not None and "dates" in aux:
        sim = sim + np.exp(-np.abs(aux["dates"][None, :] - release.dates[:, items]) / d0)
    return (sim * weights[items][None, :]).sum(axis=1)
''',
}

# Shortcuts a student could try, and further planted mistakes: each must score 0 on the questions it
# answers (see lab_utils.grading.prove). "calls the reference" is also run with the old guard off.
SHORTCUTS = {
    "calls the reference": {
        # gaussian_epsilon is marked @graded_reference as a twin of dpsgd_epsilon
        "q3": '''
from lab_utils.synth.accounting import gaussian_epsilon

def dpsgd_epsilon(noise_multiplier, sample_rate, steps, delta):
    return gaussian_epsilon(noise_multiplier, sample_rate, steps, delta)
''',
        "q4": '''
from lab_utils.synth.mwem import selection_probabilities

def mwem_round(scores, epsilon, rounds):
    return selection_probabilities(scores, epsilon / rounds / 2, 1.0), 2 * rounds / epsilon
''',
        "q5": '''
import lab_utils.synth.reident as reident

def scoreboard(aux, release, weights, rho0=1.5, d0=30.0):
    return reident.scoreboard(aux, release, weights, rho0, d0)
''',
    },
    # the book's accountant run backwards: bisect ε on its noise-multiplier search (Opacus inside)
    "undecorated twin": {
        "q3": '''
from lab_utils.synth.accounting import gaussian_noise_multiplier

def dpsgd_epsilon(noise_multiplier, sample_rate, steps, delta):
    lo, hi = 1e-3, 1e3
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        if gaussian_noise_multiplier(mid, delta, sample_rate, steps) > noise_multiplier:
            lo = mid
        else:
            hi = mid
    return hi
''',
    },
    # an accounting library does the work the question asks for
    "calls opacus": {
        "q3": '''
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

def dpsgd_epsilon(noise_multiplier, sample_rate, steps, delta):
    orders = list(range(2, 257))
    rdp = compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=steps, orders=orders)
    return float(get_privacy_spent(orders=orders, rdp=rdp, delta=delta)[0])
''',
    },
    # right for the inputs the public checks use, and plausible elsewhere
    "public inputs only": {
        "q1": '''
def query_sensitivity(categories, lo, hi, relation):
    return 1.0 + hi, math.sqrt(1.0 + hi**2)
''',
        "q3": '''
def dpsgd_epsilon(noise_multiplier, sample_rate, steps, delta):
    return 3.42 if sample_rate < 1 else 100.0
''',
        "q4": '''
def mwem_round(scores, epsilon, rounds):
    s = np.asarray(scores, dtype=float)
    p = np.exp(s - s.max())
    return p / p.sum(), 1.0
''',
    },
    # k = 1: a single count is n, which no substitution changes; this answer still adds 2
    "q1 forgets the single category": {
        "q1": '''
def query_sensitivity(categories, lo, hi, relation):
    if relation == "add/remove":
        top = max(abs(lo), abs(hi))
        return 1.0 + top, math.sqrt(1.0 + top**2)
    return 2.0 + (hi - lo), math.sqrt(2.0 + (hi - lo) ** 2)
''',
    },
    # right σ and CLASSIC_DELTA, but the measurement forgets the max(0, ·) of the hockey stick
    "q2 measures without the hockey stick": {
        "q2": '''
def gaussian_sigma(l2_sensitivity, epsilon, delta):
    def spent(sigma):
        a, b = l2_sensitivity / (2 * sigma), epsilon * sigma / l2_sensitivity
        return norm.cdf(a - b) - math.exp(epsilon) * norm.cdf(-a - b)
    lo, hi = 1e-9 * l2_sensitivity, l2_sensitivity
    while spent(hi) > delta:
        lo, hi = hi, 2 * hi
    while hi - lo > 1e-9 * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if spent(mid) > delta else (lo, mid)
    return hi


def measured_delta(sigma, l2_sensitivity, epsilon, draws, rng):
    y = rng.normal(0.0, sigma, draws)
    loss = (l2_sensitivity**2 - 2 * y * l2_sensitivity) / (2 * sigma**2)
    return float(np.mean(loss > epsilon))


CLASSIC_DELTA = 1.5e-3
''',
    },
    # ignores the subsampling: every step charged as the full-batch Gaussian mechanism
    "q3 without amplification": {
        "q3": '''
def dpsgd_epsilon(noise_multiplier, sample_rate, steps, delta):
    return min(steps * a / (2 * noise_multiplier**2) + math.log((a - 1) / a)
               - (math.log(delta) + math.log(a)) / (a - 1) for a in range(2, 257))
''',
    },
    # forgets the 2 in exp(ε s / 2Δ): the selection is ε_s·2-DP, not ε_s-DP
    "q4 forgets the 2 of the exponential mechanism": {
        "q4": '''
def mwem_round(scores, epsilon, rounds):
    eps = epsilon / rounds / 2
    logits = eps * np.asarray(scores, dtype=float)
    p = np.exp(logits - logits.max())
    return p / p.sum(), 1.0 / eps
''',
    },
}
