"""The on-device personalization model that FE&T tunes, and the metrics a device computes for a task.

The news app on each phone scores an article it may show with a small model whose *parameters* are set by
the server; the model's *inputs* are personal (what this user tapped before) and public (topic popularity,
a trending score, the article's age and length). Paulik et al. 2021 tune 6 parameters in their first news
run (label: tapped / not tapped) and 11 in their second (label: read for at least n seconds); the
parameter vectors here have those sizes and play the same roles (feature weights, recency decay, a
global-vs-personal blend, smoothing, a history half-life):

    personal topic share   p̂_t = (Σ_i w_i·tap_i·[topic_i = t] + α·g_t) / (Σ_i w_i·tap_i + α),
                            w_i = 2^(−age of impression i / h)                      (h = ∞ in the 6-parameter run)
    blended affinity       a_t = λ·p̂_t + (1 − λ)·g_t
    score                  s = b + w_aff·log(T·a_t) + w_pop·trending − age/τ
                               [+ w_len·log-length + w_pos·position + w_dwell·dwell_t + w_int·log(T·a_t)·trending]
    prediction             P(label = 1) = σ(s)

``dwell_t`` is the user's mean log reading time on topic t minus their overall mean (0 without history).
A device computes everything from its own history and evaluates on its own later impressions; the loss is
the binary cross-entropy (the paper's "prediction loss").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOSS_EPS = 1e-3          # predictions are clipped to [ε, 1 − ε]: a device's loss is at most −log ε ≈ 6.9
MIN_EVAL_IMPRESSIONS = 8  # a device's local precondition: enough evaluation impressions to report


@dataclass(frozen=True)
class Param:
    """One tunable parameter: its range, whether it is searched on a log scale, and the production default."""

    name: str
    low: float
    high: float
    default: float
    log: bool = False


SIX = (Param("bias", -4.0, 1.0, -0.6), Param("w_aff", 0.0, 2.5, 0.4), Param("w_pop", 0.0, 1.5, 0.2),
       Param("tau_h", 4.0, 400.0, 12.0, log=True), Param("blend", 0.0, 1.0, 0.3),
       Param("alpha", 0.1, 100.0, 30.0, log=True))
ELEVEN = SIX + (Param("w_len", -1.0, 1.0, 0.0), Param("w_pos", -0.6, 0.2, 0.0), Param("w_dwell", -1.0, 2.0, 0.0),
                Param("half_life_h", 12.0, 1000.0, 1000.0, log=True), Param("w_int", -0.5, 0.5, 0.0))
SPACES = {6: SIX, 11: ELEVEN}


def defaults(space: tuple[Param, ...]) -> dict[str, float]:
    """The production parameters a tuning run starts from (and the A/B test's control)."""
    return {p.name: p.default for p in space}


def space_for(params: dict[str, float]) -> tuple[Param, ...]:
    """The 11-parameter space if ``params`` holds its extra terms, else the 6-parameter one."""
    return ELEVEN if "w_len" in params else SIX


def check_params(params: dict[str, float], space: tuple[Param, ...]) -> None:
    """Raise ValueError naming what is missing or out of range (a task with bad parameters never ships)."""
    missing = [p.name for p in space if p.name not in params]
    if missing:
        raise ValueError(f"parameters {missing} are missing: give all of {[p.name for p in space]}")
    bad = [f"{p.name}={params[p.name]!r} not in [{p.low}, {p.high}]" for p in space
           if not p.low <= float(params[p.name]) <= p.high]
    if bad:
        raise ValueError("parameters out of range: " + "; ".join(bad))


@dataclass(frozen=True)
class Label:
    """What counts as a positive: a tap (``min_seconds=0``) or a read of at least ``min_seconds`` seconds."""

    min_seconds: float = 0.0

    def of(self, tapped: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        return tapped if self.min_seconds <= 0 else tapped & (seconds >= self.min_seconds)

    def __str__(self) -> str:
        return "tapped" if self.min_seconds <= 0 else f"read >= {self.min_seconds:g} s"


TAPPED = Label()


def topic_profile(data, world, params: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(blended affinity a_t, dwell_t) from the device's history: the personal part of the model."""
    tapped = data.hist_tapped
    w = np.exp2(-data.hist_age_h / params.get("half_life_h", np.inf)) * tapped
    g, alpha = world.topic_popularity, params["alpha"]
    share = (np.bincount(data.hist_topic, weights=w, minlength=world.n_topics) + alpha * g) / (w.sum() + alpha)
    affinity = params["blend"] * share + (1.0 - params["blend"]) * g
    dwell = np.zeros(world.n_topics)
    if "w_dwell" in params and tapped.any():
        log_s, topic = np.log(data.hist_seconds[tapped]), data.hist_topic[tapped]
        count = np.bincount(topic, minlength=world.n_topics)
        per_topic = np.bincount(topic, weights=log_s, minlength=world.n_topics)
        dwell = np.where(count > 0, per_topic / np.maximum(count, 1) - log_s.mean(), 0.0)
    return affinity, dwell


def score(data, world, params: dict[str, float], affinity: np.ndarray, dwell: np.ndarray) -> np.ndarray:
    """s = b + w_aff·log(T·a_t) + w_pop·trending − age/τ [+ the 11-parameter terms] (module docstring)."""
    log_aff = np.log(world.n_topics * affinity[data.topic])
    s = params["bias"] + params["w_aff"] * log_aff + params["w_pop"] * data.trending - data.age_h / params["tau_h"]
    if "w_len" in params:
        s = s + (params["w_len"] * data.log_length + params["w_pos"] * data.position
                 + params["w_dwell"] * dwell[data.topic] + params["w_int"] * log_aff * data.trending)
    return s


def device_loss(data, world, params: dict[str, float], label: Label) -> float | None:
    """The device's mean binary cross-entropy on its own evaluation impressions (None: precondition fails)."""
    if len(data.topic) < MIN_EVAL_IMPRESSIONS:
        return None
    affinity, dwell = topic_profile(data, world, params)
    p = np.clip(1.0 / (1.0 + np.exp(-score(data, world, params, affinity, dwell))), LOSS_EPS, 1.0 - LOSS_EPS)
    y = label.of(data.tapped, data.seconds)
    return float(-np.mean(np.where(y, np.log(p), np.log1p(-p))))


@dataclass(frozen=True)
class EvaluationTask:
    """Score each candidate on the device's own later impressions; upload [1, l_1, l_1², …] (or decline)."""

    world: object            # the public side of the world: topic popularity, article features
    candidates: tuple[dict[str, float], ...]
    label: Label = TAPPED

    def __post_init__(self) -> None:
        if not self.candidates:
            raise ValueError("a task needs at least one candidate parameter vector")
        for params in self.candidates:
            check_params(params, space_for(params))

    @property
    def dim(self) -> int:
        return 1 + 2 * len(self.candidates)

    def run_on_device(self, data) -> np.ndarray | None:
        losses = [device_loss(data, self.world, params, self.label) for params in self.candidates]
        if losses[0] is None:                      # the precondition does not depend on the parameters
            return None
        return np.array([1.0, *[v for loss in losses for v in (loss, loss * loss)]])
