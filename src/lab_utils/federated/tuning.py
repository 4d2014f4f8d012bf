"""Federated tuning: black-box optimisation of the on-device parameters, each candidate scored by federated
evaluation (Paulik et al. 2021, the tuning use cases), with Optuna as the optimiser.

FE&T's tuning loop, one *iteration* per scheduling window:

    1. the optimiser proposes k candidate parameter vectors θ_1..θ_k (the first iteration holds the production
       defaults, so the run can only report a gain over them if one is measured);
    2. the k candidates travel in one evaluation task; every device of the window's cohort scores all of them;
    3. the window's DP release gives μ̂(θ_j) for each j, the noisy mean prediction loss, told to the optimiser;
    4. after R iterations, the chosen parameters are the candidate with the lowest μ̂ (post-processing of the
       releases: it costs no privacy).

The optimiser is Optuna's: TPE (Bergstra et al. 2011) or Gaussian-process Bayesian optimisation (``gp``),
against random search through the same loop at the same number of iterations. The paper's exact optimiser
is not reproduced here (it is not a maintained library); what is reproduced is its loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import optuna

from .personalization import TAPPED, EvaluationTask, Label, Param, defaults
from .server import FederatedServer

SAMPLERS = ("tpe", "gp", "random")


def make_sampler(name: str, seed: int, startup: int) -> optuna.samplers.BaseSampler:
    """Optuna's TPE (multivariate, constant liar for the batch), GP-BO or random search."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True, n_startup_trials=startup)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"sampler {name!r} is not one of {SAMPLERS}")


def distributions(space: tuple[Param, ...]) -> dict[str, optuna.distributions.FloatDistribution]:
    return {p.name: optuna.distributions.FloatDistribution(p.low, p.high, log=p.log) for p in space}


@dataclass(frozen=True)
class TuningRun:
    """What a run chose and saw: per trial (iteration, params, noisy μ̂); the ε it spent."""

    sampler: str
    best_params: dict[str, float]
    best_estimate: float
    history: list[tuple[int, dict[str, float], float]]
    epsilon_spent: float
    iterations: int

    def best_so_far(self) -> list[float]:
        """Lowest noisy μ̂ seen up to each iteration (the curve the optimiser itself sees)."""
        out, best = [], math.inf
        for it in range(self.iterations):
            vals = [v for i, _, v in self.history if i == it and math.isfinite(v)]
            best = min([best, *vals])
            out.append(best)
        return out


def federated_tune(server: FederatedServer, space: tuple[Param, ...], *, label: Label = TAPPED,
                   iterations: int, candidates: int, sampler: str = "tpe", seed: int = 0) -> TuningRun:
    """Run FE&T's tuning loop (module docstring, steps 1-4) for ``iterations`` windows of ``candidates`` tasks."""
    if iterations > server.budget.releases - server.budget.used:
        raise ValueError(f"{iterations} iterations need {iterations} releases but the budget has "
                         f"{server.budget.releases - server.budget.used} left: give the server a larger budget")
    if candidates < 1:
        raise ValueError(f"candidates={candidates!r}: each iteration needs at least one candidate")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=make_sampler(sampler, seed, startup=min(2 * candidates, 10)))
    study.enqueue_trial(defaults(space))                                          # step 1: production first
    dists, history = distributions(space), []
    for it in range(iterations):
        trials = [study.ask(dists) for _ in range(candidates)]                   # step 1
        task = EvaluationTask(server.world, tuple(dict(t.params) for t in trials), label)
        release = server.evaluate(task)                                           # steps 2-3
        for j, trial in enumerate(trials):
            mu = release.mean_interval(j)[0]
            if math.isfinite(mu):
                study.tell(trial, mu)
            else:                                                                 # noisy count < 2: no estimate
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            history.append((it, dict(trial.params), mu))
    best = study.best_trial                                                       # step 4
    return TuningRun(sampler, dict(best.params), float(best.value), history, server.budget.spent, iterations)
