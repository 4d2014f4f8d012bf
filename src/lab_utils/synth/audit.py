"""Checks of the privacy mechanisms themselves, and an empirical privacy audit of DP-SGD.

Recomputing ε from the same arguments the code used checks nothing. What can fail is the
*mechanism*: did each record's gradient really get clipped, did the noise have the scale
the accountant assumed, were as many noisy steps or votes taken as were charged? Those are
measured here by hooking the one place each mechanism lives (``dpsgd.clip_per_example``,
``dpsgd.add_noise``, ``pate.noisy_counts``) while a synthesizer trains:

* ``recording(module, name, summarise)`` — wrap a module function, record every call (or a summary);
* ``record_norm`` — the largest clipped per-record gradient norm a call actually produced;
* ``swayable_votes`` — how many noisy votes the teachers' counts could still decide (the rest the noise fixed);
* ``gaussian_noise_std`` / ``laplace_noise_scale`` — the scale of the noise actually added
  (output − input), with a (1 − α) interval (χ² for the Gaussian, Gamma for |Laplace|);
* ``check_dpsgd_fit`` / ``check_pate_fit`` — all of it around one ``fit``, next to what was charged.

The empirical audit (Jagielski, Ullman & Oprea, NeurIPS 2020, Sec. 3; Nasr et al., IEEE S&P
2021, Sec. 4) trains DP-SGD many times on neighbouring data sets D and D ∪ {canary} and turns
the best distinguishing test into a statistical *lower* bound on ε:

    for a threshold t, FPR = Pr[score ≥ t | D], FNR = Pr[score < t | D ∪ {canary}];
    (ε, δ)-DP implies FPR + e^ε FNR ≥ 1 − δ and FNR + e^ε FPR ≥ 1 − δ, so
    ε_lb = max_t max{ log((1 − δ − FPR⁺)/FNR⁺),  log((1 − δ − FNR⁺)/FPR⁺) }

with FPR⁺, FNR⁺ the Clopper–Pearson upper confidence limits. The canary is a gradient
canary (Nasr et al. 2021): a record whose feature lives in a coordinate no other record
uses, so its clipped gradient is a fixed vector of norm C and the weight on that coordinate
carries only the canary's contributions and the noise; the score is the canary's logit
(its loss is a decreasing function of it). Two broken controls run through the same step
with one piece swapped: no per-record clipping, and noise added to the mean instead of the
sum (σC/L instead of σC, a classic bug). A sound audit must bound the correct mechanism
below its claimed ε and catch both broken ones above it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from . import dpsgd
from .accounting import gaussian_epsilon, gaussian_noise_multiplier, pate_swayable


@dataclass
class Call:
    args: tuple
    kwargs: dict
    result: object


@contextlib.contextmanager
def recording(module, name: str, summarise: Callable[[Call], object] | None = None) -> Iterator[list]:
    """Within the block, every call of ``module.name`` is recorded; restored on exit.

    ``summarise(call)`` keeps a small summary per call instead of its inputs and output (long runs
    would otherwise hold every gradient in memory).
    """
    original = getattr(module, name)
    calls: list = []

    def wrapper(*args, **kwargs):
        out = original(*args, **kwargs)
        call = Call(args, kwargs, out)
        calls.append(summarise(call) if summarise else call)
        return out

    setattr(module, name, wrapper)
    try:
        yield calls
    finally:
        setattr(module, name, original)


@contextlib.contextmanager
def replaced(module, name: str, fn: Callable) -> Iterator[None]:
    """Within the block ``module.name`` is ``fn`` (used to plant a broken mechanism); restored on exit."""
    original = getattr(module, name)
    setattr(module, name, fn)
    try:
        yield
    finally:
        setattr(module, name, original)


def record_norm(call: Call) -> float:
    """Summary of a ``dpsgd.clip_per_example`` call: the largest L2 norm of one record's clipped gradient."""
    return float(torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in call.result.values())).max())


def gaussian_moments(call: Call) -> tuple[float, int]:
    """Summary of a ``dpsgd.add_noise`` call: (Σ z², number of draws) of the noise z = output − input."""
    z = torch.cat([(call.result[k] - v).detach().double().flatten() for k, v in call.args[0].items()])
    return float(z.pow(2).sum()), z.numel()


def laplace_moments(call: Call) -> tuple[float, int]:
    """Summary of a ``pate.noisy_counts`` call: (Σ |z|, number of draws) of the noise z = output − votes."""
    z = np.ravel(call.result - call.args[0])
    return float(np.abs(z).sum()), z.size


def swayable_votes(call: Call) -> int:
    """Summary of a ``pate.noisy_counts`` call: how many answers the teachers' counts could still decide.

    With two classes and k teachers, argmax_j (n_j + z_j) can go either way by the counts iff |z_1 − z_0| < k
    (compare ``accounting.pate_swayable``); otherwise the noise alone fixed it, whatever the teachers voted.
    """
    votes = np.asarray(call.args[0])
    z = call.result - votes
    return int((np.abs(z[:, 1] - z[:, 0]) < votes.sum(1)).sum())


