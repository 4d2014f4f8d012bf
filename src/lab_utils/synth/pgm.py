"""What the marginal-based synthesizers (MST, AIM, MWEM+PGM) share: Private-PGM (McKenna, Sheldon & Miklau,
ICML 2019; PyPI ``mbi`` 2.x) for estimation and sampling, and one noisy-marginal measurement.

Each of them measures marginals M_C(D) (the histogram of the columns C) with noise, then fits a graphical
model p̂ to all measurements by Private-PGM's mirror descent (the paper's Algorithm 1),

    p̂ = argmin_{μ ∈ marginal polytope}  Σ_i ‖ M_{C_i}(μ) − y_i ‖₂² / σ_i²,

and samples the release from p̂. Neighbouring tables differ by one record added or removed, so a marginal has
ℓ₁ and ℓ₂ sensitivity 1. ``MarginalSynthesizer`` holds the shared steps (schema codes → ``mbi.Dataset``, the
estimate, sampling back through the schema); the subclasses hold only their paper's algorithm.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .base import Synthesizer


def load_mbi():
    """``mbi`` with jax in float64 (mbi warns that float32 stalls its estimators on large tables)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import mbi

    return mbi


def measure(data, cliques: list[tuple[str, ...]], scale: float, rng: np.random.Generator,
            noise: str = "gaussian") -> list:
    """Noisy marginals of ``cliques``.

    ``noise="gaussian"``: weights 1/√k each (unit ℓ₂ norm), N(0, (σ/w)²) per cell, so together they cost
    1/(2σ²) in zCDP whatever k is (σ = ``scale``). ``noise="laplace"``: one clique, Lap(b) per cell (b =
    ``scale``), ε = 1/b (ℓ₁ sensitivity 1); Private-PGM weighs it by its standard deviation b√2.
    """
    mbi = load_mbi()
    if noise not in ("gaussian", "laplace"):
        raise ValueError(f"noise must be 'gaussian' or 'laplace', got {noise!r}")
    if noise == "laplace" and len(cliques) != 1:
        raise ValueError("Laplace measurements are one clique at a time (ε = 1/b per clique)")
    w = 1 / math.sqrt(len(cliques))
    out = []
    for clique in cliques:
        x = np.asarray(data.project(clique).datavector())
        if noise == "gaussian":
            y, sd = x + rng.normal(0, scale / w, x.size), scale / w
        else:
            y, sd = x + rng.laplace(0, scale, x.size), scale * math.sqrt(2)
        out.append(mbi.LinearMeasurement(y, clique, stddev=sd))
    return out


DENSE_CELLS = 2**23          # joint tables up to this many cells are materialised for model marginals


class ModelMarginals:
    """M_C(p̂) for many cliques C of one model p̂.

    p̂(x) ∝ exp(Σ_k θ_k(x_{C_k})) over the model's cliques C_k (Private-PGM's log-potentials θ). When the
    domain has at most ``DENSE_CELLS`` cells, the joint is built once with NumPy and every marginal is a sum
    over it — exact, and free of the jax compilation that ``model.project`` pays per new clique (about a
    quarter of a second each on 2 cores, most of an AIM round). Larger domains use ``model.project``.
    """

    def __init__(self, model, max_cells: int = DENSE_CELLS):
        self.model, self.joint = model, None
        domain = model.domain
        if domain.size() <= max_cells:
            names = list(domain.attributes)
            log_p = np.zeros(domain.shape)
            for clique in model.potentials.cliques:
                factor = model.potentials[clique]
                order = [names.index(a) for a in factor.domain.attributes]
                shape = [domain.shape[j] if j in order else 1 for j in range(len(names))]
                log_p = log_p + np.transpose(np.asarray(factor.values), np.argsort(order)).reshape(shape)
            p = np.exp(log_p - log_p.max())
            self.joint, self.names = p * (float(model.total) / p.sum()), names

    def __call__(self, clique: tuple[str, ...]) -> np.ndarray:
        """The marginal over ``clique`` as a flat vector (``clique``'s column order, like ``datavector``)."""
        if self.joint is None:
            return np.asarray(self.model.project(clique).datavector())
        axes = [self.names.index(a) for a in clique]
        other = tuple(j for j in range(self.joint.ndim) if j not in axes)
        kept = sorted(axes)                                  # sum() leaves the kept axes in domain order
        return np.transpose(self.joint.sum(axis=other), [kept.index(j) for j in axes]).ravel()


def l1_error(data, marginals: ModelMarginals, clique: tuple[str, ...]) -> float:
    """‖M_C(D) − M_C(p̂)‖₁: how badly the model gets one marginal wrong (sensitivity 1 in D)."""
    return float(np.abs(np.asarray(data.project(clique).datavector()) - marginals(clique)).sum())


def within_size(domain, model_cliques: list, pool: dict, size_limit_mb: float) -> dict:
    """AIM's and MWEM+PGM's candidate filter: C whose junction tree with the cliques so far stays ≤ ``size_limit_mb``
    (or that the model already covers, which costs nothing)."""
    mbi = load_mbi()
    free = set(mbi.clique_utils.downward_closure(model_cliques))
    return {c: w for c, w in pool.items()
            if c in free or mbi.junction_tree.hypothetical_model_size(domain, model_cliques + [c]) <= size_limit_mb}


class MarginalSynthesizer(Synthesizer):
    """The Private-PGM half of MST, AIM and MWEM+PGM: data in, model estimated, release sampled."""

    seed: int = 0

    def dataset(self, codes: np.ndarray, sizes: list[int]):
        """The schema's integer codes as an ``mbi.Dataset`` over the public domain."""
        mbi = load_mbi()
        names = self.schema.names
        return mbi.Dataset({n: codes[:, j] for j, n in enumerate(names)}, mbi.Domain(names, sizes))

    @staticmethod
    def estimate(domain, measurements: list, iters: int, known_total: float | None = None, warm_start=None):
        """Private-PGM's mirror descent on ``measurements`` (warm-started from a previous model if given)."""
        mbi = load_mbi()
        return mbi.estimation.MirrorDescent().estimate(domain, measurements, iters=iters,
                                                       known_total=known_total, warm_start=warm_start)

    def sample_codes(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` rows of codes drawn from ``self.model`` (mbi's rounding uses NumPy's global RNG: seeded here)."""
        np.random.seed(int(rng.integers(2**31)))
        synth = self.model.synthetic_data(rows=n).to_dict()
        return np.stack([np.asarray(synth[c]) for c in self.schema.names], axis=1).astype(np.int64)

    def _sample(self, n: int) -> pd.DataFrame:
        return self.schema.undiscretize(self.sample_codes(n, self._rng), self._rng)
