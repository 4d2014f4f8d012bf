"""Privacy accounting shared by the synthesizers.

* Pure-ε mechanisms (MWEM's exponential and Laplace mechanisms) compose by the
  basic composition theorem: ε_total = Σ ε_i (Dwork & Roth 2014, Thm 3.16).
* The subsampled Gaussian mechanism (DPGAN's noisy critic gradients, DP-SGD) is
  accounted with Opacus' Rényi-DP accountant (Mironov 2017; Mironov, Talwar & Zhang
  2019) under Poisson sampling at rate q.
* PATE's noisy-argmax votes use the moments accountant of Papernot et al. 2017 (ICLR,
  Thm 2-3). The released guarantee is the *data-independent* bound α(l) ≤ 2λ²l(l+1) per
  vote, for a number of votes fixed before training (``pate_epsilon``, ``lambda_for_budget``,
  ``votes_for_budget``, ``pate_lambda``). The data-dependent bound (PATE-GAN's Algorithm 1,
  Jordon et al. 2019) is computed *with* the log that SmartNoise's PATE-GAN omits
  (smartnoise-sdk issue 596) and with Theorem 3's validity condition checked, and is
  reported for information only: it depends on the votes, so it is not itself private.
  The log's argument is ≥ 1, so omitting the log gives a *larger* α(l): SmartNoise
  over-counts (conservatively), it does not under-count.
"""

from __future__ import annotations

import math

import numpy as np

from ..graded import graded_reference
from .data import check_privacy_params

# Opacus' default Rényi orders end at 63; small ε needs larger ones for a tight bound
ALPHAS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + [80, 100, 128, 160, 200, 256, 384, 512]


def basic_composition(epsilons: list[float]) -> float:
    """ε of running pure ε_i-DP mechanisms in sequence on the same data: Σ ε_i."""
    return float(sum(epsilons))


def equal_share(epsilon: float, parts: int) -> float:
    """ε/parts, rounded down if needed so that ``basic_composition([share] * parts) <= epsilon`` in floats."""
    share = epsilon / parts
    while basic_composition([share] * parts) > epsilon:
        share = math.nextafter(share, 0.0)
    return share


def remainder(epsilon: float, spent: float) -> float:
    """The largest ε' with ``spent + ε' <= epsilon`` in floats (ε − spent, rounded down if needed)."""
    rest = epsilon - spent
    while spent + rest > epsilon:
        rest = math.nextafter(rest, 0.0)
    if rest <= 0:
        raise ValueError(f"nothing of epsilon={epsilon} is left after spending {spent}: lower the share spent first")
    return rest


@graded_reference  # twin: labs/07-dp-synth q3 asks students to write dpsgd_epsilon
def gaussian_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """(ε, δ) of ``steps`` Poisson-subsampled Gaussian steps (Opacus RDP accountant)."""
    from opacus.accountants import RDPAccountant

    check_privacy_params(1.0, delta)
    acc = RDPAccountant()
    acc.history = [(noise_multiplier, sample_rate, steps)]
    return float(acc.get_epsilon(delta, alphas=ALPHAS))


def gaussian_noise_multiplier(epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """Smallest σ/C for which ``steps`` subsampled Gaussian steps stay within (ε, δ) (Opacus search)."""
    from opacus.accountants.utils import get_noise_multiplier

    check_privacy_params(epsilon, delta)
    return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate,
                                      steps=steps, accountant="rdp", epsilon_tolerance=0.005,
                                      alphas=ALPHAS))


def steps_for_budget(noise_multiplier: float, sample_rate: float, epsilon: float, delta: float,
                     max_steps: int) -> int:
    """Largest T ≤ ``max_steps`` whose T subsampled Gaussian steps at σ = ``noise_multiplier`` stay within (ε, δ)
    (0 if not even one does): ε(σ, q, T) rises with T, so bisect."""
    check_privacy_params(epsilon, delta)
    if gaussian_epsilon(noise_multiplier, sample_rate, 1, delta) > epsilon:
        return 0
    lo, hi = 1, max_steps
    while lo < hi:  # gaussian_epsilon(lo) ≤ ε
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if gaussian_epsilon(noise_multiplier, sample_rate, mid, delta) <= epsilon else (lo, mid - 1)
    return lo


def pate_q(votes: np.ndarray, lam: float) -> np.ndarray:
    """Papernot et al. 2017, Thm 3 bound on Pr[noisy argmax ≠ true argmax] for Lap(1/λ) noise.

    q ≤ Σ_{j ≠ j*} (2 + λ (n_{j*} − n_j)) / (4 exp(λ (n_{j*} − n_j))); ``votes`` has shape
    (queries, classes). For two classes this is PATE-GAN's (2 + λ|n0 − n1|) / (4 e^{λ|n0 − n1|}).
    """
    votes = np.asarray(votes, dtype=float)
    top = votes.max(axis=1, keepdims=True)
    gap = top - votes
    terms = (2 + lam * gap) / (4 * np.exp(lam * gap))
    q = terms.sum(axis=1) - 0.5  # remove the j = j* term (gap 0 contributes 2/4)
    return np.minimum(q, 1.0)


