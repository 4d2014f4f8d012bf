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

``teacher="logistic"`` takes the teachers of the authors' own 2020 code (mlforhealthlabpub
``alg/pategan/pate_gan.py``, one of the six the audit benchmarks): logistic regressions refit
every iteration (``pate.logistic_teachers``). A linear teacher cannot memorise its partition,
so its vote keeps a direction while the generator is off. Where the budget buys votes worth
having (``benchmarks/pategan_teachers.py``: 250 teachers on Default's 7,000 rows, ε = 10) it
is the version that learns more often — in some seeds, not all (numbers in ``benchmarks/README.md``);
the MLP teachers in fewer. The mechanism, the votes and the accounting are the same. With votes almost free of
noise (ε = 10⁴) neither kind learns there reliably, while the same networks trained as a plain GAN do: at 28
rows per teacher it is PATE's structure, not the noise, that fails (``benchmarks/pategan_teachers.py``).

Privacy: only the noisy votes touch the data (``pate.student_labels``). The number of
votes, V = iterations × student_steps × batch_size, is fixed before training and λ is
fixed with it (``accounting.pate_lambda``): by default the largest λ whose
*data-independent* bound for V votes is ≤ ε; a ``lam`` passed by the caller is checked
against that bound and refused, with what would fit, if V votes at that λ cost more than ε.
Every planned vote is then taken and ``epsilon_spent`` is that bound — a guarantee that
never exceeds ε. This departs from the paper's loop, which runs "while ε̂ < ε" on the
data-dependent ε̂: ε̂ depends on the votes and is not itself private, so stopping on it
leaks, and a stopping rule on one bound with a report of another can both overspend and
release a generator that saw no vote. ε̂ (with the log in the data-dependent bound that
SmartNoise's version omits, smartnoise-sdk issue 596, and Theorem 3's validity condition
checked) is still computed and reported as ``epsilon_data_dependent``, for information.

Teachers are distinct modules with distinct optimizers on disjoint index sets (a
known defect of SmartNoise's PATE-CTGAN is one shared discriminator object).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .accounting import PateMomentsAccountant, lambda_for_budget, pate_lambda
from .base import Synthesizer
from .nets import Generator, discriminator, sample_table
from .pate import logistic_teachers, student_labels, teacher_optimizer, teacher_round

__all__ = ["PATEGAN", "lambda_for_budget"]


class PATEGAN(Synthesizer):
    """PATE-GAN synthesizer: ``fit(df, epsilon, delta)``, ``sample(n)``, ``epsilon_spent``.

    ``lam=None`` picks λ from the budget; a given ``lam`` must pay for all
    iterations × student_steps × batch_size votes within ε, else ``fit`` raises.
    ``teacher="mlp"`` trains MLP teachers ``teacher_steps`` Adam steps per iteration (the paper);
    ``teacher="logistic"`` refits logistic-regression teachers once per iteration (the authors' 2020
    code; ``teacher_steps`` unused) — the version that learns, in some seeds, where the budget buys enough teachers.
    ``average=β`` samples from an exponential moving average of the generator's weights (β = 0.98: about the
    last 50 steps), which damps the GAN's oscillation; ``None`` samples from the last iterate.
    ``betas`` are Adam's (β1, β2) for generator, student and MLP teachers: (0.5, 0.9), the GAN setting (Radford et
    al. 2016, Sec. 4: β1 = 0.9 made training oscillate; CTGAN's, so DP-CTGAN's and PATE-CTGAN's here). With Adam's
    default (0.9, 0.999) this generator, trained as a plain GAN without privacy, ends near the uniform table's 1-way
    TVD on Default (``benchmarks/pategan_teachers.py --plain-gan``; numbers in ``benchmarks/README.md``).
    """

    def __init__(self, teachers: int = 10, iterations: int = 100, teacher_steps: int = 5, student_steps: int = 1,
                 batch_size: int = 64, lr: float = 1e-3, hidden: int = 64, lam: float | None = None,
                 teacher: str = "mlp", average: float | None = None, betas: tuple[float, float] = (0.5, 0.9),
                 seed: int = 0):
        if min(teachers, iterations, teacher_steps, student_steps, batch_size) < 1 or teachers < 2:
            raise ValueError("need >= 2 teachers and every step count / batch size >= 1")
        if teacher not in ("mlp", "logistic"):
            raise ValueError(f"teacher must be 'mlp' (the paper's) or 'logistic' (the authors' 2020 code's), "
                             f"got {teacher!r}")
        if average is not None and not 0 < average < 1:
            raise ValueError(f"average is the generator's EMA decay β, in (0, 1), or None; got {average!r}")
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"betas are Adam's (β1, β2), each in [0, 1); got {betas!r}")
        self.k, self.iterations, self.teacher_steps, self.student_steps = teachers, iterations, teacher_steps, student_steps
        self.teacher, self.average, self.betas = teacher, average, betas
        self.batch_size, self.lr, self.hidden, self.seed = batch_size, lr, hidden, seed
        self.lam = self._lam_request = lam  # fit() sets self.lam to the λ it used
        self.epsilon_spent = 0.0

    def _fit(self, df: pd.DataFrame, epsilon: float, delta: float) -> None:
        torch.manual_seed(self.seed)
        tgen = torch.Generator().manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        x_real = torch.from_numpy(self.schema.to_unit(df))
        n, width = x_real.shape
        if n < 2 * self.k:
            raise ValueError(f"{n} records cannot feed {self.k} teachers: use fewer teachers")
        votes = self.iterations * self.student_steps * self.batch_size  # fixed before any data is touched
        lam = pate_lambda(epsilon, delta, votes, self._lam_request)
        self.accountant = PateMomentsAccountant(lam)

        self.partitions = np.array_split(rng.permutation(n), self.k)  # disjoint D_1..D_k
        if self.teacher == "mlp":  # logistic teachers are refit from scratch each iteration: nothing to build
            self.teachers = [discriminator(width, self.hidden) for _ in range(self.k)]
            opt_t = teacher_optimizer(self.teachers, self.lr, self.betas)
        self.student = discriminator(width, self.hidden)
        opt_s = torch.optim.Adam(self.student.parameters(), lr=self.lr, betas=self.betas)
        self.generator = Generator(self.schema, hidden=self.hidden)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=self.betas)
        averaged = None if self.average is None else AveragedModel(
            self.generator, multi_avg_fn=get_ema_multi_avg_fn(self.average), use_buffers=True)
        m = self.batch_size

        def fake_of(count: int) -> torch.Tensor:
            return self.generator(self.generator.noise(count, tgen))

        def real_of(idx: np.ndarray) -> torch.Tensor:
            return x_real[idx]

        for _ in range(self.iterations):
            if self.teacher == "logistic":  # Alg. 1, teacher update, as the authors' 2020 code: refit each T_i
                self.teachers = logistic_teachers(self.partitions, real_of, fake_of)
            else:
                for _ in range(self.teacher_steps):  # Alg. 1, teacher update: own partition (1) vs G(z) (0)
                    teacher_round(self.teachers, opt_t, self.partitions, real_of, fake_of, m, rng)
            for _ in range(self.student_steps):  # Alg. 1, student update: G(z) labelled by noisy teacher votes
                with torch.no_grad():
                    u = fake_of(m)
                r = student_labels(self.teachers, u, self.accountant, rng)
                opt_s.zero_grad()
                F.binary_cross_entropy_with_logits(self.student(u).squeeze(1), r).backward()
                opt_s.step()
            opt_g.zero_grad()  # Alg. 1, generator update: Σ log(1 − S(G(z))) = Σ −softplus(logit)
            (-F.softplus(self.student(fake_of(m))).mean()).backward()
            opt_g.step()
            if averaged is not None:  # θ̄ ← β θ̄ + (1 − β) θ: post-processing of G, no vote, no ε
                averaged.update_parameters(self.generator)

        if averaged is not None:  # sample from the averaged generator (Yazıcı et al., ICLR 2019)
            self.generator = averaged.module
        self.lam = lam
        self.epsilon_spent = self.accountant.epsilon_data_independent(delta)
        self.epsilon_data_dependent = self.accountant.epsilon(delta)
        self._tgen = torch.Generator().manual_seed(self.seed + 1)

    def _sample(self, n: int) -> pd.DataFrame:
        return sample_table(self.generator, self.schema, n, self._tgen)
