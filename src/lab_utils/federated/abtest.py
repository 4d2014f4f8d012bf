"""A simulated A/B test of tuned vs production parameters (Paulik et al. 2021, Table 2 in form).

The paper ships the tuned parameters to a live experiment and reports daily article views and time spent.
Here the simulator plays the users: every device of a held-out population is randomised to control
(production parameters) or treatment (tuned); for ``days`` days, at each session the on-device model ranks
the feed's candidates, the top ``shown`` are displayed in that order, and the user taps and reads by the
*true* behaviour (:meth:`NewsWorld.tap_logit`, :meth:`NewsWorld.reading_seconds`). Per device: article
views per day and seconds spent per day. The analysis is the standard one: difference in means with
Welch's t-test, and the relative lift with a percentile-bootstrap confidence interval.
The A/B analysis is centralised product analytics in the paper too; here it is a simulation, said plainly.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
from scipy import stats

from .personalization import score, topic_profile
from .population import HOURS_PER_DAY, Population


@dataclass(frozen=True)
class ABResult:
    """One metric of the experiment: arm means, relative lift with its CI, Welch's p-value."""

    metric: str
    control: float
    treatment: float
    lift: float
    lift_low: float
    lift_high: float
    p_value: float
    n_control: int
    n_treatment: int

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05


def _ranked_feed(world, data, params: dict[str, float], at_h: float, candidates: int, shown: int,
                 rng: np.random.Generator) -> np.ndarray:
    """The on-device model's top ``shown`` of ``candidates`` fresh articles, best first."""
    arts = world.feed(at_h, candidates, rng)
    a = world.articles
    feats = SimpleNamespace(topic=a.topic[arts], trending=a.trending[arts], log_length=a.log_length[arts],
                            age_h=at_h - a.published_h[arts], position=np.zeros(len(arts)))
    affinity, dwell = topic_profile(data, world, params)
    return arts[np.argsort(-score(feats, world, params, affinity, dwell), kind="stable")[:shown]]


def _one_user(population: Population, i: int, params: dict[str, float], days: int, rng: np.random.Generator,
              candidates: int, shown: int) -> tuple[float, float]:
    """(views per day, seconds per day) of user i over ``days`` days after the logs end."""
    world, device = population.world, population.devices[i]
    interest, taste, rate = population.users[i]
    views = seconds = 0.0
    with device.log.opened() as data:
        start = world.days * HOURS_PER_DAY                                  # the experiment follows the logs
        for at_h in np.sort(rng.uniform(start, start + days * HOURS_PER_DAY, rng.poisson(rate * days))):
            arts = _ranked_feed(world, data, params, at_h, candidates, shown, rng)
            z = world.tap_logit(interest, taste, arts, at_h - world.articles.published_h[arts], np.arange(len(arts)))
            tapped = rng.random(len(arts)) < 1.0 / (1.0 + np.exp(-z))
            views += tapped.sum()
            seconds += world.reading_seconds(interest, arts[tapped], rng).sum()
    return views / days, seconds / days


def lift(control: np.ndarray, treatment: np.ndarray, metric: str, n_boot: int = 2000, seed: int = 0) -> ABResult:
    """Relative lift mean(T)/mean(C) − 1, its 95 % percentile-bootstrap interval, Welch's two-sided p-value."""
    control, treatment = np.asarray(control, float), np.asarray(treatment, float)
    if len(control) < 2 or len(treatment) < 2:
        raise ValueError("each arm needs at least two users for a t-test: enlarge the experiment's population")
    rng = np.random.default_rng(seed)
    mc = control[rng.integers(0, len(control), (n_boot, len(control)))].mean(1)
    mt = treatment[rng.integers(0, len(treatment), (n_boot, len(treatment)))].mean(1)
    low, high = np.percentile(mt / mc - 1.0, [2.5, 97.5])
    p = float(stats.ttest_ind(treatment, control, equal_var=False).pvalue)
    return ABResult(metric, float(control.mean()), float(treatment.mean()), float(treatment.mean() / control.mean() - 1),
                    float(low), float(high), p, len(control), len(treatment))


def ab_test(population: Population, control: dict[str, float], treatment: dict[str, float], days: int = 3,
            seed: int = 0, candidates: int = 20, shown: int = 6) -> dict[str, ABResult]:
    """Randomise every user 50/50, run ``days`` days of feeds, compare daily views and daily seconds."""
    if not 1 <= days <= population.world.ab_days:
        raise ValueError(f"days={days!r}: the world publishes articles for {population.world.ab_days} days after "
                         "the logs; build NewsWorld(ab_days=...) larger for a longer experiment")
    rng = np.random.default_rng(seed)
    arm = rng.permutation(len(population)) % 2
    out = np.array([_one_user(population, i, treatment if arm[i] else control, days, rng, candidates, shown)
                    for i in range(len(population))])
    c, t = out[arm == 0], out[arm == 1]
    return {"daily article views": lift(c[:, 0], t[:, 0], "daily article views", seed=seed),
            "daily time spent (s)": lift(c[:, 1], t[:, 1], "daily time spent (s)", seed=seed)}