def pate_moments(votes: np.ndarray, lam: float, orders: np.ndarray, log: bool = True) -> np.ndarray:
    """Per-query log-moment bounds α(l), shape (queries, orders) (Papernot et al. 2017, Thm 2-3).

    α(l) ≤ min{ 2λ² l(l+1),  log((1−q)((1−q)/(1−e^{2λ}q))^l + q e^{2λl}) },
    the second (data-dependent) bound only where q < (e^{2λ} − 1)/(e^{4λ} − 1).
    ``log=False`` drops the log as SmartNoise's PATE-GAN does (smartnoise-sdk issue 596), for
    comparison only: the argument is ≥ 1, so the result is larger (an over-count).
    """
    if lam <= 0:
        raise ValueError(f"lambda (inverse Laplace scale) must be > 0, got {lam}")
    orders = np.asarray(orders, dtype=float)[None, :]
    q = pate_q(votes, lam)[:, None]
    independent = 2 * lam**2 * orders * (orders + 1)
    valid = q < (math.exp(2 * lam) - 1) / (math.exp(4 * lam) - 1)
    qs = np.where(valid, q, 0.0)  # placeholder where invalid (masked out below)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        inner = (1 - qs) * ((1 - qs) / (1 - math.exp(2 * lam) * qs)) ** orders + qs * np.exp(2 * lam * orders)
        dependent = np.log(inner) if log else inner
    dependent = np.where(valid & np.isfinite(dependent), dependent, np.inf)
    return np.minimum(independent, dependent)


def pate_epsilon(lam: float, queries: int, delta: float, max_order: int = 256) -> float:
    """ε at δ of ``queries`` noisy-argmax votes from the data-independent bound 2λ²l(l+1) (Papernot et al. 2017, Thm 2).

    ε = min_l (queries · 2λ²l(l+1) + log(1/δ)) / l over integer orders l ≤ ``max_order`` (Abadi et al. 2016, Thm 2).
    """
    orders = np.arange(1, max_order + 1, dtype=float)
    return float(np.min((queries * 2 * lam**2 * orders * (orders + 1) + math.log(1 / delta)) / orders))


def lambda_for_budget(epsilon: float, delta: float, queries: int, max_order: int = 256) -> float:
    """Largest λ whose data-independent PATE bound over ``queries`` votes is ≤ ε (bisection)."""
    check_privacy_params(epsilon, delta)
    if pate_epsilon(1e-12, queries, delta, max_order) > epsilon:
        raise ValueError(f"epsilon={epsilon} is below what δ={delta} alone costs with {max_order} moments: "
                         "raise epsilon or delta")
    lo, hi = 1e-12, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if pate_epsilon(mid, queries, delta, max_order) <= epsilon else (lo, mid)
    return lo


def votes_for_budget(lam: float, epsilon: float, delta: float, max_order: int = 256) -> int:
    """Largest number of votes at Laplace scale 1/λ whose data-independent bound is ≤ ε (0 if none fits)."""
    check_privacy_params(epsilon, delta)
    if pate_epsilon(lam, 1, delta, max_order) > epsilon:
        return 0
    lo, hi = 1, 2
    while pate_epsilon(lam, hi, delta, max_order) <= epsilon:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # pate_epsilon(lo) ≤ ε < pate_epsilon(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if pate_epsilon(lam, mid, delta, max_order) <= epsilon else (lo, mid)
    return lo


def pate_lambda(epsilon: float, delta: float, votes: int, lam: float | None = None) -> float:
    """λ for ``votes`` planned votes within ε: the largest that fits when ``lam`` is None, else ``lam`` checked.

    Raises a ValueError naming what fits when ``lam`` cannot pay for the votes under the bound that
    ``epsilon_spent`` reports (so a fit never stops early, never trains on no vote, never overspends).
    """
    check_privacy_params(epsilon, delta)
    if votes < 1:
        raise ValueError(f"PATE needs at least one planned vote, got {votes}")
    if lam is None:
        return lambda_for_budget(epsilon, delta, votes)
    if not lam > 0:
        raise ValueError(f"lambda (inverse Laplace scale) must be > 0, got {lam}")
    cost = pate_epsilon(lam, votes, delta)
    if cost > epsilon:
        raise ValueError(
            f"lam={lam} cannot pay for the {votes} planned teacher votes within epsilon={epsilon}: they cost "
            f"ε={cost:.3g} under the data-independent bound that epsilon_spent reports, and at lam={lam} only "
            f"{votes_for_budget(lam, epsilon, delta)} votes fit. Use lam <= "
            f"{lambda_for_budget(epsilon, delta, votes):.4g}, plan fewer votes (iterations × batch_size), "
            "or pass lam=None to choose λ from the budget")
    return lam


