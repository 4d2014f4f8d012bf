"""FE&T's privacy-protected aggregation of device metrics, built from pfl's components.

Paulik et al. 2021: devices return only task results, and what the server analyses is an aggregate under
differential privacy. pfl (Apple's simulator, Granqvist et al. 2024) supplies the pieces for model updates;
this module applies them to *metric vectors*, which pfl does not do:

* each device's vector m_d is a :class:`pfl.stats.MappedVectorStatistics` and is clipped to ℓ² norm C by
  :class:`pfl.privacy.GaussianMechanism` (``constrain_sensitivity``, the user side of central DP);
* the :class:`SecureSum` adds the clipped vectors (what secure aggregation would give the server) and
  releases Σ_d clip(m_d) + N(0, (σC)² I) (``add_noise``, the server side) — the server sees nothing else;
* σ comes from pfl's PLD accountant (:class:`pfl.privacy.PLDPrivacyAccountant`) for a *budget* of R
  releases, each a Poisson-subsampled Gaussian mechanism at the server's sampling rate q; the
  :class:`PrivacyBudget` refuses release R + 1, so no code path spends more than the ε it was given.

A task that scores k candidates uploads m_d = [1, l_1, l_1², …, l_k, l_k²] (every device of the cohort scores
every candidate, so the candidates are compared on the same devices). From one release S of Σ_d clip(m_d),
candidate j's mean loss and its confidence interval are

    μ̂_j = S_{2j−1}/S₀,   s_j² = S_{2j}/S₀ − μ̂_j²,   Var μ̂_j ≈ s_j²/n + (σC)²(1 + μ̂_j²)/n²

(n = S₀; sampling + noise, delta method). Clipping scales a device's whole vector, so every μ̂_j stays a
mean of device losses under the *same* weights: clipping down-weights devices whose vector is long
instead of shifting their losses, and the candidates are still compared on equal terms.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from pfl.privacy import GaussianMechanism, PLDPrivacyAccountant
from pfl.stats import MappedVectorStatistics

from ..graded import graded_reference
from ..synth.data import check_privacy_params


class BudgetExhausted(RuntimeError):
    """A release was asked for after the budget's R releases were spent."""


@functools.lru_cache(maxsize=256)
def _pld(releases: int, sampling_rate: float, delta: float, epsilon: float | None = None,
         sigma: float | None = None) -> PLDPrivacyAccountant:
    """pfl's PLD accountant, cached. A 1e-3 discretisation (pfl's default: 1e-4) makes a σ search about a second
    instead of ten; the estimate stays pessimistic (an upper bound on ε), and the budget's own check below
    re-accounts σ at that setting."""
    return PLDPrivacyAccountant(num_compositions=releases, sampling_probability=sampling_rate, mechanism="gaussian",
                                epsilon=epsilon, delta=delta, noise_parameter=sigma,
                                value_discretization_interval=1e-3)


@graded_reference  # twin: labs/08-federated q2 searches the releases a budget affords with it
def epsilon_after(releases: int, sigma: float, sampling_rate: float, delta: float) -> float:
    """ε of ``releases`` Poisson-subsampled Gaussian releases at noise multiplier σ (pfl's PLD accountant)."""
    if releases == 0:
        return 0.0
    return float(_pld(int(releases), float(sampling_rate), float(delta), sigma=float(sigma)).epsilon)


