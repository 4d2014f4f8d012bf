"""QUAIL (Rosenblatt, Liu, Pouyanfar, de Leon, Desai & Allen, arXiv:2011.05537, 2020, Sec. 3.2).

A supervised-learning ensemble for synthesizing a table with a label column y:

    split ε = ε_synth + ε_model   (ε_synth = p·ε, the paper's "split" parameter)
    fit a DP synthesizer on the features X only               (ε_synth, δ_synth)
    fit a DP supervised model  h: X → y on the real records    (ε_model, δ_model)
    sample:  X' ~ synthesizer;   y' ~ h(X')                     (post-processing, free)

By basic composition the whole is (ε_synth + ε_model, δ_synth + δ_model)-DP. The DP
model here is multinomial logistic regression trained with DP-SGD (Abadi et al. 2016):
Poisson batches, per-example gradients (closed form, (softmax(Wx) − e_y) ⊗ [x, 1])
clipped to C, Gaussian noise N(0, σ²C²) (the shared ``dpsgd.private_gradient`` step), σ from
Opacus' RDP accountant. Labels are
*sampled* from h's predicted distribution rather than argmax'd, which keeps the label
marginal instead of collapsing it to the majority class.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from .accounting import gaussian_epsilon, gaussian_noise_multiplier, remainder
from .base import Synthesizer
from .dpsgd import private_gradient


def dp_logistic_regression(x: np.ndarray, y: np.ndarray, classes: int, epsilon: float, delta: float,
                           epochs: int = 20, batch_size: int = 64, lr: float = 0.5, clip: float = 1.0,
                           rng: np.random.Generator | None = None) -> tuple[np.ndarray, float]:
    """DP-SGD softmax regression; returns weights W (features + 1, classes) and the ε spent.

    Per-example gradients in closed form, (softmax(W^T x_i) − e_{y_i}) ⊗ [x_i, 1]; the clip-and-noise
    step is ``dpsgd.private_gradient`` (Abadi et al. 2016, Alg. 1) with the expected batch size as normaliser.
    """
    rng = rng or np.random.default_rng(0)
    n = len(x)
    if batch_size >= n:
        raise ValueError(f"batch_size {batch_size} must be smaller than the {n} records")
    q = batch_size / n
    steps = max(1, int(epochs / q))
    sigma = gaussian_noise_multiplier(epsilon, delta, q, steps)
    gen = torch.Generator().manual_seed(int(rng.integers(2**31 - 1)))
    xb1 = torch.from_numpy(np.concatenate([x, np.ones((n, 1))], axis=1))
    onehot = torch.eye(classes, dtype=xb1.dtype)[torch.from_numpy(np.asarray(y))]
    w = torch.zeros(xb1.shape[1], classes, dtype=xb1.dtype)
    for _ in range(steps):
        idx = torch.from_numpy(np.flatnonzero(rng.random(n) < q))  # Poisson sample at rate q
        xb = xb1[idx]
        err = torch.softmax(xb @ w, dim=1) - onehot[idx]
        per_example = {"w": xb[:, :, None] * err[:, None, :]} if len(idx) else None
        w -= lr * private_gradient(per_example, {"w": w}, clip, sigma, batch_size, gen)["w"]
    return w.numpy(), gaussian_epsilon(sigma, q, steps, delta)


class QUAIL(Synthesizer):
    """QUAIL: ``QUAIL(make_synthesizer, target)``; ``fit(df, epsilon, delta)``, ``sample(n)``, ``epsilon_spent``."""

    def __init__(self, make_synthesizer: Callable[[], object], target: str, split: float = 0.7,
                 epochs: int = 20, seed: int = 0):
        if not 0 < split < 1:
            raise ValueError(f"split (share of ε for the synthesizer) must be in (0, 1), got {split}")
        self.make_synthesizer, self.target, self.split, self.epochs, self.seed = make_synthesizer, target, split, epochs, seed
        self.epsilon_spent = 0.0

    def _fit(self, df: pd.DataFrame, epsilon: float, delta: float) -> None:
        col = self.schema[self.target]
        if col.kind != "categorical":
            raise ValueError(f"QUAIL's target {self.target!r} must be a categorical column (a classification label)")
        features = [c for c in self.schema.names if c != self.target]
        self.feature_schema = self.schema.subset(features)
        eps_synth = self.split * epsilon
        eps_model = remainder(epsilon, eps_synth)  # the rest, so the shares cannot round above ε
        self.synthesizer = self.make_synthesizer()
        # a pure-ε synthesizer (MWEM, uses_delta = False) takes no δ; a GAN gets half of it
        needs_delta = getattr(self.synthesizer, "uses_delta", True)
        delta_model = delta / 2 if needs_delta else delta
        kwargs = {"delta": delta / 2} if needs_delta else {}
        self.synthesizer.fit(df[features], eps_synth, schema=self.feature_schema, **kwargs)
        x = self.feature_schema.to_unit(df[features])
        y = self.schema.subset([self.target]).discretize(df[[self.target]])[:, 0]
        self.weights, eps_m = dp_logistic_regression(x, y, col.size, eps_model, delta_model, epochs=self.epochs,
                                                     rng=np.random.default_rng(self.seed))
        self.epsilon_spent = self.synthesizer.epsilon_spent + eps_m
        self._rng = np.random.default_rng(self.seed + 1)

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        x = self.feature_schema.to_unit(features)
        logits = np.concatenate([x, np.ones((len(x), 1))], axis=1) @ self.weights
        p = np.exp(logits - logits.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True)

    def _sample(self, n: int) -> pd.DataFrame:
        feats = self.synthesizer.sample(n)
        p = self.predict_proba(feats)
        labels = (p.cumsum(1) > self._rng.random((n, 1))).argmax(1)
        out = feats.copy()
        out[self.target] = np.asarray(self.schema[self.target].categories, dtype=object)[labels]
        return self.schema.restore_types(out[self.schema.names])
