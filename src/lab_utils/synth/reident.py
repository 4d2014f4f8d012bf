"""Netflix-Prize-style de-anonymisation (Narayanan & Shmatikov, IEEE S&P 2008) — a *simulation*.

The data is generated (no real ratings are used): a sparse users × items table with a
long-tailed (Zipf) item popularity, ratings 1-5 and rating dates. The adversary knows a
few of a target's ratings with noise (rating ± 1, date ± a couple of weeks) — the
paper's "auxiliary information" — and runs its Algorithm "Scoreboard-RH" (Sec. 5.2, 6):

    Score(aux, r') = Σ_{i ∈ supp(aux)} wt(i) · ( e^{−|ρ_i − ρ'_i| / ρ0} + e^{−|d_i − d'_i| / d0} )
    wt(i)          = 1 / log |supp(i)|            (rare items weigh more)
    eccentricity   = (max − max₂) / σ(scores);   declare a match only if it is ≥ φ

with the paper's ρ0 = 1.5, d0 = 30 days, φ = 1.5. Only records that rated i contribute
for item i. On a release without dates the date term is dropped.

Success is judged the same way for every release: the claimed record must reveal the
target's ratings — its set of rated items has Jaccard similarity ≥ ``jaccard`` with the
target's true set (on the raw release this is the target's own row). The random
baseline claims a uniformly random released record.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lab_utils.graded import graded_reference


@dataclass
class Ratings:
    """``ratings`` (users × items, 0 = not rated, else 1-5) and ``dates`` (days, −1 where unrated) or None."""

    ratings: np.ndarray
    dates: np.ndarray | None = None

    def to_frame(self) -> pd.DataFrame:
        """Ratings only, one categorical column per item (the table a synthesizer is fit on)."""
        return pd.DataFrame({f"item{i:03d}": self.ratings[:, i] for i in range(self.ratings.shape[1])})

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> Ratings:
        return cls(df.to_numpy(dtype=np.int64), None)


def make_ratings(n_users: int = 2000, n_items: int = 100, mean_ratings: float = 15.0, zipf: float = 1.0,
                 n_days: int = 2000, seed: int = 0) -> Ratings:
    """Generate a sparse ratings table: Zipf(``zipf``) item popularity, user/item effects, dates."""
    if n_users < 2 or n_items < 2 or not 1 <= mean_ratings <= n_items:
        raise ValueError("need n_users >= 2, n_items >= 2 and 1 <= mean_ratings <= n_items")
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_items + 1) ** zipf
    pop /= pop.sum()
    quality = rng.normal(3.5, 0.7, n_items)
    ratings = np.zeros((n_users, n_items), dtype=np.int64)
    dates = np.full((n_users, n_items), -1, dtype=np.int64)
    counts = np.clip(rng.geometric(1 / mean_ratings, n_users), 2, n_items)
    for u in range(n_users):
        items = rng.choice(n_items, size=counts[u], replace=False, p=pop)
        r = quality[items] + rng.normal(0, 0.5) + rng.normal(0, 0.8, len(items))
        ratings[u, items] = np.clip(np.round(r), 1, 5)
        start = rng.integers(0, n_days)
        dates[u, items] = start + rng.exponential(60, len(items)).astype(np.int64)
    return Ratings(ratings, dates)


def auxiliary_information(table: Ratings, target: int, n_known: int, rng: np.random.Generator,
                          rating_noise: int = 1, date_noise: int = 14,
                          items: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The adversary's aux: ``n_known`` of the target's items (only among ``items`` if given),
    ratings ± ``rating_noise``, dates ± ``date_noise``."""
    rated = np.flatnonzero(table.ratings[target])
    if items is not None:
        rated = np.intersect1d(rated, items)
    items = rng.choice(rated, size=min(n_known, len(rated)), replace=False)
    rho = np.clip(table.ratings[target, items] + rng.integers(-rating_noise, rating_noise + 1, len(items)), 1, 5)
    aux = {"items": items, "ratings": rho}
    if table.dates is not None:
        aux["dates"] = table.dates[target, items] + rng.integers(-date_noise, date_noise + 1, len(items))
    return aux


def item_weights(release: Ratings) -> np.ndarray:
    """wt(i) = 1 / log |supp(i)| over the released records (|supp| floored at 2 so the weight stays finite)."""
    supp = (release.ratings > 0).sum(axis=0)
    return 1.0 / np.log(np.maximum(supp, 2))


@graded_reference  # labs/07-dp-synth asks students to write it
def scoreboard(aux: dict[str, np.ndarray], release: Ratings, weights: np.ndarray,
               rho0: float = 1.5, d0: float = 30.0) -> np.ndarray:
    """Score(aux, r') for every released record r' (Narayanan & Shmatikov 2008, Sec. 5.2)."""
    items = aux["items"]
    r = release.ratings[:, items]
    sim = np.exp(-np.abs(aux["ratings"][None, :] - r) / rho0)
    if release.dates is not None and "dates" in aux:
        sim = sim + np.exp(-np.abs(aux["dates"][None, :] - release.dates[:, items]) / d0)
    sim = np.where(r > 0, sim, 0.0)
    return (sim * weights[items][None, :]).sum(axis=1)


def eccentricity(scores: np.ndarray) -> float:
    """(max − second max) / standard deviation of the scores."""
    if len(scores) < 2:
        raise ValueError("eccentricity needs at least two released records")
    top2 = np.sort(scores)[-2:]
    sd = scores.std()
    return float((top2[1] - top2[0]) / sd) if sd > 0 else 0.0


def deanonymize(aux: dict[str, np.ndarray], release: Ratings, weights: np.ndarray, phi: float = 1.5) -> int | None:
    """The best-scoring record if its eccentricity is ≥ φ, else None (no match declared)."""
    scores = scoreboard(aux, release, weights)
    return int(scores.argmax()) if eccentricity(scores) >= phi else None


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    sa, sb = set(np.flatnonzero(a)), set(np.flatnonzero(b))
    return len(sa & sb) / max(len(sa | sb), 1)


def attack(truth: Ratings, release: Ratings, n_targets: int, n_known: int, seed: int,
           phi: float = 1.5, threshold: float = 0.5, known_items: np.ndarray | None = None) -> dict[str, float]:
    """Run the attack on ``n_targets`` random users; success rates of the attack and of a random guess.

    ``known_items`` restricts the adversary's knowledge to those items (the *linkage columns*); the
    targets are then drawn among users who rated at least ``n_known`` of them.
    """
    rng = np.random.default_rng(seed)
    weights = item_weights(release)
    if known_items is None:
        targets = rng.choice(len(truth.ratings), size=n_targets, replace=False)
    else:
        eligible = np.flatnonzero((truth.ratings[:, known_items] > 0).sum(1) >= n_known)
        if len(eligible) < n_targets:
            raise ValueError(f"only {len(eligible)} users rated {n_known} of the known items: "
                             "ask for fewer targets or known ratings, or pick more popular items")
        targets = rng.choice(eligible, size=n_targets, replace=False)
    hits = guesses = claims = 0
    for t in targets:
        aux = auxiliary_information(truth, t, n_known, rng, items=known_items)
        match = deanonymize(aux, release, weights, phi)
        if match is not None:
            claims += 1
            hits += jaccard(release.ratings[match], truth.ratings[t]) >= threshold
        guess = rng.integers(len(release.ratings))
        guesses += jaccard(release.ratings[guess], truth.ratings[t]) >= threshold
    return {"success": hits / n_targets, "baseline": guesses / n_targets, "claimed": claims / n_targets}
