"""A simulated population of phones reading news: the data FE&T's tasks run on (a simulation, said plainly).

Paulik et al. 2021 (arXiv 2102.08503) tune the on-device personalization of a news app with data that
never leaves the phones. Real logs cannot be had, so :class:`NewsWorld` generates them:

* ``T`` topics with global popularity ``g`` (a Dirichlet draw), articles with a topic, a quality, a length
  and a publication time; a public *trending score* (quality seen through noise) that any server knows;
* each user a latent interest vector ``π_u ~ Dir(c·g)``, a taste for long or short articles and an activity
  rate; over ``days`` days of sessions the feed shows ``K`` recent articles in random order and the user
  taps with probability σ(z) (:meth:`NewsWorld.tap_logit`, the *true* behaviour no parameter of the
  on-device model matches exactly) and, after a tap, reads for a log-normal number of seconds;
* each device an *eligibility*: the fraction of check-in windows in which it is charging, on Wi-Fi and
  idle (the paper's local preconditions), drawn from Beta(2, 3).

A :class:`Device` keeps its log in a :class:`Sealed` vault that opens only while the device runs a task:
any server-side code that reaches for raw data raises :class:`PrivacyViolation` (tests/test_federated.py
runs whole tuning runs under that rule and plants a server that breaks it). The vault catches accidental
reads; Python cannot stop a deliberate one (``log._arrays``), which is a matter for code review, as the
real system's boundary is the phone itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

HOURS_PER_DAY = 24.0
FEED_WINDOW_H = 72.0          # the feed shows articles published in the last three days


class PrivacyViolation(RuntimeError):
    """Raw device data was read outside the device that holds it."""


class Sealed:
    """A device's raw arrays; readable only inside :meth:`opened` (which only the device itself calls)."""

    __slots__ = ("_arrays", "_open")

    def __init__(self, **arrays: np.ndarray) -> None:
        object.__setattr__(self, "_arrays", arrays)
        object.__setattr__(self, "_open", False)

    def __getattr__(self, name: str) -> np.ndarray:
        if not object.__getattribute__(self, "_open"):
            raise PrivacyViolation(f"raw device data ({name!r}) read outside its device: the server may only "
                                   "see the aggregates that Device.run returns into the secure sum")
        return object.__getattribute__(self, "_arrays")[name]

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a device's log is append-only on the device and read-only here")

    @contextmanager
    def opened(self) -> Iterator[Sealed]:
        object.__setattr__(self, "_open", True)
        try:
            yield self
        finally:
            object.__setattr__(self, "_open", False)


@dataclass(frozen=True)
class Articles:
    """The article pool: topic, quality, log-length (standardised), publication hour, public trending score."""

    topic: np.ndarray
    quality: np.ndarray
    log_length: np.ndarray
    published_h: np.ndarray
    trending: np.ndarray


@dataclass(frozen=True)
class Device:
    """One phone: an id, how often it is eligible, and its sealed log (history and local evaluation split)."""

    device_id: int
    eligibility: float
    log: Sealed

    def run(self, task) -> np.ndarray | None:
        """Run ``task`` on this device's own data; return only its metric vector (``None``: declined)."""
        with self.log.opened() as data:
            return task.run_on_device(data)


