"""The one PATE teacher loop (Papernot et al., ICLR 2017; PATE-GAN, Jordon et al. 2019, Algorithm 1).

Shared by ``pategan.PATEGAN`` and ``patectgan.PATECTGAN``:

* ``teacher_round`` — each teacher T_i takes one step on its own disjoint partition D_i
  (real, label 1) against generated samples (label 0)                 (Alg. 1, teacher update),
  stepped by ``teacher_optimizer``, one Adam over the k teachers' disjoint parameters;
* ``logistic_teachers`` — the same update with the teachers of the authors' 2020 code
  (mlforhealthlabpub ``alg/pategan/pate_gan.py``): T_i is a logistic regression refit from
  scratch each iteration on all of D_i against as many fresh generated rows;
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


def teacher_optimizer(teachers: list[nn.Module], lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """One Adam over all k teachers' parameters, equal to k separate ones: Adam's update is per element,
    θ ← θ − α·m̂/(√v̂ + ϵ) with m, v the running moments of that element's own gradient (Kingma & Ba 2015, Alg. 1),
    and every teacher steps in every round, so the step counts agree. The teachers' parameter sets are disjoint,
    so T_i's update still reads only ∂L_i/∂θ_i; the k updates run as one foreach call instead of k (tested
    against k separate Adams)."""
    return torch.optim.Adam([p for t in teachers for p in t.parameters()], lr=lr, betas=betas, foreach=True)


def teacher_round(teachers: list[nn.Module], optimizer: torch.optim.Optimizer, partitions: list[np.ndarray],
                  real_of: Callable[[np.ndarray], torch.Tensor], fake_of: Callable[[int], torch.Tensor],
                  batch_size: int, rng: np.random.Generator) -> None:
    """Alg. 1, teacher update: teacher i takes one step on L_i, BCE on rows of its own partition D_i (label 1)
    vs generated rows (label 0).

    All k teachers' generated rows come from one generator call, and one backward pass runs through Σ_j L_j:
    ∂(Σ_j L_j)/∂θ_i = ∂L_i/∂θ_i, since L_j (j ≠ i) reads neither θ_i nor a row of D_i (the generated rows carry
    no graph) — the gradients of k separate passes, at a fraction of the per-call overhead.
    """
    idx = [part[rng.integers(0, len(part), min(batch_size, len(part)))] for part in partitions]
    sizes = [len(i) for i in idx]
    reals = real_of(np.concatenate(idx)).split(sizes)  # reals[i]: D_i's rows only, for T_i only
    with torch.no_grad():
        fakes = fake_of(sum(sizes)).split(sizes)
    loss = torch.zeros(())
    for teacher, real, fake in zip(teachers, reals, fakes):
        logits = teacher(torch.cat([real, fake])).squeeze(1)
        labels = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))])
        loss = loss + F.binary_cross_entropy_with_logits(logits, labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def logistic_teachers(partitions: list[np.ndarray], real_of: Callable[[np.ndarray], torch.Tensor],
                      fake_of: Callable[[int], torch.Tensor], c: float = 1.0) -> list[nn.Linear]:
    """Alg. 1, teacher update with linear teachers: T_i(u) = 1[w_i·u + b_i > 0], refit from scratch on all of D_i
    (label 1) against as many fresh generated rows (label 0) — the authors' 2020 code's teachers, scikit-learn's
    L2 logistic regression at its default c = 1 (``fit_logistic`` solves the same objective, all teachers at once).

    A linear teacher cannot memorise its partition's rows, so while G is off it still votes "real" on the
    generated rows on the data's side of its hyperplane: the votes keep a direction after an MLP teacher would
    vote "fake" on everything. Returned as ``nn.Linear`` modules for ``teacher_votes``.
    """
    sizes = [len(p) for p in partitions]
    width, rows = max(sizes), []
    for part in partitions:
        real = real_of(part)  # only D_i's rows reach T_i
        with torch.no_grad():
            fake = fake_of(len(part))
        pad = torch.zeros(2 * (width - len(part)), real.shape[1])
        rows.append(torch.cat([real, fake, pad]).double())
    y = torch.stack([torch.cat([torch.ones(m), torch.zeros(m), torch.zeros(2 * (width - m))]) for m in sizes])
    mask = torch.stack([torch.cat([torch.ones(2 * m), torch.zeros(2 * (width - m))]) for m in sizes])
    w, b = fit_logistic(torch.stack(rows), y.double(), mask.double(), c)
    teachers = []
    for wi, bi in zip(w, b):
        t = nn.Linear(len(wi), 1)
        with torch.no_grad():
            t.weight.copy_(wi[None].float())
            t.bias.copy_(bi[None].float())
        teachers.append(t)
    return teachers


def fit_logistic(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, c: float = 1.0,
                 steps: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """B independent L2 logistic regressions (x: B×N×D, y and mask: B×N), by Newton's method; returns w (B×D), b (B).

        minimise_{w,b}  Σ_n mask_n [log(1 + e^{s_n}) − y_n s_n] + ||w||² / (2c),   s_n = w·x_n + b

    — scikit-learn's ``LogisticRegression(C=c)`` objective (intercept not penalised). Newton step:
    θ ← θ − H⁻¹∇, ∇ = Xᵀ(mask·(σ(s) − y)) + Rθ, H = Xᵀ diag(mask·σ(s)(1 − σ(s))) X + R, R = diag(1/c, …, 1/c, 0),
    halved until the objective does not rise (the objective is convex, so the damped iteration converges).
    """
    xa = torch.cat([x, torch.ones(*x.shape[:2], 1, dtype=x.dtype)], 2)
    reg = torch.full((xa.shape[2],), 1.0 / c, dtype=x.dtype)
    reg[-1] = 0.0

    def objective(theta: torch.Tensor) -> torch.Tensor:
        s = (xa @ theta[..., None]).squeeze(-1)
        return (mask * (F.softplus(s) - y * s)).sum(1) + 0.5 * (reg * theta**2).sum(1)

    theta = torch.zeros(x.shape[0], xa.shape[2], dtype=x.dtype)
    for _ in range(steps):
        p = torch.sigmoid((xa @ theta[..., None]).squeeze(-1))
        grad = (xa * (mask * (p - y))[..., None]).sum(1) + reg * theta
        if grad.abs().max() < 1e-9:  # every problem at its optimum
            break
        hess = xa.transpose(1, 2) @ (xa * (mask * p * (1 - p))[..., None]) + torch.diag(reg + 1e-10)
        step = torch.linalg.solve(hess, grad[..., None]).squeeze(-1)
        t, before = torch.ones(len(theta), 1, dtype=x.dtype), objective(theta)
        for _ in range(20):  # per-problem backtracking: halve t where the objective would rise
            worse = objective(theta - t * step) > before + 1e-12
            if not worse.any():
                break
            t = torch.where(worse[:, None], t / 2, t)
        theta = theta - t * step
    return theta[:, :-1], theta[:, -1]


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
