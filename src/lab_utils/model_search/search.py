"""What to train next: Model Search's beam search with mutation, and Optuna's random and TPE samplers.

Model Search's default search (``search/coordinate_descent.py``, ``get_suggestion``, lines 37-85):

1. sort the valid completed trials by their objective and keep the best ``beam_size`` (lines 41-44);
2. none yet: a random architecture of ``minimum_depth`` blocks (lines 47-54);
3. otherwise pick one of the beam **uniformly at random** (line 57-58,
   ``common.choose_random_trial_and_get_architecture``); with probability
   ``increase_complexity_probability`` (line 64-65), and if it is shallower than the depth allowed so far,
   **deepen** it by one random block (lines 69-73, ``architecture_utils.increase_structure_depth``);
4. else **mutate** it: replace one uniformly chosen block by a random one (lines 76-85,
   ``common.mutate_replace``).

The depth allowed grows with the number of completed trials: ``common.get_allowed_depth`` with the default
thresholds ``[5 * i for i in range(max_depth)]`` (``search/common.py`` lines 79-99).

Defaults from ``configs/dnn_config.pbtxt``: ``minimum_depth: 1``, ``maximum_depth: 5`` (lines 1-2),
``beam_size: 5``, ``increase_complexity_probability: 0.9`` (lines 21-22).

The baselines search the same space with Optuna's own samplers (``RandomSampler``, ``TPESampler``) through
a define-by-run suggestion of the depth and of one block per position.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import optuna

from lab_utils.graded import graded_reference
from lab_utils.model_search.space import BLOCK_NAMES, ArchSpec, is_buildable

BEAM_SIZE = 5                     # configs/dnn_config.pbtxt line 21
INCREASE_COMPLEXITY_PROBABILITY = 0.9   # configs/dnn_config.pbtxt line 22
MIN_DEPTH, MAX_DEPTH = 1, 5       # configs/dnn_config.pbtxt lines 1-2
SEARCHERS = ("beam", "random", "tpe")


@dataclass(frozen=True)
class Completed:
    """A finished trial as the searchers see it: its number, objective (validation accuracy), spec."""

    number: int
    value: float
    spec: ArchSpec


def default_depth_thresholds(max_depth: int) -> list[int]:
    """``search/common.py`` lines 79-81: 5 more completed trials unlock one more block of depth."""
    return [5 * i for i in range(max_depth)]


def allowed_depth(n_completed: int, max_depth: int = MAX_DEPTH, thresholds: Sequence[int] | None = None) -> int:
    """``common.get_allowed_depth`` (lines 84-99): the first depth whose threshold is not yet reached."""
    thresholds = list(thresholds) if thresholds else default_depth_thresholds(max_depth)
    if len(thresholds) > max_depth:
        raise ValueError(f"{len(thresholds)} thresholds for max_depth {max_depth}: give at most max_depth")
    if n_completed >= thresholds[-1]:
        return max_depth
    return next(depth for depth, t in enumerate(thresholds) if t > n_completed)


@graded_reference
def beam_select(completed: Sequence[Completed], beam_size: int = BEAM_SIZE) -> list[Completed]:
    """The beam (coordinate_descent.py lines 41-44): the ``beam_size`` best valid trials, best first.

    Valid = a finite objective. Ties go to the earlier trial, so the beam is a function of the history.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1 (coordinate_descent.py line 39), got {beam_size}")
    valid = [t for t in completed if t.value is not None and math.isfinite(t.value)]
    return sorted(valid, key=lambda t: (-t.value, t.number))[:beam_size]


def random_block(rng: np.random.Generator, blocks: Sequence[str] = BLOCK_NAMES) -> str:
    return str(blocks[rng.integers(len(blocks))])


