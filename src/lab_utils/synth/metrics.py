"""Utility of a synthetic table against the real one.

* k-way marginal total-variation distance, TVD = ½ Σ_c |p_real(c) − p_synth(c)|,
  averaged over all 1-way or 2-way marginals of the discretized table (the metric of
  the NIST 2018/2020 DP synthetic data challenges and of SmartNoise's evaluations).
* Correlation difference: mean absolute difference of the Pearson correlation
  matrices of the ``to_unit`` features (one-hot categoricals, scaled numerics).
* ML efficacy, "train on synthetic, test on real" (TSTR; Esteban et al. 2017,
  Jordon et al. 2019 Sec. 5): a logistic regression trained on the synthetic table
  and scored by AUC on held-out real rows, next to the same model trained on real rows.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from .data import Schema


def marginal(codes: np.ndarray, sizes: list[int], cols: tuple[int, ...]) -> np.ndarray:
    """Normalised histogram of the columns ``cols`` of integer codes."""
    shape = tuple(sizes[c] for c in cols)
    flat = np.ravel_multi_index(tuple(codes[:, c] for c in cols), shape)
    h = np.bincount(flat, minlength=int(np.prod(shape))).astype(float)
    return h / max(h.sum(), 1.0)


def marginal_tvd(real: pd.DataFrame, synth: pd.DataFrame, schema: Schema, way: int = 1) -> float:
    """Mean total-variation distance over all ``way``-way marginals (way = 1 or 2)."""
    if way not in (1, 2):
        raise ValueError(f"way must be 1 or 2, got {way}")
    a, b = schema.discretize(real), schema.discretize(synth)
    tvds = [0.5 * np.abs(marginal(a, schema.sizes, cols) - marginal(b, schema.sizes, cols)).sum()
            for cols in combinations(range(len(schema.columns)), way)]
    return float(np.mean(tvds))


def correlation_difference(real: pd.DataFrame, synth: pd.DataFrame, schema: Schema) -> float:
    """Mean |corr_real − corr_synth| over feature pairs (a constant synthetic feature counts as corr 0)."""
    def corr(x: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            c = np.corrcoef(x, rowvar=False)
        return np.nan_to_num(c)
    cr, cs = corr(schema.to_unit(real)), corr(schema.to_unit(synth))
    iu = np.triu_indices_from(cr, k=1)
    return float(np.abs(cr[iu] - cs[iu]).mean())


def ml_efficacy(synth: pd.DataFrame, real_train: pd.DataFrame, real_test: pd.DataFrame,
                schema: Schema, target: str) -> dict[str, float]:
    """TSTR AUC (train on synthetic, test on real) and TRTR AUC (train on real) for a binary target."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    col = schema[target]
    if col.kind != "categorical" or col.size != 2:
        raise ValueError(f"target {target!r} must be a binary categorical column")
    feats = schema.subset([n for n in schema.names if n != target])
    positive = col.categories[0]

    def xy(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return feats.to_unit(df), (df[target].astype(object) == positive).to_numpy().astype(int)

    xt, yt = xy(real_test)
    out = {}
    for name, train in [("tstr_auc", synth), ("trtr_auc", real_train)]:
        x, y = xy(train)
        if len(np.unique(y)) < 2:  # a synthesizer that emits one class has no ranking: AUC 0.5
            out[name] = 0.5
            continue
        clf = LogisticRegression(max_iter=500).fit(x, y)
        out[name] = float(roc_auc_score(yt, clf.predict_proba(xt)[:, 1]))
    return out


def uniform_table(schema: Schema, n: int, seed: int) -> pd.DataFrame:
    """n rows drawn uniformly from the public domain (columns independent, every bin equally likely): the
    reference a synthesizer that learned nothing would score (bins from seed, values within bins from seed + 1)."""
    codes = np.random.default_rng(seed).integers(0, schema.sizes, (n, len(schema.sizes)))
    return schema.undiscretize(codes, np.random.default_rng(seed + 1))


def utility_report(synth: pd.DataFrame, real_train: pd.DataFrame, real_test: pd.DataFrame,
                   schema: Schema, target: str) -> dict[str, float]:
    """All metrics in one dict (TVDs and correlation difference against the training rows)."""
    return {"tvd_1way": marginal_tvd(real_train, synth, schema, 1),
            "tvd_2way": marginal_tvd(real_train, synth, schema, 2),
            "corr_diff": correlation_difference(real_train, synth, schema),
            **ml_efficacy(synth, real_train, real_test, schema, target)}
