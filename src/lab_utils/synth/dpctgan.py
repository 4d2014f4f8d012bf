"""DP-CTGAN: the CTGAN architecture (Xu et al., NeurIPS 2019) with a differentially private discriminator.

CTGAN's pieces are reused from the maintained ``ctgan`` package (0.12.1): its
``DataTransformer`` (mode-specific normalisation of continuous columns by a Bayesian
Gaussian mixture, Sec. 4.2; one-hot categoricals), its residual ``Generator`` and
``Discriminator``, its Gumbel-softmax output activation and its conditional-vector
cross-entropy loss (Sec. 4.3). What is changed, and why:

1. **The transformer is fit on a DP proxy table, not the private rows.** The Bayesian
   GMM of mode-specific normalisation is a statistic of the private column. Here every
   column's histogram (categories, or 32 fine bins over the public bounds) is measured
   once with Laplace noise (sensitivity 1 per column, ε_prep split over the d columns);
   a proxy table is drawn from those noisy histograms and *it* feeds the GMMs.
   SmartNoise's DP-CTGAN avoids the leak by min-max scaling instead (no modes at all).
2. **The conditional vector's category frequencies are the same noisy counts** (charged
   in ε_prep). SmartNoise draws them from exact frequencies, outside its accounting.
3. **Training-by-sampling is replaced by Poisson sampling.** CTGAN picks real rows *by
   category* to match each conditional vector; the subsampled-Gaussian analysis assumes
   each record is in a batch independently with probability q, which that does not give.
   Here real rows are Poisson-sampled and each is paired with a conditional vector built
   from its own category of a random discrete column; fake conditional vectors use the
   DP frequencies, so both sides see the same condition distribution (CTGAN's log-frequency
   rebalancing is given up).
4. **The discriminator is trained with per-pair clipped gradients + Gaussian noise**
   (DP-SGD, Abadi et al. 2016) with a cross-entropy GAN loss, pac = 1 (one record per
   discriminator input) and no gradient penalty (the penalty's interpolates touch real
   rows outside the clipping); accounted with Opacus' RDP accountant for ε − ε_prep.
5. **The number of DP-SGD steps is capped by the noise it needs** (``max_noise_multiplier``): ``iterations`` is
   a ceiling, and where ε − ε_prep can pay for that many steps only at σ above the cap, fewer steps are planned
   (before training, from ε, δ and the sampling rate alone) — SmartNoise instead fixes σ and trains until ε is spent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from .accounting import (
    basic_composition,
    gaussian_epsilon,
    gaussian_noise_multiplier,
    remainder,
    steps_for_budget,
)
from .base import Synthesizer
from .data import Column, Schema
from .dpsgd import private_gradient
from .nets import poisson_batch


def dp_proxy_table(df: pd.DataFrame, schema: Schema, epsilon: float, rng: np.random.Generator,
                   fine_bins: int = 32) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Noisy per-column histograms (Laplace, ε split over columns) and a proxy table drawn from them.

    Returns the proxy table and, for each categorical column, its noisy category counts.
    """
    scale = len(schema.columns) / epsilon  # each histogram has L1 sensitivity 1 (add/remove one row)
    n = len(df)
    proxy, counts = {}, {}
    for c in schema.columns:
        fine = c if c.kind == "categorical" else Column(c.name, "continuous", lower=c.lower, upper=c.upper,
                                                         bins=fine_bins, integer=c.integer)
        codes = Schema([fine]).discretize(df[[c.name]])[:, 0]
        noisy = np.bincount(codes, minlength=fine.size) + rng.laplace(scale=scale, size=fine.size)
        noisy = np.clip(noisy, 0, None)
        p = (noisy + 1e-9) / (noisy + 1e-9).sum()
        draw = rng.choice(fine.size, size=n, p=p)
        draw[: fine.size] = np.arange(fine.size)  # every public value appears once (public knowledge)
        proxy[c.name] = Schema([fine]).undiscretize(draw[:, None], rng)[c.name].to_numpy()
        if c.kind == "categorical":
            counts[c.name] = noisy
    return pd.DataFrame(proxy), counts