@dataclass
class PrivacyBudget:
    """(ε, δ) for ``releases`` Poisson-subsampled Gaussian releases at ``sampling_rate``; σ from pfl's PLD accountant."""

    epsilon: float
    delta: float
    releases: int
    sampling_rate: float
    used: int = field(default=0, init=False)
    noise_multiplier: float = field(init=False)

    def __post_init__(self) -> None:
        check_privacy_params(self.epsilon, self.delta)
        if int(self.releases) != self.releases or self.releases < 1:
            raise ValueError(f"releases={self.releases!r}: the number of federated iterations must be an integer >= 1")
        if not 0 < self.sampling_rate <= 1:
            raise ValueError(f"sampling_rate={self.sampling_rate!r} must be in (0, 1]: the probability that a "
                             "checked-in device is given a task")
        sigma = _pld(self.releases, self.sampling_rate, self.delta, epsilon=self.epsilon).noise_parameter
        # pfl's search stops at a relative tolerance: step σ up until the accounted ε is within the budget
        while self.cost(self.releases, sigma) > self.epsilon:
            sigma *= 1.001
        self.noise_multiplier = float(sigma)

    def cost(self, releases: int, sigma: float | None = None) -> float:
        """ε of ``releases`` releases at noise multiplier σ (default: this budget's); 0 for none."""
        sigma = self.noise_multiplier if sigma is None else sigma
        return epsilon_after(releases, sigma, self.sampling_rate, self.delta)

    @property
    def spent(self) -> float:
        return self.cost(self.used)

    def charge(self) -> None:
        """Account one release; raise :class:`BudgetExhausted` (before any device runs) when none is left."""
        if self.used >= self.releases:
            raise BudgetExhausted(f"all {self.releases} releases of this (ε={self.epsilon:g}, δ={self.delta:g}) "
                                  "budget are spent: start a new tuning run with its own budget")
        self.used += 1


@dataclass(frozen=True)
class Release:
    """One DP release: the noisy sum of clipped device vectors and the noise's standard deviation σC."""

    noisy_sum: np.ndarray
    noise_sd: float

    @property
    def candidates(self) -> int:
        return (len(self.noisy_sum) - 1) // 2

    def mean_interval(self, j: int = 0, z: float = 1.959964) -> tuple[float, float, float]:
        """(μ̂_j, low, high) for candidate j (module docstring); NaNs if the noisy count is < 2."""
        if not 0 <= j < self.candidates:
            raise IndexError(f"candidate {j} of a release of {self.candidates} candidates")
        n, s1, s2 = (float(x) for x in self.noisy_sum[[0, 2 * j + 1, 2 * j + 2]])
        if n < 2:
            return math.nan, math.nan, math.nan
        mu = s1 / n
        var = max(s2 / n - mu * mu, 0.0) / n + self.noise_sd ** 2 * (1.0 + mu * mu) / n ** 2
        half = z * math.sqrt(var)
        return mu, mu - half, mu + half


@graded_reference  # twin: labs/08-federated q1 asks students to write private_sum
class SecureSum:
    """Clipped device vectors in, one noised sum out (secure aggregation + central DP, simulated with pfl)."""

    def __init__(self, clip: float, noise_multiplier: float, seed: int) -> None:
        if not clip > 0:
            raise ValueError(f"clip={clip!r}: the ℓ² clipping bound must be > 0")
        self.mechanism = GaussianMechanism(clipping_bound=clip, relative_noise_stddev=noise_multiplier)
        self.seed, self.total, self.count = seed, None, 0

    def add(self, vector: np.ndarray) -> None:
        """The user side: clip m_d to ‖·‖₂ ≤ C (pfl ``constrain_sensitivity``) and add it to the running sum."""
        stats = MappedVectorStatistics({"m": np.asarray(vector, dtype=np.float64)})
        clipped, _ = self.mechanism.constrain_sensitivity(stats)
        self.total = clipped if self.total is None else self.total + clipped
        self.count += 1

    def release(self, dim: int) -> Release:
        """The server side: Σ clip(m_d) + N(0, (σC)² I) (pfl ``add_noise``); an empty cohort releases noise only."""
        total = self.total or MappedVectorStatistics({"m": np.zeros(dim)})
        noised, _ = self.mechanism.add_noise(total, cohort_size=max(self.count, 1), seed=self.seed)
        sd = self.mechanism.clipping_bound * self.mechanism.relative_noise_stddev
        return Release(np.asarray(noised["m"], dtype=np.float64), float(sd))
