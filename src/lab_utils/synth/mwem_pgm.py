"""MWEM+PGM — MWEM with its dense histogram replaced by a graphical model (McKenna, Sheldon & Miklau, ICML
2019, "Graphical-model based estimation and inference for differential privacy", Sec. 6; the authors'
``mwem+pgm.py`` in private-pgm), on Private-PGM (``pgm``).

MWEM (``mwem.py``, Hardt, Ligett & McSherry 2012) keeps A_t, a histogram over the whole domain, and updates it
by multiplicative weights; on a wide table that histogram does not fit, and ``mwem.MWEM`` splits the columns
into independent groups. Here the estimate is a graphical model over the marginals measured so far, so its
size follows the selected cliques, not the domain. Pure ε-DP as in MWEM, n public as in MWEM, T rounds:

    ε_t = ε / T;  p̂_0 = uniform with total n
    for t = 1..T:
        select   C_t by the exponential mechanism ((1−α)·ε_t, sensitivity 1) among workload marginals whose
                 junction tree with C_1..C_{t−1} stays within t/T · MAX-SIZE, score
                 ‖M_C(D) − M_C(p̂_{t−1})‖₁ − n_C                        (n_C cells: the authors' size penalty)
        measure  y_t = M_{C_t}(D) + Lap(1 / (α·ε_t)) per cell           (α·ε_t, ℓ₁ sensitivity 1)
        estimate p̂_t ← Private-PGM(y_1..y_t)                   (in place of MWEM's multiplicative weights)
    output   sample from p̂_T

The score's penalty n_C and the size filter are the authors' two additions; α = 0.9 is their default split.

``one_way_share`` (default 0, the paper's algorithm) adds AIM's initialisation (McKenna et al. 2022, Alg. 1,
line 3) in MWEM's pure-ε currency: a share ε₀ = share·ε measures every 1-way marginal first,
y_i = M_i(D) + Lap(d / ε₀) per cell (d marginals, ℓ₁ sensitivity 1 each: ε₀/d apiece), p̂_0 is estimated from
them, and the T rounds share the rest, ε_t = (ε − ε₀) / T. T = d rounds measure at most d marginals, so
without it a column no round selects keeps p̂_0's uniform marginal.

``noise="gaussian"`` is the authors' code's default (``mwem+pgm.py``, ``noise='gaussian'``): the same loop in
ρ-zCDP currency, ρ = ``cdp_rho``(ε, δ), ρ_t = (ρ − ρ₀) / T split as AIM splits a round,

        measure  y_t = M_{C_t}(D) + N(0, σ²I),  σ = √(1 / (2α·ρ_t))            (α·ρ_t)
        select   exponential mechanism at ε_sel = √(8(1 − α)·ρ_t)               ((1 − α)·ρ_t = ε_sel²/8)
        init     every 1-way marginal jointly at σ₀ = √(d / (2ρ₀)),  ρ₀ = share·ρ   (1/(2σ₀²) each)

and ``epsilon_spent`` = ``cdp_epsilon``(ρ charged, δ), with δ used (``uses_delta``) — the currency MST and AIM
use, so that their comparison measures the algorithms rather than pure ε vs zCDP.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd

from .accounting import basic_composition, cdp_epsilon, cdp_rho, equal_share, remainder
from .mwem import exponential_mechanism
from .pgm import ALPHA, MarginalSynthesizer, ModelMarginals, l1_error, measure, within_size


class MWEMPGM(MarginalSynthesizer):
    """MWEM+PGM synthesizer: ``fit(df, epsilon)`` (pure ε-DP, δ unused; ``noise="gaussian"``: ``fit(df, epsilon,
    delta)``, (ε, δ)-DP through ρ-zCDP), ``sample(n)``, ``epsilon_spent``."""

    uses_delta, default_delta = False, None    # noise="gaussian" instances set True, 1e-5

    def __init__(self, rounds: int | None = None, way: int = 2, iters: int = 200, final_iters: int = 1000,
                 max_size_mb: float = 25.0, workload: list[tuple[str, ...]] | None = None,
                 one_way_share: float = 0.0, noise: str = "laplace", seed: int = 0):
        if (rounds is not None and rounds < 1) or way < 1 or iters < 1 or final_iters < 1 or max_size_mb <= 0:
            raise ValueError("need rounds >= 1 (or None: one per column), way >= 1, iters >= 1, final_iters >= 1, "
                             "max_size_mb > 0")
        if not 0 <= one_way_share < 1:
            raise ValueError(f"one_way_share={one_way_share}: give the share of ε for the 1-way marginals, in [0, 1)")
        if noise not in ("laplace", "gaussian"):
            raise ValueError(f"noise={noise!r}: 'laplace' (pure ε, the paper) or 'gaussian' (ρ-zCDP, the code)")
        if noise == "gaussian":
            self.uses_delta, self.default_delta = True, 1e-5
        self.noise = noise
        self.rounds, self.way, self.iters, self.final_iters = rounds, way, iters, final_iters
        self.max_size_mb, self.workload, self.one_way_share, self.seed = max_size_mb, workload, one_way_share, seed

    def _workload(self) -> dict[tuple[str, ...], int]:
        names = self.schema.names
        if self.workload is None:
            return {c: 1 for k in range(1, self.way + 1) for c in combinations(names, k)}
        unknown = {a for c in self.workload for a in c} - set(names)
        if unknown or not self.workload:
            raise ValueError(f"workload: give a non-empty list of column tuples from the schema (unknown: {unknown})")
        return {tuple(c): 1 for c in self.workload}

    def _fit(self, df: pd.DataFrame, epsilon: float, delta: float | None) -> None:
        rng = np.random.default_rng(self.seed)
        data = self.dataset(self.schema.discretize(df), self.schema.sizes)
        n, pool = float(len(df)), self._workload()
        rounds = self.rounds or len(self.schema.names)                   # the authors' default: T = d
        budget = cdp_rho(epsilon, delta) * (1 - 1e-12) if self.noise == "gaussian" else epsilon  # ρ or ε
        self.measurements, self.init_charges = self._one_way(data, budget, rng)
        scale, eps_select, round_charge = self._round_budget(budget, rounds)
        self.selected, self.round_charges = [], []
        model = ModelMarginals(self.estimate(data.domain, self.measurements,   # p̂_0: uniform (or the 1-way
                                             self.iters if self.measurements else 1,   # estimate), total n
                                             known_total=n))
        for t in range(1, rounds + 1):
            cands = within_size(data.domain, list(self.selected), pool, self.max_size_mb * t / rounds)
            keys = list(cands)                                                      # select
            scores = np.array([l1_error(data, model, c) - data.domain.size(c) for c in keys])
            chosen = keys[exponential_mechanism(scores, eps_select, 1.0, rng)]
            self.measurements += measure(data, [chosen], scale, rng, noise=self.noise)   # measure
            self.selected.append(chosen)
            self.round_charges.append(round_charge)
            model = ModelMarginals(self.estimate(data.domain, self.measurements, self.iters,           # estimate
                                                 known_total=n, warm_start=model.model))
        self.model = self.estimate(data.domain, self.measurements, self.final_iters, known_total=n,
                                   warm_start=model.model)
        spent = basic_composition(self.init_charges + self.round_charges)      # Σ ε, or Σ ρ (zCDP adds too)
        self.rho_spent = spent if self.noise == "gaussian" else None
        self.epsilon_spent = cdp_epsilon(spent, delta) if self.noise == "gaussian" else spent
        self._rng = np.random.default_rng(self.seed + 1)

    def _round_budget(self, budget: float, rounds: int) -> tuple[float, float, float]:
        """(noise scale, exponential-mechanism ε, charge) of one round, from the budget the init left.

        Laplace: ε_t = (ε − ε₀)/T, b = 1/(α·ε_t), ε_sel = (1 − α)·ε_t, charge ε_sel + α·ε_t (≤ ε_t in floats).
        Gaussian: ρ_t = (ρ − ρ₀)/T, σ = √(1/(2α·ρ_t)), ε_sel = √(8(1 − α)·ρ_t), charge 1/(2σ²) + ε_sel²/8."""
        rest = remainder(budget, sum(self.init_charges)) if self.init_charges else budget
        share = equal_share(rest, rounds)                          # ε_t or ρ_t, never summing above the rest
        if self.noise == "laplace":
            eps_measure = ALPHA * share
            eps_select = remainder(share, eps_measure)             # (1 − α)·ε_t, rounded down
            return 1 / eps_measure, eps_select, eps_select + eps_measure
        sigma = math.sqrt(1 / (2 * ALPHA * share))
        eps_select = math.sqrt(8 * (1 - ALPHA) * share)
        return sigma, eps_select, 1 / (2 * sigma**2) + eps_select**2 / 8

    def _one_way(self, data, budget: float, rng: np.random.Generator) -> tuple[list, list[float]]:
        """Init (when ``one_way_share`` > 0): every 1-way marginal, Lap(d/ε₀) per cell and ε₀/d charged each, or
        (Gaussian) N(0, d/(2ρ₀)) per cell and ρ₀/d each.

        Returns the measurements and the charge (ε or ρ) of each (both empty without the initialisation)."""
        if not self.one_way_share:
            return [], []
        names = self.schema.names
        each = equal_share(self.one_way_share * budget, len(names))
        scale = 1 / each if self.noise == "laplace" else math.sqrt(1 / (2 * each))
        measured = [m for c in names for m in measure(data, [(c,)], scale, rng, noise=self.noise)]
        return measured, [each if self.noise == "laplace" else 1 / (2 * scale**2)] * len(names)
