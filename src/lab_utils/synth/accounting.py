"""Privacy accounting shared by the synthesizers.

* Pure-ε mechanisms (MWEM's exponential and Laplace mechanisms) compose by the
  basic composition theorem: ε_total = Σ ε_i (Dwork & Roth 2014, Thm 3.16).
* The subsampled Gaussian mechanism (DPGAN's noisy critic gradients, DP-SGD) is
  accounted with Opacus' Rényi-DP accountant (Mironov 2017; Mironov, Talwar & Zhang
  2019) under Poisson sampling at rate q.
* PATE's noisy-argmax votes use the data-dependent moments accountant of Papernot
  et al. 2017 (ICLR, Thm 2-3), exactly as PATE-GAN's Algorithm 1 (Jordon et al. 2019)
  uses it, *with* the log in the data-dependent bound that SmartNoise's PATE-GAN
  omits (smartnoise-sdk issue 596) and with Theorem 3's validity condition checked.
"""

from __future__ import annotations

import math

import numpy as np

from .data import check_privacy_params

# Opacus' default Rényi orders end at 63; small ε needs larger ones for a tight bound
ALPHAS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + [80, 100, 128, 160, 200, 256, 384, 512]


def basic_composition(epsilons: list[float]) -> float:
    """ε of running pure ε_i-DP mechanisms in sequence on the same data: Σ ε_i."""
    return float(sum(epsilons))


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


def pate_moments(votes: np.ndarray, lam: float, orders: np.ndarray) -> np.ndarray:
    """Per-query log-moment bounds α(l), shape (queries, orders) (Papernot et al. 2017, Thm 2-3).

    α(l) ≤ min{ 2λ² l(l+1),  log((1−q)((1−q)/(1−e^{2λ}q))^l + q e^{2λl}) },
    the second (data-dependent) bound only where q < (e^{2λ} − 1)/(e^{4λ} − 1).
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
        dependent = np.log(inner)
    dependent = np.where(valid & np.isfinite(dependent), dependent, np.inf)
    return np.minimum(independent, dependent)


class PateMomentsAccountant:
    """Accumulates α(l) over noisy-argmax queries; ε(δ) = min_l (α(l) + log(1/δ)) / l.

    The data-dependent ε depends on the votes, so publishing it is not itself DP
    (Papernot et al. 2017, Sec. 3.3 — smooth sensitivity would be needed); the
    data-independent ε (all bounds 2λ²l(l+1)) is reported alongside.
    """

    def __init__(self, lam: float, max_order: int = 256):
        if lam <= 0:
            raise ValueError(f"lambda (inverse Laplace scale) must be > 0, got {lam}")
        self.lam = lam
        self.orders = np.arange(1, max_order + 1, dtype=float)
        self.alpha = np.zeros_like(self.orders)
        self.queries = 0

    def add(self, votes: np.ndarray) -> None:
        """Charge one noisy-argmax query per row of ``votes`` (teacher counts per class)."""
        votes = np.atleast_2d(votes)
        self.alpha += pate_moments(votes, self.lam, self.orders).sum(axis=0)
        self.queries += len(votes)

    def epsilon(self, delta: float) -> float:
        """Data-dependent ε at δ (what PATE-GAN's Algorithm 1 compares with its target)."""
        check_privacy_params(1.0, delta)
        dependent = float(np.min((self.alpha + math.log(1 / delta)) / self.orders))
        return min(dependent, self.epsilon_data_independent(delta))  # equal up to float rounding when q is invalid

    def epsilon_data_independent(self, delta: float) -> float:
        """ε at δ from the data-independent bound only (a valid DP guarantee on its own)."""
        check_privacy_params(1.0, delta)
        a = self.queries * 2 * self.lam**2 * self.orders * (self.orders + 1)
        return float(np.min((a + math.log(1 / delta)) / self.orders))
