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


ALPHA = 0.9                  # AIM's and MWEM+PGM's share of each round's budget that measures (the rest selects)
DENSE_CELLS = 2**23          # joint tables up to this many cells are materialised for model marginals


class ModelMarginals:
    """M_C(p̂) for many cliques C of one model p̂, exactly, without a jax compilation per new C.

    ``model.project`` compiles a variable elimination for every new clique (about a quarter of a second each
    on 2 cores: most of an AIM round, hours for MST's pairs on a 200-column table). Instead:

    * small domains (≤ ``max_cells`` cells): p̂(x) ∝ exp(Σ_k θ_k(x_{C_k})) over the model's log-potentials θ is
      built once with NumPy and every marginal is a sum over it;
    * otherwise, C's attributes are grouped by the connected component of the model's graph they lie in
      (components are independent under p̂, so M_C = total · Π_g (M_g / total)); a group inside one of the
      model's cliques is a sum of that clique's marginal; only a group spanning several cliques falls back
      to ``model.project``.
    """

    def __init__(self, model, max_cells: int = DENSE_CELLS):
        self.model, self.joint = model, None
        domain = model.domain
        self.names, self.total = list(domain.attributes), float(model.total)
        if domain.size() <= max_cells:
            log_p = np.zeros(domain.shape)
            for clique in model.potentials.cliques:
                factor = model.potentials[clique]
                order = [self.names.index(a) for a in factor.domain.attributes]
                shape = [domain.shape[j] if j in order else 1 for j in range(len(self.names))]
                log_p = log_p + np.transpose(np.asarray(factor.values), np.argsort(order)).reshape(shape)
            p = np.exp(log_p - log_p.max())
            self.joint = p * (self.total / p.sum())
            return
        self.component = _components(self.names, model.cliques)
        self.tables = [(list(model.marginals[c].domain.attributes), np.asarray(model.marginals[c].values))
                       for c in model.marginals.cliques]

    def __call__(self, clique: tuple[str, ...]) -> np.ndarray:
        """The marginal over ``clique`` as a flat vector (``clique``'s column order, like ``datavector``)."""
        if self.joint is not None:
            return _sum_to(self.names, self.joint, clique).ravel()
        groups: dict[int, list[str]] = {}
        for a in clique:
            groups.setdefault(self.component[a], []).append(a)
        out, attrs = np.asarray(self.total), []
        for group in groups.values():
            out = np.multiply.outer(out, self._within(tuple(group)) / self.total)
            attrs += group
        return _sum_to(attrs, out, clique).ravel()

    def _within(self, group: tuple[str, ...]) -> np.ndarray:
        for names, table in self.tables:
            if set(group) <= set(names):
                return _sum_to(names, table, group)
        if len(group) == 1 and not any(group[0] in c for c in self.model.cliques):   # in no clique: uniform
            size = self.model.domain.size(group)
            return np.full(size, self.total / size)
        return np.asarray(self.model.project(group).values)


def _sum_to(names: list[str], table: np.ndarray, clique: tuple[str, ...]) -> np.ndarray:
    """Sum ``table`` (axes named ``names``) down to ``clique``, axes in ``clique``'s order."""
    axes = [names.index(a) for a in clique]
    kept = sorted(axes)                                      # sum() leaves the kept axes in table order
    other = tuple(j for j in range(table.ndim) if j not in axes)
    return np.transpose(table.sum(axis=other), [kept.index(j) for j in axes])


class DisjointSets:
    """Union-find over attribute names: which attributes a set of edges or cliques has joined."""

    def __init__(self, names):
        self.parent = {a: a for a in names}

    def root(self, a):
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]       # path halving
            a = self.parent[a]
        return a

    def join(self, a, b) -> None:
        self.parent[self.root(a)] = self.root(b)


def _components(names: list[str], cliques) -> dict[str, int]:
    """Connected component of each attribute in the graph whose edges join attributes sharing a clique."""
    sets = DisjointSets(names)
    for clique in cliques:
        for a in clique[1:]:
            sets.join(a, clique[0])
    return {a: names.index(sets.root(a)) for a in names}


def l1_error(data, marginals: ModelMarginals, clique: tuple[str, ...]) -> float:
    """‖M_C(D) − M_C(p̂)‖₁: how badly the model gets one marginal wrong (sensitivity 1 in D)."""
    return float(np.abs(np.asarray(data.project(clique).datavector()) - marginals(clique)).sum())


def within_size(domain, model_cliques: list, pool: dict, size_limit_mb: float) -> dict:
    """AIM's and MWEM+PGM's candidate filter: C whose junction tree with the cliques so far stays ≤ ``size_limit_mb``
    (or that the model already covers, which costs nothing).

    Attributes in none of the cliques are isolated nodes of the junction tree, one maximal clique each, so the
    tree is built over the attributes the cliques touch and the isolated ones add their sizes (8 bytes a cell):
    the same number as ``hypothetical_model_size`` over the whole domain, without a 200-node elimination order
    per candidate on a wide table."""
    mbi = load_mbi()
    free = set(mbi.clique_utils.downward_closure(model_cliques))

    def size_mb(cliques):
        touched = sorted({a for c in cliques for a in c}, key=list(domain.attributes).index)
        isolated = sum(domain.size(a) for a in domain.attributes if a not in touched) * 8 / 2**20
        return mbi.junction_tree.hypothetical_model_size(domain.project(touched), cliques) + isolated

    return {c: w for c, w in pool.items() if c in free or size_mb(model_cliques + [c]) <= size_limit_mb}


def near_map_limit(fraction: float = 0.5) -> bool:
    """Does this process hold more than ``fraction`` of the kernel's memory-map limit (``vm.max_map_count``)?
    True also where that cannot be read (not Linux): then jax's caches are dropped after every fit, as before.
    Half the limit leaves room for the ~9,000 maps one fit on Wage adds."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            limit = int(f.read())
        with open("/proc/self/maps") as f:
            used = sum(1 for _ in f)
    except (OSError, ValueError):
        return True
    return used > fraction * limit


class MarginalSynthesizer(Synthesizer):
    """The Private-PGM half of MST, AIM and MWEM+PGM: data in, model estimated, release sampled."""

    seed: int = 0

    def fit(self, df: pd.DataFrame, epsilon: float, delta: float | None = None, schema=None):
        """``Synthesizer.fit``, then jax's compiled programs are dropped once the process nears the kernel's
        memory-map limit: every new clique set compiles new ones, and a benchmark grid's worth kept in one
        process ran out of mappable memory (over 18,000 memory maps after two fits on Wage; the kernel allows
        65,530) — "LLVM compilation error: Cannot allocate memory". Below the limit they are kept, so a fit
        whose clique sets were seen before does not compile them again (the unit tests of MST, AIM and
        MWEM+PGM: 128 s when every fit dropped them, 70-78 s kept)."""
        try:
            return super().fit(df, epsilon, delta, schema)
        finally:
            if near_map_limit():
                import jax

                jax.clear_caches()

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
