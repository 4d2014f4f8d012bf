"""Offline data for the Model Search chapter: a generated keyword-spotting task and scikit-learn's digits.

Model Search's paper results are on speech (language identification and keyword spotting, Interspeech
2019: the README's "Model Search" paragraph). Speech data cannot be downloaded here, so
:func:`keyword_spotting` **generates** a synthetic stand-in: log-mel-like spectrograms (``n_mels`` channels
over ``n_frames`` frames) of keywords that are all made of the *same* three syllables in different orders,
so that a model must see order in time (as "on"/"no" must) and a bag of frame features is at chance.
Speakers shift the formants and the gain, speakers talk faster or slower, the onset moves and background
noise is added. What transfers: a 1-D sequence task whose difficulty depends on the architecture's
receptive field and temporal modelling. What does not: real phonetics, co-articulation, reverberation.

:func:`digits` is real data that a pinned package ships (``sklearn.datasets.load_digits``: 1797 scanned
8x8 digits), read as 8 channels (rows) over 8 steps (columns) so the same 1-D search space applies.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Splits:
    """A task: ``x`` of shape (N, channels, length), integer labels ``y``, split train / val / test."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def length(self) -> int:
        return int(self.x_train.shape[2])


def _syllable_shapes(n_syllables: int, n_mels: int, rng: np.random.Generator) -> np.ndarray:
    """Each syllable: two or three formant bumps (Gaussian in mel bins) at random centres, shape (S, n_mels)."""
    bins = np.arange(n_mels)
    shapes = np.zeros((n_syllables, n_mels))
    for s in range(n_syllables):
        for centre in rng.uniform(1, n_mels - 2, size=rng.integers(2, 4)):
            shapes[s] += rng.uniform(0.6, 1.0) * np.exp(-0.5 * ((bins - centre) / 1.3) ** 2)
    return shapes


def _utterance(order: tuple[int, ...], shapes: np.ndarray, n_frames: int, rng: np.random.Generator,
               noise: float) -> np.ndarray:
    """One spoken keyword as a log-mel-like (n_mels, n_frames) array with speaker/speed/noise variation."""
    n_mels = shapes.shape[1]
    speed = rng.uniform(0.75, 1.3)                      # speaking rate
    shift = rng.uniform(-1.5, 1.5)                      # vocal-tract length: formants move in mel
    gain = rng.uniform(0.6, 1.4)
    durations = np.maximum(3, np.round(rng.uniform(5, 8, size=len(order)) * speed)).astype(int)
    start = rng.integers(0, max(1, n_frames - durations.sum()))
    energy = np.zeros((n_mels, n_frames))
    t = start
    bins = np.arange(n_mels)
    for syllable, d in zip(order, durations):
        shaped = np.interp(bins - shift, bins, shapes[syllable])          # shifted formants
        envelope = np.sin(np.linspace(0.2, np.pi - 0.2, d))               # rise and fall in loudness
        stop = min(n_frames, t + d)
        energy[:, t:stop] += gain * shaped[:, None] * envelope[None, : stop - t]
        t = stop
    energy += noise * rng.gamma(1.0, 1.0, size=energy.shape)              # background noise power
    return np.log(1e-2 + energy)


def keyword_spotting(n_train: int = 1200, n_val: int = 400, n_test: int = 400, n_mels: int = 16,
                     n_frames: int = 32, noise: float = 0.15, seed: int = 0) -> Splits:
    """The generated keyword-spotting task: 6 keywords = the 6 orders of the same 3 syllables.

    Labels are balanced; each split has its own speakers (its own random draws). The vocabulary is
    fixed by ``seed`` only through the syllable shapes, so every split shares it.
    """
    if n_frames < 24 or n_mels < 8:
        raise ValueError(f"need n_frames >= 24 and n_mels >= 8 for three syllables, got {n_frames}, {n_mels}")
    rng = np.random.default_rng(seed)
    shapes = _syllable_shapes(3, n_mels, rng)
    keywords = list(itertools.permutations(range(3)))
    parts = []
    for n in (n_train, n_val, n_test):
        y = np.arange(n) % len(keywords)
        rng.shuffle(y)
        x = np.stack([_utterance(keywords[k], shapes, n_frames, rng, noise) for k in y])
        parts += [torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long)]
    mean, std = parts[0].mean(), parts[0].std()
    for i in (0, 2, 4):
        parts[i] = (parts[i] - mean) / std
    return Splits("keyword spotting (generated)", *parts, n_classes=len(keywords))


def digits(n_val: int = 400, n_test: int = 397, seed: int = 0) -> Splits:
    """scikit-learn's bundled 8x8 digits as (N, 8 rows, 8 columns), scaled to [0, 1]; shuffled by ``seed``."""
    from sklearn.datasets import load_digits

    data = load_digits()
    order = np.random.default_rng(seed).permutation(len(data.target))
    x = torch.tensor(data.images[order] / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target[order], dtype=torch.long)
    n_train = len(y) - n_val - n_test
    if n_train < 100:
        raise ValueError(f"n_val + n_test = {n_val + n_test} leaves {n_train} training digits: use fewer")
    a, b = n_train, n_train + n_val
    return Splits("digits (scikit-learn)", x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], n_classes=10)
