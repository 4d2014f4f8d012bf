"""PATE-GAN (Jordon, Yoon & van der Schaar, ICLR 2019), Algorithm 1.

The discriminator is replaced by the PATE framework (Papernot et al. 2017):

* k *teacher* discriminators T_1..T_k, teacher i trained only on its own disjoint
  partition D_i of the records (real, label 1) against generated samples (label 0);
* a *student* discriminator S that never sees real data: it is trained on generated
  samples u labelled by the noisy teacher vote
      r(u) = argmax_j ( n_j(u) + Lap(1/λ) ),   n_j(u) = #{i : T_i(u) = j}      (Sec. 4, eq. 8)
* the generator G is trained against the student: minimise Σ log(1 − S(G(z))).

Observed limitation (documented, not hidden): the student sees only generated samples.
When the generator starts far from the data the teachers vote "fake" unanimously, the
student learns "everything is fake" and gives the generator no direction towards the
data; in our runs the generator then collapses to extreme values, even with nearly
noise-free votes (large λ) and with the non-saturating generator loss. This matches
the 2024 audit (Ganev et al., arXiv:2406.13985) that no public PATE-GAN reproduces
the paper's utility.

Privacy: only the noisy votes touch the data. Each vote is charged with the moments
accountant of Papernot et al. 2017 (``accounting.PateMomentsAccountant``) — with the
log in the data-dependent bound (SmartNoise's version misses it, smartnoise-sdk issue
596) and with Theorem 3's validity condition checked. The paper's loop runs while the
data-dependent ε̂ < ε; here λ is chosen so that the *data-independent* bound for the
planned number of votes equals ε, which makes ``epsilon_spent`` a valid guarantee
(the data-dependent ε̂, never larger, is reported as ``epsilon_data_dependent``; it
depends on the votes and is not itself private). The loop still stops early if ε̂
would exceed ε, as in the paper.

Teachers are distinct modules with distinct optimizers on disjoint index sets (a
known defect of SmartNoise's PATE-CTGAN is one shared discriminator object).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .accounting import PateMomentsAccountant
from .data import Schema, check_privacy_params, fit_preamble
from .nets import Generator, discriminator, sample_table


def lambda_for_budget(epsilon: float, delta: float, queries: int, max_order: int = 256) -> float:
    """Largest λ whose data-independent PATE bound over ``queries`` votes is ≤ ε (bisection)."""
    check_privacy_params(epsilon, delta)
    orders = np.arange(1, max_order + 1, dtype=float)

    def eps(lam: float) -> float:
        return float(np.min((queries * 2 * lam**2 * orders * (orders + 1) + math.log(1 / delta)) / orders))

    if eps(1e-12) > epsilon:
        raise ValueError(f"epsilon={epsilon} is below what δ={delta} alone costs with {max_order} moments: "
                         "raise epsilon or delta")
    lo, hi = 1e-12, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if eps(mid) <= epsilon else (lo, mid)
    return lo


class PATEGAN:
    """PATE-GAN synthesizer: ``fit(df, epsilon, delta)``, ``sample(n)``, ``epsilon_spent``."""

    uses_delta = True  # does fit() consume part of δ?

    def __init__(self, teachers: int = 10, iterations: int = 100, teacher_steps: int = 5, student_steps: int = 1,
                 batch_size: int = 64, lr: float = 1e-3, hidden: int = 64, lam: float | None = None, seed: int = 0):
        if min(teachers, iterations, teacher_steps, student_steps, batch_size) < 1 or teachers < 2:
            raise ValueError("need >= 2 teachers and every step count / batch size >= 1")
        self.k, self.iterations, self.teacher_steps, self.student_steps = teachers, iterations, teacher_steps, student_steps
        self.batch_size, self.lr, self.hidden, self.lam, self.seed = batch_size, lr, hidden, lam, seed
        self.epsilon_spent = 0.0

    def fit(self, df: pd.DataFrame, epsilon: float, delta: float = 1e-5, schema: Schema | None = None) -> PATEGAN:
        self.schema = fit_preamble(df, schema, epsilon, delta)
        torch.manual_seed(self.seed)
        tgen = torch.Generator().manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        x_real = torch.from_numpy(self.schema.to_unit(df))
        n, width = x_real.shape
        if n < 2 * self.k:
            raise ValueError(f"{n} records cannot feed {self.k} teachers: use fewer teachers")
        planned = self.iterations * self.student_steps * self.batch_size
        lam = self.lam if self.lam is not None else lambda_for_budget(epsilon, delta, planned)
        self.accountant = PateMomentsAccountant(lam)

        self.partitions = np.array_split(rng.permutation(n), self.k)  # disjoint D_1..D_k
        self.teachers = [discriminator(width, self.hidden) for _ in range(self.k)]
        opt_t = [torch.optim.Adam(t.parameters(), lr=self.lr) for t in self.teachers]
        self.student = discriminator(width, self.hidden)
        opt_s = torch.optim.Adam(self.student.parameters(), lr=self.lr)
        self.generator = Generator(self.schema, hidden=self.hidden)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.lr)
        m = self.batch_size

        for _ in range(self.iterations):
            for _ in range(self.teacher_steps):  # teachers: own partition (1) vs G(z) (0)
                for teacher, opt, part in zip(self.teachers, opt_t, self.partitions):
                    xb = x_real[part[rng.integers(0, len(part), min(m, len(part)))]]
                    with torch.no_grad():
                        fake = self.generator(self.generator.noise(len(xb), tgen))
                    logits = teacher(torch.cat([xb, fake])).squeeze(1)
                    labels = torch.cat([torch.ones(len(xb)), torch.zeros(len(xb))])
                    opt.zero_grad()
                    F.binary_cross_entropy_with_logits(logits, labels).backward()
                    opt.step()
            stop = False
            for _ in range(self.student_steps):  # student: G(z) labelled by noisy teacher votes
                with torch.no_grad():
                    u = self.generator(self.generator.noise(m, tgen))
                    n1 = torch.stack([(t(u).squeeze(1) > 0) for t in self.teachers]).sum(0).numpy()
                votes = np.stack([self.k - n1, n1], axis=1).astype(float)
                trial = PateMomentsAccountant(lam)
                trial.alpha, trial.queries = self.accountant.alpha.copy(), self.accountant.queries
                trial.add(votes)
                if trial.epsilon(delta) > epsilon:  # the paper's "while ε̂ < ε"
                    stop = True
                    break
                self.accountant = trial
                noisy = votes + rng.laplace(scale=1 / lam, size=votes.shape)
                r = torch.from_numpy(noisy.argmax(1).astype(np.float32))
                opt_s.zero_grad()
                F.binary_cross_entropy_with_logits(self.student(u).squeeze(1), r).backward()
                opt_s.step()
            if stop:
                break
            opt_g.zero_grad()  # generator: minimise Σ log(1 − S(G(z))) = Σ −softplus(logit)
            (-F.softplus(self.student(self.generator(self.generator.noise(m, tgen)))).mean()).backward()
            opt_g.step()

        self.lam = lam
        self.epsilon_spent = self.accountant.epsilon_data_independent(delta)
        self.epsilon_data_dependent = self.accountant.epsilon(delta)
        self.delta = delta
        self._tgen = torch.Generator().manual_seed(self.seed + 1)
        return self

    def sample(self, n: int) -> pd.DataFrame:
        if not hasattr(self, "generator"):
            raise RuntimeError("call fit(df, epsilon, delta) before sample(n)")
        return sample_table(self.generator, self.schema, n, self._tgen)
