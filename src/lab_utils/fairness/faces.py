"""A procedural face generator driven by continuous latent traits: the chapter's synthetic stand-in.

Khan & Fu (2021, introduction and background) stress that race is not a property of a face: the traits
that annotators look at — skin tone, hair colour and texture, eye and nose shape — vary *continuously*,
and the populations they come from overlap. This module builds exactly that and nothing more:

* :func:`sample_traits` draws :class:`FaceTraits`: six continuous traits in ``[0, 1]`` for each face,
  from a mixture of invented populations (:data:`POPULATIONS`, neutral names, wide overlapping spreads),
  plus *nuisance* variables (background, lighting, position, a pixel-noise seed) that carry no trait;
* :func:`render_faces` draws each face as a small RGB image (32×32 by default) from its traits alone, so
  a *counterfactual* face (:meth:`FaceTraits.with_trait`: one trait changed, everything else, noise
  included, fixed) differs from the original only by that trait.

The populations are not races and the categories live elsewhere (:mod:`.annotators`): a category is what an
annotator *assigns*, which is the paper's point. The images are cartoons: a classifier can learn from
them what it can learn from the traits, nothing about real faces.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

TRAITS = ("skin", "hair_light", "hair_curl", "eye_open", "nose_width", "face_width")
"""skin lightness (0 dark … 1 light), hair lightness (0 black … 1 blond), hair texture (0 straight …
1 tightly coiled), eye opening (0 narrow … 1 round), nose width, face width — each in [0, 1]."""

# population -> (mean of each trait in TRAITS order, mixture weight in the default pool)
POPULATIONS: dict[str, tuple[tuple[float, ...], float]] = {
    "P1": ((0.86, 0.55, 0.18, 0.70, 0.40, 0.50), 1.0),
    "P2": ((0.70, 0.14, 0.28, 0.66, 0.50, 0.48), 1.0),
    "P3": ((0.74, 0.08, 0.08, 0.28, 0.45, 0.60), 1.0),
    "P4": ((0.47, 0.08, 0.32, 0.60, 0.56, 0.50), 1.0),
    "P5": ((0.20, 0.08, 0.85, 0.62, 0.70, 0.52), 1.0),
    "P6": ((0.56, 0.10, 0.20, 0.42, 0.55, 0.55), 1.0),
}
SPREAD = 0.11  # within-population standard deviation of every trait: populations overlap


@dataclass(frozen=True)
class FaceTraits:
    """Latent traits (``values[t]``, shape ``(n,)``), hidden population, and per-face nuisance."""

    values: dict[str, np.ndarray]
    population: np.ndarray        # index into the population names used to sample
    face_id: np.ndarray           # a face's identity: annotators' slips are drawn per (annotator, face)
    background: np.ndarray        # (n, 3) RGB in [0, 1]
    lighting: np.ndarray          # (n,) brightness factor: the pixels' skin tone is not the skin tone
    offset: np.ndarray            # (n, 2) position jitter in image units
    noise_seed: np.ndarray        # (n,) seed of each face's pixel noise

    def __len__(self) -> int:
        return len(self.face_id)

    def matrix(self) -> np.ndarray:
        """The traits as an ``(n, len(TRAITS))`` array in :data:`TRAITS` order."""
        return np.stack([self.values[t] for t in TRAITS], axis=1)

    def subset(self, idx: np.ndarray | slice) -> FaceTraits:
        """The faces at ``idx`` (numpy indexing), nuisance and identities kept."""
        return FaceTraits({t: v[idx] for t, v in self.values.items()}, self.population[idx],
                          self.face_id[idx], self.background[idx], self.lighting[idx],
                          self.offset[idx], self.noise_seed[idx])

    def with_trait(self, trait: str, value: float | np.ndarray) -> FaceTraits:
        """Counterfactual faces: ``trait`` set to ``value`` (clipped to [0, 1]), all else unchanged."""
        if trait not in self.values:
            raise ValueError(f"unknown trait {trait!r}: use one of {', '.join(TRAITS)}")
        new = np.clip(np.broadcast_to(np.asarray(value, dtype=float), (len(self),)), 0.0, 1.0).copy()
        return replace(self, values={**self.values, trait: new})


def sample_traits(n: int, seed: int, mix: dict[str, float] | None = None,
                  id_offset: int = 0) -> FaceTraits:
    """``n`` faces from the population mixture ``mix`` (name -> weight; default: equal weights).

    Each trait is the population's mean plus Gaussian spread :data:`SPREAD`, clipped to [0, 1];
    ``face_id`` runs from ``id_offset`` so that pools sampled with other seeds can get other identities.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    mix = {p: w for p, (_, w) in POPULATIONS.items()} if mix is None else dict(mix)
    unknown = set(mix) - set(POPULATIONS)
    if unknown or not mix or min(mix.values()) < 0 or sum(mix.values()) <= 0:
        raise ValueError(f"mix must map population names from {list(POPULATIONS)} to non-negative weights "
                         f"with a positive sum, got {mix!r}")
    rng = np.random.default_rng(seed)
    names = list(POPULATIONS)
    weights = np.array([mix.get(p, 0.0) for p in names], dtype=float)
    pop = rng.choice(len(names), size=n, p=weights / weights.sum())
    means = np.array([POPULATIONS[p][0] for p in names])[pop]
    traits = np.clip(means + SPREAD * rng.standard_normal((n, len(TRAITS))), 0.0, 1.0)
    return FaceTraits(
        values={t: traits[:, k] for k, t in enumerate(TRAITS)}, population=pop,
        face_id=np.arange(id_offset, id_offset + n), background=rng.uniform(0.25, 0.85, (n, 3)),
        lighting=rng.uniform(0.92, 1.08, n), offset=rng.uniform(-0.06, 0.06, (n, 2)),
        noise_seed=rng.integers(0, 2**31 - 1, n),
    )