class NewsWorld:
    """Topics, articles and users' true behaviour; :meth:`population` samples devices from it."""

    def __init__(self, n_topics: int = 10, n_articles: int = 900, days: int = 14, ab_days: int = 7,
                 seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.n_topics, self.days, self.ab_days = n_topics, days, ab_days
        self.topic_popularity = rng.dirichlet(np.full(n_topics, 2.0))
        quality = rng.normal(0.0, 1.0, n_articles)
        self.articles = Articles(
            topic=rng.choice(n_topics, n_articles, p=self.topic_popularity),
            quality=quality,
            log_length=rng.normal(0.0, 1.0, n_articles),
            published_h=np.sort(rng.uniform(-FEED_WINDOW_H, (days + ab_days) * HOURS_PER_DAY, n_articles)),
            trending=quality + rng.normal(0.0, 0.7, n_articles),
        )

    # ---------------------------------------------------------------- the users' true behaviour
    def tap_logit(self, interest: np.ndarray, length_taste: float, article: np.ndarray, age_h: np.ndarray,
                  position: np.ndarray) -> np.ndarray:
        """z = −1.2 + 1.1·log(T·π_u[topic]) clipped to [−3, 2] + 0.6·quality − age/36 h
        + 0.5·taste·log-length − 0.2·position: the behaviour the on-device model approximates."""
        a = self.articles
        affinity = np.clip(np.log(self.n_topics * interest[a.topic[article]] + 1e-12), -3.0, 2.0)
        return (-1.2 + 1.1 * affinity + 0.6 * a.quality[article] - age_h / 36.0
                + 0.5 * length_taste * a.log_length[article] - 0.2 * position)

    def reading_seconds(self, interest: np.ndarray, article: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """log s ~ N(3.2 + 0.5·log(T·π_u[topic]) + 0.4·log-length, 0.6²): longer for topics the user likes."""
        a = self.articles
        affinity = np.clip(np.log(self.n_topics * interest[a.topic[article]] + 1e-12), -3.0, 2.0)
        return np.exp(rng.normal(3.2 + 0.5 * affinity + 0.4 * a.log_length[article], 0.6))

    def feed(self, at_h: float, k: int, rng: np.random.Generator) -> np.ndarray:
        """``k`` articles published in the ``FEED_WINDOW_H`` hours before ``at_h`` (the candidates)."""
        a = self.articles
        lo, hi = np.searchsorted(a.published_h, [at_h - FEED_WINDOW_H, at_h])
        return rng.choice(np.arange(lo, hi), size=min(k, hi - lo), replace=False)

    def sample_user(self, rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
        """(interest π_u ~ Dir(1.5·T·g), taste for length ~ N(0, 1), sessions per day ~ Gamma(2, 0.6))."""
        interest = rng.dirichlet(1.5 * self.n_topics * self.topic_popularity / 4.0 + 0.02)
        return interest, float(rng.normal()), float(rng.gamma(2.0, 0.6))

    # ---------------------------------------------------------------- devices
    def simulate_log(self, interest: np.ndarray, taste: float, rate: float, rng: np.random.Generator,
                     shown: int = 6) -> dict[str, np.ndarray]:
        """One user's impressions over ``days`` days: article, age, position, tapped, seconds, hour."""
        n_sessions = rng.poisson(rate * self.days)
        hours = np.sort(rng.uniform(0.0, self.days * HOURS_PER_DAY, n_sessions))
        cols = {k: [] for k in ("article", "age_h", "position", "hour")}
        for h in hours:
            arts = self.feed(h, shown, rng)
            cols["article"].append(arts)
            cols["age_h"].append(h - self.articles.published_h[arts])
            cols["position"].append(np.arange(len(arts)))
            cols["hour"].append(np.full(len(arts), h))
        log = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in cols.items()}
        log["article"] = log["article"].astype(int)
        z = self.tap_logit(interest, taste, log["article"], log["age_h"], log["position"])
        log["tapped"] = rng.random(len(z)) < 1.0 / (1.0 + np.exp(-z))
        log["seconds"] = np.where(log["tapped"], self.reading_seconds(interest, log["article"], rng), 0.0)
        return log

    def device_features(self, log: dict[str, np.ndarray], split_h: float) -> dict[str, np.ndarray]:
        """What the app stores on the phone: the history (before ``split_h``) and the evaluation impressions,
        each with the article features the on-device model reads."""
        a, hist = self.articles, log["hour"] < split_h
        out = {"now_h": np.array(split_h), "hist_age_h": split_h - log["hour"][hist],
               "hist_topic": a.topic[log["article"][hist]], "hist_tapped": log["tapped"][hist],
               "hist_seconds": log["seconds"][hist]}
        ev = ~hist
        art = log["article"][ev]
        out.update(topic=a.topic[art], trending=a.trending[art], log_length=a.log_length[art], age_h=log["age_h"][ev],
                   position=log["position"][ev], tapped=log["tapped"][ev], seconds=log["seconds"][ev])
        return out

    def population(self, n_devices: int, seed: int, eval_fraction: float = 0.3) -> Population:
        """``n_devices`` devices; each log is split in time: history (personalization) then local evaluation."""
        rng = np.random.default_rng(seed)
        devices, users = [], []
        split_h = self.days * HOURS_PER_DAY * (1.0 - eval_fraction)
        for d in range(n_devices):
            interest, taste, rate = self.sample_user(rng)
            log = self.simulate_log(interest, taste, rate, rng)
            devices.append(Device(d, float(rng.beta(2.0, 3.0)), Sealed(**self.device_features(log, split_h))))
            users.append((interest, taste, rate))
        return Population(self, devices, users)


@dataclass
class Population:
    """The devices and (for the simulator only) the users behind them."""

    world: NewsWorld
    devices: list[Device]
    users: list[tuple[np.ndarray, float, float]]

    def __len__(self) -> int:
        return len(self.devices)

    def check_in(self, rng: np.random.Generator) -> list[Device]:
        """The devices eligible in one scheduling window (charging, on Wi-Fi, idle: probability e_d each)."""
        draws = rng.random(len(self.devices))
        return [d for d, u in zip(self.devices, draws, strict=True) if u < d.eligibility]

    def oracle_loss(self, params: dict[str, float], label) -> float:
        """The simulator's oracle: the mean device loss over every device that meets the precondition.

        No real server can compute this (it opens every vault); the chapter uses it only to score what the
        federated system chose, never inside the system."""
        from .personalization import device_loss

        losses = []
        for d in self.devices:
            with d.log.opened() as data:
                loss = device_loss(data, self.world, params, label)
            if loss is not None:
                losses.append(loss)
        return float(np.mean(losses))