def gaussian_noise_std(moments: list[tuple[float, int]], alpha: float = 0.001) -> tuple[float, float, float]:
    """Measured noise std from ``gaussian_moments`` summaries, with a (1 − α) χ² interval (mean 0 known)."""
    ss, n = sum(m[0] for m in moments), sum(m[1] for m in moments)
    if n < 2:
        raise ValueError("need recorded add_noise calls with at least 2 noise draws")
    return (math.sqrt(ss / n), math.sqrt(ss / stats.chi2.ppf(1 - alpha / 2, n)),
            math.sqrt(ss / stats.chi2.ppf(alpha / 2, n)))


def laplace_noise_scale(moments: list[tuple[float, int]], alpha: float = 0.001) -> tuple[float, float, float]:
    """Measured Laplace scale b from ``laplace_moments`` summaries (|Lap(b)| ~ Exp(b), Σ|z| ~ Gamma(n, b))."""
    s, n = sum(m[0] for m in moments), sum(m[1] for m in moments)
    if n < 2:
        raise ValueError("need recorded noisy_counts calls with at least 2 noise draws")
    return s / n, s / stats.gamma.ppf(1 - alpha / 2, n), s / stats.gamma.ppf(alpha / 2, n)


def check_dpsgd_fit(fit: Callable[[], object], accountant_module) -> tuple[object, dict[str, float]]:
    """Run ``fit()`` while recording the DP-SGD step and the accountant call in ``accountant_module``.

    Returns ``fit()``'s result and a report of what was *measured* (largest clipped record norm, noise std with its 99.9% interval, number of
    noisy steps) next to what was *charged* (σ·C and steps of the recorded ``gaussian_epsilon`` call).
    """
    with recording(dpsgd, "clip_per_example", lambda c: (record_norm(c), c.args[1])) as norms, \
            recording(dpsgd, "add_noise", gaussian_moments) as noises, \
            recording(accountant_module, "gaussian_epsilon") as charged:
        result = fit()
    if len(charged) != 1:
        raise RuntimeError(f"expected one gaussian_epsilon call in {accountant_module.__name__}, got {len(charged)}")
    if not norms:
        raise RuntimeError("no clipped batch was recorded: the fit never reached the DP-SGD step")
    sigma, _, steps, _ = charged[0].args
    clip = norms[0][1]
    std, lo, hi = gaussian_noise_std(noises)
    return result, {"clip": clip, "max_record_norm": max(n for n, _ in norms), "charged_noise_std": sigma * clip,
                    "noise_std": std, "noise_std_lo": lo, "noise_std_hi": hi, "noisy_steps": len(noises),
                    "charged_steps": steps}


def check_pate_fit(fit: Callable[[], object]) -> tuple[object, dict[str, float]]:
    """Run ``fit()`` recording ``pate.noisy_counts``; returns its result, the votes answered, how many of them the
    teachers could still decide (``swayable_votes``) and the measured Laplace scale."""
    from . import pate

    with recording(pate, "noisy_counts",
                   lambda c: (*laplace_moments(c), len(c.args[0]), swayable_votes(c))) as votes:
        result = fit()
    b, lo, hi = laplace_noise_scale(votes)
    return result, {"votes_answered": sum(v[2] for v in votes), "votes_swayable": sum(v[3] for v in votes),
                    "laplace_scale": b, "laplace_scale_lo": lo, "laplace_scale_hi": hi}


def swayable_summary(check: dict, teachers: int, lam: float) -> dict[str, float]:
    """``check_pate_fit``'s swayable count beside the closed form ``accounting.pate_swayable``: the measured and the
    expected fraction of answers the teachers could decide, and the measured fraction's binomial sd."""
    n, p = check["votes_answered"], pate_swayable(teachers, lam)
    return {"measured": check["votes_swayable"] / n, "expected": p, "sd": math.sqrt(p * (1 - p) / n)}


# ---- the empirical audit ------------------------------------------------------------------------
def clopper_pearson_upper(k: np.ndarray, n: int, alpha: float = 0.05) -> np.ndarray:
    """Upper end of the two-sided (1 − α) Clopper–Pearson interval for k successes in n trials."""
    k = np.asarray(k, dtype=float)
    return np.where(k >= n, 1.0, stats.beta.ppf(1 - alpha / 2, k + 1, np.maximum(n - k, 1)))


