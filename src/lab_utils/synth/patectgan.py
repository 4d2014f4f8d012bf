"""PATE-CTGAN: CTGAN's architecture with PATE-GAN's teachers and student (Rosenblatt et al. 2020, Sec. 3.1).

Everything that touches the data is DP:

* the ``ctgan`` transformer and the conditional-vector frequencies come from Laplace-noised
  per-column histograms, exactly as in ``dpctgan`` (ε_prep = prep_share · ε);
* k teacher discriminators — distinct ``ctgan`` ``Discriminator`` modules, stepped by one Adam
  over their disjoint parameters (``pate.teacher_optimizer``: k Adams in one call) — are each
  trained only on their own disjoint partition of the rows
  (real (x, cond) pairs, cond from the row's own category) against generated pairs;
* a student discriminator is trained on generated pairs labelled by the noisy teacher
  vote argmax_j (n_j + Lap(1/λ)) (Jordon et al. 2019, Algorithm 1), charged with the
  PATE moments accountant (``accounting.PateMomentsAccountant``, with the log);
* the generator is trained against the student plus CTGAN's conditional cross-entropy.

The planned votes (iterations × batch_size) and λ are fixed before training
(``accounting.pate_lambda``: the largest λ whose data-independent bound spends at most
ε − ε_prep, or a given ``lam`` checked against it); every planned vote is taken;
``epsilon_spent`` = ε_prep + that bound (a guarantee ≤ ε); the data-dependent ε̂ is
reported as ``epsilon_data_dependent`` for information and decides nothing. The teacher
round and the noisy vote are ``pate.teacher_round`` and ``pate.student_labels``, shared
with ``pategan``. SmartNoise's PATE-CTGAN uses one shared
discriminator object for "teachers" and student, so its teachers are not disjoint.
PATE-GAN's limitation (see ``pategan``) applies: with honest accounting the votes are
mostly noise at small ε.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .accounting import PateMomentsAccountant, pate_lambda, remainder
from .dpctgan import DPCTGAN
from .pate import student_labels, teacher_optimizer, teacher_round


class PATECTGAN(DPCTGAN):
    """PATE-CTGAN synthesizer: ``fit(df, epsilon, delta)``, ``sample(n)``, ``epsilon_spent``."""

    def __init__(self, teachers: int = 10, iterations: int = 100, teacher_steps: int = 3, batch_size: int = 32,
                 lr: float = 2e-4, prep_share: float = 0.1, embedding_dim: int = 32, hidden: int = 64,
                 lam: float | None = None, seed: int = 0):
        super().__init__(iterations=iterations, batch_size=batch_size, lr=lr, prep_share=prep_share,
                         embedding_dim=embedding_dim, hidden=hidden, seed=seed)
        if teachers < 2 or teacher_steps < 1:
            raise ValueError("need >= 2 teachers and teacher_steps >= 1")
        self.k, self.teacher_steps = teachers, teacher_steps
        self.lam = self._lam_request = lam  # fit() sets self.lam to the λ it used

    def _fit(self, df: pd.DataFrame, epsilon: float, delta: float) -> None:
        from ctgan.synthesizers.ctgan import Discriminator, Generator

        data = self._prepare(df, epsilon)
        n, data_dim = data.shape
        if n < 2 * self.k:
            raise ValueError(f"{n} records cannot feed {self.k} teachers: use fewer teachers")
        tgen = torch.Generator().manual_seed(self.seed)
        rng = self._rng
        m = self.batch_size
        eps_pate = remainder(epsilon, self.epsilon_prep)
        self.lam = pate_lambda(eps_pate, delta, self.iterations * m, self._lam_request)  # votes fixed up front
        self.accountant = PateMomentsAccountant(self.lam)

        real_all = torch.from_numpy(data)
        own_cat = self._row_categories(data)
        self.partitions = np.array_split(rng.permutation(n), self.k)  # disjoint D_1..D_k
        width = data_dim + self.cond_dim
        self.teachers = [Discriminator(width, (self.hidden, self.hidden), pac=1) for _ in range(self.k)]
        opt_t = teacher_optimizer(self.teachers, self.lr, (0.5, 0.9))
        self.student = Discriminator(width, (self.hidden, self.hidden), pac=1)
        opt_s = torch.optim.Adam(self.student.parameters(), lr=self.lr, betas=(0.5, 0.9))
        self.generator = Generator(self.embedding_dim + self.cond_dim, (self.hidden, self.hidden), data_dim)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=(0.5, 0.9))

        def real_of(idx: np.ndarray) -> torch.Tensor:  # a partition's rows with their own-category condition
            return torch.cat([real_all[idx], self._cond_from_rows(idx, own_cat, tgen)], 1)

        for _ in range(self.iterations):
            for _ in range(self.teacher_steps):  # teacher i: its own partition's pairs (1) vs generated pairs (0)
                teacher_round(self.teachers, opt_t, self.partitions, real_of, lambda k: self._generate(k, tgen), m, rng)
            with torch.no_grad():  # student: generated pairs labelled by the noisy teacher vote
                u = self._generate(m, tgen)
            r = student_labels(self.teachers, u, self.accountant, rng)
            opt_s.zero_grad()
            F.binary_cross_entropy_with_logits(self.student(u).squeeze(1), r).backward()
            opt_s.step()

            # generator: Σ log(1 − S(G(z, c))) = Σ −softplus(logit), + CTGAN's conditional cross-entropy
            self._generator_step(lambda s: -F.softplus(s), self.student, opt_g, m, tgen)

        self.epsilon_spent = self.epsilon_prep + self.accountant.epsilon_data_independent(delta)
        self.epsilon_data_dependent = self.epsilon_prep + self.accountant.epsilon(delta)
        self._tgen = torch.Generator().manual_seed(self.seed + 1)
