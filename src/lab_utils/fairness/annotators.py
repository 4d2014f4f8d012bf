"""Annotators: each synthetic "dataset" has its own category system and its own labelling rule.

Khan & Fu (2021, abstract and experiments) find that datasets with nominally
equivalent racial categories encode different *racial systems*: the labels come from annotators (or
heuristics) who perceive and sort faces by their own, partly stereotyped, rules. An :class:`Annotator`
models one such rule:

* a category system (``categories``) and its map ``to_common`` onto the categories shared by all
  datasets (the paper compares datasets on the categories they share);
* one prototype per category in trait space, and weights saying how much the annotator looks at each
  trait — weight 0 ignores a trait, a high weight on hair colour with a blond "White" prototype is the
  stereotype the news quote speaks of;
* a labelling slip: the label is the argmax of the scores divided by ``temperature`` plus Gumbel noise,
  i.e. a draw from softmax(score / temperature); the noise is fixed per (annotator, face), so the same face
  gets the same label however the faces are ordered or subset, and a counterfactual face is labelled with
  the same slip.

:data:`DATASETS` defines the chapter's three datasets; they are illustrations, not models of real ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lab_utils.fairness.faces import TRAITS, FaceTraits, hashed_uniform, render_faces, sample_traits

COMMON = ("Black", "White", "Asian", "Indian")
"""The categories shared by every dataset's system (after ``to_common``)."""


@dataclass(frozen=True)
class Annotator:
    """A labelling rule: prototypes per category, weights per trait, a slip temperature and a seed."""

    name: str
    categories: tuple[str, ...]
    prototypes: dict[str, dict[str, float]]
    weights: dict[str, float]
    temperature: float = 0.05
    seed: int = 0
    to_common: dict[str, str] = field(default_factory=dict)
    mix: dict[str, float] | None = None     # the population mixture this dataset's faces come from

    def __post_init__(self) -> None:
        missing = [c for c in self.categories if set(self.prototypes.get(c, {})) != set(TRAITS)]
        if missing:
            raise ValueError(f"{self.name}: categories {missing} need a prototype value for every trait "
                             f"{TRAITS}")
        if set(self.weights) - set(TRAITS) or min(self.weights.values(), default=0) < 0:
            raise ValueError(f"{self.name}: weights must map traits from {TRAITS} to non-negative numbers")
        if self.temperature <= 0:
            raise ValueError(f"{self.name}: temperature must be positive, got {self.temperature}")

    def scores(self, traits: FaceTraits) -> np.ndarray:
        """``(n, C)``: minus the weighted squared distance of each face to each category's prototype."""
        out = np.zeros((len(traits), len(self.categories)))
        for c, cat in enumerate(self.categories):
            for t, w in self.weights.items():
                out[:, c] -= w * (traits.values[t] - self.prototypes[cat][t]) ** 2
        return out

    def slips(self, traits: FaceTraits) -> np.ndarray:
        """``(n, C)`` Gumbel noise, a fixed function of (annotator seed, face id): same face, same slip."""
        keys = np.asarray(traits.face_id, dtype=np.int64) * 1_000_003 + self.seed
        return -np.log(-np.log(hashed_uniform(keys, len(self.categories))))

    def label(self, traits: FaceTraits) -> np.ndarray:
        """Category indices (into ``categories``): argmax of score / temperature + slip."""
        return np.argmax(self.scores(traits) / self.temperature + self.slips(traits), axis=1)

    def common(self, labels: np.ndarray) -> np.ndarray:
        """Map this dataset's category indices to indices into :data:`COMMON`."""
        table = np.array([COMMON.index(self.to_common.get(c, c)) for c in self.categories])
        return table[np.asarray(labels, dtype=int)]


def _proto(skin, hair_light, hair_curl, eye_open, nose_width, face_width=0.5) -> dict[str, float]:
    return dict(zip(TRAITS, (skin, hair_light, hair_curl, eye_open, nose_width, face_width)))


