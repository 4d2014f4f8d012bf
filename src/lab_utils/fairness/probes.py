"""The probes: cross-dataset consistency, chance-corrected agreement, counterfactual trait effects.

Khan & Fu (2021, method and experiments) use a classifier trained on a dataset as a stand-in for the racial system
that dataset encodes, then compare those systems on common faces:

* **self-consistency** — classifiers trained on disjoint parts of *one* dataset, asked about the same
  faces: how often they agree (the ceiling);
* **cross-dataset consistency** — classifiers of *different* datasets on the same faces, on the categories
  they share: how often they agree, over all faces (:func:`agreement`, :func:`agreement_matrix`) and per
  category (:func:`category_consistency`: some categories are systematically less consistent);
* **stereotypes** — which traits move a face into a category. The paper looks at ethnic groups that a
  category includes or excludes; this chapter adds a direct counterfactual probe
  (:func:`counterfactual_shift`): change one trait, keep everything else, count how many faces change
  category.

Agreement is chance-corrected with Cohen's kappa (:func:`cohen_kappa`, checked against
``sklearn.metrics.cohen_kappa_score``); intervals are percentile bootstraps over faces
(:func:`bootstrap_mean_ci`). Per-group metrics use ``fairlearn.metrics.MetricFrame`` (:func:`group_metrics`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from lab_utils.graded import graded_reference


def _pair(a: Sequence[int], b: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"need two non-empty 1-D label arrays of one length, got shapes {a.shape} and {b.shape}")
    return a, b


def agreement(a: Sequence[int], b: Sequence[int]) -> float:
    """Fraction of faces that two labelers put in the same category (the paper's consistency)."""
    a, b = _pair(a, b)
    return float(np.mean(a == b))


def agreement_matrix(labels: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """Pairwise :func:`agreement` of several labelers on the same faces (1 on the diagonal)."""
    names = list(labels)
    m = [[agreement(labels[r], labels[c]) for c in names] for r in names]
    return pd.DataFrame(m, index=names, columns=names)


@graded_reference
def category_consistency(a: Sequence[int], b: Sequence[int], categories: Sequence[str]) -> dict[str, float]:
    """Per-category consistency: |A = c and B = c| / |A = c or B = c| (intersection over union).

    Symmetric in the two labelers; 1 when they put exactly the same faces in ``c``, 0 when they share none;
    NaN for a category neither uses. (The paper reads per-category consistency off the cross-dataset
    confusion; the union keeps it symmetric, so one number per category and pair.)
    """
    a, b = _pair(a, b)
    out = {}
    for c, name in enumerate(categories):
        union = np.sum((a == c) | (b == c))
        out[name] = float(np.sum((a == c) & (b == c)) / union) if union else float("nan")
    return out


@graded_reference
def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> float:
    """Cohen's kappa, (p_o - p_e) / (1 - p_e) (Cohen 1960, Eq. 1): agreement beyond the chance agreement.

    ``p_o`` is the observed agreement, ``p_e = sum_c P(A = c) P(B = c)`` what two labelers with these label
    frequencies would agree on by chance. Both labelers always using one same category: 1 by convention
    (sklearn returns NaN there).
    """
    a, b = _pair(a, b)
    cats = np.union1d(a, b)
    p_o = np.mean(a == b)
    p_e = sum(np.mean(a == c) * np.mean(b == c) for c in cats)
    return 1.0 if p_e == 1 else float((p_o - p_e) / (1 - p_e))


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile-bootstrap confidence interval."""

    estimate: float
    low: float
    high: float
    level: float = 0.95

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return f"{self.estimate:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


@graded_reference
def bootstrap_mean_ci(x: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> Interval:
    """Mean of per-face values ``x`` with a percentile bootstrap interval (Efron & Tibshirani 1993, §13.3).

    Resampling *faces* with replacement: paired statistics (a counterfactual minus its original, one
    classifier's agreement minus another's on the same face) go in as their per-face differences.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or len(x) == 0 or not 0 < level < 1 or n_boot < 1:
        raise ValueError("need a non-empty 1-D array, 0 < level < 1 and n_boot >= 1")
    rng = np.random.default_rng(seed)
    means = np.array([x[rng.integers(0, len(x), len(x))].mean() for _ in range(n_boot)])
    tail = (1 - level) / 2
    return Interval(float(x.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail)),
                    level)


@graded_reference
def counterfactual_shift(predict: Callable[[object], np.ndarray], traits, trait: str, value: float,
                         category: int, n_boot: int = 2000, seed: int = 0) -> Interval:
    """Change of P(predicted = ``category``) when ``trait`` is set to ``value``, all else fixed.

    ``predict`` maps :class:`~lab_utils.fairness.faces.FaceTraits` to category indices (an annotator's
    ``label``, or a classifier that renders the faces first). Per face, the effect is
    1[pred(counterfactual) = c] - 1[pred(original) = c]; the estimate is its mean, with a paired bootstrap
    interval over faces. A labeler that ignores ``trait`` gives exactly 0 with the interval [0, 0].
    """
    before = np.asarray(predict(traits)) == category
    after = np.asarray(predict(traits.with_trait(trait, value))) == category
    return bootstrap_mean_ci(after.astype(float) - before.astype(float), n_boot=n_boot, seed=seed)


@graded_reference
def balanced_indices(labels: Sequence[int], seed: int = 0, per_category: int | None = None) -> np.ndarray:
    """Indices of a category-balanced resample: ``per_category`` faces of each category used.

    Categories with more faces are subsampled without replacement, those with fewer are resampled with
    replacement (default ``per_category``: the mean count, so the dataset keeps its size). This is the
    common mitigation (e.g. FairFace's balanced design) the paper argues fixes representation only in
    counts.
    """
    labels = np.asarray(labels)
    cats = np.unique(labels)
    k = int(round(len(labels) / len(cats))) if per_category is None else int(per_category)
    if k < 1:
        raise ValueError(f"per_category must be at least 1, got {per_category}")
    rng = np.random.default_rng(seed)
    parts = []
    for c in cats:
        idx = np.flatnonzero(labels == c)
        parts.append(rng.choice(idx, size=k, replace=len(idx) < k))
    return rng.permutation(np.concatenate(parts))


def group_metrics(y_true: Sequence[int], y_pred: Sequence[int], groups: Sequence, positive: int,
                  n_categories: int):
    """``fairlearn.metrics.MetricFrame`` of accuracy, selection rate of ``positive``, count, confusion.

    Returns the MetricFrame: ``.by_group`` per group, ``.difference()`` the largest gap between groups.
    """
    from fairlearn.metrics import MetricFrame, count, selection_rate
    from sklearn.metrics import accuracy_score, confusion_matrix

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return MetricFrame(
        metrics={"accuracy": accuracy_score,
                 "selection rate": lambda t, p: selection_rate(t == positive, p == positive),
                 "count": count,
                 "confusion": partial(confusion_matrix, labels=list(range(n_categories)))},
        y_true=y_true, y_pred=y_pred, sensitive_features=pd.Series(np.asarray(groups), name="group"))
