"""Small networks shared by the GAN synthesizers (DPGAN, PATE-GAN).

The generator emits the ``Schema.to_unit`` layout: a softmax over each categorical
one-hot block and a tanh for each continuous value, so ``Schema.from_unit`` decodes it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from .data import Schema


class Generator(nn.Module):
    """MLP z → features, with per-column output activations (softmax blocks / tanh)."""

    def __init__(self, schema: Schema, noise_dim: int = 32, hidden: int = 64):
        super().__init__()
        self.blocks = schema.unit_blocks
        width = self.blocks[-1][2]
        self.noise_dim = noise_dim
        self.net = nn.Sequential(nn.Linear(noise_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, width))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.net(z)
        parts = [torch.softmax(h[:, a:b], dim=1) if kind == "categorical" else torch.tanh(h[:, a:b])
                 for kind, a, b in self.blocks]
        return torch.cat(parts, dim=1)

    def noise(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.noise_dim, generator=gen)


def discriminator(width: int, hidden: int = 64) -> nn.Module:
    """MLP features → one logit / critic value."""
    return nn.Sequential(nn.Linear(width, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                         nn.Linear(hidden, 1))


def sample_table(gen: Generator, schema: Schema, n: int, tgen: torch.Generator) -> pd.DataFrame:
    """Draw n rows; categoricals are sampled from the generator's softmax (not argmax) so rare classes survive."""
    with torch.no_grad():
        x = gen(gen.noise(n, tgen)).numpy().astype(np.float64)
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
