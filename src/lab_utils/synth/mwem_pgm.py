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
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from .accounting import basic_composition, equal_share, remainder
from .mwem import exponential_mechanism
from .pgm import ALPHA, MarginalSynthesizer, ModelMarginals, l1_error, measure, within_size


class MWEMPGM(MarginalSynthesizer):
    """MWEM+PGM synthesizer: ``fit(df, epsilon)`` (pure ε-DP, δ unused), ``sample(n)``, ``epsilon_spent``."""

    uses_delta, default_delta = False, None

    def __init__(self, rounds: int | None = None, way: int = 2, iters: int = 200, final_iters: int = 1000,
                 max_size_mb: float = 25.0, workload: list[tuple[str, ...]] | None = None, seed: int = 0):
        if (rounds is not None and rounds < 1) or way < 1 or iters < 1 or final_iters < 1 or max_size_mb <= 0:
            raise ValueError("need rounds >= 1 (or None: one per column), way >= 1, iters >= 1, final_iters >= 1, "
                             "max_size_mb > 0")
        self.rounds, self.way, self.iters, self.final_iters = rounds, way, iters, final_iters
        self.max_size_mb, self.workload, self.seed = max_size_mb, workload, seed

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
        eps_t = equal_share(epsilon, rounds)                             # ε_t = ε / T, never summing above ε
        eps_measure = ALPHA * eps_t
        eps_select = remainder(eps_t, eps_measure)                      # (1 − α)·ε_t, rounded down
        self.measurements, self.selected, self.round_epsilons = [], [], []
        model = ModelMarginals(self.estimate(data.domain, [], 1, known_total=n))    # p̂_0: uniform, total n
        for t in range(1, rounds + 1):
            cands = within_size(data.domain, list(self.selected), pool, self.max_size_mb * t / rounds)
            keys = list(cands)                                                      # select
            scores = np.array([l1_error(data, model, c) - data.domain.size(c) for c in keys])
            chosen = keys[exponential_mechanism(scores, eps_select, 1.0, rng)]
            self.measurements += measure(data, [chosen], 1 / eps_measure, rng, noise="laplace")   # measure
            self.selected.append(chosen)
            self.round_epsilons.append(eps_select + eps_measure)
            model = ModelMarginals(self.estimate(data.domain, self.measurements, self.iters,           # estimate
                                                 known_total=n, warm_start=model.model))
        self.model = self.estimate(data.domain, self.measurements, self.final_iters, known_total=n,
                                   warm_start=model.model)
        self.epsilon_spent = basic_composition(self.round_epsilons)
        self._rng = np.random.default_rng(self.seed + 1)
