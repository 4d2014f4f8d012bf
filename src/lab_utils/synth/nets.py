"""Small networks shared by the GAN synthesizers (DPGAN, PATE-GAN).

The generator emits the ``Schema.to_unit`` layout, so ``Schema.from_unit`` decodes it: a tanh for each
continuous value and, for each categorical block, CTGAN's output (Xu et al. 2019, Sec. 4.2) — a
straight-through Gumbel-softmax at τ = 0.2 while training, so the discriminator sees one-hot rows on both
sides. A plain softmax gives soft vectors that a discriminator separates from real one-hot rows by their
softness alone, and the generator then learns to sharpen, not to match frequencies: measured on Wage (DPGAN,
120 iterations, ε = 1, 3, 10) 1-way TVD 0.42 / 0.27 / 0.29 with a softmax against 0.24 / 0.21 / 0.23 with
this output. In eval mode the block is the softmax itself — by the Gumbel-max trick the training draw's
argmax is distributed as Categorical(softmax), which ``sample_table`` samples with its own seeded generator.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .data import Schema


class Generator(nn.Module):
    """MLP z → features, with per-column output activations (hard Gumbel-softmax blocks while training,
    softmax blocks in eval mode / tanh)."""

    tau = 0.2  # CTGAN's Gumbel-softmax temperature

    def __init__(self, schema: Schema, noise_dim: int = 32, hidden: int = 64):
        super().__init__()
        self.blocks = schema.unit_blocks
        width = self.blocks[-1][2]
        self.noise_dim = noise_dim
        self.net = nn.Sequential(nn.Linear(noise_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, width))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.net(z)
        parts = [self._categorical(h[:, a:b]) if kind == "categorical" else torch.tanh(h[:, a:b])
                 for kind, a, b in self.blocks]
        return torch.cat(parts, dim=1)

    def _categorical(self, logits: torch.Tensor) -> torch.Tensor:
        """Training: one-hot of argmax(logits + Gumbel) forward, ∇ of softmax((logits + Gumbel)/τ) backward
        (its Gumbel draws come from torch's global generator, seeded by the synthesizer's fit). Eval: softmax."""
        if self.training:
            return F.gumbel_softmax(logits, tau=self.tau, hard=True)
        return torch.softmax(logits, dim=1)

    def noise(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.noise_dim, generator=gen)


def discriminator(width: int, hidden: int = 64) -> nn.Module:
    """MLP features → one logit / critic value."""
    return nn.Sequential(nn.Linear(width, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                         nn.Linear(hidden, 1))


def sample_table(gen: Generator, schema: Schema, n: int, tgen: torch.Generator) -> pd.DataFrame:
    """Draw n rows; categoricals are sampled from the generator's softmax (not argmax) so rare classes survive."""
    gen.eval()
    try:
        with torch.no_grad():
            x = gen(gen.noise(n, tgen)).numpy().astype(np.float64)
    finally:
        gen.train()
    rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=tgen)))
    for kind, a, b in schema.unit_blocks:
        if kind == "categorical":
            p = x[:, a:b] / x[:, a:b].sum(1, keepdims=True)
            pick = (p.cumsum(1) > rng.random((n, 1))).argmax(1)
            x[:, a:b] = np.eye(b - a)[pick]
    return schema.from_unit(x)


def poisson_batch(n: int, rate: float, gen: torch.Generator) -> torch.Tensor:
    """Indices of a Poisson-subsampled batch: each record independently with probability ``rate``."""
    return torch.nonzero(torch.rand(n, generator=gen) < rate).flatten()
