"""MST — Maximum Spanning Tree synthesis (McKenna, Miklau & Sheldon 2021, "Winning the NIST Contest: A
scalable and general approach to differentially private synthetic data", Sec. 4), on McKenna's Private-PGM
(PyPI ``mbi`` 2.x) for the graphical-model estimation.

The algorithm, under ρ-zCDP with ρ from (ε, δ) by :func:`accounting.cdp_rho`, a third of ρ per step:

    1. measure every 1-way marginal with Gaussian noise                     (ρ/3: σ = √(3 / 2ρ), see ``measure``)
    2. compress each attribute's domain: values whose noisy count is < 3σ are merged into one
    3. select r − 1 pairs that form a maximum spanning tree of the attributes, each edge chosen by the
       exponential mechanism on the L1 error of the 1-way model's 2-way marginal   (ρ/3: ε_EM = √(8ρ/3 / (r−1)))
    4. measure the selected 2-way marginals with Gaussian noise                         (ρ/3)
    5. estimate a graphical model from all measurements (Private-PGM's mirror descent) and sample from it

Neighbouring tables differ by one record added or removed, as for MWEM here: a marginal's ℓ₂ (and the L1
error's) sensitivity is 1. Step 3's exponential mechanism is the one MWEM uses (the paper's code uses
permute-and-flip, which has the same privacy guarantee); ε_EM-DP implies ε_EM²/8-zCDP (Cesar & Rogers 2021).
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd

from .accounting import cdp_epsilon, cdp_rho
from .mwem import exponential_mechanism
from .pgm import DisjointSets, MarginalSynthesizer, ModelMarginals, l1_error, load_mbi, measure


def compress_domain(codes: np.ndarray, names: list[str], sizes: list[int], one_way: list, sigma_of: list[float]):
    """Step 2: merge each attribute's values with noisy count < 3σ into one value; returns the new codes and
    sizes, the re-expressed 1-way measurements and, per attribute, the kept values (to undo it)."""
    mbi = load_mbi()
    codes, new_sizes, measurements, kept = codes.copy(), [], [], []
    for j, (m, sigma) in enumerate(zip(one_way, sigma_of, strict=True)):
        y = np.asarray(m.noisy_measurement)
        sup = y >= 3 * sigma
        kept.append(np.flatnonzero(sup))
        if sup.all():
            new_sizes.append(sizes[j])
            measurements.append(m)
            continue
        rare = int((~sup).sum())
        remap = np.full(sizes[j], int(sup.sum()))
        remap[sup] = np.arange(int(sup.sum()))
        codes[:, j] = remap[codes[:, j]]
        new_sizes.append(int(sup.sum()) + 1)
        weights = np.ones(int(sup.sum()) + 1)
        weights[-1] = 1 / math.sqrt(rare)       # Σ of `rare` noisy cells has sd σ·√rare: scaled back to σ
        y2 = np.append(y[sup], y[~sup].sum() / math.sqrt(rare))
        measurements.append(mbi.LinearMeasurement(y2, (names[j],), stddev=sigma,
                                                  query=mbi.WeightedQuery(weights)))
    return codes, new_sizes, measurements, kept


def spanning_tree(pairs_error: dict[tuple[str, str], float], names: list[str], rho: float,
                  rng: np.random.Generator) -> tuple[list[tuple[str, str]], float]:
    """Step 3: r − 1 edges, each by the exponential mechanism (ε_EM = √(8ρ/(r−1)), sensitivity 1) among the
    pairs that join two components so far (Kruskal's rule, with a private choice); returns (edges, ε_EM)."""
    components = DisjointSets(names)
    eps_em = math.sqrt(8 * rho / (len(names) - 1))
    edges = []
    for _ in range(len(names) - 1):
        candidates = [e for e in pairs_error if components.root(e[0]) != components.root(e[1])]
        k = exponential_mechanism(np.array([pairs_error[e] for e in candidates]), eps_em, 1.0, rng)
        a, b = candidates[k]
        components.join(a, b)
        edges.append((a, b))
    return edges, eps_em


class MST(MarginalSynthesizer):
    """MST synthesizer: ``fit(df, epsilon, delta)`` ((ε, δ)-DP through ρ-zCDP), ``sample(n)``, ``epsilon_spent``.

    ``iters`` / ``select_iters``: Private-PGM mirror-descent steps for step 5 and for step 3's 1-way model;
    the defaults are the reference code's (McKenna's ``mst.py``, as SmartNoise runs it: 5,000 and 1,000). Fewer
    under-fit where the noise is small: on Default at ε = 10 (ten seeds) 500 final steps leave a 2-way TVD of
    0.0098 ± 0.0006 against 0.0091-0.0092 at 2,000-5,000 (``benchmarks/README.md``); the steps are jitted by
    ``mbi``'s JAX, so 5,000 cost about as much as 500 here.
    """

    def __init__(self, iters: int = 5000, select_iters: int = 1000, compress: bool = True, seed: int = 0):
        if iters < 1 or select_iters < 1:
            raise ValueError("need iters >= 1 and select_iters >= 1 (mirror-descent steps)")
        self.iters, self.select_iters, self.compress, self.seed = iters, select_iters, compress, seed

    def _fit(self, df: pd.DataFrame, epsilon: float, delta: float) -> None:
        if len(self.schema.columns) < 2:
            raise ValueError("MST models pairs of columns: the table needs at least two")
        rng = np.random.default_rng(self.seed)
        names, codes, sizes = self.schema.names, self.schema.discretize(df), self.schema.sizes
        self.rho = cdp_rho(epsilon, delta)
        sigma = math.sqrt(3 / (2 * self.rho))                                         # a third of ρ per step
        data = self.dataset(codes, sizes)
        one_way = measure(data, [(n,) for n in names], sigma, rng)                    # step 1
        measured_sd = [m.stddev for m in one_way]
        self.kept = None
        if self.compress:                                                            # step 2
            codes, sizes, one_way, self.kept = compress_domain(codes, names, sizes, one_way, measured_sd)
            self._orig_sizes = self.schema.sizes
        data = self.dataset(codes, sizes)
        model = ModelMarginals(self.estimate(data.domain, one_way, self.select_iters))
        errors = {pair: l1_error(data, model, pair) for pair in combinations(names, 2)}
        self.tree, eps_em = spanning_tree(errors, names, self.rho / 3, rng)          # step 3
        two_way = measure(data, self.tree, sigma, rng)                                # step 4
        measured_sd += [m.stddev for m in two_way]
        self.model = self.estimate(data.domain, one_way + two_way, self.iters)                  # step 5
        # spent, from what ran: Σ 1/(2 sd²) over the Gaussian measurements (sensitivity 1 each) + ε_EM²/8 per
        # edge chosen; ρ by construction, converted to (ε, δ)
        self.rho_spent = sum(1 / (2 * sd**2) for sd in measured_sd) + len(self.tree) * eps_em**2 / 8
        self.epsilon_spent = cdp_epsilon(self.rho_spent, delta)
        self._rng = np.random.default_rng(self.seed + 1)

    def _sample(self, n: int) -> pd.DataFrame:
        codes = self.sample_codes(n, self._rng)
        for j, kept in enumerate(self.kept or []):               # undo step 2: a merged value → a rare one
            rare = np.setdiff1d(np.arange(self._orig_sizes[j]), kept)
            if len(rare):
                c, merged = codes[:, j], codes[:, j] == len(kept)
                out = np.empty_like(c)
                out[~merged] = kept[c[~merged]]
                out[merged] = self._rng.choice(rare, int(merged.sum()))
                codes[:, j] = out
        return self.schema.undiscretize(codes, self._rng)