class DPCTGAN(Synthesizer):
    """DP-CTGAN synthesizer: ``fit(df, epsilon, delta)``, ``sample(n)``, ``epsilon_spent``."""

    def __init__(self, iterations: int = 300, batch_size: int = 64, lr: float = 2e-4, grad_clip: float = 1.0,
                 prep_share: float = 0.1, embedding_dim: int = 32, hidden: int = 64,
                 max_noise_multiplier: float | None = 4.0, seed: int = 0):
        if not 0 < prep_share < 1 or min(iterations, batch_size) < 1:
            raise ValueError("need 0 < prep_share < 1, iterations >= 1 and batch_size >= 1")
        if max_noise_multiplier is not None and not max_noise_multiplier > 0:
            raise ValueError(f"max_noise_multiplier must be > 0 or None, got {max_noise_multiplier}")
        self.iterations, self.batch_size, self.lr, self.grad_clip = iterations, batch_size, lr, grad_clip
        self.max_noise_multiplier = max_noise_multiplier
        self.prep_share, self.embedding_dim, self.hidden, self.seed = prep_share, embedding_dim, hidden, seed
        self.epsilon_spent = 0.0

    def _prepare(self, df: pd.DataFrame, epsilon: float) -> np.ndarray:
        """Checks, the DP proxy + ctgan transformer (ε_prep = prep_share·ε), the layout; returns the encoded rows."""
        from ctgan.data_transformer import DataTransformer
        from ctgan.synthesizers.ctgan import CTGAN

        if not any(c.kind == "categorical" for c in self.schema.columns):
            raise ValueError("CTGAN conditions on categorical columns: the table needs at least one")
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)  # rdt's mode sampling uses NumPy's global generator
        self._rng = np.random.default_rng(self.seed)
        self.epsilon_prep = self.prep_share * epsilon
        proxy, counts = dp_proxy_table(df, self.schema, self.epsilon_prep, self._rng)
        discrete = [c.name for c in self.schema.columns if c.kind == "categorical"]
        self.transformer = DataTransformer(max_clusters=10)
        self.transformer.fit(proxy, discrete_columns=discrete)
        self._ct = CTGAN()  # only for its _apply_activate / _cond_loss, which read _transformer
        self._ct._transformer = self.transformer
        # ctgan's parallel transform spawns processes above 500 rows; the synchronous path is the same code
        data = np.concatenate(self.transformer._synchronous_transform(
            df[self.schema.names], self.transformer._column_transform_info_list), axis=1).astype(np.float32)
        self._layout(discrete, counts)
        return data

    def _fit(self, df: pd.DataFrame, epsilon: float, delta: float) -> None:
        from ctgan.synthesizers.ctgan import Discriminator, Generator

        data = self._prepare(df, epsilon)
        tgen = torch.Generator().manual_seed(self.seed)
        eps_prep, eps_train = self.epsilon_prep, remainder(epsilon, self.epsilon_prep)
        n, data_dim = data.shape
        q = self.batch_size / n
        self.steps = self._plan_steps(eps_train, delta, q)  # T, fixed from (ε, δ, q) before any private step
        self.noise_multiplier = gaussian_noise_multiplier(eps_train, delta, q, self.steps)
        self.generator = Generator(self.embedding_dim + self.cond_dim, (self.hidden, self.hidden), data_dim)
        disc = Discriminator(data_dim + self.cond_dim, (self.hidden, self.hidden), pac=1)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=(0.5, 0.9))
        opt_d = torch.optim.Adam(disc.parameters(), lr=self.lr, betas=(0.5, 0.9))
        real_all = torch.from_numpy(data)
        own_cat = self._row_categories(data)

        def pair_loss(params, real, fake):  # −log D(real) − log(1 − D(fake)) for one record's pair
            d = functional_call(disc, params, (torch.stack([real, fake]),)).squeeze(1)
            return F.softplus(-d[0]) + F.softplus(d[1])
        per_pair = vmap(grad(pair_loss), in_dims=(None, 0, 0), randomness="different")

        for _ in range(self.steps):
            idx = poisson_batch(n, q, tgen)
            params = {k: v.detach() for k, v in disc.named_parameters()}
            g = None
            if len(idx):
                cond_r = self._cond_from_rows(idx, own_cat, tgen)
                with torch.no_grad():
                    fake = self._generate(len(idx), tgen)
                g = per_pair(params, torch.cat([real_all[idx], cond_r], 1), fake)
            noisy = private_gradient(g, params, self.grad_clip, self.noise_multiplier, self.batch_size, tgen)
            for name, p in disc.named_parameters():
                p.grad = noisy[name]
            opt_d.step()

            # generator: −log D(G(z, c)) (non-saturating) + CTGAN's conditional cross-entropy
            self._generator_step(lambda d: F.softplus(-d), disc, opt_g, self.batch_size, tgen)

        self.epsilon_spent = basic_composition([eps_prep, gaussian_epsilon(self.noise_multiplier, q,
                                                                           self.steps, delta)])
        self._tgen = torch.Generator().manual_seed(self.seed + 1)

    def _plan_steps(self, epsilon: float, delta: float, q: float) -> int:
        """T: ``iterations`` DP-SGD steps, or fewer where ε could pay for them only at σ > ``max_noise_multiplier``.

        At a fixed ε the noise multiplier σ grows with T, and past a point more, noisier steps make a worse table:
        on Wage at ε = 0.3 (6 seeds) 300 steps at σ = 7.3 left a 2-way TVD of 0.46 where 100 steps at σ = 4.4 reach
        0.36, while at ε = 1 300 steps at σ = 2.6 beat 100 at σ = 1.7 (0.28 vs 0.33; benchmarks/README.md,
        "DP-CTGAN's noise cap"). So take the most steps T ≤ ``iterations`` with ε(σ_max, q, T) ≤ ε
        (``accounting.steps_for_budget``) — σ(T) then stays ≤ σ_max. It reads only ε, δ, q and the cap, never the rows.
        """
        cap = self.max_noise_multiplier
        if cap is None:
            return self.iterations
        return max(1, steps_for_budget(cap, q, epsilon, delta, self.iterations))  # 1 step even above the cap

    def _generator_step(self, gan_loss, critic, opt_g: torch.optim.Optimizer, m: int, tgen: torch.Generator) -> None:
        """One generator update: ``gan_loss`` of the critic's logits + CTGAN's conditional cross-entropy (Sec. 4.3).

        Only the critic (a DP discriminator or the PATE student) and the DP category frequencies are read:
        post-processing, no ε. (More generator steps per private step did not help: tried 4-20 on Wage at
        ε = 1 and 3, 2-way TVD rose from 0.24-0.34 to 0.38-0.50.)
        """
        opt_g.zero_grad()
        cond, mask = self._sample_cond(m, tgen)
        raw = self.generator(torch.cat([torch.randn(m, self.embedding_dim, generator=tgen), cond], 1))
        fake = torch.cat([self._ct._apply_activate(raw), cond], 1)
        (gan_loss(critic(fake)).mean() + self._ct._cond_loss(raw, cond, mask)).backward()
        opt_g.step()

    def _layout(self, discrete: list[str], counts: dict[str, np.ndarray]) -> None:
        """Spans of the discrete columns in the transformed data and their DP category probabilities."""
        self.spans, self.cond_probs, st = [], [], 0
        for info in self.transformer._column_transform_info_list:
            if info.column_type == "discrete":
                self.spans.append((st, st + info.output_dimensions))
                dummies = list(info.transform.dummies)
                cats = list(self.schema[info.column_name].categories)
                noisy = counts[info.column_name][[cats.index(v) for v in dummies]]
                self.cond_probs.append((noisy + 1e-9) / (noisy + 1e-9).sum())
            st += info.output_dimensions
        self.cond_dim = sum(b - a for a, b in self.spans)
        self.cond_starts = np.cumsum([0] + [b - a for a, b in self.spans])[:-1]

    def _sample_cond(self, m: int, tgen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Fake-side conditional vectors: a uniform discrete column, a category from the DP frequencies
        (inverse CDF: the first category whose cumulative frequency exceeds a uniform draw)."""
        cols = torch.randint(0, len(self.spans), (m,), generator=tgen).numpy()
        u = torch.rand(m, generator=tgen).numpy()
        cond = np.zeros((m, self.cond_dim), dtype=np.float32)
        mask = np.zeros((m, len(self.spans)), dtype=np.float32)
        for c, probs in enumerate(self.cond_probs):  # one pass per discrete column, not per row
            rows = np.flatnonzero(cols == c)
            k = np.minimum(np.searchsorted(np.cumsum(probs), u[rows], side="right"), len(probs) - 1)
            cond[rows, self.cond_starts[c] + k] = 1
            mask[rows, c] = 1
        return torch.from_numpy(cond), torch.from_numpy(mask)

    def _row_categories(self, data: np.ndarray) -> torch.Tensor:
        """(discrete columns, rows): each row's category index in each discrete column of the transformed data."""
        return torch.stack([torch.from_numpy(data[:, a:b].argmax(1)) for a, b in self.spans])

    def _cond_from_rows(self, idx: np.ndarray | torch.Tensor, own_cat: torch.Tensor, tgen: torch.Generator) -> torch.Tensor:
        """Real-side conditional vectors: each sampled row's own category in a uniformly chosen discrete column
        (``own_cat[c, row]``: the row's category index in discrete column c)."""
        cols = torch.randint(0, len(self.spans), (len(idx),), generator=tgen)
        cond = torch.zeros(len(idx), self.cond_dim)
        starts = torch.as_tensor(self.cond_starts)
        cond[torch.arange(len(idx)), starts[cols] + own_cat[cols, torch.as_tensor(idx)]] = 1
        return cond

    def _generate(self, m: int, tgen: torch.Generator) -> torch.Tensor:
        cond, _ = self._sample_cond(m, tgen)
        raw = self.generator(torch.cat([torch.randn(m, self.embedding_dim, generator=tgen), cond], 1))
        return torch.cat([self._ct._apply_activate(raw), cond], 1)

    def _sample(self, n: int) -> pd.DataFrame:
        torch.manual_seed(self.seed + 1)  # ctgan's Gumbel-softmax draws from the global generator
        with torch.no_grad():
            x = self._generate(n, self._tgen)[:, : -self.cond_dim].numpy()
        out = self.transformer.inverse_transform(x)
        for c in self.schema.columns:
            if c.kind == "continuous":
                out[c.name] = out[c.name].astype(float).clip(c.lower, c.upper)
            else:
                out[c.name] = out[c.name].astype(object)
        return self.schema.restore_types(out[self.schema.names])