# Shared prototypes; the datasets differ by which traits they weigh and by the stereotype below.
BLACK = _proto(0.20, 0.08, 0.85, 0.62, 0.70)
WHITE = _proto(0.82, 0.35, 0.20, 0.68, 0.44)
ASIAN = _proto(0.72, 0.08, 0.08, 0.28, 0.46, 0.60)
INDIAN = _proto(0.47, 0.08, 0.30, 0.60, 0.56)

DATASETS: dict[str, Annotator] = {
    # looks at skin tone first, then eyes and hair texture; ignores hair colour entirely
    "SkinTone-4": Annotator(
        "SkinTone-4", COMMON, {"Black": BLACK, "White": WHITE, "Asian": ASIAN, "Indian": INDIAN},
        {"skin": 10.0, "eye_open": 4.0, "hair_curl": 2.0, "nose_width": 1.0}, seed=11,
        mix={"P1": 2.0, "P2": 2.0, "P3": 1.0, "P4": 1.0, "P5": 1.0, "P6": 1.0}),
    # the stereotyped rule: "White" means blond to this annotator (hair colour weighs as much as skin)
    "HairColour-4": Annotator(
        "HairColour-4", COMMON,
        {"Black": BLACK, "White": {**WHITE, "hair_light": 0.80}, "Asian": ASIAN, "Indian": INDIAN},
        {"skin": 6.0, "hair_light": 6.0, "eye_open": 3.0, "hair_curl": 2.0}, seed=22,
        mix={"P1": 1.0, "P2": 1.0, "P3": 1.0, "P4": 2.0, "P5": 1.0, "P6": 1.0}),
    # a finer system: two Asian categories and a lighter-skinned "South Asian"; leans on eyes and nose
    "Regional-5": Annotator(
        "Regional-5", ("Black", "White", "East Asian", "Southeast Asian", "South Asian"),
        {"Black": BLACK, "White": WHITE, "East Asian": ASIAN,
         "Southeast Asian": _proto(0.56, 0.08, 0.20, 0.42, 0.56, 0.55),
         "South Asian": _proto(0.62, 0.08, 0.30, 0.62, 0.60)},
        {"skin": 5.0, "eye_open": 5.0, "nose_width": 3.0, "hair_curl": 3.0, "hair_light": 1.0}, seed=33,
        to_common={"East Asian": "Asian", "Southeast Asian": "Asian", "South Asian": "Indian"}),
}


def identical_twin(annotator: Annotator, seed: int) -> Annotator:
    """The same rule with other slips (another seed): what two annotators of one dataset look like."""
    return Annotator(annotator.name + f"-twin{seed}", annotator.categories, annotator.prototypes,
                     annotator.weights, annotator.temperature, seed, annotator.to_common, annotator.mix)


def blend(a: Annotator, b: Annotator, alpha: float, name: str | None = None) -> Annotator:
    """A rule ``alpha`` of the way from ``a`` to ``b`` (same categories needed; prototypes and weights mixed).

    ``alpha = 0`` is ``a``'s rule, ``1`` is ``b``'s: the tests use it to show consistency falling as two
    rules diverge.
    """
    if a.categories != b.categories:
        raise ValueError(f"blend needs the same category system, got {a.categories} and {b.categories}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    protos = {c: {t: (1 - alpha) * a.prototypes[c][t] + alpha * b.prototypes[c][t] for t in TRAITS}
              for c in a.categories}
    weights = {t: (1 - alpha) * a.weights.get(t, 0.0) + alpha * b.weights.get(t, 0.0) for t in TRAITS}
    return Annotator(name or f"{a.name}->{b.name}@{alpha:g}", a.categories, protos, weights,
                     a.temperature, a.seed, a.to_common, a.mix)


def labelled_faces(annotator: Annotator, n: int, seed: int, id_offset: int = 0,
                   size: int = 32) -> tuple[FaceTraits, np.ndarray, np.ndarray]:
    """A synthetic dataset: ``n`` faces from the annotator's population mix, their images and its labels."""
    traits = sample_traits(n, seed, mix=annotator.mix, id_offset=id_offset)
    return traits, render_faces(traits, size), annotator.label(traits)
