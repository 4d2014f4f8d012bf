"""The one PATE teacher loop (Papernot et al., ICLR 2017; PATE-GAN, Jordon et al. 2019, Algorithm 1).

Shared by ``pategan.PATEGAN`` and ``patectgan.PATECTGAN``:

* ``teacher_round`` — each teacher T_i takes one step on its own disjoint partition D_i
  (real, label 1) against generated samples (label 0)                 (Alg. 1, teacher update);
* ``student_labels`` — the teachers vote on generated samples u, the accountant is charged
  one query per sample, and the label is the noisy argmax
      r(u) = argmax_j ( n_j(u) + Lap(1/λ) ),   n_j(u) = #{i : T_i(u) = j}     (Sec. 4, eq. 8).

``noisy_counts`` is the only place Laplace noise touches a vote; the audit helpers
(``audit``) hook it by name to count the votes actually answered and to measure the
noise scale, so keep the call going through this module's global.

Sensitivity: a record belongs to exactly one teacher's partition, so changing it can move
at most that teacher's vote from one class to the other: n_j − 1 and n_{j'} + 1. The
noisy argmax over counts with Lap(1/λ) noise is then (2λ, 0)-DP per vote (Papernot et al.
2017, Thm 2), whose log-moment is at most 2λ²l(l+1). Here partitions are a seeded
permutation of row *positions*, so the "one teacher changes" argument holds for the
substitution of one record with n public (adding a record would shift the split).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .accounting import PateMomentsAccountant


def teacher_round(teachers: list[nn.Module], optimizers: list[torch.optim.Optimizer], partitions: list[np.ndarray],
                  real_of: Callable[[np.ndarray], torch.Tensor], fake_of: Callable[[int], torch.Tensor],
                  batch_size: int, rng: np.random.Generator) -> None:
    """Alg. 1, teacher update: teacher i minimises BCE on rows of its own partition D_i (1) vs generated rows (0)."""
    for teacher, opt, part in zip(teachers, optimizers, partitions):
        idx = part[rng.integers(0, len(part), min(batch_size, len(part)))]  # only D_i's rows reach T_i
        real = real_of(idx)
        with torch.no_grad():
            fake = fake_of(len(idx))
        logits = teacher(torch.cat([real, fake])).squeeze(1)
        labels = torch.cat([torch.ones(len(idx)), torch.zeros(len(idx))])
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(logits, labels).backward()
        opt.step()


def teacher_votes(teachers: list[nn.Module], u: torch.Tensor) -> np.ndarray:
    """n_j(u) for j ∈ {fake, real}: shape (len(u), 2), each row sums to the number of teachers."""
    n1 = np.zeros(len(u))
    with torch.no_grad():
        for t in teachers:
            t.eval()
            n1 += (t(u).squeeze(1) > 0).numpy()
            t.train()
    return np.stack([len(teachers) - n1, n1], axis=1)


def noisy_counts(votes: np.ndarray, lam: float, rng: np.random.Generator) -> np.ndarray:
    """n_j(u) + Lap(1/λ), one independent draw per count (Papernot et al. 2017, eq. 1)."""
    return votes + rng.laplace(scale=1 / lam, size=votes.shape)


def student_labels(teachers: list[nn.Module], u: torch.Tensor, accountant: PateMomentsAccountant,
                   rng: np.random.Generator) -> torch.Tensor:
    """Alg. 1, student labels: charge one query per sample of ``u``, answer argmax_j (n_j(u) + Lap(1/λ))."""
    votes = teacher_votes(teachers, u)
    accountant.add(votes)  # charged before the answer is released
    return torch.from_numpy(noisy_counts(votes, accountant.lam, rng).argmax(1).astype(np.float32))