def pate_swayable(teachers: int, lam: float) -> float:
    """Probability that the teachers can still decide a two-class noisy-argmax answer at all.

    argmax_j (n_j + z_j) with n_0 + n_1 = k and z_j iid Lap(b), b = 1/λ, goes either way by the counts iff
    |z_1 − z_0| < k; otherwise the noise alone fixed it. D = z_1 − z_0 has density (1/4b)(1 + |d|/b) e^{−|d|/b},
    so with K = kλ

        P(|D| < k) = 1 − (2 + K) e^{−K} / 2.

    At small K (few teachers, the small λ a tight budget buys) the vote is a coin flip the teachers almost never touch.
    """
    if teachers < 1 or not lam > 0:
        raise ValueError(f"need teachers >= 1 and lam > 0, got {teachers}, {lam}")
    big_k = teachers * lam
    return float(1.0 - (2.0 + big_k) * np.exp(-big_k) / 2.0)


class PateMomentsAccountant:
    """Accumulates α(l) over noisy-argmax queries; ε(δ) = min_l (α(l) + log(1/δ)) / l.

    ``epsilon_data_independent`` (all bounds 2λ²l(l+1)) is the guarantee the synthesizers
    report. The data-dependent ``epsilon`` depends on the votes, so publishing it is not
    itself DP (Papernot et al. 2017, Sec. 3.3 — smooth sensitivity would be needed); it is
    never used to decide anything.
    """

    def __init__(self, lam: float, max_order: int = 256, log: bool = True):
        if lam <= 0:
            raise ValueError(f"lambda (inverse Laplace scale) must be > 0, got {lam}")
        self.lam, self.log = lam, log  # log=False: SmartNoise's issue-596 variant, for comparison only
        self.max_order = max_order
        self.orders = np.arange(1, max_order + 1, dtype=float)
        self.alpha = np.zeros_like(self.orders)
        self.queries = 0

    def add(self, votes: np.ndarray) -> None:
        """Charge one noisy-argmax query per row of ``votes`` (teacher counts per class)."""
        votes = np.atleast_2d(votes)
        self.alpha += pate_moments(votes, self.lam, self.orders, self.log).sum(axis=0)
        self.queries += len(votes)

    def epsilon(self, delta: float) -> float:
        """Data-dependent ε̂ at δ (what PATE-GAN's Algorithm 1 compares with its target; not private)."""
        check_privacy_params(1.0, delta)
        dependent = float(np.min((self.alpha + math.log(1 / delta)) / self.orders))
        return min(dependent, self.epsilon_data_independent(delta))  # equal up to float rounding when q is invalid

    def epsilon_data_independent(self, delta: float) -> float:
        """ε at δ from the data-independent bound only (a valid DP guarantee on its own)."""
        check_privacy_params(1.0, delta)
        return pate_epsilon(self.lam, self.queries, delta, self.max_order)


# ---- zero-concentrated DP (the marginal-based synthesizers: MST) -------------------------------
def cdp_delta(rho: float, epsilon: float) -> float:
    """δ of ρ-zCDP at ε by Canonne, Kamath & Steinke 2020 (Prop. 12, the conversion MST uses):

        δ = min_{α>1} exp((α−1)(αρ − ε)) / (α − 1) · (1 − 1/α)^α,

    minimised over α by bisection on the derivative's sign, (2α − 1)ρ − ε + log(1 − 1/α)."""
    if rho < 0 or epsilon < 0:
        raise ValueError(f"need rho >= 0 and epsilon >= 0, got rho={rho}, epsilon={epsilon}")
    if rho == 0:
        return 0.0
    lo, hi = 1.01, (epsilon + 1) / (2 * rho) + 2
    for _ in range(200):
        alpha = (lo + hi) / 2
        if (2 * alpha - 1) * rho - epsilon + math.log1p(-1 / alpha) < 0:
            lo = alpha
        else:
            hi = alpha
    alpha = (lo + hi) / 2
    return min(1.0, math.exp((alpha - 1) * (alpha * rho - epsilon) + alpha * math.log1p(-1 / alpha)) / (alpha - 1))


def cdp_rho(epsilon: float, delta: float) -> float:
    """The largest ρ whose ρ-zCDP gives (ε, δ)-DP by :func:`cdp_delta` (bisection, rounded down)."""
    check_privacy_params(epsilon, delta)
    lo, hi = 0.0, epsilon + 1
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdp_delta(mid, epsilon) <= delta else (lo, mid)
    return lo


def cdp_epsilon(rho: float, delta: float) -> float:
    """The smallest ε with ``cdp_delta(rho, ε) <= delta`` (bisection, rounded up): what ρ-zCDP spends."""
    check_privacy_params(1.0, delta)
    lo, hi = 0.0, rho + 2 * math.sqrt(rho * math.log(1 / delta)) + 1   # Bun & Steinke 2016, Prop. 1.3 bounds it
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if cdp_delta(rho, mid) <= delta else (mid, hi)
    return hi