def hashed_uniform(keys: np.ndarray, count: int) -> np.ndarray:
    """``(len(keys), count)`` uniforms in (0, 1), a fixed function of (key, position): SplitMix64's mixer.

    Vectorised and order-free: the same key gives the same numbers whichever other faces are rendered or
    labelled with it (Steele, Lea & Flood 2014, SplitMix64 finaliser).
    """
    with np.errstate(over="ignore"):
        z = np.asarray(keys, dtype=np.uint64)[:, None] * np.uint64(0x9E3779B97F4A7C15) \
            + np.arange(1, count + 1, dtype=np.uint64)[None, :] * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) / float(2**53)


def _ramp(t: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Piecewise-linear colour ramp: ``t`` in [0, 1] over RGB ``stops`` (k, 3) -> (n, 3)."""
    pos = t * (len(stops) - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, len(stops) - 2)
    frac = (pos - lo)[:, None]
    return stops[lo] * (1 - frac) + stops[lo + 1] * frac


SKIN_RAMP = np.array([[0.27, 0.16, 0.10], [0.55, 0.36, 0.24], [0.80, 0.62, 0.48], [0.97, 0.86, 0.77]])
HAIR_RAMP = np.array([[0.05, 0.04, 0.04], [0.33, 0.21, 0.12], [0.70, 0.55, 0.30], [0.95, 0.85, 0.52]])


def _inside(x: np.ndarray, y: np.ndarray, cx, cy, rx, ry) -> np.ndarray:
    """Boolean (n, s, s) mask of the ellipses with per-face centres and radii (arrays of shape (n,))."""
    e = lambda a: np.asarray(a, dtype=float).reshape(-1, 1, 1)
    return ((x - e(cx)) / e(rx)) ** 2 + ((y - e(cy)) / e(ry)) ** 2 <= 1.0


def render_faces(traits: FaceTraits, size: int = 32) -> np.ndarray:
    """Render every face as ``uint8`` RGB, shape ``(n, size, size, 3)``: a function of traits and nuisance.

    Face ellipse (width from ``face_width``) in the skin colour, a hair cap (colour from ``hair_light``, a
    fine ripple and extra volume from ``hair_curl``), eyes (height from ``eye_open``), a nose shadow
    (width from ``nose_width``), a mouth; then the lighting factor and per-face pixel noise.
    """
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels to draw eyes and nose, got {size}")
    v, n = traits.values, len(traits)
    g = (np.arange(size) + 0.5) / size * 2 - 1
    y, x = np.meshgrid(g, g, indexing="ij")
    cx, cy = traits.offset[:, 0], 0.08 + traits.offset[:, 1]
    rx = 0.40 + 0.16 * v["face_width"]
    curl = v["hair_curl"]
    img = np.empty((n, size, size, 3), dtype=np.float32)
    paint = lambda mask, rgb: np.copyto(img, np.asarray(rgb, dtype=np.float32), where=mask[..., None])
    img[:] = traits.background[:, None, None, :]
    # hair: a larger ellipse behind the face, fuller for coiled hair; visible above and beside the face
    ripple = (0.5 + 0.5 * np.sin(24 * x) * np.sin(24 * y)).astype(np.float32)
    shade = 1 - 0.45 * curl.reshape(-1, 1, 1, 1).astype(np.float32) * ripple[None, :, :, None]
    paint(_inside(x, y, cx, cy - 0.10, rx + 0.10 + 0.12 * curl, 0.74 + 0.10 * curl),
          _ramp(v["hair_light"], HAIR_RAMP)[:, None, None, :] * shade)
    skin = _ramp(v["skin"], SKIN_RAMP)[:, None, None, :]
    paint(_inside(x, y, cx, cy + 0.08, rx, 0.62) & (y >= (cy - 0.30).reshape(-1, 1, 1)), skin)
    paint(_inside(x, y, cx, cy + 0.18, 0.04 + 0.09 * v["nose_width"], 0.12), 0.78 * skin)
    for side in (-1, 1):
        paint(_inside(x, y, cx + side * 0.20, cy - 0.02, 0.13, 0.04 + 0.12 * v["eye_open"]),
              [0.10, 0.08, 0.07])
    paint(_inside(x, y, cx, cy + 0.42, 0.16, 0.045), 0.5 * skin + np.array([0.30, 0.05, 0.05]))
    img *= traits.lighting[:, None, None, None].astype(np.float32)
    # per-face noise from the face's own seed: a counterfactual face gets the same noise
    img += (0.06 * (hashed_uniform(traits.noise_seed, size * size * 3) - 0.5)).reshape(img.shape)
    return (np.clip(img, 0.0, 1.0) * 255).round().astype(np.uint8)
