"""PATE-CTGAN: CTGAN's architecture with PATE-GAN's teachers and student (Rosenblatt et al. 2020, Sec. 3.1).

Everything that touches the data is DP:

* the ``ctgan`` transformer and the conditional-vector frequencies come from Laplace-noised
  per-column histograms, exactly as in ``dpctgan`` (ε_prep = prep_share · ε);
* k teacher discriminators — distinct ``ctgan`` ``Discriminator`` modules with their own
  optimizers — are each trained only on their own disjoint partition of the rows
  (real (x, cond) pairs, cond from the row's own category) against generated pairs;
* a student discriminator is trained on generated pairs labelled by the noisy teacher
  vote argmax_j (n_j + Lap(1/λ)) (Jordon et al. 2019, Algorithm 1), charged with the
  PATE moments accountant (``accounting.PateMomentsAccountant``, with the log);
* the generator is trained against the student plus CTGAN's conditional cross-entropy.

λ is chosen so that the data-independent PATE bound for the planned votes spends
ε − ε_prep; ``epsilon_spent`` = ε_prep + that bound (a guarantee); the data-dependent
ε̂ is reported as ``epsilon_data_dependent``. SmartNoise's PATE-CTGAN uses one shared
discriminator object for "teachers" and student, so its teachers are not disjoint.
PATE-GAN's limitation (see ``pategan``) applies: with honest accounting the votes are
mostly noise at small ε.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .accounting import PateMomentsAccountant
from .data import Schema
from .dpctgan import DPCTGAN
from .pategan import lambda_for_budget


class PATECTGAN(DPCTGAN):
    """PATE-CTGAN synthesizer: ``fit(df, epsilon, delta)``, ``sample(n)``, ``epsilon_spent``."""

    def __init__(self, teachers: int = 10, iterations: int = 100, teacher_steps: int = 3, batch_size: int = 32,
                 lr: float = 2e-4, prep_share: float = 0.1, embedding_dim: int = 32, hidden: int = 64,
                 seed: int = 0):
        super().__init__(iterations=iterations, batch_size=batch_size, lr=lr, prep_share=prep_share,
                         embedding_dim=embedding_dim, hidden=hidden, seed=seed)
        if teachers < 2 or teacher_steps < 1:
            raise ValueError("need >= 2 teachers and teacher_steps >= 1")
        self.k, self.teacher_steps = teachers, teacher_steps

    def fit(self, df: pd.DataFrame, epsilon: float, delta: float = 1e-5, schema: Schema | None = None) -> PATECTGAN:
        from ctgan.synthesizers.ctgan import Discriminator, Generator

        data = self._prepare(df, epsilon, delta, schema)
        n, data_dim = data.shape
        if n < 2 * self.k:
            raise ValueError(f"{n} records cannot feed {self.k} teachers: use fewer teachers")
        tgen = torch.Generator().manual_seed(self.seed)
        rng = self._rng
        m = self.batch_size
        eps_pate = epsilon - self.epsilon_prep
        self.lam = lambda_for_budget(eps_pate, delta, self.iterations * m)
        self.accountant = PateMomentsAccountant(self.lam)

        real_all = torch.from_numpy(data)
        own_cat = [torch.from_numpy(data[:, a:b].argmax(1)) for a, b in self.spans]
        self.partitions = np.array_split(rng.permutation(n), self.k)  # disjoint D_1..D_k
        width = data_dim + self.cond_dim
        self.teachers = [Discriminator(width, (self.hidden, self.hidden), pac=1) for _ in range(self.k)]
        opt_t = [torch.optim.Adam(t.parameters(), lr=self.lr, betas=(0.5, 0.9)) for t in self.teachers]
        self.student = Discriminator(width, (self.hidden, self.hidden), pac=1)
        opt_s = torch.optim.Adam(self.student.parameters(), lr=self.lr, betas=(0.5, 0.9))
        self.generator = Generator(self.embedding_dim + self.cond_dim, (self.hidden, self.hidden), data_dim)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=(0.5, 0.9))

        for _ in range(self.iterations):
            for _ in range(self.teacher_steps):  # teacher i: its own partition's pairs (1) vs generated pairs (0)
                for teacher, opt, part in zip(self.teachers, opt_t, self.partitions):
                    idx = torch.from_numpy(part[rng.integers(0, len(part), min(m, len(part)))])
                    real = torch.cat([real_all[idx], self._cond_from_rows(idx, own_cat, tgen)], 1)
                    with torch.no_grad():
                        fake = self._generate(len(idx), tgen)
                    logits = teacher(torch.cat([real, fake])).squeeze(1)
                    labels = torch.cat([torch.ones(len(idx)), torch.zeros(len(idx))])
                    opt.zero_grad()
                    F.binary_cross_entropy_with_logits(logits, labels).backward()
                    opt.step()
            with torch.no_grad():  # student: generated pairs labelled by the noisy teacher vote
                u = self._generate(m, tgen)
                n1 = np.zeros(m)
                for t in self.teachers:
                    t.eval()
                    n1 += (t(u).squeeze(1) > 0).numpy()
                    t.train()
            votes = np.stack([self.k - n1, n1], axis=1)
            trial = PateMomentsAccountant(self.lam)
            trial.alpha, trial.queries = self.accountant.alpha.copy(), self.accountant.queries
            trial.add(votes)
            if trial.epsilon(delta) > eps_pate:  # Jordon et al.'s "while ε̂ < ε"
                break
            self.accountant = trial
            r = torch.from_numpy((votes + rng.laplace(scale=1 / self.lam, size=votes.shape)).argmax(1).astype(np.float32))
            opt_s.zero_grad()
            F.binary_cross_entropy_with_logits(self.student(u).squeeze(1), r).backward()
            opt_s.step()

            opt_g.zero_grad()  # generator: Σ log(1 − S(G(z, c))) + CTGAN's conditional cross-entropy
            cond, mask = self._sample_cond(m, tgen)
            raw = self.generator(torch.cat([torch.randn(m, self.embedding_dim, generator=tgen), cond], 1))
            fake = torch.cat([self._ct._apply_activate(raw), cond], 1)
            (-F.softplus(self.student(fake)).mean() + self._ct._cond_loss(raw, cond, mask)).backward()
            opt_g.step()

        self.epsilon_spent = self.epsilon_prep + self.accountant.epsilon_data_independent(delta)
        self.epsilon_data_dependent = self.epsilon_prep + self.accountant.epsilon(delta)
        self.delta = delta
        self._tgen = torch.Generator().manual_seed(self.seed + 1)
        return self