def random_spec(rng: np.random.Generator, depth: int, length: int,
                blocks: Sequence[str] = BLOCK_NAMES) -> ArchSpec:
    """``common.get_random_architecture``: ``depth`` random blocks (redrawn until the input allows them)."""
    for _ in range(1000):
        spec = ArchSpec(tuple(random_block(rng, blocks) for _ in range(depth)))
        if is_buildable(spec, length):
            return spec
    raise ValueError(f"no buildable spec of depth {depth} for length {length}: fewer pooling blocks")


def increase_depth(spec: ArchSpec, block: str) -> ArchSpec:
    """``architecture_utils.increase_structure_depth`` (lines 313-337): the new block goes at the end."""
    return ArchSpec((*spec.blocks, block))


@graded_reference
def mutate_replace(spec: ArchSpec, rng: np.random.Generator, length: int,
                   blocks: Sequence[str] = BLOCK_NAMES) -> ArchSpec:
    """``common.mutate_replace`` (lines 119-140): one uniformly chosen position gets a random block.

    Model Search retries while the position holds a FLATTEN block; here the draw is retried while the
    child cannot be built for ``length`` frames (too much pooling) — the same "keep it valid" rule.
    """
    for _ in range(1000):
        position = int(rng.integers(spec.depth))
        child = list(spec.blocks)
        child[position] = random_block(rng, blocks)
        candidate = ArchSpec(tuple(child))
        if is_buildable(candidate, length):
            return candidate
    raise ValueError(f"no buildable mutation of {spec} for length {length}")


def suggest_beam(completed: Sequence[Completed], rng: np.random.Generator, length: int,
                 beam_size: int = BEAM_SIZE, min_depth: int = MIN_DEPTH, max_depth: int = MAX_DEPTH,
                 increase_probability: float = INCREASE_COMPLEXITY_PROBABILITY,
                 thresholds: Sequence[int] | None = None) -> tuple[ArchSpec, int | None, str]:
    """One suggestion of coordinate_descent.get_suggestion: (spec, parent trial number, "random"|"deepen"|"mutate")."""
    if not 0 <= increase_probability <= 1:
        raise ValueError(f"increase_probability must be in [0, 1], got {increase_probability}")
    beam = beam_select(completed, beam_size)
    if not beam:                                                        # lines 47-54
        return random_spec(rng, min_depth, length), None, "random"
    parent = beam[int(rng.integers(len(beam)))]                          # lines 57-58
    depth_ok = allowed_depth(len(beam_select(completed, 10**9)), max_depth, thresholds)  # lines 59-62
    explore = rng.random() < increase_probability                      # lines 64-65
    new_block = random_block(rng)                                        # lines 66-67
    if parent.spec.depth < depth_ok and explore:                         # lines 69-73
        child = increase_depth(parent.spec, new_block)
        if is_buildable(child, length):
            return child, parent.number, "deepen"
    return mutate_replace(parent.spec, rng, length), parent.number, "mutate"   # lines 76-85


def suggest_optuna(trial: optuna.Trial, length: int, min_depth: int = MIN_DEPTH,
                   max_depth: int = MAX_DEPTH) -> ArchSpec | None:
    """Define-by-run suggestion of the same space for Optuna's samplers; None when it cannot be built."""
    depth = trial.suggest_int("depth", min_depth, max_depth)
    spec = ArchSpec(tuple(trial.suggest_categorical(f"block_{i}", BLOCK_NAMES) for i in range(depth)))
    return spec if is_buildable(spec, length) else None


def make_sampler(searcher: str, seed: int, n_startup_trials: int = 10) -> optuna.samplers.BaseSampler:
    """The Optuna sampler of each searcher (beam search draws its own suggestions; its sampler is unused)."""
    if searcher not in SEARCHERS:
        raise ValueError(f"searcher must be one of {SEARCHERS}, got {searcher!r}")
    if searcher == "tpe":   # its own seed stream: its random start is not the random searcher's first draws
        return optuna.samplers.TPESampler(seed=seed + 7919, n_startup_trials=n_startup_trials)
    return optuna.samplers.RandomSampler(seed=seed)