def epsilon_lower_bound(scores_in: np.ndarray, scores_out: np.ndarray, delta: float,
                        alpha: float = 0.05) -> dict[str, float]:
    """Jagielski et al. 2020's ε lower bound from the best threshold test "canary in iff score ≥ t".

    The threshold is chosen on the same runs (as in the paper), which favours the audit a little;
    the Clopper–Pearson limits are per threshold.
    """
    s_in, s_out = np.sort(np.asarray(scores_in, float)), np.sort(np.asarray(scores_out, float))
    if min(len(s_in), len(s_out)) < 1:
        raise ValueError("need scores from runs with and without the canary")
    t = np.unique(np.concatenate([s_in, s_out, [np.inf]]))
    fn = np.searchsorted(s_in, t, side="left")                  # in-runs scoring below t
    fp = len(s_out) - np.searchsorted(s_out, t, side="left")    # out-runs scoring at least t
    fpr_u, fnr_u = clopper_pearson_upper(fp, len(s_out), alpha), clopper_pearson_upper(fn, len(s_in), alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = np.log(np.clip(1 - delta - fpr_u, 0, None) / fnr_u)
        e2 = np.log(np.clip(1 - delta - fnr_u, 0, None) / fpr_u)
    e = np.nan_to_num(np.maximum(e1, e2), nan=-np.inf)
    i = int(np.argmax(e))
    return {"epsilon_lb": max(0.0, float(e[i])), "threshold": float(t[i]),
            "fpr": fp[i] / len(s_out), "fnr": fn[i] / len(s_in)}


def canary_dpsgd_scores(runs: int, with_canary: bool, noise_multiplier: float, *, n: int = 50, dim: int = 5,
                        steps: int = 10, sample_rate: float = 1.0, clip: float = 1.0, lr: float = 0.01,
                        canary_norm: float = 100.0, seed: int = 0) -> np.ndarray:
    """Train DP-SGD logistic regression ``runs`` times on D (or D ∪ {canary}); return the canary's final logit.

    D: n records, features N(0, 1) in the first dim − 1 coordinates and 0 in the last, random labels
    (the same D in every run). The canary is ``canary_norm``·e_last with label 1. Every step is
    ``dpsgd.private_gradient`` with normaliser q·n (n of D: public, the same in both worlds).
    """
    data_rng = np.random.default_rng(seed)
    x = np.zeros((n, dim))
    x[:, : dim - 1] = data_rng.normal(size=(n, dim - 1))
    y = data_rng.integers(0, 2, n).astype(float)
    canary = np.zeros(dim)
    canary[-1] = canary_norm
    if with_canary:
        x, y = np.vstack([x, canary]), np.append(y, 1.0)
    x_t, y_t, c_t = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(canary)
    gen = torch.Generator().manual_seed(seed * 2 + int(with_canary))
    scores = np.empty(runs)
    for r in range(runs):
        w = torch.zeros(dim, dtype=torch.float64)
        for _ in range(steps):
            idx = torch.nonzero(torch.rand(len(x_t), generator=gen) < sample_rate).flatten()
            xb = x_t[idx]
            per_example = {"w": (torch.sigmoid(xb @ w) - y_t[idx])[:, None] * xb} if len(idx) else None
            w = w - lr * dpsgd.private_gradient(per_example, {"w": w}, clip, noise_multiplier, sample_rate * n,
                                                gen)["w"]
        scores[r] = float(w @ c_t)
    return scores


def _no_clipping(per_example: dict, clip: float) -> dict:
    return per_example


def audit_dpsgd(epsilon: float, delta: float, runs: int, *, mechanism: str = "correct", steps: int = 10,
                sample_rate: float = 1.0, n: int = 50, alpha: float = 0.05, seed: int = 0) -> dict:
    """Empirical (ε, δ) lower bound of the project's DP-SGD step, calibrated by the accountant to claim ``epsilon``.

    ``mechanism``: ``"correct"``; ``"no_clipping"`` (clip_per_example is the identity); ``"noise_on_mean"``
    (add_noise gets σC/L instead of σC). Returns the claim, the bound, and both worlds' scores.
    """
    if mechanism not in ("correct", "no_clipping", "noise_on_mean"):
        raise ValueError(f"mechanism must be 'correct', 'no_clipping' or 'noise_on_mean', got {mechanism!r}")
    if runs < 10:
        raise ValueError(f"an audit needs many runs per world (hundreds); got runs={runs}")
    sigma = gaussian_noise_multiplier(epsilon, delta, sample_rate, steps)
    claimed = gaussian_epsilon(sigma, sample_rate, steps, delta)
    add = dpsgd.add_noise
    broken = {"correct": contextlib.nullcontext(),
              "no_clipping": replaced(dpsgd, "clip_per_example", _no_clipping),
              "noise_on_mean": replaced(dpsgd, "add_noise",
                                        lambda s, std, gen: add(s, std / (sample_rate * n), gen))}[mechanism]
    kw = dict(n=n, steps=steps, sample_rate=sample_rate, seed=seed)
    with broken:
        s_in = canary_dpsgd_scores(runs, True, sigma, **kw)
        s_out = canary_dpsgd_scores(runs, False, sigma, **kw)
    return {"mechanism": mechanism, "claimed_epsilon": claimed, "noise_multiplier": sigma, "runs": runs,
            **epsilon_lower_bound(s_in, s_out, delta, alpha), "scores_in": s_in, "scores_out": s_out}
